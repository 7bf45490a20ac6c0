"""Opening a study's Optuna storage: a journal file on one machine (cut back to its last
whole record after a crash), PostgreSQL for workers on many (with advisory locks that hold
across hosts); a study's name and folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import get_lock_file

from models.errors import UserError
from sweeps.core.faults import EnvironmentFailure
from sweeps.core.locks import file_lock, sqlite_path
from sweeps.core.paths import RUNS_DIR
from sweeps.core.redact import redact
from sweeps.store.journal_lock import OwnedJournalLock
from sweeps.store.workers import alive, worker_id

DEFAULT_DIR = RUNS_DIR / "optuna"



def study_name(cfg: DictConfig, fingerprint: str | None = None) -> str:
    """`sweep.study_name`, else <model>-<data>-<sampler>; with `sweep.new`, followed by the
    first characters of the study's fingerprint."""
    name = cfg.sweep.study_name or f"{cfg.model.name}-{cfg.data.name}-{cfg.sampler.name}"
    return f"{name}-{fingerprint[:6]}" if cfg.sweep.get("new") and fingerprint else name


def folder_of(cfg: DictConfig) -> Path:
    """Where the journal (by default) and the workers' lock files live."""
    return Path(cfg.storage.dir).expanduser() if cfg.storage.dir else DEFAULT_DIR


# Heartbeats are experimental in Optuna, and it warns that they are meant for optimize():
# ours come from a thread of our own (SharedStudy.heartbeat).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

ADVISORY_NAMESPACE = 0x5EED  # the first key of our PostgreSQL advisory locks


def load_study(cfg: DictConfig, name: str) -> optuna.Study | None:
    """Study `name` in the storage `cfg` names, or None if there is none."""
    try:
        return optuna.load_study(study_name=name, storage=storage_of(cfg))
    except KeyError:
        return None


def storage_url(settings: Mapping[str, Any]) -> str | None:
    """`storage.url`, else the URL in the environment variable `storage.url_env` names
    (so a password never enters the config, hence no log); None: the journal file."""
    if settings.get("url"):
        return str(settings["url"])
    if env := settings.get("url_env"):
        if not os.environ.get(env):
            raise UserError(f"this storage reads its database URL from ${env}, which is not set: "
                            f"export {env}=postgresql://USER:PASSWORD@HOST:5432/DB (cluster/postgres.sh "
                            "starts a server of your own), or use the local journal (storage=local).")
        return os.environ[env]
    return None


def storage_of(cfg: DictConfig) -> optuna.storages.BaseStorage:
    """The storage `cfg.storage` describes."""
    s = cfg.storage
    return open_storage(storage_url(s), folder_of(cfg), heartbeat_interval=s.get("heartbeat_interval"),
                        grace_period=s.get("grace_period"), pool_size=int(s.get("pool_size") or 2))


def open_storage(url: str | None, folder: Path, heartbeat_interval: int | None = None,
                 grace_period: int | None = None, pool_size: int = 2) -> optuna.storages.BaseStorage:
    """`url` (any Optuna storage URL) or a journal file in `folder`. Heartbeats (seconds)
    apply to database URLs only."""
    if url:
        if heartbeat_interval and grace_period and grace_period < 2 * heartbeat_interval:
            raise UserError(f"storage.grace_period={grace_period} is less than twice "
                            f"storage.heartbeat_interval={heartbeat_interval}: a worker that is merely slow "
                            "would have its trial failed; make the grace period at least twice the interval.")
        beats = {"heartbeat_interval": int(heartbeat_interval), "grace_period": int(grace_period)
                 if grace_period else 2 * int(heartbeat_interval)} if heartbeat_interval else {}
        if (db := sqlite_path(url)) is not None:
            # One process at a time creates the schema (at once they fail on alembic_version);
            # the others wait for the workers' writes instead of failing with "database is locked".
            with file_lock(db.with_name(db.name + ".init-lock")):
                return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}}, **beats)
        if url.startswith(("postgresql:", "postgres:", "postgresql+")):
            return _postgres(url, pool_size, beats)
        return RDBStorage(url, **beats)
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "studies.journal")
    try:
        return JournalStorage(DurableJournal(path, lock_obj=OwnedJournalLock(path, worker_id(), alive)))
    except (json.JSONDecodeError, ValueError) as e:
        raise UserError(DurableJournal.explain(path, e)) from e


