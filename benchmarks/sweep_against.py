"""The default DAN sweep end to end, this checkout against another git revision, back to
back on the same machine: wall time, trials per hour, seed-epochs per second.

Each side runs `python -m sweeps.sweep model=dan` as `make sweep MODEL=dan` does (random
search, 3 seeds, RT, the default search space and pruner), with the same sampler seed and
budget, into a throwaway store; the other revision runs from a `git worktree` with this
checkout's virtual environment.

    python -m benchmarks.sweep_against --rev 57cfc5b --trials 12 [--also 'sweep.workers=1'] [-- overrides]

Writes benchmarks/results/sweep-against-<timestamp>.json and prints a Markdown table.
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

from sweeps.core.records import SEED_EPOCHS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def run(code: Path, trials: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        name = "against"
        cmd = [sys.executable, "-m", "sweeps.sweep", "model=dan", f"sweep.trials={trials}",
               f"sweep.study_name={name}", f"tracking.uri=sqlite:///{tmp}/mlflow.db",
               f"tracking.artifacts={tmp}/art", f"storage.url=sqlite:///{tmp}/optuna.db",
               f"storage.dir={tmp}", "sampler.seed=0", *extra]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=code, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp}/optuna.db")
        t = study.trials
        seed_epochs = sum(x.user_attrs.get(SEED_EPOCHS, 0) for x in t)
        best = max((x.value for x in t if x.value is not None), default=float("nan"))
        return {"wall_s": wall, "trials": len(t), "trials_per_hour": len(t) / wall * 3600,
                "seed_epochs": seed_epochs, "seed_epochs_per_s": seed_epochs / wall,
                "training_s": sum(x.user_attrs.get("compute_seconds", 0.0) for x in t),
                "states": {s: sum(x.state.name == s for x in t) for s in ("COMPLETE", "PRUNED", "FAIL")},
                "best_dev": best}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="the git revision to compare against")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--also", action="append", default=[], metavar="OVERRIDES",
                    help="a further run of this checkout with these overrides added (space-separated), "
                         "e.g. --also sweep.workers=1; repeatable")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", args.rev], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.strip()
    here = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), commit], cwd=REPO, check=True,
                       capture_output=True)
        try:
            results = {f"{commit} (before)": run(other, args.trials, args.overrides),
                       f"{here} (this checkout)": run(REPO, args.trials, args.overrides)}
            for extra in args.also:
                results[f"{here} {extra}"] = run(REPO, args.trials, [*args.overrides, *extra.split()])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=REPO,
                           capture_output=True)
    rows = ["| code | wall s | trials | trials/hour | seed-epochs | seed-epochs/s | training s | best dev |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {k} | {r['wall_s']:.0f} | {r['trials']} {r['states']} | {r['trials_per_hour']:.0f} | "
             f"{r['seed_epochs']} | {r['seed_epochs_per_s']:.3f} | {r['training_s']:.0f} | "
             f"{r['best_dev']:.4f} |"
             for k, r in results.items()]
    a, *others = results.values()
    for name, b in list(results.items())[1:]:
        rows.append(f"\n{name} against {commit}: speed-up in seed-epochs per second "
                    f"{b['seed_epochs_per_s'] / a['seed_epochs_per_s']:.2f}x; "
                    f"in wall time {a['wall_s'] / b['wall_s']:.2f}x")
    print("\n".join(rows))
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"sweep-against-{stamp}.json").write_text(json.dumps(
        {"rev": commit, "head": here, "trials": args.trials, "overrides": args.overrides, "also": args.also,
         "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
