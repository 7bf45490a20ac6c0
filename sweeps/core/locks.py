"""Exclusive locks between the processes of one machine, held on lock files: a plain one,
and where the lock of a store lives (so that every process using that store takes the
same one). The study journal's lock, with its owner's name in it, is the store's
(sweeps/store/journal_lock.py)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit


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


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL as SQLAlchemy opens it: the query string
    (`?timeout=30`) dropped, a relative path taken from the working directory, `~` not
    expanded. None for another scheme or a URL naming no file. The one reader of such URLs
    (the stores, their locks, the tracking client, the UI and the settings check); it lives
    here, the deepest module that needs it."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path else None


def store_lock_path(url: str | None, folder: Path, key: str) -> Path:
    """The lock file of `key` (a study, a test evaluation) in the store at `url`, the same
    for every process that uses that store whatever its own folders: beside a SQLite file;
    in `folder` for a store kept there (url None: the journal); else in the machine's lock
    folder, named by the URL without its credentials."""
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in key) + ".lock"
    if url is None:
        return folder / name
    if (db := sqlite_path(url)) is not None:
        db = db.resolve()
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
