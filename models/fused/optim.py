"""One optimizer step for S slices of a stacked model, each slice with its own learning rate
and weight decay: the arithmetic of torch's Adagrad, Adam and SGD (single-tensor CPU paths;
the alone trainer runs Adagrad fused on the CPU, the same within float rounding), with the
scalars lr and wd become (S, 1) columns.

A stacked parameter p holds S contiguous blocks, one a slice (models/seed_stack.py), so
`p.view(S, -1)` is (S, N) with slice s in row s and a column of per-slice values broadcasts
over it: one set of kernels a parameter whatever S is.
"""

from __future__ import annotations

import torch
from torch import nn

from models.errors import UserError

SLICED = ("adagrad", "adam", "sgd")
BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which the alone trainer uses


class SlicedOptimizer:
    """Adagrad, Adam or SGD (with momentum) over stacked parameters of S slices."""

    def __init__(self, params: list[nn.Parameter], biases: list[nn.Parameter], slices: int,
                 optimizer: str, momentum: float = 0.0, adagrad_eps: float = 1e-10) -> None:
        if optimizer not in SLICED:
            raise UserError(f"train.optimizer={optimizer} cannot be fused; fused trials train with "
                            f"{', '.join(SLICED)}.")
        self.params, self.slices, self.optimizer = params, slices, optimizer
        self.is_bias = [any(p is b for b in biases) for p in params]
        self.momentum, self.eps = momentum, adagrad_eps
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in params]
        self.steps = 0  # Adam's step count, shared: every slice steps together

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def set_rates(self, lr: list[float], weight_decay: list[float], bias_decay: list[float],
                  device: torch.device) -> None:
        """Each slice's learning rate, weight decay and that of 1-d parameters (0 where
        train.decay_biases is false): kept in float64 as torch keeps its Python scalars, and
        cast to the parameter's type where used, as torch casts them. Read on the host here,
        so no step waits for the device to learn whether a slice decays."""
        as_column = lambda v: torch.tensor(v, dtype=torch.float64, device=device).unsqueeze(1)  # noqa: E731
        self.lr, self.decay, self.bias_decay = as_column(lr), as_column(weight_decay), as_column(bias_decay)
        self.decays, self.biases_decay = any(weight_decay), any(bias_decay)
        self._cast: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def rate(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        """The (S, 1) column `name` (lr, decay, bias_decay) cast to `dtype`, cast once."""
        if (name, dtype) not in self._cast:
            self._cast[name, dtype] = getattr(self, name).to(dtype)
        return self._cast[name, dtype]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        for p, bias, state in zip(self.params, self.is_bias, self.state):
            if p.grad is None:
                continue
            w, g = p.view(self.slices, -1), p.grad.view(self.slices, -1)  # (S, N)
            if self.biases_decay if bias else self.decays:
                decay = self.rate("bias_decay" if bias else "decay", w.dtype)  # (S, 1)
                g = g + w * decay  # torch: grad.add(param, alpha=weight_decay)
            getattr(self, f"_{self.optimizer}")(w, g, state)

    def _adagrad(self, w: torch.Tensor, g: torch.Tensor, state: dict) -> None:
        total = state.setdefault("sum", torch.zeros_like(w))
        total.addcmul_(g, g, value=1)
        std = total.sqrt().add_(self.eps)
        w.add_(g.mul(-self.rate("lr", w.dtype)).div_(std))  # torch: w.addcdiv_(g, std, value=-lr)

    def _adam(self, w: torch.Tensor, g: torch.Tensor, state: dict) -> None:
        beta1, beta2 = BETAS
        avg = state.setdefault("exp_avg", torch.zeros_like(w))
        avg_sq = state.setdefault("exp_avg_sq", torch.zeros_like(w))
        avg.lerp_(g, 1 - beta1)
        avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = (self.lr / (1 - beta1 ** self.steps)).to(w.dtype)  # (S, 1), as torch's: in float64
        denom = (avg_sq.sqrt() / (1 - beta2 ** self.steps) ** 0.5).add_(ADAM_EPS)
        w.add_(avg.mul(-step_size).div_(denom))  # torch: w.addcdiv_(avg, denom, value=-step_size)

    def _sgd(self, w: torch.Tensor, g: torch.Tensor, state: dict) -> None:
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.clone()
            else:
                buf.mul_(self.momentum).add_(g)
            g = buf
        w.add_(g.mul(-self.rate("lr", w.dtype)))  # torch: w.add_(g, alpha=-lr)

    def keep(self, params: list[nn.Parameter], rows: torch.Tensor) -> SlicedOptimizer:
        """This optimizer over `params` (the stack's after it kept slices `rows`), its state
        kept for those slices alone."""
        kept = SlicedOptimizer(params, [p for p, b in zip(params, self.is_bias) if b], len(rows),
                               self.optimizer, self.momentum, self.eps)
        kept.steps = self.steps
        kept.lr, kept.decay, kept.bias_decay = (t.index_select(0, rows) for t in (self.lr, self.decay,
                                                                                   self.bias_decay))
        kept.decays, kept.biases_decay, kept._cast = self.decays, self.biases_decay, {}
        kept.state = [{name: t.index_select(0, rows) for name, t in state.items()} for state in self.state]
        return kept
