"""The test split is locked away: only the final evaluation may read it.

`models.registry.test_split` calls `unlock()` before any source's test reader runs, and
the readers of the built-in sources call it again themselves. It passes only when the call comes
(directly or through helpers) from the final evaluation module; anything else, a
training loop, a sweep, an analysis script, gets `TestSplitLocked`. When the
environment variable SEEDSWEEP_TEST_READ_LOG names a file, each read appends a line
to it, so an end-to-end test can count the reads across processes.
"""

from __future__ import annotations

import os
import sys
import time

FINAL_EVALUATION = "sweeps.final"
READ_LOG_ENV = "SEEDSWEEP_TEST_READ_LOG"


class TestSplitLocked(PermissionError):
    """A test split was requested by code other than the final evaluation."""

    __test__ = False  # not a pytest class, despite the name


def unlock(dataset: str, log: bool = True) -> None:
    """Allow the read of `dataset`'s test split if the final evaluation asked, else raise.
    `log=False`: a second check of the same read (a loader behind the registry's check),
    not counted again in the read log."""
    frame = sys._getframe(1)
    while frame is not None:
        spec = frame.f_globals.get("__spec__")  # `python -m sweeps.final` runs as __main__
        if FINAL_EVALUATION in (frame.f_globals.get("__name__"), getattr(spec, "name", None)):
            break
        frame = frame.f_back
    else:
        raise TestSplitLocked(
            f"the test split of {dataset} is read only by the final evaluation (make final); "
            "tune on dev.")
    if log and (path := os.environ.get(READ_LOG_ENV)):
        with open(path, "a") as f:
            f.write(f"{time.time():.3f} {os.getpid()} {dataset}\n")
