"""The study journal's lock. Optuna's `JournalFileOpenLock` is a file created with O_EXCL and
removed on release. A process killed while holding it leaves the file behind, and Optuna
waits out a 30 s grace period, silently, before breaking it. Here the file holds its
owner's `host:pid`: a lock whose owner is a process of this host that is gone is broken
at once, and a wait for a live owner says, once, what it waits for. An owner on another
host (a journal on a shared folder) is waited for as Optuna does, up to the grace period.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from optuna.storages.journal import JournalFileOpenLock

from sweeps.core.locks import file_lock

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
