"""Loading a pickled checkpoint onto the device a run goes on with, whatever device wrote it.

A checkpoint written on a GPU host holds CUDA tensors and CUDA random generators, and a
bare `torch.load` recreates each where it was: on a CPU-only host, a torch traceback.
Tensors go to `device` through `map_location`. A generator is made anew on `device`: with
its saved state where the device type is the one it was saved on (training goes on
exactly), a CPU generator (the batch order's, drawn on the CPU on every device) stays on
the CPU with its state, and a CUDA generator on a CPU-only host is seeded again with its
initial seed, since a CPU and a CUDA generator are different algorithms whose states do
not carry over (a run moved to another kind of device draws other noise from there on,
as it would have anyway).

A class that has moved since a checkpoint was written is found where it lives now
(`MOVED`: the stacked models left models/stack.py for their models' packages, and
models/training.py became the package models/training/, issue 35).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

# (module, name) in a checkpoint written before a class moved -> the module it lives in now
MOVED = {
    ("models.stack", "StackedDAN"): "models.dan.stacked",
    ("models.stack", "distinct_rows"): "models.dan.stacked",
    ("models.stack", "StackedNPLM"): "models.nplm.stacked",
    ("models.stack", "_AddTimesWeight"): "models.nplm.stacked",
    ("models.stack", "SeedStack"): "models.seed_stack",
    ("models.dan", "DAN"): "models.dan.model",
    ("models.nplm", "NPLM"): "models.nplm.model",
    # the classes a trainer checkpoint pickles, from before models/training.py was split
    ("models.training", "TrainSettings"): "models.training.settings",
    ("models.training", "EpochMetrics"): "models.training.record",
    ("models.training", "SeedResult"): "models.training.record",
    ("models.training", "SeedRecord"): "models.training.record",
    ("models.training", "SeedTrainer"): "models.training.seed",
    ("models.training", "OneAfterAnother"): "models.training.seed",
    ("models.training", "Stacked"): "models.training.stacked",
}


class _Reseeded(torch.Generator):
    """A generator whose saved state came from another kind of device: its seed only."""

    def __setstate__(self, state: tuple) -> None:
        self.manual_seed(state[0])  # (initial seed, offset, state tensor), torch's Generator reduce


def _pickle_module(device: torch.device) -> Any:
    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) == ("torch._C", "Generator"):
                return _generator_on(device)
            return super().find_class(MOVED.get((module, name), module), name)

    return type("relocating_pickle", (), {"Unpickler": Unpickler, "load": pickle.load,
                                          "__name__": "relocating_pickle"})


def _generator_on(device: torch.device):
    def make(saved_on: torch.device | str = "cpu") -> torch.Generator:
        saved = torch.device(saved_on)
        if saved.type == "cpu":  # batch orders are drawn on the CPU whatever the device: as saved
            return torch.Generator()
        return (torch.Generator if saved.type == device.type else _Reseeded)(device=device)
    return make


def load_on(path: Path, device: torch.device | str) -> Any:
    """The object `torch.save` wrote to `path` (a full pickle, not weights only), with its
    tensors and generators on `device`."""
    device = torch.device(device)
    return torch.load(path, weights_only=False, map_location=device, pickle_module=_pickle_module(device))
