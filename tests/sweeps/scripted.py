"""A workload whose dev curve follows a script: for testing pruning and failures without
depending on what a real model happens to learn."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.training import TrainSettings
from sweeps.config.workloads import Workload


class ScriptedTask:
    monitor, mode = "accuracy", "max"

    def __init__(self, curve: list[float], nan_loss: bool = False):
        self.curve, self.nan_loss = curve, nan_loss
        self.calls: dict[int, int] = {}

    def train_batches(self, batch_size, generator):
        yield torch.ones(4, 1)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        loss = model(batch).pow(2).mean()
        return loss * math.nan if self.nan_loss else loss

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        i = self.calls.get(id(model), 0)
        self.calls[id(model)] = i + 1
        return {"accuracy": self.curve[min(i, len(self.curve) - 1)]}


def scripted_factory(curve, nan_when_lr_above: float = math.inf):
    """A workload factory for Sweep: the script's curve (a list, or a function of the
    config giving one) and a NaN loss for configurations whose train.lr exceeds
    `nan_when_lr_above`."""

    def factory(cfg, task=None) -> Workload:
        task = ScriptedTask(curve(cfg) if callable(curve) else curve,
                            nan_loss=cfg.train.lr > nan_when_lr_above)
        settings = TrainSettings(optimizer="sgd", lr=float(cfg.train.lr),
                                 max_epochs=int(cfg.train.max_epochs),
                                 patience=int(cfg.train.patience))
        return Workload(task, lambda: nn.Linear(1, 1), settings, {"scripted": True})

    return factory
