"""Named points in a trial's life where a fault-injection test may kill the process:
with SEEDSWEEP_CRASH_AT=<name> the process SIGKILLs itself there, as a power cut or an
OOM kill would; with SEEDSWEEP_FULL_AT=<name> a write there finds the disk full
(<name>@worker: only in the worker processes a sweep started). Each point sits just
before or after one write to Optuna or MLflow."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

CRASH_ENV = "SEEDSWEEP_CRASH_AT"
FULL_ENV = "SEEDSWEEP_FULL_AT"
ROLE = "sweep"  # "worker" in a worker process a sweep started (sweeps/sweep.py)
# With SEEDSWEEP_MEET_AT=<name>:<folder>, the processes that reach point <name> wait there
# for one another (a few seconds at most), so a concurrency test makes them overlap for
# real inside what a lock should keep apart; with the lock, each waits alone and goes on.
MEET_ENV = "SEEDSWEEP_MEET_AT"
POINTS = (
    "trial_claimed",         # after Optuna's ask(), before anything in MLflow
    "parent_run_started",    # after the MLflow parent run (its params and config may still be
                             # on their way: the run's end waits for them), before Optuna knows its id
    "run_id_recorded",       # after the trial's run-id attribute in Optuna
    "seed_runs_started",     # after the seed runs are created
    "epoch_logged",          # after the first epoch's metrics and report
    "seed_runs_closed",      # after the seed runs ended, before the parent run ends
    "before_tell",           # every run closed, Optuna not told yet
    "after_tell",            # Optuna told, the MLflow trial_state tag not yet set
    "after_tag",             # both agree, before the weights of lesser trials are deleted
)


class EnvironmentFailure(Exception):
    """The store's disk is full, its database locked or its connection lost: the trial was
    put back in the queue, and the sweep stops until the cause is fixed."""


def point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FULL_ENV) in (name, f"{name}@{ROLE}"):
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {name})")


def meet(name: str, processes: int = 2, timeout: float = 5.0) -> None:
    """Wait at point `name` until `processes` processes are there, or `timeout` seconds."""
    where, _, folder = os.environ.get(MEET_ENV, "").partition(":")
    if where != name or not folder:
        return
    here = Path(folder)
    here.mkdir(parents=True, exist_ok=True)
    (here / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(list(here.iterdir())) < processes and time.monotonic() < deadline:
        time.sleep(0.05)


# What an environment failure looks like from inside: the trial is not at fault.
_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}
_MESSAGES = ("no space left", "database is locked", "disk i/o error", "database or disk is full",
             "could not connect", "connection refused", "server closed the connection",
             "connection reset", "read-only file system", "failed to establish a new connection",
             "max retries exceeded")


def environment_failure(err: BaseException) -> str | None:
    """A one-line cause if `err` (or an exception it came from) is a full disk, a locked
    database or a lost connection; None for anything the trial itself caused. It may quote
    a URL: pass it through sweeps.redact before it is shown."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _ERRNOS:
            return f"{os.strerror(err.errno)} ({err.filename or 'the store'})"
        text = str(err).lower()
        if any(m in text for m in _MESSAGES):
            return str(err).splitlines()[0]  # whole: cut only once redacted
        err = err.__cause__ or err.__context__
    return None
