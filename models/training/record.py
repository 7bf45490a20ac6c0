"""One seed's epochs however it trains (alone or stacked): the per-epoch metrics, early
stopping, the best weights, and the epoch's loss summed on the device and checked once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from models import metrics
from models.errors import NonFiniteLossError
from models.training.settings import Task, TrainSettings


@dataclass
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    dev: dict[str, float]
    improved: bool

    def as_dict(self) -> dict[str, float]:
        """Flat metric names as tracked: train_loss, dev_accuracy, ..."""
        return {metrics.TRAIN_LOSS: self.train_loss,
                **{metrics.dev(k): v for k, v in self.dev.items()}}


@dataclass
class SeedResult:
    seed: int
    best_epoch: int
    best_value: float
    epochs_run: int
    history: list[EpochMetrics] = field(default_factory=list)
    compute_seconds: float = 0.0  # wall time inside training epochs and dev evaluation
    build_seconds: float = 0.0  # wall time building its model and optimizer (a plain loop pays it too)


class SeedRecord:
    """One seed's epochs, early stopping and best weights, however it is trained."""

    build_seconds = 0.0  # set when its model is built (a class default: checkpoints from before it)

    def __init__(self, task: Task, settings: TrainSettings, seed: int) -> None:
        self.task, self.settings, self.seed = task, settings, seed
        self._sign = 1.0 if task.mode == "max" else -1.0
        self.history: list[EpochMetrics] = []
        self.best_value = -math.inf * self._sign
        self.best_epoch = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        self._stale = 0
        self.done = False
        self.compute_seconds = 0.0

    @property
    def epoch(self) -> int:
        return len(self.history)

    def record(self, train_loss: float, dev: dict[str, float],
               state: Callable[[], dict[str, torch.Tensor]]) -> EpochMetrics:
        """Book one epoch; `state()` gives the weights to keep if it is the best so far."""
        value = dev[self.task.monitor]
        if not math.isfinite(value):
            raise NonFiniteLossError(f"dev {self.task.monitor} became {value} in epoch "
                                     f"{self.epoch + 1} (seed {self.seed}).")
        improved = self._sign * (value - self.best_value) > self.settings.min_delta
        m = EpochMetrics(self.epoch + 1, train_loss, dev, improved)
        self.history.append(m)
        if improved:
            self.best_value, self.best_epoch, self._stale = value, m.epoch, 0
            self._best_state = {k: v.detach().clone() for k, v in state().items()}
        else:
            self._stale += 1
        if self._stale >= self.settings.patience or self.epoch >= self.settings.max_epochs:
            self.done = True
        return m

    def best_state_dict(self) -> dict[str, torch.Tensor]:
        if self._best_state is None:
            raise RuntimeError(f"seed {self.seed} has not finished an epoch")
        return self._best_state

    def result(self) -> SeedResult:
        return SeedResult(self.seed, self.best_epoch, self.best_value, self.epoch, self.history,
                          self.compute_seconds, self.build_seconds)


def check_loss(value: float, epoch: int, seed: int) -> None:
    if not math.isfinite(value):
        raise NonFiniteLossError(f"training loss became {value} in epoch {epoch} (seed {seed}); "
                                 "lower the learning rate or add regularisation.")


def add_loss(total: torch.Tensor | None, loss: torch.Tensor) -> torch.Tensor:
    """`total` plus a batch's loss, kept on the device so that no batch waits to read it.
    In float64: adding float32 losses in order is then the same sum, bit for bit, as adding
    their Python floats (`.item()`), as the loop did before; a NaN or inf in any batch
    leaves the sum non-finite, so `check_loss` on the sum catches it, once an epoch."""
    loss = loss.detach().double()
    return loss if total is None else total + loss
