"""Where a model trains and what it starts from: the device named in the config, the names
MLflow records for the hardware, and seeding."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from models.errors import UserError


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


def flush_denormals() -> None:
    """Make the CPU read and write denormal floats (nonzero, below 1.2e-38 in magnitude) as
    zero (x86 DAZ/FTZ, TensorFlow's default on the CPU) in this thread and the intra-op
    threads it starts later, which inherit it.

    Weights that only weight decay moves (a dead ReLU unit's under Adagrad) shrink into that
    range within an epoch: 2.5-15% of a 3x300 DAN's hidden weights on RT (lr 0.01, weight
    decay 1e-5) after one. A matrix product over denormals runs 20-100x slower on the CPU, so
    such an epoch took 1.7-3.3 s instead of 0.5 s. Flushing changes values of order 1e-38.
    Intra-op threads keep the setting they started with, so this must run before a
    process's first parallel work on tensors: the workload's build does (before the data),
    the benchmarks and conftest.py do; each trainer calls it again, which covers its own
    thread at least. Idempotent and cheap (tests/sweeps/test_denormals.py). A GPU is
    unaffected. The setting is the thread's (MXCSR), so Python's float arithmetic in this
    thread reads doubles below 2.2e-308 as zero too: commands check their config before."""
    torch.set_flush_denormal(True)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_builds(build_model: Callable[[], nn.Module]) -> None:
    """Build the model once to see that its settings are possible (its constructor raises
    ValueError otherwise), on the meta device: shapes without memory or initialisation, ~2 ms
    for a DAN 3x300 on RT's vocabulary instead of ~80 ms on the CPU (a sweep pays it every
    trial). torch._dynamo, which the first meta build imports (1.6 s), is imported by any
    torch optimizer's constructor anyway. A model whose constructor computes on its tensors
    may not build on meta: it is built on the CPU instead, as is one whose meta build raised
    ValueError (the CPU build says whether the settings are wrong). Leaves the global RNG as
    it was."""
    with torch.random.fork_rng(devices=[]):
        try:
            with torch.device("meta"):
                build_model()
            return
        except Exception:  # noqa: BLE001 - decided again on the CPU, below
            pass
        build_model()


def build_seeded(build_model: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`build_model()` initialised from `seed`, on the CPU, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        seed_everything(seed)
        return build_model()