def psycopg2_url(url: str) -> str:
    """A PostgreSQL URL with the psycopg2 driver named (SQLAlchemy 2.1 defaults to psycopg 3)."""
    return re.sub(r"^postgres(ql)?:", "postgresql+psycopg2:", url)


def _postgres(url: str, pool_size: int, beats: dict[str, int]) -> RDBStorage:
    """Optuna's RDBStorage on PostgreSQL through psycopg2: a small pool per worker whose
    connections are tested before use and renewed, since servers and firewalls drop idle
    ones (optuna#5600). The first worker creates the schema under an advisory lock, so
    workers starting together do not race on it."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    url = psycopg2_url(url)
    connect = {"connect_timeout": 15, "keepalives": 1, "keepalives_idle": 30,
               "keepalives_interval": 10, "keepalives_count": 3, "application_name": "seedsweep"}
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect)
        try:
            with advisory_lock(engine, "schema"):
                return RDBStorage(url, engine_kwargs={
                    "pool_pre_ping": True, "pool_size": pool_size, "max_overflow": 4,
                    "pool_recycle": 600, "connect_args": connect}, **beats)
        finally:
            engine.dispose()
    except ModuleNotFoundError as e:
        raise UserError(f"PostgreSQL storage needs the psycopg2 driver ({e}); "
                        "pip install psycopg2-binary (make install does).") from e
    except sqlalchemy.exc.OperationalError as e:
        first = str(e.orig if e.orig is not None else e).strip().splitlines()[0]
        raise EnvironmentFailure(f"cannot reach the study database {redact(url)}: {redact(first)}") from e


def _advisory_key(name: str) -> int:
    key = zlib.crc32(name.encode())
    return key - (1 << 32) if key >= 1 << 31 else key  # PostgreSQL's int4


@contextmanager
def advisory_lock(engine, name: str) -> Iterator[None]:
    """PostgreSQL's exclusive advisory lock on `name`, for every connection to the database
    whatever its host; the server releases it if this process dies."""
    import sqlalchemy
    key = {"ns": ADVISORY_NAMESPACE, "key": _advisory_key(name)}
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:ns, :key)"), key)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:ns, :key)"), key)
            conn.commit()


class DurableJournal(JournalFileBackend):
    """Optuna's journal file, safe against a torn last record: what a kill or a full disk
    during a write leaves. Under the journal's lock (so no writer is mid-record), before the
    journal is read and before every append, a last record without its newline is copied
    aside with the whole file and cut off, so the next record starts on a line of its own
    instead of garbling the torn one (which would make every study unreadable)."""

    def __init__(self, file_path: str, lock_obj: JournalFileOpenLock) -> None:
        super().__init__(file_path, lock_obj)
        with get_lock_file(self._lock):
            self._cut_torn_tail()

    def _cut_torn_tail(self) -> None:
        path = self._file_path
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            cut, pos = 0, size
            while pos > 0 and not cut:  # the last newline, read backwards in chunks
                start = max(0, pos - 65536)
                f.seek(start)
                chunk = f.read(pos - start)
                if (i := chunk.rfind(b"\n")) >= 0:
                    cut = start + i + 1
                pos = start
            backup = f"{path}.torn-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            shutil.copyfile(path, backup)
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        print(f"warning: {path} ended in a torn record ({size - cut} bytes, left by a kill or a full "
              f"disk during a write); the file as it was is saved in {backup}, the record is dropped "
              "and the studies go on.", file=sys.stderr, flush=True)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with get_lock_file(self._lock):
            self._cut_torn_tail()
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())

    @staticmethod
    def explain(path: str, err: Exception) -> str:
        """One sentence naming the garbled line of a journal."""
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                try:
                    json.loads(line)
                except ValueError:
                    return (f"the study journal {path} has a garbled record on line {number} of "
                            f"its {sum(1 for _ in f) + number} ({type(err).__name__}); move the file "
                            "aside to start afresh, or delete that line to keep the rest.")
        return f"the study journal {path} cannot be read ({err})."
