"""K seeds of one configuration: stacked or one after another, as the model and the config say."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from models.errors import UserError
from models.registry import stack_models
from models.training.devices import build_seeded
from models.training.seed import OneAfterAnother, SeedTrainers
from models.training.settings import StackFn, Task, TrainSettings
from models.training.stacked import Stacked

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
    if len(seeds) > 1:  # the seeds' own models tell whether there is a stacked form: no probe
        start = time.perf_counter()
        plain = [build_seeded(build_model, s) for s in seeds]
        stack = stack_fn(plain) if hasattr(task, "stack_batches") else None
        seconds = time.perf_counter() - start
        if stack is not None:
            return Stacked(build_model, task, settings, seeds, device, stack_fn, cuda_graphs,
                           built=(plain, stack, seconds))
        if vectorize == "true":
            raise _no_stacked_form(plain[0])
        return OneAfterAnother(build_model, task, settings, seeds, device, cuda_graphs, plain, seconds)
    probe = build_seeded(build_model, 0)  # one seed: stacked only where its stacked form is faster
    stack = stack_fn([probe]) if hasattr(task, "stack_batches") else None
    if vectorize == "auto" and not (
            stack is not None and settings.sparse_ok and getattr(stack, "faster_alone", lambda *a: False)(
                settings.optimizer, torch.device(device))):
        return OneAfterAnother(build_model, task, settings, seeds, device, cuda_graphs)
    if stack is None:
        if vectorize == "true":
            raise _no_stacked_form(probe)
        return OneAfterAnother(build_model, task, settings, seeds, device, cuda_graphs)
    return Stacked(build_model, task, settings, seeds, device, stack_fn, cuda_graphs)


def _no_stacked_form(model: nn.Module) -> UserError:
    return UserError(f"train.vectorize_seeds=true, but {type(model).__name__} has no stacked form "
                     "(models/seed_stack.py): use train.vectorize_seeds=auto or false.")
