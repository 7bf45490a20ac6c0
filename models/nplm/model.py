"""Neural Probabilistic Language Model (Bengio, Ducharme, Vincent & Jauvin, JMLR 2003).

    y = b + W x + U tanh(d + H x)                                   (eq. 1)

x is the concatenation of the embeddings C(w) of the n-1 previous words; W are the
optional direct connections from the embeddings to the output, h the hidden size
(h = 0: no hidden layer). The softmax over y gives P(w_t | w_{t-n+1} .. w_{t-1}).
`modern=True` follows Sun & Iyyer (2021): ReLU, layer norm and a residual hidden block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from models.noise import dropout
from models.registry import BuildContext, Built


class NPLM(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        context: int = 4,
        embed_dim: int = 60,
        hidden_dim: int = 50,
        direct: bool = True,
        dropout: float = 0.0,
        modern: bool = False,
    ) -> None:
        super().__init__()
        if vocab_size < 2 or context < 1 or embed_dim < 1 or hidden_dim < 0:
            raise ValueError(f"need vocab_size >= 2, context (n-1) >= 1, embed_dim >= 1, hidden_dim "
                             f">= 0; got {vocab_size}, {context}, {embed_dim}, {hidden_dim}")
        if hidden_dim == 0 and not direct:
            raise ValueError("with no hidden layer (h=0) the direct connections are the whole "
                             "model: set direct=true or hidden_dim > 0")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if modern and hidden_dim == 0:
            raise ValueError("the modern variant needs a hidden layer (hidden_dim > 0)")
        self.context, self.modern = context, modern
        width = context * embed_dim
        self.embed = nn.Embedding(vocab_size, embed_dim)  # C
        self.dropout = dropout
        self.hidden = nn.Linear(width, hidden_dim) if hidden_dim else None  # H, d
        self.out = nn.Linear(hidden_dim, vocab_size, bias=False) if hidden_dim else None  # U
        self.direct = nn.Linear(width, vocab_size, bias=False) if direct else None  # W
        self.b = nn.Parameter(torch.zeros(vocab_size))  # b
        if modern:
            self.norm1 = nn.LayerNorm(hidden_dim)
            self.block = nn.Linear(hidden_dim, hidden_dim)
            self.norm2 = nn.LayerNorm(hidden_dim)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.noise: torch.Generator | None = None  # dropout draws from here

    @property
    def draws_noise(self) -> bool:
        """Whether a training step draws random numbers (dropout): models/graphed.py
        captures only steps that draw none."""
        return self.dropout > 0

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.dropout, self.training, self.noise)

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        """ctx (B, n-1) word indices, oldest first -> logits y (B, V)."""
        x = self.drop(self.embed(ctx).flatten(1))  # (B, (n-1) m)
        y = self.b.expand(ctx.shape[0], -1)  # (B, V)
        if self.direct is not None:
            y = y + self.direct(x)  # W x
        if self.hidden is not None:
            if self.modern:
                a = torch.relu(self.norm1(self.hidden(x)))  # (B, h)
                a = a + torch.relu(self.norm2(self.block(self.drop(a))))  # residual block
            else:
                a = torch.tanh(self.hidden(x))  # tanh(d + H x), (B, h)
            y = y + self.out(self.drop(a))  # U tanh(d + H x)
        return y


def build(m: Mapping[str, Any], base: Any, ctx: BuildContext) -> Built:
    """The NPLM from the values of conf/model/nplm.yaml, on a language-model task; `mix`
    adds the interpolated trigram of the task's train split (Bengio's mixture)."""
    from models.data.lm import EOS
    from models.ngram import trigram_of
    eos = base.vocab.stoi[EOS]
    mix = None
    if m.get("mix"):
        if "trigram_dev" not in base.cache:
            probs = trigram_of(base).target_probs(base.dev.tokens.numpy(), pad=eos)
            base.cache["trigram_dev"] = torch.from_numpy(probs)
        mix = base.cache["trigram_dev"]
    task = replace(base, context=int(m["n"]) - 1, mix_probs=mix, mix_weight=float(m.get("mix_weight", 0.5)))
    kwargs = dict(vocab_size=len(task.vocab), context=int(m["n"]) - 1, embed_dim=int(m["embed_dim"]),
                  hidden_dim=int(m["hidden_dim"]), direct=bool(m["direct"]), dropout=float(m["dropout"]),
                  modern=bool(m.get("modern", False)))

    def test_extras(split: Any) -> dict[str, Any]:
        if task.mix_probs is None:
            return {}
        return {"mix_probs": torch.from_numpy(trigram_of(task).target_probs(split.tokens.numpy(), pad=eos))}

    info = {"vocab_size": len(task.vocab), "train_tokens": task.train.targets,
            "valid_tokens": task.dev.targets}
    return Built(lambda: NPLM(**kwargs), task, info, test_extras)
