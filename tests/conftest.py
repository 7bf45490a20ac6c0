"""Shared fixtures: tiny synthetic data sets (a labelled CSV, a plain-text corpus, SST trees),
a throwaway MLflow store, SST if present; and the guards that keep tests out of the
repository's runs/ and the user's data cache."""

from __future__ import annotations

import atexit
import csv
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest

from models.data.cache import default_cache_dir
from models.training.devices import flush_denormals

REPO = Path(__file__).resolve().parents[1]
# The tests' trainings list themselves apart from the machine's (sweeps/search/neighbours.py): a
# training running beside `make test` does not make the tests' output warn, nor they its.
MACHINE_TRAININGS = os.environ.get("SEEDSWEEP_TRAININGS")
os.environ["SEEDSWEEP_TRAININGS"] = tempfile.mkdtemp(prefix="seedsweep-test-trainings-")
# sweep.workers=auto (the default) means one worker process here: a test's tiny sweep would
# spend more on starting workers than on its trials. The tests of the default's own path
# (tests/test_user_paths.py) take this out of their commands' environment.
os.environ["SEEDSWEEP_WORKERS"] = "1"
SST_ROOT = REPO.parent / "shared" / "data" / "sst"
# Places the tests must leave alone: what a user's own sweeps, reports and paper tables
# wrote in this checkout (an autouse guard below fails a test that creates or changes them).
GUARDED = ("runs", "reports", "outputs")


def _mirror(real: Path, into: Path) -> None:
    """Every file already in the user's data cache `real`, linked (read-only use) into `into`:
    the tests read cached data sets, but anything they fetch or create (a missing corpus,
    MLflow's empty-store template) lands in `into`, never in the user's cache."""
    if not real.is_dir():
        return
    for path in real.rglob("*"):
        if path.is_file() and not path.name.endswith((".lock", ".tmp")):
            link = into / path.relative_to(real)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)


USER_CACHE = default_cache_dir()
TEST_CACHE = Path(tempfile.mkdtemp(prefix="seedsweep-test-cache-"))
_mirror(USER_CACHE, TEST_CACHE)
os.environ["SEEDSWEEP_CACHE"] = str(TEST_CACHE)  # subprocesses of the tests inherit it
flush_denormals()  # as in the processes users train in, before any test's tensors
atexit.register(shutil.rmtree, TEST_CACHE, ignore_errors=True)


def cached(relative: str) -> bool:
    """Whether the user's data cache already holds `relative` (e.g. "brown/package")."""
    return (USER_CACHE / relative).exists()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every folder under `root` and every file up to two levels down, with mtime and size:
    enough to see a new run, artifact, study journal or report without reading a large store."""
    seen: dict[str, tuple[int, int]] = {}
    if not root.exists():
        return seen
    for folder, _dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        st = os.stat(folder)
        seen[folder] = (st.st_mtime_ns, 0)
        if depth <= 1:
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                seen[path] = (st.st_mtime_ns, st.st_size)
    return seen


def _repo_training_running() -> bool:
    """Whether a training outside the tests (a user's `make sweep`) runs from this checkout
    now: then its writes to runs/ are not a test's."""
    folder = Path(MACHINE_TRAININGS) if MACHINE_TRAININGS else (
        Path(tempfile.gettempdir()) / f"seedsweep-{os.getuid()}" / "trainings")
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            pid = int(json.loads(path.read_text())["pid"])
            if Path(f"/proc/{pid}/cwd").resolve() == REPO:
                return True
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return False


@pytest.fixture(autouse=True)
def _leaves_the_repository_alone():
    """Fail a test that created or changed anything under the checkout's runs/, reports/ or
    outputs/: the tests track, store and report under tmp_path only."""
    before = {name: _snapshot(REPO / name) for name in GUARDED}
    yield
    changed = []
    for name in GUARDED:
        after = _snapshot(REPO / name)
        changed += sorted(p for p in after.keys() | before[name].keys()
                          if after.get(p) != before[name].get(p))
    if changed and not _repo_training_running():
        pytest.fail(f"the test wrote into the repository: {', '.join(changed[:5])}"
                    f"{' ...' if len(changed) > 5 else ''}; give it tracking.uri, storage.dir, "
                    "--out or a checkpoint folder under tmp_path", pytrace=False)

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


def write_text_corpus(folder: Path) -> dict[str, Path]:
    """A tiny plain-text corpus (data=text) with a learnable structure: train, valid, test."""
    rng = random.Random(0)
    words = ["the", "cat", "dog", "sat", "ran", "on", "mat", "fast", "a", "big"]
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", 300), ("valid", 60), ("test", 60)):
        lines = [" ".join(rng.choice(words[i % 3::3]) for i in range(6)) for _ in range(n)]
        out[split] = folder / f"{split}.txt"
        out[split].write_text("\n".join(lines) + "\n")
    return out


def write_sst_trees(folder: Path, seed: int = 0) -> Path:
    """A tiny Stanford Sentiment Treebank in its PTB-tree format (data=sst or sst2, data.root=
    folder): right-branching trees whose root label (0-4) follows the sentiment words."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    leaf = {**{w: 3 for w in POSITIVE}, **{w: 1 for w in NEGATIVE}, **{w: 2 for w in NEUTRAL}}
    for split, n in (("train", 300), ("dev", 60), ("test", 60)):
        lines = []
        for _ in range(n):
            root = rng.choice([0, 1, 2, 3, 4])
            mood = POSITIVE if root > 2 else NEGATIVE if root < 2 else NEUTRAL
            words = rng.sample(NEUTRAL, 4) + rng.sample(mood, 2)
            rng.shuffle(words)
            tree = f"({leaf[words[-1]]} {words[-1]})"
            for w in reversed(words[:-1]):
                tree = f"({root} ({leaf[w]} {w}) {tree})"
            lines.append(tree)
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


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
