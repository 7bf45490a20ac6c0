"""Other seedsweep trainings on this machine, so that a new one can say when the cores are
already taken. Two trainings that each run torch on every core slow each other down far
more than twice: on 2 cores beside the PTB NPLM's 2 threads, the GloVe DAN on RT took 10.8
min as a paper cell with 2 threads and 1.3 min with 1 (without the cell's checkpoints),
and the NPLM's epoch took about 22 min instead of 10.5. Each training process leaves a file
naming its pid and torch threads in a folder of this machine while it trains; the files of
processes that died are ignored and removed."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

FOLDER_ENV = "SEEDSWEEP_TRAININGS"  # where the files live; default: a folder under the temp dir


def folder() -> Path:
    if path := os.environ.get(FOLDER_ENV):
        return Path(path)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"seedsweep-{uid}" / "trainings"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def stopped(pid: int) -> bool:
    """Whether `pid` is stopped (kill -STOP, Ctrl-Z): it keeps its file but takes no core.
    Read from /proc where there is one; elsewhere every live process counts as running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] in (["T"], ["t"])


def others() -> list[dict]:
    """The other live trainings on this machine that are not stopped: {pid, threads, what} each."""
    out = []
    base = folder()
    for path in sorted(base.glob("*.json")) if base.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
            pid = int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid == os.getpid():
            continue
        if not alive(pid):
            path.unlink(missing_ok=True)
            continue
        if not stopped(pid):
            out.append(entry)
    return out


def crowding(threads: int, neighbours: list[dict], cores: int) -> str | None:
    """What to tell a training that is about to run `threads` torch threads beside
    `neighbours` on `cores` cores, or None when they fit."""
    taken = sum(int(n.get("threads", 1)) for n in neighbours)
    if not neighbours or taken + threads <= cores:
        return None
    who = ", ".join(f"pid {n['pid']} ({n.get('what', 'training')}, {threads_(int(n.get('threads', 1)))})"
                    for n in neighbours)
    return (f"warning: {len(neighbours)} other seedsweep training(s) already use {threads_(taken)} "
            f"on this machine's {cores} cores: {who}. This one adds {threads}. Trainings that share "
            "cores this way slow each other down far more than their share; pass "
            "threads=<n> to each so that they add up to the cores, or let one finish first. "
            "(The thread count can change the last digits of the metrics: keep it when you resume.)")


def threads_(n: int) -> str:
    return f"{n} torch thread" + ("" if n == 1 else "s")


@contextlib.contextmanager
def training(threads: int, what: str) -> Iterator[None]:
    """Register this process as a training of `threads` torch threads while the block runs,
    after warning on stderr if the other trainings already take the cores."""
    if message := crowding(threads, others(), os.cpu_count() or 1):
        print(message, file=sys.stderr, flush=True)
    path = None
    try:
        base = folder()
        base.mkdir(parents=True, exist_ok=True)
        path = base / f"{os.getpid()}.json"
        path.write_text(json.dumps({"pid": os.getpid(), "threads": threads, "what": what}))
    except OSError:  # a read-only temp dir only costs the warning
        path = None
    try:
        yield
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
