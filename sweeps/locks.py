"""An exclusive lock between the processes of one machine, held on a lock file, and where
the lock of a store lives so that every process using that store takes the same one."""

from __future__ import annotations

import fcntl
import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sweeps.redact import redact


class Busy(Exception):
    """The lock is held by another process (and the caller would not wait)."""


@contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the `with` block; with
    `wait=False`, raise `Busy` at once where another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(str(path)) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def store_lock_path(url: str | None, folder: Path, key: str) -> Path:
    """The lock file of `key` (a study, a test evaluation) in the store at `url`, the same
    for every process that uses that store whatever its own folders: beside a SQLite file;
    in `folder` for a store kept there (url None: the journal); else in the machine's lock
    folder, named by the URL without its credentials."""
    name = re.sub(r"[^\w.-]+", "_", key) + ".lock"
    if url is None:
        return folder / name
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///").split("?", 1)[0]).expanduser().resolve()
        return db.parent / f"{db.name}.{name}"
    store = hashlib.sha256(redact(url).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "seedsweep-locks" / f"{store}-{name}"
