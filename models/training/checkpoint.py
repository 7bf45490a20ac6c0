"""K seeds' trainers written to a checkpoint after an epoch and read back to go on exactly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from models.relocate import load_on
from models.training.optimizers import _lazy_l2, _sparse_weights, cpu_only_fused, fuse
from models.training.seed import SeedTrainers
from models.training.settings import Task


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
            cpu_only_fused(optimizer)
    return trainers, saved["extra"]
