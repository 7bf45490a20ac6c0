"""Timing helpers of the benchmarks: wall time around a device sync, and peak memory.
Standard library only at import (benchmarks/gpu_check.py runs on a torch-only machine)."""

from __future__ import annotations

import resource
import time


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def sync(device) -> None:
    import torch
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device="cpu", warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def threads() -> int:
    import torch
    return torch.get_num_threads()
