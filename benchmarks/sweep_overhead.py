"""Wall time of a DAN sweep and the share of it spent outside training steps.

Runs `python -m sweeps.sweep` as a user would (process start, imports, data loading,
Optuna storage, MLflow tracking, weight files included) into a throwaway store, then
reads each trial's compute time (training epochs + dev evaluation, timed inside the
trainer) back from the study. Overhead = wall - compute.

    make bench-sweep                       # 10 random trials of the default DAN space on RT
    python -m benchmarks.sweep_overhead --trials 10 -- data=sst2 data.root=...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        name = "bench-sweep"
        cmd = [sys.executable, "-m", "sweeps.sweep", "model=dan", f"sweep.trials={args.trials}",
               f"sweep.study_name={name}", f"tracking.uri=sqlite:///{tmp}/mlflow.db",
               f"tracking.artifacts={tmp}/art", f"storage.url=sqlite:///{tmp}/optuna.db",
               f"storage.dir={tmp}", *args.overrides]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp}/optuna.db")
        trials = study.trials
        compute = sum(t.user_attrs.get("compute_seconds", 0.0) for t in trials)
        epochs = sum(len(t.intermediate_values) for t in trials)
        states = {s: sum(t.state.name == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    print(f"DAN sweep, {len(trials)} trials ({states}), {epochs} lockstep epochs, "
          f"overrides {args.overrides or 'none'}")
    print(f"  wall time                   {wall:8.1f} s")
    print(f"  training + dev evaluation   {compute:8.1f} s")
    print(f"  platform overhead           {wall - compute:8.1f} s  ({(wall - compute) / wall:.1%} of wall;"
          f" {(wall - compute) / max(len(trials), 1):.2f} s per trial)")


if __name__ == "__main__":
    main()
