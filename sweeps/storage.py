"""All Optuna storage handling, in one place: opening a study's storage (a journal file on
one machine, PostgreSQL for workers on many), the lock that its workers share, claiming
the next trial within the budget, heartbeats, and recovering the trials of workers that
died.

`SharedStudy` is a study together with this worker's part in it. A trial's budget slot is
claimed under the study lock, so workers never overrun the budget nor take the same grid
point: on one machine the lock is a file lock, on PostgreSQL an advisory lock held by the
database itself, so it holds across hosts (and a killed worker's lock is released with
its connection). Grid points and retried configurations are WAITING trials; Optuna pops
them with row locks.

A trial whose worker died is failed as interrupted and its configuration queued again:
on this host, found by its process id; on any host, when the storage has heartbeats
(`storage.heartbeat_interval`), by a heartbeat older than `storage.grace_period`.
Heartbeats are sent by a thread of our own during the trial, since Optuna's fire only
inside `study.optimize()` (optuna#3293). A worker with nothing left to claim waits while
other workers' trials run, so a trial that dies is still run by someone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import get_lock_file
from optuna.trial import TrialState

from models.errors import UserError
from sweeps import faults
from sweeps.faults import EnvironmentFailure
from sweeps.locks import OwnedJournalLock, file_lock, store_lock_path
from sweeps.paths import RUNS_DIR
from sweeps.records import (
    FAIL_REASON,
    FIXED_PARAMS,
    INTERRUPTED,
    RACED_OUT,
    RETRY_OF,
    SEED_EPOCHS,
    TEST_EVALUATIONS,
    WORKER,
)
from sweeps.redact import redact

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

HOST_ENV = "SEEDSWEEP_HOST"  # the host name in a worker's identity (default: the machine's)
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
        if url.startswith("sqlite:///"):
            # One process at a time creates the schema (at once they fail on alembic_version);
            # the others wait for the workers' writes instead of failing with "database is locked".
            with file_lock(Path(url.removeprefix("sqlite:///") + ".init-lock")):
                return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}}, **beats)
        if url.startswith(("postgresql:", "postgres:", "postgresql+")):
            return _postgres(url, pool_size, beats)
        return RDBStorage(url, **beats)
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "studies.journal")
    try:
        return JournalStorage(DurableJournal(path, lock_obj=OwnedJournalLock(path, worker_id(), _alive)))
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


def study_lock(name: str, url: str | None, folder: Path):
    """An exclusive lock shared by every worker of study `name` on this machine: it follows
    the database (`url`, or the journal in `folder`), not the worker's storage.dir."""
    return file_lock(store_lock_path(url, folder, name))


def host() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def worker_id() -> str:
    return f"{host()}:{os.getpid()}"


def _on_this_host(worker: str | None) -> bool:
    return bool(worker) and worker.rpartition(":")[0] == host()


