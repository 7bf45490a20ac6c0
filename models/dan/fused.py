"""DAN's fused form: T configurations x K seeds of one DAN architecture as one stacked model
(models/fused/ trains it), each slice with its own dropout and word dropout rates and, in
`row_step`, its own learning rate and weight decay.

Slice s draws its noise from its own generator exactly as its plain DAN does alone: word
dropout scores only where its rate is above 0, then one mask a dropout layer only where its
rate is above 0 (a rate of 0 draws nothing, alone as here).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.dan.model import DAN, drop_scored
from models.dan.stacked import StackedDAN
from models.errors import UserError
from models.noise import dropout_mask


def architecture(m: DAN) -> tuple:
    """What fused DANs must share: parameter names, shapes and trainability, the layers'
    kinds, padding index and sparse gradients; all else (the rates) may differ."""
    return (tuple((n, tuple(p.shape), p.requires_grad) for n, p in m.named_parameters()),
            tuple(type(layer).__name__ for layer in (*m.hidden, *m.classifier)), m.padding_idx,
            m.embed.sparse)


class FusedDAN(StackedDAN):
    """DANs of one architecture, one slice each, with per-slice dropout and word dropout."""

    def __init__(self, models: Sequence[DAN]) -> None:
        first = architecture(models[0])
        for i, m in enumerate(models):
            if architecture(m) != first:
                raise UserError(f"DAN {i} differs from the first in its architecture (layers, widths, "
                                "embeddings), so they cannot be fused: fuse only DANs that differ in their "
                                "dropout rates.")
        super().__init__(models)
        rates = [[layer.p for layer in (*m.hidden, *m.classifier) if isinstance(layer, nn.Dropout)]
                 for m in models]
        self.p = [tuple(r[j] for r in rates) for j in range(len(rates[0]))]  # layer -> per-slice rates
        self.word_rates = [m.word_dropout for m in models]
        self.word_dropout = 0.0  # StackedDAN.forward's own (one-rate) word dropout stays off

    def keep(self, rows: Sequence[int]) -> dict:
        self.p = [tuple(ps[r] for r in rows) for ps in self.p]
        self.word_rates = [self.word_rates[r] for r in rows]
        self._rates = {}
        return super().keep(rows)

    def drop(self, x: torch.Tensor, p: Sequence[float]) -> torch.Tensor:
        """Dropout on (S, B, ...) at slice s's rate, its mask from slice s's generator."""
        if not self.training or not any(p):
            return x
        ones = torch.ones(x.shape[1:], device=x.device, dtype=x.dtype)
        return x * torch.stack([dropout_mask(x.shape[1:], r, g, x.device, x.dtype) if r > 0 else ones
                                for r, g in zip(p, self.noise)])

    def drop_words(self, tokens: torch.Tensor, widths: Sequence[int] | None) -> torch.Tensor:
        """Word dropout of tokens (S, B, T) at each slice's rate, scores from its generator
        over its own batch's width (as alone); a slice at rate 0 draws nothing and keeps all."""
        k, b, t = tokens.shape
        widths = widths or [t] * k
        scores = torch.stack([F.pad(torch.rand((b, w), generator=g, device=tokens.device), (0, t - w),
                                    value=-1.0) if r > 0 else
                              torch.zeros((b, t), device=tokens.device)
                              for w, g, r in zip(widths, self.noise, self.word_rates)])  # (S, B, T)
        rates = self._word_rates(b, tokens.device)  # (S B, 1)
        return drop_scored(tokens.flatten(0, 1), scores.flatten(0, 1), rates, self.pad).view(tokens.shape)

    def _word_rates(self, b: int, device: torch.device) -> torch.Tensor:
        """Slice s's word dropout rate for each of its b rows, (S b, 1): made once a batch
        size, so a batch copies nothing from the host."""
        cache = self.__dict__.setdefault("_rates", {})
        if (b, device) not in cache:
            cache[b, device] = torch.tensor(self.word_rates, device=device).repeat_interleave(b).unsqueeze(1)
        return cache[b, device]

    def forward(self, tokens: torch.Tensor, widths: Sequence[int] | None = None) -> torch.Tensor:
        """tokens (S, B, T) right-padded, slice s's own batch trimmed to widths[s] -> (S, B, C)."""
        if self.training and any(self.word_rates):
            tokens = self.drop_words(tokens, widths)
        return super().forward(tokens, widths)

    @torch.no_grad()
    def row_step(self, lr: torch.Tensor, weight_decay: torch.Tensor, eps: float = 1e-10) -> None:
        """StackedDAN.row_step with slice s's lr[s] and weight_decay[s] (each (S,)) on its rows:
        g += wd w (lazy L2), then Adagrad (s += g^2; w -= lr g / (sqrt(s) + eps)) or SGD."""
        g = self._compact.grad
        if g is None:
            return
        rows = self._rows
        owner = torch.div(rows, self.vocab, rounding_mode="floor")  # (R,) the slice of each row
        lr_rows = lr.index_select(0, owner).unsqueeze(1)  # (R, 1)
        g = g + weight_decay.index_select(0, owner).unsqueeze(1) * self._compact
        if self.row_optimizer == "adagrad":
            total = self.row_state["embed"]
            s = total.index_select(0, rows).addcmul_(g, g)
            total.index_copy_(0, rows, s)
            self.embed.index_copy_(0, rows, self._compact.add_(g.mul(-lr_rows).div_(s.sqrt_().add_(eps))))
        else:
            self.embed.index_copy_(0, rows, self._compact.add_(g.mul(-lr_rows)))
        self._compact = None


def fused_form(models: Sequence[nn.Module]) -> FusedDAN:
    """T configurations x K seeds of one DAN architecture as one fused model."""
    return FusedDAN(models)
