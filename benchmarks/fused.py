"""`make bench-fused`: a DAN grid over lr x weight decay (x dropout) on RT, trained three ways:
  fused    every trial x seed as one stacked model (models/fused/): one run for the grid;
  stacked  each trial's K seeds stacked (models.training.Stacked), trial after trial;
  alone    every trial's every seed alone (SeedTrainer), one after another.
Each arm's wall time (training and dev evaluation, data prepared once before), the time of
one trial alone (its K seeds), and the largest relative difference of any slice's dev
metrics, epoch by epoch, against training that trial's seed alone (the parity).

    make bench-fused                                   # 20 trials, 1 seed, 5 epochs, DAN 3x300
    python -m benchmarks.fused --trials 4 --epochs 1 --small   # the code path, in seconds

Epochs are fixed (patience = max_epochs), so the three arms do the same work. Writes
benchmarks/results/fused-<stamp>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
LRS = (0.005, 0.01, 0.02, 0.05, 0.1)
DECAYS = (0.0, 1e-5, 1e-4, 1e-3)
DROPOUTS = (0.0, 0.2)


def grid(trials: int, with_dropout: bool) -> list[dict]:
    """The first `trials` points of lr x weight decay (x dropout)."""
    axes = (LRS, DECAYS, DROPOUTS if with_dropout else (0.0,))
    points = [dict(lr=lr, weight_decay=wd, dropout=p) for lr, wd, p in itertools.product(*axes)]
    if trials > len(points):
        raise SystemExit(f"--trials {trials}: the grid has {len(points)} points (add --dropout for more).")
    return points[:trials]


def rt_task(small: bool):
    from models.data.cache import default_cache_dir
    from models.data.classification import prepare_classification
    from models.data.rt import load_rt
    splits = load_rt(default_cache_dir(), 13, (0.8, 0.1, 0.1))
    if small:
        splits = replace(splits, train=splits.train[:400], dev=splits.dev[:100])
    return prepare_classification(splits)


def configs(task, points: list[dict], epochs: int, small: bool):
    from models.dan import DAN
    from models.fused import Config
    from models.training import TrainSettings
    base = TrainSettings(optimizer="adagrad", batch_size=64, max_epochs=epochs, patience=epochs)
    sparse = base.sparse_ok  # as the DAN's build has it (models/dan/model.py)
    embed, hidden = (24, (16,)) if small else (300, (300, 300, 300))

    def build(p):
        return lambda: DAN(len(task.vocab), task.num_classes, embed_dim=embed, hidden_dims=hidden,
                           word_dropout=0.3, dropout=p, sparse=sparse)
    return [Config(build(pt["dropout"]), replace(base, lr=pt["lr"], weight_decay=pt["weight_decay"]))
            for pt in points]


def dev_history(record) -> list[dict[str, float]]:
    return [m.dev for m in record.history]


def worst_rel(a: list[list[dict]], b: list[list[dict]]) -> tuple[float, dict]:
    """The largest |x - y| / max(|y|, 1e-12) over every slice, epoch and dev metric, and where
    it is: the slice, the epoch (1-based), the metric, both values."""
    worst, where = 0.0, {}
    for i, (ha, hb) in enumerate(zip(a, b)):
        for e, (da, db) in enumerate(zip(ha, hb), 1):
            for k in db:
                rel = abs(da[k] - db[k]) / max(abs(db[k]), 1e-12)
                if rel > worst:
                    worst, where = rel, {"slice": i, "epoch": e, "metric": k, "value": da[k], "alone": db[k]}
    return worst, where


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=1, help="seeds a trial (K)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--dropout", action="store_true", help="a dropout axis (0, 0.2) in the grid")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--small", action="store_true", help="400 RT sentences, a tiny DAN: the code path only")
    ap.add_argument("--arms", default="fused,stacked,alone")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    from models.fused import FusedTrials
    from models.training import SeedTrainer, Stacked, flush_denormals
    flush_denormals()  # as a sweep's process does, before the data's first tensors
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    task = rt_task(args.small).to(device)
    points = grid(args.trials, args.dropout)
    cfgs = configs(task, points, args.epochs, args.small)
    seeds = list(range(1, args.seeds + 1))
    arms = args.arms.split(",")
    histories, seconds = {}, {}

    def alone():
        out = []
        for c in cfgs:
            for s in seeds:
                t = SeedTrainer(c.build_model, task, c.settings, s, device, cuda_graphs="false")
                t.fit()
                out.append(dev_history(t))
        return out

    def stacked():
        out = []
        for c in cfgs:
            trainers = Stacked(c.build_model, task, c.settings, seeds, device, cuda_graphs="false")
            while any(not r.done for r in trainers.seeds):
                trainers.step()
            out += [dev_history(r) for r in trainers.seeds]
        return out

    def fused():
        trials = FusedTrials(cfgs, task, seeds, device)
        trials.fit()
        return [dev_history(r) for r in trials.slices]

    def one():  # one trial as a sweep trains it alone: the first configuration's K seeds
        return [SeedTrainer(cfgs[0].build_model, task, cfgs[0].settings, s, device, cuda_graphs="false").fit()
                for s in seeds]
    one()  # warm-up: allocator, kernels, caches, so no arm pays for them
    _, one_trial = timed(one, device)
    for name, fn in (("alone", alone), ("stacked", stacked), ("fused", fused)):
        if name in arms:
            histories[name], seconds[name] = timed(fn, device)
            print(f"{name}: {seconds[name]:.2f} s", flush=True)
    rows = []
    for name in ("fused", "stacked", "alone"):
        if name not in arms:
            continue
        parity, where = worst_rel(histories[name], histories["alone"]) if "alone" in arms else (math.nan, {})
        rows.append({"arm": name, "seconds": seconds[name], "per_trial": seconds[name] / len(cfgs),
                     "x_one_trial": seconds[name] / one_trial,
                     "max_rel_dev_diff": parity, "worst_at": where})
    print(f"\nDAN {'tiny' if args.small else '3x300'} on RT, {len(cfgs)} trials x {args.seeds} seed(s), "
          f"{args.epochs} epoch(s), {device}, {torch.get_num_threads()} thread(s); one trial alone: "
          f"{one_trial:.2f} s\n")
    print("| arm | seconds | per trial | x one trial | max rel dev diff vs alone |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['arm']} | {r['seconds']:.2f} | {r['per_trial']:.3f} | {r['x_one_trial']:.2f} | "
              f"{r['max_rel_dev_diff']:.1e} |")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"args": vars(args), "grid": points, "one_trial_seconds": one_trial, "rows": rows,
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    (out / f"fused-{stamp}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
