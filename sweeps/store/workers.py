"""This worker and the others: its identity (host and process), the study lock all workers
on this machine share, and what happens to a trial whose worker died (failed as
interrupted, its configuration queued again)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sweeps.core import faults
from sweeps.core.locks import file_lock, store_lock_path
from sweeps.core.records import (
    FAIL_REASON,
    FIXED_PARAMS,
    INTERRUPTED,
    RETRY_OF,
    WORKER,
)

HOST_ENV = "SEEDSWEEP_HOST"  # the host name in a worker's identity (default: the machine's)


def study_lock(name: str, url: str | None, folder: Path):
    """An exclusive lock shared by every worker of study `name` on this machine: it follows
    the database (`url`, or the journal in `folder`), not the worker's storage.dir."""
    return file_lock(store_lock_path(url, folder, name))


def host() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def worker_id() -> str:
    return f"{host()}:{os.getpid()}"


def on_this_host(worker: str | None) -> bool:
    return bool(worker) and worker.rpartition(":")[0] == host()


def alive(worker: str | None) -> bool:
    """Whether the process that claimed a trial still runs (only decidable on this host)."""
    if not worker:
        return False
    if not on_this_host(worker):
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
            if not alive(t.user_attrs.get(WORKER))]
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
