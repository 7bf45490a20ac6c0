"""gpu-check's fused-trials rows (`make gpu-check ARGS='--only fused'`; torch and numpy only).

  parity  4 DAN configurations (lr, weight decay, dropout, patience) x 2 seeds fused, each
          slice's per-epoch dev metrics against that configuration's seed trained alone;
  speed   a 20-trial DAN 3x300 grid (lr x weight decay) on SST-size synthetic data, one seed
          a trial: one epoch (train + dev) fused, against one trial alone (target: at most
          3x on a GPU), beside plain PyTorch's torch.func.vmap over 20 DANs in the same run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch

from benchmarks.gpu_data import median_time, sst_like
from models.dan import DAN
from models.fused import Config, FusedTrials
from models.training import SeedTrainer, TrainSettings

LRS, DECAYS = (0.005, 0.01, 0.02, 0.05, 0.1), (0.0, 1e-5, 1e-4, 1e-3)


def max_rel_diff(fused: FusedTrials, configs: list[Config], task, device: torch.device) -> tuple[float, bool]:
    """The largest relative dev difference of any slice and epoch against training alone,
    and whether every slice stopped at the same best epoch as alone."""
    worst, same_best = 0.0, True
    for config, records in zip(configs, fused.records):
        for record in records:
            alone = SeedTrainer(config.build_model, task, config.settings, record.seed, device, "false")
            alone.fit()
            same_best &= record.best_epoch == alone.best_epoch and record.epoch == alone.epoch
            for a, b in zip(record.history, alone.history):
                for k in b.dev:
                    worst = max(worst, abs(a.dev[k] - b.dev[k]) / max(abs(b.dev[k]), 1e-12))
    return worst, same_best


def parity(device: torch.device) -> dict:
    task = sst_like(400, 100, 300, seed=3).to(device)
    base = TrainSettings(lr=0.05, batch_size=16, max_epochs=4, patience=2, min_delta=0.01)

    def dan(p):
        return lambda: DAN(300, 5, embed_dim=16, hidden_dims=(16, 16), dropout=p, sparse=base.sparse_ok)
    configs = [Config(dan(0.2), replace(base, weight_decay=1e-3)),
               Config(dan(0.0), replace(base, lr=0.15, patience=1)),
               Config(dan(0.5), replace(base, lr=0.02, weight_decay=1e-2)),
               Config(dan(0.0), replace(base, max_epochs=2))]
    fused = FusedTrials(configs, task, [5, 6], device)
    fused.fit()
    worst, same = max_rel_diff(fused, configs, task, device)
    return {"case": "parity: 4 configurations x 2 seeds against alone", "slices": 8, "max_rel_diff": worst,
            "same_best_epoch": same, "ok": same and worst < 1e-3}


def speed(device: torch.device, small: bool) -> dict:
    from benchmarks import gpu_plain
    task = sst_like(800 if small else 8544, 200 if small else 1101, 2000 if small else 16_581).to(device)
    trials = 4 if small else 20
    base = TrainSettings(batch_size=32, max_epochs=10**6, patience=10**6)

    def build():
        return DAN(len(task.vocab), 5, sparse=base.sparse_ok)
    configs = [Config(build, replace(base, lr=lr, weight_decay=wd)) for lr in LRS for wd in DECAYS][:trials]
    one = SeedTrainer(build, task, configs[0].settings, 0, device)
    fused = FusedTrials(configs, task, [0], device)
    repeats = 1 if small else 3  # small: the code path, not the speed
    one_s = median_time(one.step, device, repeats)
    fused_s = median_time(fused.step, device, 1)
    models = [DAN(len(task.vocab), 5).to(device) for _ in range(trials)]
    plain_s = median_time(gpu_plain.dan_vmap_epoch(models, task, 32), device, 1)
    plain_one = median_time(gpu_plain.dan_epoch(models[0], task, 32), device, repeats)
    return {"case": f"DAN 3x300 epoch, {trials} trials fused / 1 trial alone", "slices": trials,
            "one_trial_s": one_s, "epoch_s": fused_s, "over_one_trial": fused_s / one_s,
            "plain_epoch_s": plain_s, "plain_over_one": plain_s / plain_one, "ok": True}


def fused_rows(device: torch.device, small: bool) -> Iterator[dict]:
    """The rows, each as soon as it is measured."""
    yield parity(device)
    yield speed(device, small)


def line(r: dict) -> str:
    if "max_rel_diff" in r:
        return f"| {r['case']} | {r['slices']} | max rel dev diff {r['max_rel_diff']:.2e}, " \
               f"same best epoch {r['same_best_epoch']} | – | {r['ok']} |"
    return (f"| {r['case']} | {r['slices']} | {r['epoch_s']:.2f} s = {r['over_one_trial']:.2f}x one trial "
            f"({r['one_trial_s']:.2f} s) | {r['plain_epoch_s']:.2f} s = {r['plain_over_one']:.2f}x "
            f"| {r['ok']} |")


TABLE = ("| fused trials | slices | this project | plain PyTorch (torch.func vmap) | ok |"
         "\n|---|---:|---|---|---|", line)
