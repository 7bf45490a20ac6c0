"""The rows of `make bench` (benchmarks/suite.py's docstring says what each measures), one
function each; each runs in its own process and returns its figures."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.suite_cases import (
    REPO,
    dan_builder,
    dan_settings,
    dan_task,
    nplm_builder,
    nplm_settings,
    nplm_task,
    plain_dan,
    ptb_train,
    training_flops,
)
from benchmarks.suite_timing import peak_rss_mb, threads, timed

MATMUL_REPS = 200
PTB_TRAIN_POSITIONS = 929_589


def row_dan_epoch(device: str, quick: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from models.training import OneAfterAnother, make_trainers
    torch.set_num_threads(1)
    task, name = dan_task()
    task = task.to(device)
    # what `make train ... seeds=1` trains with: the stacked form where it is the faster
    trainers = make_trainers(dan_builder(task, device), task, dan_settings(), [0], device)
    trainer = trainers.seeds[0] if isinstance(trainers, OneAfterAnother) else trainers
    torch.manual_seed(0)
    plain = plain_dan(len(task.vocab), task.num_classes).to(device)
    opt = torch.optim.Adagrad(plain.parameters(), lr=0.01, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(0)
    tokens, labels = task.train.tokens, task.train.labels

    def plain_epoch():
        plain.train()
        order = torch.randperm(len(labels), generator=gen).to(device)
        for start in range(0, len(order), 64):
            idx = order[start:start + 64]
            opt.zero_grad()
            F.cross_entropy(plain(tokens[idx]), labels[idx]).backward()
            opt.step()
    reps = 1 if quick else 3
    ours = statistics.median(timed(trainer._train_epoch, reps, device))
    base = statistics.median(timed(plain_epoch, 1 if quick else 2, device))
    return {"data": f"{name} sentences", "examples": len(task.train), "vocab": len(task.vocab),
            "threads": 1, "platform_s": ours, "plain_s": base, "speedup": base / ours,
            "platform_trainer": type(trainers).__name__}


def seed_epochs(build, task, settings, device, ks, quick) -> list[dict]:
    """Wall time of one epoch (train + dev) of K seeds, stacked and one after another."""
    from models.training import make_trainers
    rows = []
    warm = make_trainers(build, task, settings, [0], device, "false")
    warm.step()  # first-touch costs out of the way
    for k in ks:
        row = {"k": k}
        for mode in ("true", "false"):
            if k == 1 and mode == "true":
                continue
            trainers = make_trainers(build, task, settings, list(range(1, k + 1)), device, mode)
            row["stacked_s" if mode == "true" else "one_after_another_s"] = statistics.median(
                timed(trainers.step, 1, device, warmup=0 if quick else 1))
        rows.append(row)
    one = rows[0]["one_after_another_s"]
    for row in rows:
        row["stacked_over_one_seed"] = row.get("stacked_s", one) / one
        row["one_after_another_over_one_seed"] = row["one_after_another_s"] / one
    return rows


def row_dan_seeds(device: str, quick: bool) -> dict:
    task, name = dan_task()
    task = task.to(device)
    ks = (1, 5) if quick else (1, 5, 10)
    return {"data": f"{name} sentences", "threads": threads(), "model": "DAN 3x300 relu, Adagrad, batch 64",
            "rows": seed_epochs(dan_builder(task, device), task, dan_settings(), device, ks, quick)}


def row_nplm_seeds(device: str, quick: bool) -> dict:
    train, valid = ptb_train()
    task = nplm_task(train, valid, 2000, 20_000, 10_000).to(device)
    ks = (1, 5) if quick else (1, 5, 10)
    return {"data": "PTB, V=2,000, 20,000 positions an epoch, dev 10,000 tokens", "threads": threads(),
            "model": "NPLM n=5 m=60 h=50 direct, SGD, batch 64",
            "rows": seed_epochs(nplm_builder(len(task.vocab)), task, nplm_settings(), device, ks, quick)}


def row_nplm_flops(device: str, quick: bool) -> dict:
    import torch

    from models.training import SeedTrainer
    train, valid = ptb_train()
    batches = (64, 1024) if torch.device(device).type == "cuda" else (64,)
    steps = 50 if quick else 300
    rows = []
    for V in (2_000, 10_000):
        for batch in batches:
            task = nplm_task(train, valid, V, batch * steps).to(device)
            trainer = SeedTrainer(nplm_builder(len(task.vocab)), task, nplm_settings(batch), 0, device)
            secs = statistics.median(timed(trainer._train_epoch, 1 if quick else 2, device))
            tokens = batch * steps
            flops = training_flops(5, 60, 50, len(task.vocab), True) * tokens
            k = 50 + 4 * 60
            a = torch.randn(batch, k, device=device)
            w = torch.randn(k, len(task.vocab), device=device)
            mm = statistics.median(timed(lambda a=a, w=w: [a @ w for _ in range(MATMUL_REPS)], 3, device))
            peak = 2.0 * batch * k * len(task.vocab) * MATMUL_REPS / mm / 1e9
            rows.append({"V": len(task.vocab), "batch": batch, "tokens_per_s": tokens / secs,
                         "gflops": flops / secs / 1e9, "matmul_gflops": peak,
                         "share_of_matmul": flops / secs / 1e9 / peak})
    return {"threads": threads(), "model": "NPLM n=5 m=60 h=50 direct, SGD, training step", "rows": rows}


def row_nplm_ptb(device: str, quick: bool) -> dict:
    from models.training import make_trainers
    train, valid = ptb_train()
    steps, seeds = (20 if quick else 150), [1, 2, 3]
    task = nplm_task(train, valid, 10_000, 64 * steps, 1000).to(device)
    build, settings = nplm_builder(len(task.vocab)), nplm_settings()

    def per_step(mode: str, fused: bool = True) -> float:
        trainers = make_trainers(build, task, settings, seeds, device, mode)
        holders = [trainers, *trainers.seeds]
        if not fused:
            for o in (h.optimizer for h in holders if hasattr(h, "optimizer")):
                for g in o.param_groups:
                    g["fused"] = None
        epoch = trainers._train_epoch if mode == "true" else \
            (lambda: [t._train_epoch() for t in trainers.seeds])
        return statistics.median(timed(epoch, 1 if quick else 3, device)) / steps

    rows = [{"trainer": name, "ms_per_step": 1e3 * per_step(mode, fused)}
            for name, mode, fused in (("stacked", "true", True), ("stacked, SGD unfused", "true", False),
                                      ("one after another", "false", True))]
    for r in rows:
        r["min_per_epoch"] = r["ms_per_step"] / 1e3 * PTB_TRAIN_POSITIONS / 64 / 60
        r["vs_stacked"] = r["ms_per_step"] / rows[0]["ms_per_step"]
    return {"threads": threads(), "seeds": len(seeds), "steps": steps,
            "model": "NPLM n=5 m=60 h=50 direct, V=10,000, batch 64, SGD wd 1e-4", "rows": rows}


def row_sweep(device: str, quick: bool, trials: int | None = None) -> dict:
    """A DAN sweep's wall time against the models' own work: training and dev evaluation
    (the trainer's compute time) and building each seed's model and optimizer (which a
    plain loop pays too); the rest is the sweep's own overhead. That overhead is split into
    what a sweep pays once (process start, imports, opening the stores, the data, the
    closing table, and the first trial's warm-up: the imports its first model, optimizer and
    MLflow run pull in) and what every later trial pays (its runs, weights, study writes,
    the sampler). The share projected for a 100-trial sweep (the default budget) keeps both
    parts and this sweep's mean trial; a sweep of few trials writes weight files for nearly
    every trial (each is among the best so far), a long one for few, so the projection is
    an upper bound on that part, and the sampler's own time grows with the trials (TPE), a
    lower bound on that. `trials=100` measures the default budget itself."""
    import statistics

    import optuna

    from sweeps.core.records import BUILD_SECONDS, COMPUTE_SECONDS
    from sweeps.store import open_storage
    trials = trials or (3 if quick else 10)
    with tempfile.TemporaryDirectory() as tmp:
        name = "bench-sweep"
        cmd = [sys.executable, "-m", "sweeps.sweep", "model=dan", f"sweep.trials={trials}",
               f"sweep.study_name={name}", f"tracking.uri=sqlite:///{tmp}/mlflow.db",
               f"tracking.artifacts={tmp}/art", f"storage.dir={tmp}",  # the default: a journal file
               f"device={device}", "sampler.seed=0",
               "sweep.workers=1"]  # trials one after another: each one's own overhead is timed
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        study = optuna.load_study(study_name=name, storage=open_storage(None, Path(tmp)))
        trials_ = study.trials
        states = {s: sum(t.state.name == s for t in trials_) for s in ("COMPLETE", "PRUNED", "FAIL")}
    done = sorted((t for t in trials_ if t.datetime_complete is not None and t.datetime_start is not None),
                  key=lambda t: t.datetime_start)
    compute = sum(t.user_attrs.get(COMPUTE_SECONDS, 0.0) for t in trials_)
    build = sum(t.user_attrs.get(BUILD_SECONDS, 0.0) for t in trials_)
    in_trials = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    n = max(1, len(done))

    def own(t, before) -> float:  # a trial's overhead, with the gap since the trial before it
        gap = (t.datetime_start - before.datetime_complete).total_seconds() if before else 0.0
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        work = t.user_attrs.get(COMPUTE_SECONDS, 0.0) + t.user_attrs.get(BUILD_SECONDS, 0.0)
        return gap + seconds - work
    later = [own(t, b) for b, t in zip(done, done[1:])]
    per_trial = statistics.fmean(later) if later else wall - compute - build
    once = wall - compute - build - n * per_trial
    work = (compute + build) / n
    projected = (once + 100 * per_trial) / (once + 100 * (per_trial + work))
    overhead = wall - compute - build
    return {"trials": len(trials_), "states": states, "wall_s": wall, "training_s": compute,
            "build_s": build, "overhead_s": overhead, "overhead_share": overhead / wall,
            "first_trial_overhead_s": own(done[0], None) if done else 0.0,
            # where the overhead lies: inside trials (runs, weights) or around them
            # (process start, imports, stores, data, the closing table)
            "in_trials_overhead_s": in_trials - compute - build, "outside_trials_s": wall - in_trials,
            "once_s": once, "per_trial_overhead_s": per_trial, "per_trial_training_s": compute / n,
            "per_trial_build_s": build / n, "projected_100_trial_share": projected,
            "sweep_peak_rss_mb": peak_rss_mb(children=True)}


RUN = {"dan_epoch": row_dan_epoch, "dan_seeds": row_dan_seeds, "nplm_seeds": row_nplm_seeds,
       "nplm_flops": row_nplm_flops, "nplm_ptb": row_nplm_ptb, "sweep": row_sweep}
