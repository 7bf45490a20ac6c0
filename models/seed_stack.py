"""K seeds of one model as one module: every parameter gains a leading seed axis.

Stacked parameter p holds K contiguous blocks, one per seed, each of the plain model's
shape: `p.view(K, *shape)[s]` is seed s's tensor. Linear layers become batched matmuls
over the seed axis; an embedding table becomes one (K V, E) table whose seed s rows start
at s V, so a sparse gradient stays sparse. The loss is the sum of the seeds' mean losses,
so each seed's gradient is exactly its gradient alone, and the optimizers that act element
by element (Adagrad, SGD, Adam, RMSprop) update each seed exactly as alone. Each seed's
training noise comes from its own generator, in the order its plain model draws it.

Each model's own stacked form lives beside it (models/dan/stacked.py,
models/nplm/stacked.py) and is found through the registry (`registry.stack_models`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.noise import stacked_dropout_masks


class SeedStack(nn.Module):
    """Parameters stacked from K plain models of one architecture."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.k = len(models)
        self.noise: list[torch.Generator] | None = None  # one per seed, set while training
        self._plain: dict[str, tuple[str, torch.Size]] = {}  # attribute -> (plain key, shape)
        self._biases: set[str] = set()  # attributes never weight-decayed with decay_biases=False
        self._states = [dict(m.named_parameters()) for m in models]
        self.row_state: dict[str, torch.Tensor] = {}  # optimizer state kept by the stack itself

    def faster_alone(self, optimizer: str, device: torch.device) -> bool:
        """Whether one seed alone trains faster in this stacked form than as its plain model."""
        return False

    def _stack(self, attr: str, key: str, merge: bool = False, bias: bool = False) -> None:
        """Stack the plain models' parameter `key` as attribute `attr`; `merge` folds the
        seed axis into the first one (embedding tables)."""
        params = [state[key] for state in self._states]
        data = torch.stack([p.detach() for p in params])  # (K, *shape)
        if merge:
            data = data.flatten(0, 1)
        setattr(self, attr, nn.Parameter(data.clone(), requires_grad=params[0].requires_grad))
        self._plain[attr] = (key, params[0].shape)
        if bias:
            self._biases.add(attr)

    def _done_stacking(self) -> None:
        del self._states

    def bias_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, a) for a in self._biases]

    def sparse_parameters(self) -> list[nn.Parameter]:
        return []

    def seed_state(self, s: int) -> dict[str, torch.Tensor]:
        """Seed s's parameters under the plain model's state_dict keys (views, not copies)."""
        return {key: getattr(self, attr).detach().view(self.k, *shape)[s]
                for attr, (key, shape) in self._plain.items()}

    def keep(self, rows: Sequence[int]) -> dict[str, tuple[nn.Parameter, nn.Parameter]]:
        """Keep only the seeds at `rows` (positions in the stack); returns attribute -> (old, new)."""
        index = torch.as_tensor(list(rows), device=next(self.parameters()).device)
        moved = {}
        for attr, (_, shape) in self._plain.items():
            old = getattr(self, attr)
            new = nn.Parameter(select(old.detach(), self.k, shape, index), requires_grad=old.requires_grad)
            setattr(self, attr, new)
            moved[attr] = (old, new)
            if attr in self.row_state:
                self.row_state[attr] = select(self.row_state[attr], self.k, shape, index)
        self.k = len(rows)
        return moved

    def seed_offsets(self, vocab: int, device: torch.device) -> torch.Tensor:
        return (torch.arange(self.k, device=device) * vocab).view(self.k, 1, 1)  # (K, 1, 1)

    def drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout on (K, B, ...) with seed s's mask drawn from seed s's generator."""
        if not self.training or p == 0:
            return x
        return x * stacked_dropout_masks(x.shape[1:], p, self.noise, x.device, x.dtype)


def select(t: torch.Tensor, k: int, shape: torch.Size, index: torch.Tensor) -> torch.Tensor:
    """Rows `index` of the K seed blocks of a stacked tensor, in the same layout."""
    blocks = t.reshape(k, *shape).index_select(0, index)
    return blocks.reshape(len(index) * t.shape[0] // k, *t.shape[1:])


class AddTimesWeight(torch.autograd.Function):
    """y + x W^T for x (K, B, in) and W (K, out, in), whose gradient of W is computed in W's
    own layout, g^T x, as nn.Linear's is. Autograd through baddbmm(y, x, W^T) computes it
    as (x^T g)^T and then copies that strided transpose into W's layout: for the PTB NPLM's
    W (3 seeds x 10,000 x 240) its step went from 45 to 40 ms on 2 cores; a DAN 3x300's
    3-seed epoch 7% faster, the same metrics bit for bit."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.y_shape = y.shape
        return torch.baddbmm(y, x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_y, need_x, need_w = ctx.needs_input_grad
        return (g.sum_to_size(ctx.y_shape) if need_y else None,
                torch.bmm(g, weight) if need_x else None,
                torch.bmm(g.transpose(1, 2), x) if need_w else None)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (K, B, in) through weight (K, out, in) and bias (K, out) -> (K, B, out)."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return AddTimesWeight.apply(bias.unsqueeze(1), x, weight)
