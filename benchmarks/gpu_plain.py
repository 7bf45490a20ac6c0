"""Plain PyTorch beside the platform in `make gpu-check` (issue 37): the same models and
batches as one would write them without it, timed in the same run on the same device.

- NPLM: nn.Module, SGD, the loss summed on the device, one read an epoch;
- DAN, one seed: nn.EmbeddingBag (dense), Adagrad, the same;
- DAN, K seeds: the plain DAN's parameters stacked and run through torch.func.vmap, one
  Adagrad over the stacked tensors (word dropout from one generator: a speed baseline, not
  the platform's per-seed streams).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from models.dan import DAN, drop_words
from models.nplm import NPLM


def nplm_epoch(model: NPLM, task, batch: int, lr: float = 1.0) -> callable:
    """One epoch of `task`'s NPLM batches in a plain loop; returns the function to time."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)

    def epoch() -> float:
        total = torch.zeros((), device=task.train.tokens.device)
        for ctx, target in task.train_batches(batch, gen):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(ctx), target)
            loss.backward()
            opt.step()
            total += loss.detach()
        return total.item()
    return epoch


def dan_epoch(model: DAN, task, batch: int, lr: float = 0.01) -> callable:
    opt = torch.optim.Adagrad(model.parameters(), lr=lr, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(0)
    model.noise = torch.Generator(device=task.train.labels.device).manual_seed(0)

    def epoch() -> float:
        model.train()
        total = torch.zeros((), device=task.train.labels.device)
        for tokens, labels in task.train_batches(batch, gen):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(tokens), labels)
            loss.backward()
            opt.step()
            total += loss.detach()
        return total.item()
    return epoch


class _Functional(nn.Module):
    """The DAN's forward as a function of its parameters (for torch.func), word dropout
    applied outside."""

    def __init__(self, model: DAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = F.embedding_bag(tokens, self.model.embed.weight, mode="mean", padding_idx=0)
        for layer in (*self.model.hidden, *self.model.classifier):
            if not isinstance(layer, nn.Dropout):
                x = layer(x)
        return x


def dan_vmap_epoch(models: list[DAN], task, batch: int, lr: float = 0.01) -> callable:
    """K DANs through torch.func.vmap over stacked parameters, each seed its own batch order."""
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap
    device = task.train.labels.device
    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = _Functional(copy.deepcopy(models[0])).to("meta")
    opt = torch.optim.Adagrad(params.values(), lr=lr, weight_decay=1e-5)
    gens = [torch.Generator().manual_seed(s) for s in range(len(models))]
    noise = torch.Generator(device=device).manual_seed(0)

    def loss_of(p, b, tokens, labels):
        logits = functional_call(base, ({f"model.{k}": v for k, v in p.items()}, b), (tokens,))
        return F.cross_entropy(logits, labels)
    step = vmap(grad_and_value(loss_of), in_dims=(0, 0, 0, 0))

    def epoch() -> float:
        total = torch.zeros(len(models), device=device)
        for parts in zip(*(task.train_batches(batch, g) for g in gens)):
            width = max(t.shape[1] for t, _ in parts)
            tokens = torch.stack([F.pad(drop_words(t, 0.3, 0, noise), (0, width - t.shape[1]))
                                  for t, _ in parts])  # (K, B, T)
            labels = torch.stack([lab for _, lab in parts])  # (K, B)
            grads, losses = step(params, {f"model.{k}": v for k, v in buffers.items()}, tokens, labels)
            for k, p in params.items():
                p.grad = grads[k]
            opt.step()
            total += losses.detach()
        return total.sum().item()
    return epoch
