"""K seeds of one configuration, trained epoch by epoch with early stopping per seed.

`make_trainers(...).step()` trains and evaluates one epoch of every unfinished seed, so a
caller can look at their mean after every epoch. The seeds train either stacked as one
model (`Stacked`, models/seed_stack.py) or one after another (`SeedTrainer` each). A seed's
weights, batch order and noise come from its own seed and generators, so it gives the same
metrics alone, beside others or stacked with them (within float tolerance when stacked).
No module-level state: a worker process may hold many trainers, one after another.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from models import metrics
from models.errors import NonFiniteLossError, UserError
from models.graphed import StaticStep, use_graphs
from models.noise import noise_generator
from models.registry import stack_models
from models.relocate import load_on
from models.seed_stack import select

OPTIMIZERS = ("adagrad", "sgd", "adam", "rmsprop")
_SPARSE_OPTIMIZERS = ("adagrad", "sgd")
StackFn = Callable[[list[nn.Module]], Any]  # K models -> their stacked form (a SeedStack) or None


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
    """The optimizer of `s` over `model`; sparse embedding weights get their L2 through `_lazy_l2`."""
    sparse = _sparse_weights(model)
    dense = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in sparse)]
    return build_optimizer(dense, [p for p in dense if p.ndim <= 1], sparse, s)


def build_optimizer(dense: list[nn.Parameter], biases: list[nn.Parameter], sparse: list[nn.Parameter],
                    s: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer of `s`: `dense` parameters (of which `biases` skip weight decay when
    `s.decay_biases` is false) and `sparse` ones, whose L2 comes through `_lazy_l2`."""
    if sparse and not s.sparse_ok:
        raise ValueError(f"{s.optimizer} (momentum {s.momentum}) cannot take sparse gradients")
    if sparse and s.l2_every_row and s.weight_decay > 0:
        raise UserError("train.l2_every_row=true needs a model with a stacked form (DAN) and "
                        "train.vectorize_seeds=auto or true: trained one seed after another, a sparse "
                        "gradient reaches only the rows a batch uses.")
    if s.decay_biases:
        groups = [{"params": dense, "weight_decay": s.weight_decay}]
    else:
        groups = [{"params": [p for p in dense if all(p is not b for b in biases)],
                   "weight_decay": s.weight_decay},
                  {"params": [p for p in dense if any(p is b for b in biases)], "weight_decay": 0.0}]
    if sparse:
        # Opting out explicitly is PyTorch's default; it silences a warning per sparse step.
        torch.sparse.check_sparse_tensor_invariants.disable()
        groups.append({"params": sparse, "weight_decay": 0.0})
        if s.weight_decay > 0:
            for w in sparse:
                w.register_hook(_lazy_l2(w, s.weight_decay))
                w.lazy_l2 = s.weight_decay  # pickled with the weight (hooks are not): see load_trainers
    if s.optimizer == "adagrad":
        return torch.optim.Adagrad(groups, lr=s.lr, eps=s.adagrad_eps)
    if s.optimizer == "sgd":
        return fuse(torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum), sparse)
    if s.optimizer == "adam":
        return torch.optim.Adam(groups, lr=s.lr)
    return torch.optim.RMSprop(groups, lr=s.lr, momentum=s.momentum)


def fuse(optimizer: torch.optim.Optimizer, sparse: list[nn.Parameter]) -> torch.optim.Optimizer:
    """`optimizer` (SGD without momentum) on torch's fused kernel where no parameter gets
    sparse gradients (`sparse`) and all are float tensors on one CPU or CUDA device: one
    pass a parameter instead of a temporary for the weight decay and a second for the
    update. The same arithmetic, bit for bit (tests/models/test_training.py; with momentum
    it is not, so momentum stays unfused). The PTB NPLM's step, 3 seeds at V=10k, is 1.09x
    faster for it (`make bench`, nplm_ptb). Also applied to optimizers from checkpoints
    written before, which go on identically."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if (isinstance(optimizer, torch.optim.SGD) and params and not sparse  # momentum: not bit for bit
            and all(g["momentum"] == 0 for g in optimizer.param_groups)
            and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
            and len({p.device for p in params}) == 1):
        for g in optimizer.param_groups:
            g["fused"], g["foreach"] = True, False
    return optimizer


def decayed_lr(s: TrainSettings, updates: int) -> float:
    """Bengio et al.'s schedule lr_t = lr / (1 + r t) after `updates` updates."""
    return s.lr * (1.0 / (1.0 + s.lr_decay * updates))


