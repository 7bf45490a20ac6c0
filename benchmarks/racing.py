"""Does racing over seeds pay? The default DAN space on RT, `seeds_policy=fixed` with K
seeds against `race` from 1 to K, over several sampler seeds. Both arms of one sampler
seed use the same sampler seed, budget and K seed values (`seed_list`), so the random
sampler proposes the same configurations in the same order. A configuration's seeds need
not end at the same epochs in both arms (under `fixed` its K seeds stop together on their
joint mean; under `race` each look's seeds stop on their own), so the race's winner is
also shown as `fixed` ran it, and the target compares the two winners as `fixed` ran them.

    python -m benchmarks.racing [--trials 40] [--k 5] [--max-epochs 5] [--sampler-seeds 0,1,2]
                                [--keep DIR] [-- overrides]

The budget matters. Every trial that beats the incumbent runs all K seeds whatever the rule,
and under random search the n-th trial is a new best with chance 1/n: about H_n = 1 + 1/2 +
... + 1/n of n trials (3.4 of 16, 4.3 of 40, 5.2 of 100). So the least a race from one seed
can spend is (H_n K + n - H_n) / (n K) of `fixed`'s seed-epochs: 37% at 16 trials, 29% at
40, 24% at 100 (the default sweep's budget). At 16 trials the target (40%) left the race no
room; 40 trials of at most 5 epochs is the smallest run of the default sweep's scale that
ends in about 20 minutes on 2 cores (`make bench-racing`).

Reports, per sampler seed: seed-epochs and wall time of each arm, each arm's winner and
its K-seed dev mean, whether the race stopped fixed's winner early, and the target: the
race spends at most 40% of fixed's seed-epochs and its winner is worse than fixed's by at
most fixed's winner's seed std. Writes benchmarks/results/racing-<timestamp>.json.
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

from sweeps.core.records import RACED_OUT, SEED_EPOCHS, STD
from sweeps.store import open_storage, ranked

RESULTS = Path(__file__).resolve().parent / "results"
SEED_VALUES_K = [11, 22, 33, 44, 55, 66, 77, 88, 99, 111]


def start(arm: str, sampler_seed: int, args, folder: Path, extra: list[str]) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    seeds = ",".join(map(str, SEED_VALUES_K[:args.k]))
    cmd = [sys.executable, "-m", "sweeps.sweep", "model=dan", "sampler=random",
           f"sampler.seed={sampler_seed}", f"sweep.trials={args.trials}", f"seed_list=[{seeds}]",
           f"sweep.seeds_policy={arm}", f"train.max_epochs={args.max_epochs}", "sweep.study_name=bench",
           f"storage.dir={folder / 'optuna'}", f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
           f"tracking.artifacts={folder / 'art'}", "threads=1",
           "sweep.workers=1", *extra]  # the two arms run side by side, one process each
    return subprocess.Popen(cmd, stdout=open(folder / "sweep.log", "w"), stderr=subprocess.STDOUT)


def load(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="bench", storage=open_storage(None, folder / "optuna"))


def pair(sampler_seed: int, args, root: Path, extra: list[str]) -> dict:
    """Both arms of one sampler seed, side by side (one torch thread each)."""
    folders = {arm: root / f"s{sampler_seed}-{arm}" for arm in ("fixed", "race")}
    t0 = time.perf_counter()
    procs = {arm: start(arm, sampler_seed, args, f, extra) for arm, f in folders.items()}
    walls = {}
    while len(walls) < 2:
        for arm, p in procs.items():
            if arm not in walls and p.poll() is not None:
                if p.returncode != 0:
                    raise SystemExit(f"the {arm} arm failed: see {folders[arm] / 'sweep.log'}")
                walls[arm] = time.perf_counter() - t0
        time.sleep(1)
    fixed, race = load(folders["fixed"]), load(folders["race"])
    f_best, r_best = ranked(fixed)[0], ranked(race)[0]
    f_by_number = {t.number: t for t in fixed.trials}
    same = f_by_number[r_best.number]  # the race's winner as fixed ran it: same config, same seeds
    assert same.params == r_best.params, "the arms proposed different configurations"
    in_race = next(t for t in race.trials if t.number == f_best.number)
    return {
        "sampler_seed": sampler_seed,
        "fixed_seed_epochs": sum(t.user_attrs.get(SEED_EPOCHS, 0) for t in fixed.trials),
        "race_seed_epochs": sum(t.user_attrs.get(SEED_EPOCHS, 0) for t in race.trials),
        "fixed_wall_s": round(walls["fixed"], 1), "race_wall_s": round(walls["race"], 1),
        "raced_out": sum(bool(t.user_attrs.get(RACED_OUT)) for t in race.trials),
        "fixed_winner": f_best.number, "fixed_winner_mean": f_best.value,
        "fixed_winner_std": f_best.user_attrs.get(STD, 0.0),
        "race_winner": r_best.number, "race_winner_mean": r_best.value,
        "race_winner_mean_under_fixed": same.value,
        "fixed_winner_dropped_by_race": bool(in_race.user_attrs.get(RACED_OUT)),
        "fixed_winner_in_race": in_race.user_attrs.get(RACED_OUT) or "ran all K seeds",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--max-epochs", type=int, default=5)
    ap.add_argument("--sampler-seeds", default="0,1,2")
    ap.add_argument("--keep", help="keep each arm's store under this folder")
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-racing-"))
    rows = []
    for s in (int(x) for x in args.sampler_seeds.split(",")):
        rows.append(pair(s, args, root, extra))
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"racing-{stamp}.json").write_text(json.dumps({"args": vars(args), "overrides": extra,
                                                               "rows": rows}, indent=2))
    print(f"\nDAN on RT, {args.trials} trials, K={args.k}, max {args.max_epochs} epochs, random sampler\n"
          "| sampler seed | seed-epochs fixed / race | wall fixed / race | raced out | winner fixed "
          "(mean ± std) | winner race (K-seed mean) | fixed's winner in the race |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sampler_seed']} | {r['fixed_seed_epochs']} / {r['race_seed_epochs']} "
              f"({r['race_seed_epochs'] / r['fixed_seed_epochs']:.0%}) | {r['fixed_wall_s']:.0f} / "
              f"{r['race_wall_s']:.0f} s | {r['raced_out']} | #{r['fixed_winner']} "
              f"{r['fixed_winner_mean']:.4f} ± {r['fixed_winner_std']:.4f} | "
              f"#{r['race_winner']} {r['race_winner_mean']:.4f} (under fixed "
              f"{r['race_winner_mean_under_fixed']:.4f}) | "
              f"{r['fixed_winner_in_race']} |")
    spent = sum(r["race_seed_epochs"] for r in rows) / sum(r["fixed_seed_epochs"] for r in rows)
    # like with like: both winners as `fixed` ran them (K seeds stopping together)
    worse = [r for r in rows
             if r["fixed_winner_mean"] - r["race_winner_mean_under_fixed"] > r["fixed_winner_std"]]
    print(f"\nrace spent {spent:.0%} of fixed's seed-epochs (target <= 40%): "
          f"{'met' if spent <= 0.4 else 'NOT met'}; race's winner worse than fixed's by more than its "
          f"seed std in {len(worse)} of {len(rows)} runs (target 0); fixed's winner dropped by the race "
          f"in {sum(r['fixed_winner_dropped_by_race'] for r in rows)} of {len(rows)}")


if __name__ == "__main__":
    main()
