"""How one configuration trains (`TrainSettings`: optimizer, schedule, early stopping) and
what the training loop needs of a data set (`Task`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

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
    adagrad_eps: float = 1e-10  # Adagrad's w -= lr g / (sqrt(sum g^2) + eps): torch's default
    # L2 on every embedding row at every step, as a dense update has it (the released DAN
    # code), not only on the rows a batch uses, as sparse updates have it
    l2_every_row: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; one of {', '.join(OPTIMIZERS)}")
        if (self.lr <= 0 or self.weight_decay < 0 or self.momentum < 0 or self.min_delta < 0
                or self.lr_decay < 0 or self.adagrad_eps <= 0):
            raise ValueError("lr and adagrad_eps must be positive and weight_decay, momentum, min_delta, "
                             "lr_decay >= 0")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be at least 1")

    @property
    def sparse_ok(self) -> bool:
        """Whether embeddings may use sparse gradients: Adagrad and plain SGD take them."""
        return self.optimizer in _SPARSE_OPTIMIZERS and self.momentum == 0


StackFn = Callable[[list[nn.Module]], Any]  # K models -> their stacked form (a SeedStack) or None
