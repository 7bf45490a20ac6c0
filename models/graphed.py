"""Training steps captured as CUDA graphs and replayed (train.cuda_graphs, issue 37).

At batch 64 the NPLM's step launches some fifty small kernels; on an H200 launching them
took ~2 ms a step while the GPU's own work is a fraction of that. A CUDA graph launches a
whole captured step (or S of them) at once, so the epoch runs at the GPU's speed.

`StaticStep` owns every tensor a step reads or writes, at fixed addresses: the epoch's
training positions (K, N) on the device, a cursor (where the next batch starts), the
learning rate, the update count and the sum of the batch losses. One step gathers its
batch at the cursor, runs forward, backward and SGD, moves the cursor and anneals the rate
(lr_t = lr / (1 + r t), models/training/optimizers.py's `decayed_lr`), all on the device. On a GPU
the first steps run eagerly on a side stream (the warm-up of the CUDA Graphs recipe:
cuBLAS handles, autograd's streams), then S steps (and 1, for an epoch's rest) are captured
with torch.cuda.graph and replayed; an epoch's last, smaller batch runs eagerly. On the CPU
the same object runs the same steps eagerly: tests/models/test_graphed.py checks them
there against the ordinary loop, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from models.errors import UserError

CUDA_GRAPHS = ("auto", "true", "false")
STEPS_PER_GRAPH = 8  # steps one replay launches
WARMUP_STEPS = 3  # eager steps on a side stream before the first capture


def unsupported(model: nn.Module, task: Any, optimizer: str, momentum: float) -> str | None:
    """Why the training steps of `model` on `task` cannot be captured; None if they can."""
    if not hasattr(task, "epoch_order"):
        return ("its task's batches change shape from batch to batch (only language-model tasks "
                "gather batches of one shape on the device)")
    if getattr(model, "draws_noise", True):
        return f"{type(model).__name__} draws training noise (dropout), or does not say it draws none"
    if optimizer != "sgd" or momentum:
        return (f"only SGD without momentum is captured (the NPLM recipes'), not {optimizer} "
                f"(momentum {momentum})")
    if any(getattr(m, "sparse", False) is True for m in model.modules()):
        return "the model has sparse gradients"
    return None


def use_graphs(mode: str, model: nn.Module, task: Any, optimizer: str, momentum: float,
               device: torch.device | str) -> bool:
    """Whether `model`'s epochs run through a StaticStep, for train.cuda_graphs `mode`:
    `auto` on a GPU where the step can be captured, never on the CPU; `true` wherever it
    can be (on the CPU the same steps then run eagerly), else an error; `false` never."""
    mode = str(mode).lower()
    if mode not in CUDA_GRAPHS:
        raise UserError(f"train.cuda_graphs must be auto, true or false, not {mode!r}.")
    if mode == "false":
        return False
    why = unsupported(model, task, optimizer, momentum)
    if why is not None and mode == "true":
        raise UserError(f"train.cuda_graphs=true, but {why}: use train.cuda_graphs=auto or false.")
    return why is None and (mode == "true" or torch.device(device).type == "cuda")


class StaticStep:
    """The training step of `model` (K seeds stacked when `stacked`) on `task`, with SGD
    `optimizer` (fused, stateless), at fixed addresses: replayed as CUDA graphs on a GPU,
    run eagerly on the CPU."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, task: Any, stacked: bool,
                 lr: float, lr_decay: float, batch_size: int, steps_per_graph: int | None = None) -> None:
        if not all(isinstance(optimizer, torch.optim.SGD) and g.get("fused") and not g["momentum"]
                   for g in optimizer.param_groups):
            raise ValueError("a StaticStep needs fused SGD without momentum (models.training's fuse)")
        self.model, self.optimizer, self.task, self.stacked = model, optimizer, task, stacked
        self.base_lr, self.lr_decay, self.batch_size = lr, lr_decay, batch_size
        self.steps_per_graph = steps_per_graph or STEPS_PER_GRAPH
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self._params = {id(p) for p in params}
        self.device = device = params[0].device
        # the fused kernel reads the rate from here at every step (float32: what it reads)
        self.lr = torch.full((), lr, dtype=torch.float32, device=device)
        for g in optimizer.param_groups:
            g["lr"] = self.lr
        self.updates = torch.zeros((), dtype=torch.float64, device=device)
        self.cursor = torch.zeros((), dtype=torch.long, device=device)  # first position of the next batch
        self.span = torch.arange(batch_size, device=device)  # (B,)
        self.orders: torch.Tensor | None = None  # (K, N) this epoch's training positions
        self.total: torch.Tensor | None = None  # (K,) stacked or () alone: the sum of batch losses
        self.graphs: dict[int, Any] = {}  # steps -> torch.cuda.CUDAGraph of that many steps
        self.warm = 0
        self.side = torch.cuda.Stream(device) if device.type == "cuda" else None

    def serves(self, model: nn.Module) -> bool:
        """Whether this step trains `model` as it is now (a stack that dropped seeds has new
        parameters, and needs a new step)."""
        return model is self.model and {id(p) for p in model.parameters() if p.requires_grad} == self._params

    def run_epoch(self, orders: torch.Tensor, updates: int) -> tuple[torch.Tensor, int]:
        """The steps of one epoch over training positions `orders` (K, N) on the device,
        after `updates` updates: returns the sum of the batch losses, on the device ((K,)
        stacked, () alone), and the number of batches. The host never waits for the device."""
        k, n = orders.shape
        if self.orders is None or self.orders.shape != orders.shape:
            self.orders = torch.empty_like(orders)
            self.total = torch.zeros(k if self.stacked else (), dtype=torch.float64, device=self.device)
            self.graphs.clear()  # they read the old buffers
        self.orders.copy_(orders, non_blocking=True)
        self.cursor.zero_()
        self.total.zero_()
        self.updates.fill_(updates)
        if self.lr_decay:
            self._anneal()
        self.model.train()
        full, ragged = divmod(n, self.batch_size)
        done = 0
        while done < full:
            done += self._advance(self.steps_per_graph if full - done >= self.steps_per_graph else 1)
        if ragged:  # the last, smaller batch: another shape, run eagerly
            self._step(self.span[:ragged])
        return self.total.clone(), full + (ragged > 0)

    def _anneal(self) -> None:
        """lr_t = lr (1 / (1 + r t)) on the device, in float64 op by op as `decayed_lr`
        computes it in Python, then rounded to float32 as the fused kernel reads it."""
        self.lr.copy_(self.updates.mul(self.lr_decay).add_(1.0).reciprocal_().mul_(self.base_lr))

    def _step(self, span: torch.Tensor) -> None:
        """One batch: the positions at cursor + `span` of every seed's order."""
        pos = self.orders.index_select(1, self.cursor + span)  # (K, B)
        batch = self.task.batch_at(pos.flatten())  # tensors of (K B, ...)
        self.optimizer.zero_grad(set_to_none=True)
        if self.stacked:
            batch = tuple(t.view(*pos.shape, *t.shape[1:]) for t in batch)  # (K, B, ...)
            losses = self.task.stack_loss(self.model, batch)  # (K,)
            losses.sum().backward()
        else:
            losses = self.task.loss(self.model, batch)  # ()
            losses.backward()
        self.optimizer.step()
        self.cursor.add_(len(span))
        self.total.add_(losses.detach().double())  # in float64, as models/training/record.py's add_loss
        if self.lr_decay:
            self.updates.add_(1)
            self._anneal()

    def _advance(self, n: int) -> int:
        """`n` full-size steps (one while a GPU warms up); returns how many it took."""
        if self.side is None:  # the CPU: the same steps, eagerly
            for _ in range(n):
                self._step(self.span)
            return n
        if self.warm < WARMUP_STEPS:
            self._on_side_stream(lambda: self._step(self.span))
            self.warm += 1
            return 1
        if n not in self.graphs:
            self.graphs[n] = self._capture(n)
        self.graphs[n].replay()
        return n

    def _on_side_stream(self, fn: Callable[[], None]) -> None:
        current = torch.cuda.current_stream(self.device)
        self.side.wait_stream(current)
        with torch.cuda.stream(self.side):
            fn()
        current.wait_stream(self.side)

    def _capture(self, n: int) -> Any:
        """A CUDA graph of `n` steps. Capturing runs nothing: the replays do. The grads are
        None going in, so the graph's backward writes (not adds to) grads in its own pool."""
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph, stream=self.side):  # the warm-up's stream: its cuBLAS workspace
            for _ in range(n):
                self._step(self.span)
        return graph
