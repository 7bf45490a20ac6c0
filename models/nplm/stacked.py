"""The NPLM's stacked form: K seeds of one (non-modern) NPLM as one module
(models/seed_stack.py explains the seed axis)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from models.nplm.model import NPLM
from models.seed_stack import AddTimesWeight, SeedStack, linear

_AddTimesWeight = AddTimesWeight  # the name checkpoints from before it moved may hold (models/relocate.py)


class StackedNPLM(SeedStack):
    def __init__(self, models: Sequence[NPLM]) -> None:
        super().__init__(models)
        m = models[0]
        self.vocab, self.p = m.embed.num_embeddings, m.dropout
        self._stack("embed", "embed.weight", merge=True)
        self._stack("b", "b", bias=True)
        self.direct = m.direct is not None
        self.hidden = m.hidden is not None
        if self.direct:
            self._stack("W", "direct.weight")
        if self.hidden:
            self._stack("H", "hidden.weight")
            self._stack("d", "hidden.bias", bias=True)
            self._stack("U", "out.weight")
        self._done_stacking()

    @property
    def draws_noise(self) -> bool:
        return self.p > 0  # as NPLM.draws_noise

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        """ctx (K, B, n-1) word indices, oldest first -> logits (K, B, V)."""
        x = F.embedding(ctx + self.seed_offsets(self.vocab, ctx.device), self.embed).flatten(2)
        x = self.drop(x, self.p)  # (K, B, (n-1) m)
        y = self.b.unsqueeze(1)  # (K, 1, V)
        if self.direct:
            y = AddTimesWeight.apply(y, x, self.W)  # + W x
        if self.hidden:
            a = torch.tanh(linear(x, self.H, self.d))  # (K, B, h)
            y = AddTimesWeight.apply(y, self.drop(a, self.p), self.U)  # + U tanh(d + H x)
        return y  # (K, B, V): the direct or the hidden path always exists
