"""One seed trained alone (`SeedTrainer`), K of them one after another (`OneAfterAnother`),
what every trainer of K seeds offers (`SeedTrainers`), and the CUDA-graph epochs that the
alone and the stacked trainers share (`StaticEpochs`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from models.graphed import StaticStep, use_graphs
from models.noise import noise_generator
from models.training.devices import build_seeded, flush_denormals
from models.training.optimizers import decayed_lr, make_optimizer
from models.training.record import EpochMetrics, SeedRecord, SeedResult, add_loss, check_loss
from models.training.settings import Task, TrainSettings


class StaticEpochs:
    """Epochs run by models/graphed.py's StaticStep where `cuda_graphs` is on: the same
    steps, replayed as CUDA graphs on a GPU. The step is never pickled (a CUDA graph cannot
    be): it is built again after loading, and when the parameters change (seeds leaving)."""

    cuda_graphs = False  # and so for checkpoints written before the setting
    _static: StaticStep | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_static"}

    def static_epoch(self, model: nn.Module, new_optimizer: Callable[[], torch.optim.Optimizer],
                     orders: torch.Tensor, stacked: bool) -> tuple[torch.Tensor, int]:
        """One epoch over training positions `orders` (K, N): as `run_batches`."""
        s = self.settings
        if self._static is None or not self._static.serves(model):
            self._static = StaticStep(model, new_optimizer(), self.task, stacked, s.lr, s.lr_decay,
                                      s.batch_size)
        total, batches = self._static.run_epoch(orders, self.updates)
        self.updates += batches
        if s.lr_decay:
            for g in self.optimizer.param_groups:
                g["lr"] = decayed_lr(s, self.updates)
        return total, batches


class SeedTrainer(SeedRecord, StaticEpochs):
    """One seed trained alone. Its weights come from `seed`, its batch order from a CPU
    generator seeded with `seed`, its dropout from `noise_generator(seed)` on the device.
    `cuda_graphs`: train.cuda_graphs (models/graphed.py's `use_graphs`)."""

    def __init__(
        self,
        build_model: Callable[[], nn.Module],
        task: Task,
        settings: TrainSettings,
        seed: int,
        device: torch.device | str = "cpu",
        cuda_graphs: str = "auto",
        model: nn.Module | None = None,
        built_in: float = 0.0,
    ) -> None:
        """`model`: this seed's model already built (`build_seeded(build_model, seed)`), in
        `built_in` seconds; by default it is built here."""
        super().__init__(task, settings, seed)
        flush_denormals()
        start = time.perf_counter()
        self.model = (build_seeded(build_model, seed) if model is None else model).to(device)
        self.model.noise = noise_generator(seed, device)
        self.generator = torch.Generator().manual_seed(seed)  # batch order
        self.optimizer = make_optimizer(self.model, settings)
        self.updates = 0
        self.cuda_graphs = use_graphs(cuda_graphs, self.model, task, settings.optimizer, settings.momentum,
                                      device)
        self.build_seconds = built_in + time.perf_counter() - start

    def run_batches(self) -> tuple[torch.Tensor | None, int]:
        """One epoch's batches, none of which waits for the device: returns the sum of the
        batch losses, on the device, and the number of batches."""
        if self.cuda_graphs:
            return self.static_epoch(self.model, lambda: make_optimizer(self.model, self.settings),
                                     self.task.epoch_order(self.generator).unsqueeze(0), stacked=False)
        self.model.train()
        total, batches = None, 0
        for batch in self.task.train_batches(self.settings.batch_size, self.generator):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.task.loss(self.model, batch)
            loss.backward()
            self.optimizer.step()
            self.updates += 1
            if self.settings.lr_decay:
                for g in self.optimizer.param_groups:
                    g["lr"] = decayed_lr(self.settings, self.updates)
            total = add_loss(total, loss)
            batches += 1
        return total, batches

    def _train_epoch(self) -> float:
        total, batches = self.run_batches()
        value = 0.0 if total is None else total.item()  # the epoch's one wait for the device
        check_loss(value, self.epoch + 1, self.seed)
        return value / max(batches, 1)

    def step(self) -> EpochMetrics:
        """Train one epoch, evaluate on dev, update early stopping; returns the epoch's metrics."""
        if self.done:
            raise RuntimeError("this seed has finished training")
        start = time.perf_counter()
        train_loss = self._train_epoch()
        dev = self.task.evaluate(self.model)
        self.compute_seconds += time.perf_counter() - start
        m = self.record(train_loss, dev, self.model.state_dict)
        if self.done:
            self.finish()
        return m

    def finish(self) -> None:
        """Stop training and restore the best epoch's weights."""
        self.done = True
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)

    def best_state_dict(self) -> dict[str, torch.Tensor]:
        return self._best_state if self._best_state is not None else self.model.state_dict()

    def fit(self, on_epoch: Callable[[EpochMetrics], None] | None = None) -> SeedResult:
        while not self.done:
            m = self.step()
            if on_epoch is not None:
                on_epoch(m)
        return self.result()


class SeedTrainers(Protocol):
    """K seeds of one configuration, trained epoch by epoch."""

    seeds: list[SeedRecord]
    vectorized: bool

    def step(self) -> list[EpochMetrics | None]: ...  # one per seed; None: it had finished


class OneAfterAnother:
    """K `SeedTrainer`s, each epoch one seed after the other."""

    vectorized = False

    def __init__(self, build_model, task: Task, settings: TrainSettings, seeds: list[int],
                 device: torch.device | str = "cpu", cuda_graphs: str = "auto",
                 models: list[nn.Module] | None = None, built_in: float = 0.0) -> None:
        """`models`: the seeds' models already built, in `built_in` seconds in all."""
        models = models or [None] * len(seeds)
        self.seeds = [SeedTrainer(build_model, task, settings, s, device, cuda_graphs, model=m,
                                  built_in=built_in / len(seeds)) for s, m in zip(seeds, models)]

    def step(self) -> list[EpochMetrics | None]:
        return [None if t.done else t.step() for t in self.seeds]