def resolve_device(name: str) -> torch.device:
    """`auto` (a GPU when torch sees one, else the CPU), `cpu`, `cuda` or `cuda:N`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UserError(f"device must be auto, cpu, cuda or cuda:N, not {name!r}.") from e
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device must be auto, cpu, cuda or cuda:N, not {name!r}.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={name} but torch {torch.__version__} sees no GPU (a CPU build, or "
                            "no driver): use device=cpu or device=auto, or install a CUDA build of torch "
                            "(README, 'GPUs').")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device={name} but only {torch.cuda.device_count()} GPU(s) are visible.")
    return device


def device_name(device: torch.device) -> str:
    """What MLflow records: `cpu`, or the GPU's model name."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


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


class SeedRecord:
    """One seed's epochs, early stopping and best weights, however it is trained."""

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
                          self.compute_seconds)


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


def build_seeded(build_model: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`build_model()` initialised from `seed`, on the CPU, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        seed_everything(seed)
        return build_model()


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
    ) -> None:
        super().__init__(task, settings, seed)
        self.model = build_seeded(build_model, seed).to(device)
        self.model.noise = noise_generator(seed, device)
        self.generator = torch.Generator().manual_seed(seed)  # batch order
        self.optimizer = make_optimizer(self.model, settings)
        self.updates = 0
        self.cuda_graphs = use_graphs(cuda_graphs, self.model, task, settings.optimizer, settings.momentum,
                                      device)

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
                 device: torch.device | str = "cpu", cuda_graphs: str = "auto") -> None:
        self.seeds = [SeedTrainer(build_model, task, settings, s, device, cuda_graphs) for s in seeds]

    def step(self) -> list[EpochMetrics | None]:
        return [None if t.done else t.step() for t in self.seeds]


class Stacked(StaticEpochs):
    """K seeds as one stacked model (models/seed_stack.py): one forward, backward and optimizer
    step a batch for all of them. Seed s gets the same initial weights, batch order and noise
    as `SeedTrainer(seed=s)`, so the same metrics within float tolerance. A seed that stops
    early leaves the stack: it keeps its best weights and costs nothing more."""

    vectorized = True

    def __init__(self, build_model, task: Task, settings: TrainSettings, seeds: list[int],
                 device: torch.device | str = "cpu", stack_fn: StackFn | None = None,
                 cuda_graphs: str = "auto") -> None:
        if stack_fn is None:
            stack_fn = stack_models
        self.task, self.settings = task, settings
        self.seeds = [SeedRecord(task, settings, s) for s in seeds]
        plain = [build_seeded(build_model, s) for s in seeds]
        stack = stack_fn(plain)
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

    def _optimizer(self) -> torch.optim.Optimizer:
        sparse = self.stack.sparse_parameters()
        dense = [p for p in self.stack.parameters() if p.requires_grad and all(p is not q for q in sparse)]
        optimizer = build_optimizer(dense, self.stack.bias_parameters(), sparse, self.settings)
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


def _holders(trainers: SeedTrainers) -> list[Any]:
    """Every object of `trainers` that holds the task (the data): the seeds, and the stack."""
    return [*trainers.seeds, *([trainers] if hasattr(trainers, "task") else [])]


