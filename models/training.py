"""One seed of one configuration, trained epoch by epoch with early stopping.

`SeedTrainer.step()` trains and evaluates one epoch, so a caller can run K seeds in
lockstep and look at their mean after every epoch. Each trainer keeps its own torch RNG
state, so a seed gives the same metrics whether it runs alone or beside others.
No module-level state: a worker process may hold many trainers, one after another.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from models import metrics
from models.errors import NonFiniteLossError

OPTIMIZERS = ("adagrad", "sgd", "adam", "rmsprop")
_SPARSE_OPTIMIZERS = ("adagrad", "sgd")


class Task(Protocol):
    """A data set seen from the training loop."""

    monitor: str  # dev metric for early stopping, e.g. "accuracy"
    mode: str  # "max" or "min"

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Any]: ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...


@dataclass(frozen=True)
class TrainSettings:
    optimizer: str = "adagrad"
    lr: float = 0.01
    weight_decay: float = 0.0  # L2
    momentum: float = 0.0  # sgd and rmsprop only
    batch_size: int = 64
    max_epochs: int = 20
    patience: int = 3  # epochs without improvement of the dev metric before stopping
    min_delta: float = 0.0  # smallest change that counts as an improvement
    lr_decay: float = 0.0  # r in Bengio et al.'s schedule lr_t = lr / (1 + r t), t = updates
    decay_biases: bool = True  # False: no weight decay on biases (1-d parameters)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; one of {', '.join(OPTIMIZERS)}")
        if (self.lr <= 0 or self.weight_decay < 0 or self.momentum < 0 or self.min_delta < 0
                or self.lr_decay < 0):
            raise ValueError("lr must be positive and weight_decay, momentum, min_delta, lr_decay >= 0")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be at least 1")

    @property
    def sparse_ok(self) -> bool:
        """Whether embeddings may use sparse gradients: Adagrad and plain SGD take them."""
        return self.optimizer in _SPARSE_OPTIMIZERS and self.momentum == 0


def _sparse_weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules()
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse and m.weight.requires_grad]


def _lazy_l2(weight: nn.Parameter, decay: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A gradient hook adding decay * w to the rows a sparse gradient touches: the L2 term
    of the rows seen in the batch ("lazy" L2), since PyTorch's sparse optimizer paths
    refuse weight_decay. Rows not in a batch are not decayed that step."""
    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.coalesce()
        rows = grad.indices()[0]
        values = grad.values() + decay * weight.detach()[rows]
        return torch.sparse_coo_tensor(grad.indices(), values, grad.shape, is_coalesced=True,
                                       check_invariants=False)
    return hook


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer of `s`; sparse embedding weights get their L2 through `_lazy_l2`."""
    sparse = _sparse_weights(model)
    if sparse and not s.sparse_ok:
        raise ValueError(f"{s.optimizer} (momentum {s.momentum}) cannot take sparse gradients")
    dense = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in sparse)]
    if s.decay_biases:
        groups = [{"params": dense, "weight_decay": s.weight_decay}]
    else:
        groups = [{"params": [p for p in dense if p.ndim > 1], "weight_decay": s.weight_decay},
                  {"params": [p for p in dense if p.ndim <= 1], "weight_decay": 0.0}]
    if sparse:
        # Opting out explicitly is PyTorch's default; it silences a warning per sparse step.
        torch.sparse.check_sparse_tensor_invariants.disable()
        groups.append({"params": sparse, "weight_decay": 0.0})
        if s.weight_decay > 0:
            for w in sparse:
                w.register_hook(_lazy_l2(w, s.weight_decay))
    if s.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr=s.lr)
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum)
    if s.optimizer == "adam":
        return torch.optim.Adam(groups, lr=s.lr)
    return torch.optim.RMSprop(groups, lr=s.lr, momentum=s.momentum)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


class SeedTrainer:
    def __init__(
        self,
        build_model: Callable[[], nn.Module],
        task: Task,
        settings: TrainSettings,
        seed: int,
    ) -> None:
        self.task, self.settings, self.seed = task, settings, seed
        with torch.random.fork_rng(devices=[]):
            seed_everything(seed)
            self.model = build_model()  # initialised from this seed
            self._rng_state = torch.get_rng_state()  # dropout and word dropout draw from here
        self.generator = torch.Generator().manual_seed(seed)  # batch order
        self.optimizer = make_optimizer(self.model, settings)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda t: 1.0 / (1.0 + settings.lr_decay * t))  # stepped per update
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

    def _train_epoch(self) -> float:
        self.model.train()
        total, batches = 0.0, 0
        for batch in self.task.train_batches(self.settings.batch_size, self.generator):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.task.loss(self.model, batch)
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"training loss became {value} in epoch {self.epoch + 1} (seed {self.seed}); "
                    "lower the learning rate or add regularisation.")
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            total += value
            batches += 1
        return total / max(batches, 1)

    def step(self) -> EpochMetrics:
        """Train one epoch, evaluate on dev, update early stopping; returns the epoch's metrics."""
        if self.done:
            raise RuntimeError("this seed has finished training")
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng_state)
            train_loss = self._train_epoch()
            self._rng_state = torch.get_rng_state()
        dev = self.task.evaluate(self.model)
        self.compute_seconds += time.perf_counter() - start
        value = dev[self.task.monitor]
        if not math.isfinite(value):
            raise NonFiniteLossError(f"dev {self.task.monitor} became {value} in epoch "
                                     f"{self.epoch + 1} (seed {self.seed}).")
        improved = self._sign * (value - self.best_value) > self.settings.min_delta
        m = EpochMetrics(self.epoch + 1, train_loss, dev, improved)
        self.history.append(m)
        if improved:
            self.best_value, self.best_epoch, self._stale = value, m.epoch, 0
            self._best_state = copy.deepcopy(self.model.state_dict())
        else:
            self._stale += 1
        if self._stale >= self.settings.patience or self.epoch >= self.settings.max_epochs:
            self.finish()
        return m

    def finish(self) -> None:
        """Stop training and restore the best epoch's weights."""
        self.done = True
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)

    def best_state_dict(self) -> dict[str, torch.Tensor]:
        return self._best_state if self._best_state is not None else self.model.state_dict()

    def result(self) -> SeedResult:
        return SeedResult(self.seed, self.best_epoch, self.best_value, self.epoch, self.history,
                          self.compute_seconds)

    def fit(self, on_epoch: Callable[[EpochMetrics], None] | None = None) -> SeedResult:
        while not self.done:
            m = self.step()
            if on_epoch is not None:
                on_epoch(m)
        return self.result()
