"""Deep Averaging Network (Iyyer, Manjunatha, Boyd-Graber & Daumé III, ACL 2015).

Average the embeddings of a sentence's words (eq. 6), after word dropout at training
time (eq. 7-8), and pass the average through `hidden_dims` non-linear layers (eq. 4-5)
to a softmax layer. No hidden layers gives the neural bag of words (NBOW).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from models.embeddings import initial_embeddings
from models.noise import dropout
from models.registry import BuildContext, Built

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


class DAN(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 300,
        hidden_dims: Sequence[int] = (300, 300, 300),
        activation: str = "relu",
        word_dropout: float = 0.3,
        dropout: float = 0.0,
        padding_idx: int = 0,
        sparse: bool = False,
        embeddings: torch.Tensor | None = None,
        freeze_embeddings: bool = False,
        init_range: float = 0.1,
        hidden_init_range: float | None = None,
    ) -> None:
        super().__init__()
        if vocab_size <= padding_idx or num_classes < 2 or embed_dim < 1:
            raise ValueError(f"need vocab_size > padding_idx, num_classes >= 2, embed_dim >= 1; "
                             f"got {vocab_size}, {num_classes}, {embed_dim}")
        if not 0 <= word_dropout < 1 or not 0 <= dropout < 1:
            raise ValueError(f"dropout rates must lie in [0, 1), got word_dropout={word_dropout}, "
                             f"dropout={dropout}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; one of {', '.join(ACTIVATIONS)}")
        if any(h < 1 for h in hidden_dims):
            raise ValueError(f"hidden widths must be positive, got {list(hidden_dims)}")
        if embeddings is not None and tuple(embeddings.shape) != (vocab_size, embed_dim):
            raise ValueError(f"embeddings of shape {tuple(embeddings.shape)} do not match "
                             f"(vocab_size, embed_dim) = ({vocab_size}, {embed_dim})")
        self.padding_idx = padding_idx
        self.word_dropout = word_dropout
        self.embed = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean",
                                     padding_idx=padding_idx, sparse=sparse)
        with torch.no_grad():
            if embeddings is not None:
                self.embed.weight.copy_(embeddings)
            else:
                nn.init.uniform_(self.embed.weight, -init_range, init_range)
            self.embed.weight[padding_idx].zero_()
        self.embed.weight.requires_grad_(not freeze_embeddings)
        layers: list[nn.Module] = []
        width = embed_dim
        for h in hidden_dims:
            layers += [nn.Dropout(dropout), nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
        if hidden_init_range is not None:  # else torch's U(±1/sqrt(fan_in))
            with torch.no_grad():
                for layer in (*self.hidden, *self.classifier):
                    if isinstance(layer, nn.Linear):
                        nn.init.uniform_(layer.weight, -hidden_init_range, hidden_init_range)
                        nn.init.uniform_(layer.bias, -hidden_init_range, hidden_init_range)
        self.noise: torch.Generator | None = None  # word dropout and dropout draw from here

    def drop_words(self, tokens: torch.Tensor) -> torch.Tensor:
        return drop_words(tokens, self.word_dropout, self.padding_idx, self.noise)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) right-padded indices -> logits (B, num_classes)."""
        if self.training and self.word_dropout > 0:
            tokens = self.drop_words(tokens)
        x = self.embed(tokens)  # (B, E): mean over the non-padding tokens
        for layer in (*self.hidden, *self.classifier):
            x = dropout(x, layer.p, self.training, self.noise) if isinstance(layer, nn.Dropout) else layer(x)
        return x  # (B, C)


def drop_words(tokens: torch.Tensor, p: float, pad: int, noise: torch.Generator | None) -> torch.Tensor:
    """Replace each real token by padding with probability `p` (eq. 7-8), keeping at least
    one token of every sentence; the scores come from `noise`."""
    scores = torch.rand(tokens.shape, device=tokens.device, generator=noise)  # (B, T)
    return drop_scored(tokens, scores, p, pad)


def drop_scored(tokens: torch.Tensor, scores: torch.Tensor, p: float, pad: int) -> torch.Tensor:
    """Word dropout of `tokens` (B, T) given a uniform score per position (B, T): a real token
    scoring below `p` becomes padding, except that a sentence left empty keeps its real token
    of the highest score. No host synchronisation: every row computes that token, and only
    the emptied rows use it."""
    real = tokens != pad  # (B, T)
    keep = (scores >= p) & real
    emptied = ~keep.any(1) & real.any(1)  # (B,)
    cols = scores.masked_fill(~real, -1.0).argmax(1, keepdim=True)  # (B, 1)
    keep.scatter_(1, cols, keep.gather(1, cols) | emptied.unsqueeze(1))
    return tokens.masked_fill(~keep, pad)


def build(m: Mapping[str, Any], task: Any, ctx: BuildContext) -> Built:
    """DAN from the values of conf/model/dan.yaml, on a classification task."""
    # sparse updates touch only a batch's rows; on a GPU the stacked form updates them by hand
    sparse = ctx.settings.sparse_ok
    hidden = list(m["hidden_dims"]) if m.get("hidden_dims") is not None else \
        [int(m["hidden_dim"])] * int(m["num_layers"])
    embeddings, info = initial_embeddings(m, task, scale=float(m.get("init_range", 0.1)))
    kwargs = dict(
        vocab_size=len(task.vocab), num_classes=task.num_classes, embed_dim=int(m["embed_dim"]),
        hidden_dims=hidden, activation=m["activation"], word_dropout=float(m["word_dropout"]),
        dropout=float(m["dropout"]), padding_idx=task.vocab.pad_index, sparse=sparse,
        embeddings=embeddings, freeze_embeddings=bool(m.get("freeze_embeddings", False)),
        init_range=float(m.get("init_range", 0.1)),
        hidden_init_range=None if m.get("hidden_init_range") is None else float(m["hidden_init_range"]),
    )
    info = {"vocab_size": len(task.vocab), "num_classes": task.num_classes, "n_train": len(task.train),
            "n_dev": len(task.dev), "sparse_embeddings": sparse, **info}
    return Built(lambda: DAN(**kwargs), task, info)
