"""K seeds trained as one stacked model (models/seed_stack.py): one step a batch for all."""

from __future__ import annotations

import time

import torch

from models.graphed import use_graphs
from models.noise import noise_generator
from models.registry import stack_models
from models.seed_stack import select
from models.training.devices import build_seeded, flush_denormals
from models.training.optimizers import build_optimizer, decayed_lr, same_kernel
from models.training.record import EpochMetrics, SeedRecord, add_loss, check_loss
from models.training.seed import StaticEpochs
from models.training.settings import StackFn, Task, TrainSettings


class Stacked(StaticEpochs):
    """K seeds as one stacked model (models/seed_stack.py): one forward, backward and optimizer
    step a batch for all of them. Seed s gets the same initial weights, batch order and noise
    as `SeedTrainer(seed=s)`, so the same metrics within float tolerance. A seed that stops
    early leaves the stack: it keeps its best weights and costs nothing more."""

    vectorized = True

    def __init__(self, build_model, task: Task, settings: TrainSettings, seeds: list[int],
                 device: torch.device | str = "cpu", stack_fn: StackFn | None = None,
                 cuda_graphs: str = "auto", built: tuple[list, torch.nn.Module, float] | None = None) -> None:
        """`built`: (the seeds' plain models, their stacked form, the seconds they took), when
        make_trainers has built them already; by default they are built here."""
        if stack_fn is None:
            stack_fn = stack_models
        flush_denormals()
        start = time.perf_counter()
        self.task, self.settings = task, settings
        self.seeds = [SeedRecord(task, settings, s) for s in seeds]
        if built is None:
            plain = [build_seeded(build_model, s) for s in seeds]
            stack, built_in = stack_fn(plain), 0.0
        else:
            plain, stack, built_in = built
        if stack is None:
            raise ValueError(f"{type(plain[0]).__name__} has no stacked form")
        self.stack = stack.to(device)
        self.by_hand = settings.sparse_ok and getattr(self.stack, "update_rows_by_hand",
                                                      lambda _: False)(settings.optimizer)
        self.shadows = [m.to(device) for m in plain]  # plain models, for dev evaluation only
        self.order = [torch.Generator().manual_seed(s) for s in seeds]
        self.noise = [noise_generator(s, device) for s in seeds]
        self.active = list(range(len(seeds)))  # stack position -> seed index
        self.optimizer = self._optimizer()
        self.updates = 0
        self.cuda_graphs = use_graphs(cuda_graphs, self.stack, task, settings.optimizer, settings.momentum,
                                      device) and not self.by_hand
        for record in self.seeds:
            record.build_seconds = (built_in + time.perf_counter() - start) / len(self.seeds)

    def _optimizer(self) -> torch.optim.Optimizer:
        sparse = self.stack.sparse_parameters()
        dense = [p for p in self.stack.parameters() if p.requires_grad and all(p is not q for q in sparse)]
        optimizer = same_kernel(build_optimizer(dense, self.stack.bias_parameters(), sparse, self.settings),
                                getattr(self, "optimizer", None))
        for g in optimizer.param_groups:
            g["lr"] = decayed_lr(self.settings, getattr(self, "updates", 0))
        return optimizer

    def run_batches(self) -> tuple[torch.Tensor | None, int]:
        """One epoch's batches of every active seed, none of which waits for the device:
        returns the sums of each seed's batch losses, (K,) on the device, and the batches."""
        s = self.settings
        if self.cuda_graphs:
            return self.static_epoch(self.stack, self._optimizer, torch.stack(
                [self.task.epoch_order(self.order[i]) for i in self.active]), stacked=True)
        self.stack.train()
        self.stack.noise = [self.noise[i] for i in self.active]
        totals, batches = None, 0
        streams = [self.task.train_batches(s.batch_size, self.order[i]) for i in self.active]
        for parts in zip(*streams):
            batch = self.task.stack_batches(parts)
            self.optimizer.zero_grad(set_to_none=True)
            if self.by_hand and s.l2_every_row and s.weight_decay > 0:
                self.stack.decay_every_row(decayed_lr(s, self.updates), s.weight_decay, s.adagrad_eps)
            losses = self.task.stack_loss(self.stack, batch)  # (K,)
            losses.sum().backward()
            self.optimizer.step()
            if self.by_hand:
                self.stack.row_step(decayed_lr(s, self.updates), s.weight_decay, s.adagrad_eps)
            self.updates += 1
            if s.lr_decay:
                for g in self.optimizer.param_groups:
                    g["lr"] = decayed_lr(s, self.updates)
            totals = add_loss(totals, losses)
            batches += 1
        if self.by_hand:
            self.stack.settle_rows()
        return totals, batches

    def _train_epoch(self) -> list[float]:
        totals, batches = self.run_batches()
        values = [0.0] * len(self.active) if totals is None else totals.tolist()  # one wait
        for i, v in zip(self.active, values):
            check_loss(v, self.seeds[i].epoch + 1, self.seeds[i].seed)
        return [v / max(batches, 1) for v in values]

    def step(self) -> list[EpochMetrics | None]:
        if not self.active:
            raise RuntimeError("every seed has finished training")
        start = time.perf_counter()
        losses = self._train_epoch()
        out: list[EpochMetrics | None] = [None] * len(self.seeds)
        share = (time.perf_counter() - start) / len(self.active)
        for pos, i in enumerate(self.active):
            start = time.perf_counter()
            shadow = self.shadows[i]
            shadow.load_state_dict(self.stack.seed_state(pos))
            dev = self.task.evaluate(shadow)
            self.seeds[i].compute_seconds += share + time.perf_counter() - start
            out[i] = self.seeds[i].record(losses[pos], dev, shadow.state_dict)
        keep = [pos for pos, i in enumerate(self.active) if not self.seeds[i].done]
        if keep and len(keep) < len(self.active):
            self._keep(keep)
        self.active = [self.active[pos] for pos in keep]
        return out

    def _keep(self, rows: list[int]) -> None:
        """Drop the finished seeds from the stack and the optimizer state."""
        k, state = self.stack.k, self.optimizer.state
        shapes = {attr: shape for attr, (_, shape) in self.stack._plain.items()}
        index = torch.as_tensor(rows, device=next(self.stack.parameters()).device)
        moved = self.stack.keep(rows)
        self.optimizer = self._optimizer()
        for attr, (old, new) in moved.items():
            if old in state:
                self.optimizer.state[new] = {
                    name: select(v, k, shapes[attr], index)
                    if torch.is_tensor(v) and v.shape == old.shape else v
                    for name, v in state[old].items()}
