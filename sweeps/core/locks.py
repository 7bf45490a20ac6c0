"""Exclusive locks between the processes of one machine, held on lock files: a plain one,
where the lock of a store lives (so that every process using that store takes the same
one), and the study journal's lock with its owner's name in it.

The study journal's lock: Optuna's `JournalFileOpenLock` is a file created with O_EXCL and
removed on release. A process killed while holding it leaves the file behind, and Optuna
waits out a 30 s grace period, silently, before breaking it. Here the file holds its
owner's `host:pid`: a lock whose owner is a process of this host that is gone is broken
at once, and a wait for a live owner says, once, what it waits for. An owner on another
host (a journal on a shared folder) is waited for as Optuna does, up to the grace period.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from optuna.storages.journal import JournalFileOpenLock


class Busy(Exception):
    """The lock is held by another process (and the caller would not wait)."""


@contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the `with` block; with
    `wait=False`, raise `Busy` at once where another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o666)
    if path.parent.stat().st_mode & 0o1000:  # a shared lock folder: another user opens it too
        try:
            os.fchmod(fd, 0o666)
        except PermissionError:
            pass  # another user's file, already shared
    with os.fdopen(fd, "a") as f:
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
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in key) + ".lock"
    if url is None:
        return folder / name
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///").split("?", 1)[0]).expanduser().resolve()
        return db.parent / f"{db.name}.{name}"
    parts = urlsplit(url)  # the host is what follows the netloc's last '@'
    where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    store = hashlib.sha256(where.encode()).hexdigest()[:16]
    shared = Path(tempfile.gettempdir()) / "seedsweep-locks"
    if not shared.is_dir():  # every user of the machine locks here: sticky and writable, as /tmp is
        shared.mkdir(exist_ok=True)
        try:
            shared.chmod(0o1777)
        except PermissionError:
            pass  # made by another user in the meantime: theirs to set
    return shared / f"{store}-{name}"


TELL_AFTER = 3.0  # seconds of waiting before saying what for


class OwnedJournalLock(JournalFileOpenLock):
    def __init__(self, filepath: str, owner: str, alive: Callable[[str], bool],
                 grace_period: int | None = 30) -> None:
        super().__init__(filepath, grace_period)
        self.owner, self.alive = owner, alive

    def _holder(self) -> str | None:
        try:
            with open(self._lock_file) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def _break_if_dead(self, holder: str) -> bool:
        """Remove the lock file if `holder`, a dead process, still holds it. Under a lock of
        its own, so two waiters never both break it (the second would remove a live lock)."""
        with file_lock(Path(self._lock_file + ".break")):
            if self._holder() != holder or self.alive(holder):
                return False
            try:
                os.unlink(self._lock_file)
            except FileNotFoundError:
                pass
            return True

    def acquire(self) -> bool:
        started = time.monotonic()
        told, seen_mtime, since = False, None, started
        while True:
            try:
                fd = os.open(self._lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except OSError as err:
                if err.errno != errno.EEXIST:
                    raise
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(self.owner)
                return True
            holder = self._holder()
            if holder and not self.alive(holder) and self._break_if_dead(holder):
                print(f"note: broke the study journal's lock {self._lock_file}, left by {holder}, "
                      "a process that is gone.", file=sys.stderr, flush=True)
                continue
            now = time.monotonic()
            if not told and now - started > TELL_AFTER:
                print(f"waiting for the study journal's lock {self._lock_file}, held by "
                      f"{holder or 'a process that wrote no name'}; remove the file if no such "
                      "process runs.", file=sys.stderr, flush=True)
                told = True
            try:
                mtime = os.stat(self._lock_file).st_mtime
            except OSError:
                continue
            if mtime != seen_mtime:
                seen_mtime, since = mtime, now
            if self.grace_period is not None and now - since > self.grace_period:
                try:
                    self.release()  # Optuna's own rule: a lock held that long is abandoned
                except RuntimeError:
                    pass
                continue
            time.sleep(0.01)
