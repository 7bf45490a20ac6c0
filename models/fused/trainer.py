"""T configurations x K seeds of one architecture trained as one stacked model of T K slices.

Slice (t, s) gets what configuration t's seed s gets alone (`SeedTrainer`): its initial
weights from `build_seeded(build_t, s)`, its batch order from a CPU generator seeded with s,
its noise from `noise_generator(s)`, its own dropout rates (the fused form, e.g.
models/dan/fused.py), learning rate and weight decay (models/fused/optim.py) and its own
early stopping (`SeedRecord` with configuration t's patience, min_delta, max_epochs). A
slice that stops leaves the stack with its best weights and costs nothing more; so each
slice's metrics equal training it alone, within float rounding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from models.errors import UserError
from models.fused.optim import SlicedOptimizer
from models.noise import noise_generator
from models.registry import fuse_models
from models.training import (
    EpochMetrics,
    SeedRecord,
    SeedResult,
    Task,
    TrainSettings,
    add_loss,
    build_seeded,
    check_loss,
    decayed_lr,
    flush_denormals,
)

# what fused configurations must share; the rest of TrainSettings may differ per slice
SHARED = ("optimizer", "momentum", "batch_size", "adagrad_eps", "l2_every_row")


@dataclass(frozen=True)
class Config:
    """One configuration (a trial): how its model is built and how it trains."""

    build_model: Callable[[], nn.Module]
    settings: TrainSettings


def check_shared(configs: Sequence[Config]) -> None:
    """Refuse configurations that differ in what one fused step must share."""
    first = configs[0].settings
    for i, c in enumerate(configs):
        for name in SHARED:
            if getattr(c.settings, name) != getattr(first, name):
                raise UserError(f"configuration {i} has train.{name}={getattr(c.settings, name)} but the "
                                f"first has {getattr(first, name)}: fused configurations share "
                                f"{', '.join(SHARED)}.")
    if first.l2_every_row and any(c.settings.weight_decay > 0 for c in configs):
        raise UserError("train.l2_every_row=true cannot be fused: train such configurations one by one.")


def architecture(model: nn.Module) -> tuple:
    """What fused models must share: their modules' kinds and their parameters' names,
    shapes and trainability (the fused form may check more: models/dan/fused.py)."""
    return (tuple(type(m).__name__ for m in model.modules()),
            tuple((n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()))


def check_architecture(plain: Sequence[nn.Module], seeds: int) -> None:
    first = architecture(plain[0])
    for i, m in enumerate(plain):
        if architecture(m) != first:
            raise UserError(f"configuration {i // seeds} differs from the first in its architecture (layers, "
                            "widths, embeddings), so they cannot be fused: fuse only configurations that "
                            "differ in lr, weight_decay, dropout, word_dropout or patience.")


class FusedTrials:
    """T configurations x K seeds as one fused model; `step()` trains and evaluates one epoch
    of every unfinished slice. `records[t][k]`: configuration t's seed k."""

    def __init__(self, configs: Sequence[Config], task: Task, seeds: Sequence[int],
                 device: torch.device | str = "cpu") -> None:
        if not configs or not seeds:
            raise UserError("fused training needs at least one configuration and one seed.")
        flush_denormals()
        if not hasattr(task, "stack_batches"):
            raise UserError(f"{type(task).__name__} cannot train stacked models, so it cannot fuse trials.")
        check_shared(configs)
        self.task, self.device = task, torch.device(device)
        slices = [(c, s) for c in configs for s in seeds]  # slice t K + k: configuration t, seed k
        self.settings = [c.settings for c, _ in slices]
        self.records = [[SeedRecord(task, c.settings, s) for s in seeds] for c in configs]
        self.slices = [r for rs in self.records for r in rs]
        plain = [build_seeded(c.build_model, s) for c, s in slices]
        check_architecture(plain, len(seeds))
        stack = fuse_models(plain)
        if stack is None:
            raise UserError(f"{type(plain[0]).__name__} has no fused form: only models registered with "
                            "register_fused (models/registry.py) train fused.")
        self.stack = stack.to(self.device)
        first = configs[0].settings
        by_hand = getattr(self.stack, "update_rows_by_hand", lambda _: False)
        self.by_hand = first.sparse_ok and by_hand(first.optimizer)
        if self.stack.sparse_parameters():
            raise UserError(f"{type(plain[0]).__name__}'s sparse embedding cannot be fused with "
                            f"{first.optimizer}: set its padding index to 0.")
        self.shadows = [m.to(self.device) for m in plain]  # plain models, for dev evaluation only
        self.order = [torch.Generator().manual_seed(s) for _, s in slices]
        self.noise = [noise_generator(s, self.device) for _, s in slices]
        self.active = list(range(len(slices)))  # stack position -> slice index
        params = [p for p in self.stack.parameters() if p.requires_grad]
        self.optimizer = SlicedOptimizer(params, self.stack.bias_parameters(), len(slices), first.optimizer,
                                         first.momentum, first.adagrad_eps)
        self.updates = 0
        self._set_rates()

    def _set_rates(self) -> None:
        """Each active slice's learning rate (after `self.updates` updates) and weight decays."""
        settings = [self.settings[i] for i in self.active]
        self.optimizer.set_rates([decayed_lr(s, self.updates) for s in settings],
                                 [s.weight_decay for s in settings],
                                 [s.weight_decay if s.decay_biases else 0.0 for s in settings], self.device)
        self._decaying = any(s.lr_decay for s in settings)

    def run_batches(self) -> tuple[torch.Tensor | None, int]:
        """One epoch's batches of every active slice, none of which waits for the device:
        returns each slice's sum of batch losses, (S,) on the device, and the batches."""
        self.stack.train()
        self.stack.noise = [self.noise[i] for i in self.active]
        batch_size = self.settings[0].batch_size
        totals, batches = None, 0
        streams = [self.task.train_batches(batch_size, self.order[i]) for i in self.active]
        for parts in zip(*streams):
            batch = self.task.stack_batches(parts)
            self.optimizer.zero_grad()
            losses = self.task.stack_loss(self.stack, batch)  # (S,)
            losses.sum().backward()
            self.optimizer.step()
            if self.by_hand:
                dtype = self.stack.embed.dtype  # torch casts its scalar lr and wd to the weights' type
                rate = self.optimizer.rate
                self.stack.row_step(rate("lr", dtype).squeeze(1), rate("decay", dtype).squeeze(1),
                                    self.settings[0].adagrad_eps)
            self.updates += 1
            if self._decaying:
                self._set_rates()
            totals = add_loss(totals, losses)
            batches += 1
        return totals, batches

    def step(self) -> list[EpochMetrics | None]:
        """Train and evaluate one epoch of every unfinished slice; one entry a slice (None:
        it had finished), in slice order (configuration t's seed k at t K + k)."""
        if not self.active:
            raise RuntimeError("every slice has finished training")
        start = time.perf_counter()
        totals, batches = self.run_batches()
        values = [0.0] * len(self.active) if totals is None else totals.tolist()  # one wait an epoch
        for i, v in zip(self.active, values):
            check_loss(v, self.slices[i].epoch + 1, self.slices[i].seed)
        share = (time.perf_counter() - start) / len(self.active)
        out: list[EpochMetrics | None] = [None] * len(self.slices)
        for pos, i in enumerate(self.active):
            start = time.perf_counter()
            shadow = self.shadows[i]
            shadow.load_state_dict(self.stack.seed_state(pos))
            dev = self.task.evaluate(shadow)
            self.slices[i].compute_seconds += share + time.perf_counter() - start
            out[i] = self.slices[i].record(values[pos] / max(batches, 1), dev, shadow.state_dict)
        keep = [pos for pos, i in enumerate(self.active) if not self.slices[i].done]
        if keep and len(keep) < len(self.active):
            self._keep(keep)
        self.active = [self.active[pos] for pos in keep]
        if keep:
            self._set_rates()
        return out

    def _keep(self, rows: list[int]) -> None:
        """Drop the finished slices from the stack and the optimizer state."""
        index = torch.as_tensor(rows, device=self.device)
        self.stack.keep(rows)
        params = [p for p in self.stack.parameters() if p.requires_grad]
        self.optimizer = self.optimizer.keep(params, index)

    def fit(self) -> list[list[SeedResult]]:
        """Train every slice to its end; configuration t's seed results at [t]."""
        while self.active:
            self.step()
        return self.results()

    def results(self) -> list[list[SeedResult]]:
        return [[r.result() for r in rs] for rs in self.records]
