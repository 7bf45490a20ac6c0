"""Does pruning pay? The default DAN sweep with `pruner=patience` against `pruner=none`:
same sampler seed, same budget, the same seeds for every trial (`seed_list`), each arm in
a fresh store of its own. Reports the training compute (seed-epochs), wall time, the best
trial's dev mean ± std, and how many of the first 20 trials are degenerate (dev mean at
the majority-class rate).

    python -m benchmarks.pruning [--trials 30] [--arms patience,none] [--parallel] [--keep DIR]
                                 [-- overrides]

Writes benchmarks/results/pruning-<timestamp>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from sweeps.config.compose import compose_config
from sweeps.config.workloads import prepare_task
from sweeps.core.records import SEED_EPOCHS
from sweeps.store import open_storage, ranked

RESULTS = Path(__file__).resolve().parent / "results"


def majority_rate(overrides: list[str]) -> float:
    cfg = compose_config(["model=dan", *overrides])
    labels = prepare_task(cfg).dev.labels.tolist()
    return max(labels.count(c) for c in set(labels)) / len(labels)


def start_arm(arm: str, trials: int, folder: Path, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sweeps.sweep", "model=dan", f"sweep.trials={trials}", f"pruner={arm}",
           "seed_list=[11,22,33]", "sweep.study_name=bench", f"storage.dir={folder / 'optuna'}",
           f"tracking.uri=sqlite:///{folder / 'mlflow.db'}", f"tracking.artifacts={folder / 'art'}",
           "sweep.workers=1", *extra]  # one process an arm, as when this bench was made
    return subprocess.Popen(cmd, stdout=open(folder / "sweep.log", "w"), stderr=subprocess.STDOUT)


def arm_result(arm: str, folder: Path, wall: float, majority: float) -> dict:
    study = optuna.load_study(study_name="bench", storage=open_storage(None, folder / "optuna"))
    done = [t for t in study.trials if t.state.is_finished()]
    best = ranked(study)[0]
    first = sorted(done, key=lambda t: t.number)[:20]
    return {
        "arm": arm, "trials": len(done), "wall_s": round(wall, 1),
        "seed_epochs": sum(t.user_attrs.get(SEED_EPOCHS, 0) for t in done),
        "pruned": sum(t.state.name == "PRUNED" for t in done),
        "failed": sum(t.state.name == "FAIL" for t in done),
        "best_trial": best.number, "best_mean": best.value, "best_std": best.user_attrs["std"],
        "best_params": best.params,
        "degenerate_in_first_20": sum((t.value if t.value is not None else max(t.intermediate_values.values(),
                                                                               default=0.0))
                                      <= majority + 0.01 for t in first),
        "majority_rate": majority,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--arms", default="patience,none")
    ap.add_argument("--keep", help="keep each arm's store under this folder")
    ap.add_argument("--parallel", action="store_true", help="run the arms side by side, one thread each")
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-pruning-"))
    majority = majority_rate(extra)
    arms = args.arms.split(",")
    if args.parallel:  # side by side, one thread each: both see the same machine
        extra = [*extra, "threads=1"]
    walls: dict[str, float] = {}
    batches = [arms] if args.parallel else [[a] for a in arms]
    for batch in batches:
        started = time.perf_counter()
        procs = {}
        for arm in batch:
            (root / arm).mkdir(parents=True, exist_ok=True)
            procs[arm] = start_arm(arm, args.trials, root / arm, extra)
        while len(walls) < sum(len(b) for b in batches[:batches.index(batch) + 1]):
            for arm, proc in procs.items():
                if arm not in walls and proc.poll() is not None:
                    if proc.returncode != 0:
                        raise SystemExit(f"the {arm} arm failed: see {root / arm / 'sweep.log'}")
                    walls[arm] = time.perf_counter() - started
            time.sleep(1)
    rows = [arm_result(arm, root / arm, walls[arm], majority) for arm in arms]
    for row in rows:
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"pruning-{stamp}.json").write_text(json.dumps({"overrides": extra, "rows": rows}, indent=2))
    print("\n| pruner | trials | pruned | seed-epochs | wall | best trial | best dev mean ± std | "
          "degenerate (first 20) |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['trials']} | {r['pruned']} | {r['seed_epochs']} | {r['wall_s']:.0f} s | "
              f"#{r['best_trial']} | {r['best_mean']:.4f} ± {r['best_std']:.4f} | "
              f"{r['degenerate_in_first_20']} |")
    if len(rows) == 2 and rows[1]["seed_epochs"]:
        print(f"\nseed-epochs saved by {rows[0]['arm']}: "
              f"{1 - rows[0]['seed_epochs'] / rows[1]['seed_epochs']:.1%}")


if __name__ == "__main__":
    main()
