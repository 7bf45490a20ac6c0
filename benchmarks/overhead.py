"""Where a sweep's time goes outside training, counted rather than timed (counts hold on a
loaded machine where timings do not): MLflow client calls a trial, weight files a sweep,
git subprocesses a trial, and the modules each command imports before it does anything.

    python -m benchmarks.overhead [--trials 4] [--seeds 3] [--epochs 3] [--full] [-- overrides]

The sweep is the default DAN sweep (random search, K seeds, the default search space and
pruner), run in this process so that the tracking client's calls can be counted, into a
throwaway store; small unless --full: the tests' synthetic labelled CSV and a narrow
network (the counts a trial do not depend on the data's size). Prints a Markdown table;
writes benchmarks/results/overhead-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
HEAVY = ("torch", "mlflow", "optuna", "hydra", "pandas", "sqlalchemy")
SMALL = ["model.embed_dim=16", "model.num_layers=1", "model.hidden_dim=16", "threads=1"]


def imported(args: list[str]) -> dict:
    """The modules `python -m <args>` imports (python -X importtime), and which heavy ones."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    names = [m.group(1) for m in re.finditer(r"^import time:.*\|\s*([\w.]+)\s*$", out.stderr, re.M)]
    return {"modules": len(names), "heavy": sorted({n.split(".")[0] for n in names} & set(HEAVY)),
            "exit": out.returncode}


class CallCounter:
    """Every public method of MlflowClient, counted per name (top-level calls only: one the
    client makes of itself is part of the call that made it), and git subprocesses."""

    def __init__(self):
        self.calls: Counter[str] = Counter()
        self.waited: Counter[str] = Counter()  # ... of them made by the trial's own thread
        self.weights_logged = 0
        self._lock, self._local = threading.Lock(), threading.local()

    def install(self) -> None:
        from mlflow.tracking import MlflowClient

        for name in [n for n in vars(MlflowClient) if not n.startswith("_")]:
            fn = getattr(MlflowClient, name)
            plain = not isinstance(vars(MlflowClient)[name], (staticmethod, classmethod, property))
            if callable(fn) and plain:
                setattr(MlflowClient, name, self._wrap(name, fn))
        run = subprocess.run

        def counted_run(cmd, *a, **k):
            if isinstance(cmd, list) and cmd and cmd[0] == "git":
                with self._lock:
                    self.calls["git subprocess"] += 1
            return run(cmd, *a, **k)
        subprocess.run = counted_run

    def _wrap(self, name, fn):
        counter = self

        def wrapped(*args, **kwargs):
            depth = getattr(counter._local, "depth", 0)
            if depth == 0:
                with counter._lock:
                    counter.calls[name] += 1
                    if threading.current_thread() is threading.main_thread():
                        counter.waited[name] += 1
                    folder = (args[3:4] or [kwargs.get("artifact_path")])[0]
                    if name == "log_artifact" and folder == "weights":
                        counter.weights_logged += 1
            counter._local.depth = depth + 1
            try:
                return fn(*args, **kwargs)
            finally:
                counter._local.depth = depth
        return wrapped


def sweep_counts(trials: int, seeds: int, epochs: int, extra: list[str], small: bool) -> dict:
    from tests.conftest import write_polarity_csv  # the tests' learnable synthetic data set

    counter = CallCounter()
    counter.install()
    from sweeps.search.study import Sweep

    with tempfile.TemporaryDirectory() as tmp:
        data = [] if not small else ["data=csv", f"data.path={write_polarity_csv(Path(tmp) / 'p.csv')}"]
        overrides = [*data, f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"tracking.artifacts={tmp}/art",
                     f"storage.dir={tmp}", "sampler.seed=0", f"sweep.trials={trials}", f"seeds={seeds}",
                     f"seed_list=[{','.join(map(str, range(1, seeds + 1)))}]",
                     f"train.max_epochs={epochs}", "device=cpu", *(SMALL if small else []), *extra]
        sweep = Sweep(overrides, quiet=True)
        opened, opened_waited = Counter(counter.calls), Counter(counter.waited)
        sweep.run()
        study = sweep.study
        ran = [t for t in study.trials if t.state.is_finished()]
        seed_epochs = sum(t.user_attrs.get("seed_epochs", 0) for t in ran)
        kept = len(list((Path(tmp) / "art").rglob("best-*.pt")))
    per_sweep = counter.calls - opened
    waited = sum((counter.waited - opened_waited).values())
    total = sum(v for k, v in per_sweep.items() if k != "git subprocess")
    return {"trials": len(ran), "seeds": seeds, "seed_epochs": seed_epochs,
            "states": dict(Counter(t.state.name for t in ran)),
            "mlflow_calls_opening": sum(v for k, v in opened.items() if k != "git subprocess"),
            "mlflow_calls_per_trial": total / max(1, len(ran)),
            "mlflow_calls_waited_per_trial": waited / max(1, len(ran)),
            "mlflow_calls_per_seed_epoch": total / max(1, seed_epochs),
            "calls_by_method": dict(per_sweep.most_common()),
            "git_subprocesses_per_trial": per_sweep["git subprocess"] / max(1, len(ran)),
            "weight_files_written": counter.weights_logged, "weight_files_kept": kept}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--full", action="store_true",
                    help="the default data (RT) and network, not the small ones")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    commands = {"sweep --help": ["sweeps.sweep", "--help"],
                "sweep, bad input": ["sweeps.sweep", "model=nosuch"],
                "train --help": ["sweeps.train", "--help"], "final --help": ["sweeps.final", "--help"],
                "paper --help": ["sweeps.paper", "--help"]}
    imports = {name: imported(a) for name, a in commands.items()}
    counts = sweep_counts(args.trials, args.seeds, args.epochs, args.overrides, not args.full)
    rows = ["| command | modules imported | heavy libraries | exit |", "|---|---:|---|---:|"]
    rows += [f"| `python -m {' '.join(commands[k])}` | {v['modules']} | {', '.join(v['heavy']) or '-'} | "
             f"{v['exit']} |" for k, v in imports.items()]
    rows += ["", f"sweep: {counts['trials']} trials {counts['states']}, {counts['seeds']} seeds, "
             f"{counts['seed_epochs']} seed-epochs", "",
             "| count | value |", "|---|---:|",
             f"| MLflow client calls opening the sweep | {counts['mlflow_calls_opening']} |",
             f"| MLflow client calls a trial | {counts['mlflow_calls_per_trial']:.1f} |",
             f"| ... of which the trial waits for (its own thread) | "
             f"{counts['mlflow_calls_waited_per_trial']:.1f} |",
             f"| MLflow client calls a seed-epoch | {counts['mlflow_calls_per_seed_epoch']:.2f} |",
             f"| git subprocesses a trial | {counts['git_subprocesses_per_trial']:.1f} |",
             f"| weight files written / kept | {counts['weight_files_written']} / "
             f"{counts['weight_files_kept']} |",
             "", "calls by method: " + ", ".join(f"{k} {v}" for k, v in counts["calls_by_method"].items())]
    print("\n".join(rows))
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"overhead-{stamp}.json").write_text(json.dumps(
        {"args": vars(args), "imports": imports, "sweep": counts}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
