"""`make gpu-check`'s parity row for train.cuda_graphs (models/graphed.py): the NPLM
trained with its steps replayed as CUDA graphs against the same NPLM trained eagerly, one
seed alone and three stacked, on the same device. On the CPU (`--device cpu`) the graphed
path runs its steps eagerly and must give the eager metrics bit for bit; on a GPU the
graphs read the learning rate in float32 (eager SGD reads it in float64), so the metrics
may differ in the last bits."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from models.nplm import NPLM
from models.training import TrainSettings, make_trainers


def graphs_parity(device: torch.device, task, small: bool) -> Iterator[dict]:
    """Max relative difference of per-epoch dev perplexity and train loss, graphed against
    eager, for one seed and for three stacked (SGD, lr decay, weight decay, no L2 on biases,
    a last batch smaller than the others)."""
    settings = TrainSettings(optimizer="sgd", lr=0.5, batch_size=48, max_epochs=3 if small else 4, patience=1,
                             lr_decay=1e-3, decay_biases=False, weight_decay=1e-4)

    def build():
        return NPLM(len(task.vocab), 4, embed_dim=8, hidden_dim=12)
    for name, seeds in (("NPLM alone", [5]), ("NPLM 3 seeds stacked", [5, 6, 7])):
        runs = {}
        for mode in ("false", "true"):
            stacked = "true" if len(seeds) > 1 else "false"
            trainers = make_trainers(build, task, settings, seeds, device, stacked, cuda_graphs=mode)
            while any(not r.done for r in trainers.seeds):
                trainers.step()
            runs[mode] = trainers.seeds
        worst, same_best = 0.0, True
        for graphed, eager in zip(runs["true"], runs["false"]):
            same_best &= graphed.best_epoch == eager.best_epoch
            for a, b in zip(graphed.history, eager.history):
                for x, y in [(a.train_loss, b.train_loss), *((a.dev[k], b.dev[k]) for k in b.dev)]:
                    worst = max(worst, abs(x - y) / max(abs(y), 1e-12))
        exact_needed = device.type == "cpu"
        yield {"model": name, "seeds": len(seeds), "max_rel_diff": worst, "same_best_epoch": same_best,
               "ok": same_best and (worst == 0.0 if exact_needed else worst < 1e-3)}
