"""Convolutional sentence classifier (Kim, EMNLP 2014), added through the registry alone.

Embed the words, run one convolution per filter width over the sentence (eq. 2), ReLU,
take each feature map's maximum over time (eq. 3), and classify the concatenated
maxima with dropout before the softmax layer (eq. 4-5). Windows that would start past a
sentence's last word are masked out of the maximum, so right-padding changes nothing.
Kim's max-norm constraint on the softmax weights (s=3) is not applied; weight decay
(train.weight_decay) is the regulariser here.

Registered as `cnn` (conf/model/cnn.yaml): `make sweep MODEL=cnn` on rt, sst2, sst or csv.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.checks import PROBABILITY, boolean, integer, one_of
from models.embeddings import initial_embeddings
from models.noise import dropout
from models.registry import BuildContext, Built, ModelSpec, register_model


class KimCNN(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 300,
        filter_widths: Sequence[int] = (3, 4, 5),
        num_filters: int = 100,
        dropout: float = 0.5,
        padding_idx: int = 0,
        sparse: bool = False,
        embeddings: torch.Tensor | None = None,
        freeze_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if vocab_size <= padding_idx or num_classes < 2 or embed_dim < 1 or num_filters < 1:
            raise ValueError(f"need vocab_size > padding_idx, num_classes >= 2, embed_dim >= 1, "
                             f"num_filters >= 1; got {vocab_size}, {num_classes}, {embed_dim}, {num_filters}")
        if not filter_widths or any(w < 1 for w in filter_widths):
            raise ValueError(f"filter widths must be positive, got {list(filter_widths)}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if embeddings is not None and tuple(embeddings.shape) != (vocab_size, embed_dim):
            raise ValueError(f"embeddings of shape {tuple(embeddings.shape)} do not match "
                             f"(vocab_size, embed_dim) = ({vocab_size}, {embed_dim})")
        self.padding_idx, self.p = padding_idx, dropout
        self.widths = tuple(int(w) for w in filter_widths)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx, sparse=sparse)
        with torch.no_grad():
            if embeddings is not None:
                self.embed.weight.copy_(embeddings)
            else:
                nn.init.uniform_(self.embed.weight, -0.25, 0.25)  # Kim's range for unknown words
            self.embed.weight[padding_idx].zero_()
        self.embed.weight.requires_grad_(not freeze_embeddings)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, w) for w in self.widths)
        self.out = nn.Linear(num_filters * len(self.widths), num_classes)
        self.noise: torch.Generator | None = None  # dropout draws from here

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) right-padded indices -> logits (B, num_classes)."""
        lengths = (tokens != self.padding_idx).sum(1).clamp(min=1)  # (B,)
        width = max(tokens.shape[1], max(self.widths))
        tokens = F.pad(tokens, (0, width - tokens.shape[1]), value=self.padding_idx)
        x = self.embed(tokens).transpose(1, 2)  # (B, E, T)
        pooled = []
        for w, conv in zip(self.widths, self.convs):
            h = F.relu(conv(x))  # (B, F, T - w + 1)
            starts = torch.arange(h.shape[2], device=h.device)
            valid = starts[None, :] < (lengths - w + 1).clamp(min=1)[:, None]  # (B, T - w + 1)
            pooled.append(h.masked_fill(~valid[:, None, :], float("-inf")).amax(2))  # (B, F)
        z = torch.cat(pooled, 1)
        return self.out(dropout(z, self.p, self.training, self.noise))


def parse_widths(value: Any) -> list[int]:
    """Filter widths as written in the config: "3,4,5" (searchable as one choice) or a list."""
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [int(w) for w in items]
    except (TypeError, ValueError):
        raise ValueError(f"model.filter_widths must be whole numbers such as \"3,4,5\", "
                         f"not {value!r}") from None


def build(m: Mapping[str, Any], task: Any, ctx: BuildContext) -> Built:
    """KimCNN from the values of conf/model/cnn.yaml, on a classification task."""
    sparse = ctx.settings.sparse_ok and ctx.device.type == "cpu"
    embeddings, info = initial_embeddings(m, task, scale=0.1)
    kwargs = dict(vocab_size=len(task.vocab), num_classes=task.num_classes, embed_dim=int(m["embed_dim"]),
                  filter_widths=parse_widths(m["filter_widths"]), num_filters=int(m["num_filters"]),
                  dropout=float(m["dropout"]), padding_idx=task.vocab.pad_index, sparse=sparse,
                  embeddings=embeddings, freeze_embeddings=bool(m.get("freeze_embeddings", False)))
    info = {"vocab_size": len(task.vocab), "num_classes": task.num_classes, "n_train": len(task.train),
            "n_dev": len(task.dev), "sparse_embeddings": sparse, **info}
    return Built(lambda: KimCNN(**kwargs), task, info)


register_model(ModelSpec(
    name="cnn", kind="classification", build=build,  # no stacked form: seeds train one after another
    doc="convolutional sentence classifier (Kim 2014)",
    checks={"embed_dim": integer(1), "num_filters": integer(1), "dropout": PROBABILITY,
            "embeddings": one_of("random", "glove"), "freeze_embeddings": boolean},
))
