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

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from models.errors import UserError
from sweeps.core.records import (
    WORKER,
)
from sweeps.core.redact import redact
from sweeps.store.backends import advisory_lock, folder_of, storage_of, storage_url
from sweeps.store.workers import (
    alive,
    counts_toward_budget,
    enqueue_grid,
    on_this_host,
    recover_dead_trials,
    retry,
    study_lock,
    worker_id,
)


class SharedStudy:
    """A study and this worker's part in it: the storage, the lock all its workers share,
    claiming trials within the budget, heartbeats while a trial runs, and recovery of the
    trials of workers that died, here or on another host.

    Long because claiming, heartbeats and recovery all act on the same storage, study and
    lock under one protocol (the module's docstring); apart, each would reach into the others."""

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
                if not alive(t.user_attrs.get(WORKER))]
        return gone + [t for t in self.silent() if t not in gone]

    def _watched(self, t: optuna.trial.FrozenTrial) -> bool:
        """Whether this worker could tell that trial `t`'s worker died."""
        return self.heartbeats or on_this_host(t.user_attrs.get(WORKER))

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
