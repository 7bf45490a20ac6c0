"""Shared fixtures: a tiny synthetic CSV data set, a throwaway MLflow store, SST if present."""

from __future__ import annotations

import csv
import os
import random
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests' trainings list themselves apart from the machine's (sweeps/neighbours.py): a
# training running beside `make test` does not make the tests' output warn, nor they its.
os.environ["SEEDSWEEP_TRAININGS"] = tempfile.mkdtemp(prefix="seedsweep-test-trainings-")
SST_ROOT = REPO.parent / "shared" / "data" / "sst"

POSITIVE = ["great", "fine", "superb", "moving", "funny", "smart", "warm", "fresh"]
NEGATIVE = ["dull", "awful", "boring", "flat", "tired", "stale", "weak", "bland"]
NEUTRAL = ["the", "a", "movie", "film", "plot", "story", "is", "and", "this", "it", "of"]


def write_polarity_csv(path: Path, n: int = 400, seed: int = 0) -> Path:
    """A learnable two-class data set: each text mixes filler with a few words of its class."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "split"])
        for i in range(n):
            label = rng.choice(["pos", "neg"])
            words = rng.sample(NEUTRAL, 5) + rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2)
            rng.shuffle(words)
            split = "train" if i < int(0.7 * n) else "dev" if i < int(0.85 * n) else "test"
            w.writerow([" ".join(words), label, split])
    return path


@pytest.fixture
def polarity_csv(tmp_path: Path) -> Path:
    return write_polarity_csv(tmp_path / "polarity.csv")


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def sst_root() -> Path:
    if not (SST_ROOT / "train.txt").is_file():
        pytest.skip(f"SST not found at {SST_ROOT}; these tests need the PTB-tree files there")
    return SST_ROOT


def tiny_overrides(csv_path: Path, uri: str, tmp_path: Path, *extra: str) -> list[str]:
    """A DAN run small enough for a unit test, on the synthetic CSV, tracked under tmp_path."""
    return [
        "data=csv", f"data.path={csv_path}", f"tracking.uri={uri}",
        f"tracking.artifacts={tmp_path / 'artifacts'}",
        "model.embed_dim=16", "model.num_layers=1", "model.hidden_dim=16",
        "train.max_epochs=3", "train.patience=2", "train.lr=0.1", "threads=1",
        *extra,
    ]