def save_trainers(trainers: SeedTrainers, path: Path, extra: dict[str, Any] | None = None) -> None:
    """Everything K seeds need to go on after their last epoch (weights, optimizer state,
    noise and batch-order generators, histories, best weights, early-stopping counts), but
    not the data. Written to a temporary file and renamed, so a kill leaves the previous
    checkpoint whole."""
    holders = _holders(trainers)
    tasks = [h.task for h in holders]
    for h in holders:
        h.task = None
    try:
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"trainers": trainers, "extra": extra or {}}, tmp)
        os.replace(tmp, path)
    finally:
        for h, task in zip(holders, tasks):
            h.task = task


def load_trainers(path: Path, task: Task, device: torch.device | str = "cpu"
                  ) -> tuple[SeedTrainers, dict[str, Any]]:
    """The trainers `save_trainers` wrote, on `device` (the task's, wherever the checkpoint
    was written), given the task back; training goes on exactly as if it had never stopped
    (on another kind of device than the one that wrote it, with other noise: models/relocate.py)."""
    saved = load_on(path, device)
    trainers = saved["trainers"]
    for h in _holders(trainers):
        h.task = task
    models = [getattr(t, "model", None) for t in trainers.seeds] + [getattr(trainers, "stack", None)]
    for model in filter(None, models):
        for w in model.parameters():
            if getattr(w, "lazy_l2", 0):  # torch.save keeps no hooks: the lazy L2 goes back on
                w.register_hook(_lazy_l2(w, w.lazy_l2))
    for holder in [*trainers.seeds, trainers]:  # checkpoints from before fused kernels
        optimizer, stack = getattr(holder, "optimizer", None), getattr(holder, "stack", None)
        model = getattr(holder, "model", None)
        if isinstance(optimizer, torch.optim.Optimizer) and (stack is not None or model is not None):
            fuse(optimizer, stack.sparse_parameters() if stack is not None else _sparse_weights(model))
    return trainers, saved["extra"]


VECTORIZE = ("auto", "true", "false")


def make_trainers(build_model: Callable[[], nn.Module], task: Task, settings: TrainSettings,
                  seeds: list[int], device: torch.device | str = "cpu",
                  vectorize: str = "auto", stack_fn: StackFn | None = None,
                  cuda_graphs: str = "auto") -> SeedTrainers:
    """K seeds of one configuration: stacked where the model has a stacked form and more than
    one seed trains, or one seed whose stacked form is the faster (`vectorize=auto`: the
    stack's `faster_alone`), or as asked (`true`, `false`). `stack_fn` makes the
    stacked form of K models, or None where there is none (the registry's `ModelSpec.stack`;
    by default the registry's, by the model's class). `cuda_graphs`: train.cuda_graphs,
    auto, true or false (models/graphed.py)."""
    if stack_fn is None:
        stack_fn = stack_models
    vectorize = str(vectorize).lower()
    if vectorize not in VECTORIZE:
        raise UserError(f"train.vectorize_seeds must be auto, true or false, not {vectorize!r}.")
    if vectorize == "false":
        return OneAfterAnother(build_model, task, settings, seeds, device, cuda_graphs)
    probe = build_seeded(build_model, 0)
    stack = stack_fn([probe]) if hasattr(task, "stack_batches") else None
    if vectorize == "auto" and len(seeds) < 2 and not (
            stack is not None and settings.sparse_ok and getattr(stack, "faster_alone", lambda *a: False)(
                settings.optimizer, torch.device(device))):
        return OneAfterAnother(build_model, task, settings, seeds, device, cuda_graphs)
    if stack is None:
        if vectorize == "true":
            raise UserError(f"train.vectorize_seeds=true, but {type(probe).__name__} has no stacked form "
                            "(models/seed_stack.py): use train.vectorize_seeds=auto or false.")
        return OneAfterAnother(build_model, task, settings, seeds, device, cuda_graphs)
    return Stacked(build_model, task, settings, seeds, device, stack_fn, cuda_graphs)