def _alive(worker: str | None) -> bool:
    """Whether the process that claimed a trial still runs (only decidable on this host)."""
    if not worker:
        return False
    if not _on_this_host(worker):
        return True  # another machine's worker: its heartbeat decides, if there are any
    try:
        os.kill(int(worker.rpartition(":")[2]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def trial_config(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The params of a trial, or for one not yet started (WAITING), those it was queued with."""
    return dict(t.params) or dict(t.system_attrs.get(FIXED_PARAMS, {}))


def retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> None:
    """Mark a RUNNING trial FAIL as interrupted and queue its configuration again.
    Call with the study lock held."""
    study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
    study._storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    if params := trial_config(trial):
        study.enqueue_trial(params, user_attrs={RETRY_OF: trial.number})


def recover_dead_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials left RUNNING by a process of this host that died: FAIL them and retry their
    configuration. Call with the study lock held."""
    dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not _alive(t.user_attrs.get(WORKER))]
    for t in dead:
        retry(study, t, f"worker {t.user_attrs.get(WORKER, '?')} died during the trial")
    return dead


def counts_toward_budget(t: optuna.trial.FrozenTrial) -> bool:
    """Finished or running trials use up the budget; interrupted ones do not."""
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED)


def enqueue_grid(study: optuna.Study, points: list[dict[str, Any]]) -> None:
    """Queue each grid point not yet in the study (idempotent; call under the lock)."""
    seen = {tuple(sorted(trial_config(t).items())) for t in study.get_trials(deepcopy=False)
            if not (t.state == TrialState.FAIL and t.user_attrs.get(INTERRUPTED))}
    faults.meet("grid_read")
    for p in points:
        if tuple(sorted(p.items())) not in seen:
            study.enqueue_trial(p)


class SharedStudy:
    """A study and this worker's part in it: the storage, the lock all its workers share,
    claiming trials within the budget, heartbeats while a trial runs, and recovery of the
    trials of workers that died, here or on another host."""

    def __init__(self, cfg: DictConfig, name: str):
        self.name, self.folder, self.url = name, folder_of(cfg), storage_url(cfg.storage)
        self.storage = storage_of(cfg)
        self.interval = self.storage.heartbeat_interval if isinstance(self.storage, RDBStorage) else None
        self.grace = (self.storage.grace_period or 2 * self.interval) if self.interval else None
        self.study: optuna.Study | None = None

    @property
    def heartbeats(self) -> bool:
        return bool(self.interval)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a worker claims, recovers or retries a trial, or creates the study."""
        if isinstance(self.storage, RDBStorage) and self.storage.engine.dialect.name == "postgresql":
            with advisory_lock(self.storage.engine, f"study:{self.name}"):
                yield
        else:
            with study_lock(self.name, self.url, self.folder):
                yield

    def load(self) -> optuna.Study | None:
        try:
            return optuna.load_study(study_name=self.name, storage=self.storage)
        except KeyError:
            return None

    def open(self, direction: str, sampler: Callable[[int], optuna.samplers.BaseSampler],
             pruner: optuna.pruners.BasePruner, check: Callable[[optuna.Study], None],
             attrs: Mapping[str, Any], points: list[dict[str, Any]] | None = None,
             create: bool = True) -> bool:
        """Open the study (created under the lock, once, if `create` and it is missing:
        optuna#1092), `check` an existing one, queue the grid `points` not yet in it.
        `sampler(n)` makes this worker's sampler given the n trials already there.
        Returns whether the study was created."""
        with self.lock():
            existing = self.load()
            if existing is None and not create:
                raise UserError(f"no study {self.name!r} in this storage; create it first with "
                                "`make study` (or `make sweep`) and the same storage settings.")
            if existing is not None:
                check(existing)
            self.study = optuna.create_study(
                study_name=self.name, storage=self.storage, direction=direction, load_if_exists=True,
                sampler=sampler(len(existing.trials) if existing else 0), pruner=pruner)
            if existing is None:
                for key, value in attrs.items():
                    self.study.set_user_attr(key, value)
            if points:
                enqueue_grid(self.study, points)
        return existing is None

    def recover(self) -> list[optuna.trial.FrozenTrial]:
        """FAIL and retry the trials whose worker died: a process of this host that is gone,
        or, with heartbeats, a worker anywhere whose last heartbeat is older than the grace
        period. Call with the lock held."""
        found = recover_dead_trials(self.study)
        for t in self.silent():
            retry(self.study, t, f"worker {t.user_attrs.get(WORKER, '?')} sent no heartbeat for "
                                 f"{self.grace} s (killed, evicted or cut off)")
            found.append(t)
        return found

    def silent(self) -> list[optuna.trial.FrozenTrial]:
        """RUNNING trials whose heartbeat is older than the grace period (none without heartbeats)."""
        if not self.heartbeats:
            return []
        stale = set(self.storage._get_stale_trial_ids(self.study._study_id))
        return [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t._trial_id in stale]

    def dead(self) -> list[optuna.trial.FrozenTrial]:
        """The RUNNING trials `recover` would fail and retry, left as they are."""
        gone = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if not _alive(t.user_attrs.get(WORKER))]
        return gone + [t for t in self.silent() if t not in gone]

    def _watched(self, t: optuna.trial.FrozenTrial) -> bool:
        """Whether this worker could tell that trial `t`'s worker died."""
        return self.heartbeats or _on_this_host(t.user_attrs.get(WORKER))

    def claim(self, budget: int, grid: bool,
              on_recovered: Callable[[optuna.trial.FrozenTrial], None] = lambda t: None,
              on_wait: Callable[[int], None] = lambda n: None, poll: float | None = None,
              ) -> optuna.Trial | None:
        """The next trial to run, or None when the budget (or the grid) is used up and no
        trial runs that might still fail and need running again (until then, it waits).
        A WAITING trial (a grid point, a retry) is taken first."""
        poll = poll or (min(self.interval, 5) if self.heartbeats else 2.0)
        waiting_told = False
        while True:
            with self.lock():
                for t in self.recover():
                    on_recovered(t)
                trials = self.study.get_trials(deepcopy=False)
                open_slot = sum(counts_toward_budget(t) for t in trials) < budget
                if open_slot and (not grid or any(t.state == TrialState.WAITING for t in trials)):
                    trial = self.study.ask()
                    if self.heartbeats:  # before the worker id: a trial with an id has a heartbeat
                        self.storage.record_heartbeat(trial._trial_id)
                    trial.set_user_attr(WORKER, worker_id())
                    return trial
                running = [t for t in trials if t.state == TrialState.RUNNING and self._watched(t)]
            if not running:
                return None
            if not waiting_told:
                on_wait(len(running))
                waiting_told = True
            time.sleep(poll)

    @contextmanager
    def heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """Send trial's heartbeat every interval while the block runs (a thread of our own:
        Optuna sends them only inside `study.optimize()`)."""
        if not self.heartbeats:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            failures = 0
            while not stop.wait(self.interval):
                try:
                    self.storage.record_heartbeat(trial._trial_id)
                    failures = 0
                except Exception as e:  # noqa: BLE001 - the database may be back next time
                    failures += 1
                    if failures == 1:
                        print(f"warning: trial {trial.number}'s heartbeat failed ({redact(str(e))[:200]}); "
                              "retrying", file=sys.stderr, flush=True)

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def interrupt(self, trial: optuna.Trial, reason: str,
                  on_recovered: Callable[[optuna.trial.FrozenTrial], None] = lambda t: None) -> None:
        """Fail a trial this worker runs as interrupted (not in the budget) and queue its
        configuration again."""
        with self.lock():
            frozen = self.study._storage.get_trial(trial._trial_id)
            if frozen.state == TrialState.RUNNING:
                retry(self.study, frozen, reason)
            on_recovered(frozen)

    def finished_elsewhere(self, trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
        """The trial as stored, if it is no longer RUNNING: another worker failed it (its
        heartbeat went stale while this worker was cut off)."""
        frozen = self.study._storage.get_trial(trial._trial_id)
        return frozen if frozen.state.is_finished() else None


def ranked(study: optuna.Study, trials=None) -> list[optuna.trial.FrozenTrial]:
    """Completed trials, best first; a trial a race stopped before K seeds is no candidate
    (its mean is over fewer seeds: sweeps/racing.py)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
            and not t.user_attrs.get(RACED_OUT)]
    return sorted(done, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")


def pruning_savings(trials: list[optuna.trial.FrozenTrial]) -> str:
    """How many trials were pruned and the training compute they saved, estimated as what
    an average completed trial spent (in seed-epochs) less what the pruned ones spent."""
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t.user_attrs[SEED_EPOCHS] for t in trials
                if t.state == TrialState.COMPLETE and SEED_EPOCHS in t.user_attrs]
    if not pruned:
        return ""
    spent = sum(t.user_attrs.get(SEED_EPOCHS, 0) for t in pruned)
    if not complete:
        return f"{len(pruned)} pruned, after {spent} seed-epochs"
    per_trial = sum(complete) / len(complete)
    saved = max(len(pruned) * per_trial - spent, 0)
    total = sum(complete) + spent
    return (f"{len(pruned)} pruned after {spent} seed-epochs; run to the end they would have taken "
            f"~{len(pruned) * per_trial:.0f} (the completed trials' mean, {per_trial:.1f}): "
            f"~{saved:.0f} seed-epochs saved, {saved / (total + saved):.0%} of the sweep's training")


def test_evaluations(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's own record of its test evaluations (started ones included)."""
    return list(study.user_attrs.get(TEST_EVALUATIONS, []))


def record_test_evaluation(study: optuna.Study, entry: dict[str, Any]) -> None:
    """Append to (or, for an entry with the same `started` time, update) the study's record.
    Call under the final evaluation's lock."""
    entries = [e for e in test_evaluations(study) if e.get("started") != entry["started"]]
    study.set_user_attr(TEST_EVALUATIONS, [*entries, entry])
