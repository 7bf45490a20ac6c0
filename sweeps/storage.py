"""All Optuna storage handling: opening a study, a lock for the workers of one machine,
recovering trials a killed process left RUNNING, and claiming the next trial.

A trial's budget slot is claimed under the study lock, so several workers never
overrun the budget nor take the same grid point. Grid points and retried
configurations are WAITING trials; `study.ask()` pops them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import get_lock_file
from optuna.trial import TrialState

from models.errors import UserError
from sweeps.locks import file_lock
from sweeps.paths import RUNS_DIR
from sweeps.records import (
    FAIL_REASON,
    FIXED_PARAMS,
    INTERRUPTED,
    RETRY_OF,
    SEED_EPOCHS,
    TEST_EVALUATIONS,
    WORKER,
)

DEFAULT_DIR = RUNS_DIR / "optuna"



def study_name(cfg: DictConfig, fingerprint: str | None = None) -> str:
    """`sweep.study_name`, else <model>-<data>-<sampler>; with `sweep.new`, followed by the
    first characters of the study's fingerprint."""
    name = cfg.sweep.study_name or f"{cfg.model.name}-{cfg.data.name}-{cfg.sampler.name}"
    return f"{name}-{fingerprint[:6]}" if cfg.sweep.get("new") and fingerprint else name


def folder_of(cfg: DictConfig) -> Path:
    """Where the journal (by default) and the workers' lock files live."""
    return Path(cfg.storage.dir).expanduser() if cfg.storage.dir else DEFAULT_DIR


def load_study(cfg: DictConfig, name: str) -> optuna.Study | None:
    """Study `name` in the storage `cfg` names, or None if there is none."""
    try:
        return optuna.load_study(study_name=name, storage=open_storage(cfg.storage.url, folder_of(cfg)))
    except KeyError:
        return None


def open_storage(url: str | None, folder: Path) -> optuna.storages.BaseStorage:
    """`url` (any Optuna storage URL) or a journal file in `folder`."""
    if url:
        if url.startswith("sqlite:///"):
            # One process at a time creates the schema (at once they fail on alembic_version);
            # the others wait for the workers' writes instead of failing with "database is locked".
            with file_lock(Path(url.removeprefix("sqlite:///") + ".init-lock")):
                return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
        return RDBStorage(url)
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "studies.journal")
    try:
        return JournalStorage(DurableJournal(path, lock_obj=JournalFileOpenLock(path)))
    except (json.JSONDecodeError, ValueError) as e:
        raise UserError(DurableJournal.explain(path, e)) from e


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


def study_lock(name: str, folder: Path):
    """An exclusive lock shared by every worker of study `name` on this machine."""
    return file_lock(folder / (re.sub(r"[^\w.-]+", "_", name) + ".lock"))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str | None) -> bool:
    """Whether the process that claimed a trial still runs (only decidable on this host)."""
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's worker: leave its trials alone
    try:
        os.kill(int(pid), 0)
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
    """Trials left RUNNING by a process that died: FAIL them and retry their configuration.
    Call with the study lock held."""
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
    for p in points:
        if tuple(sorted(p.items())) not in seen:
            study.enqueue_trial(p)


def claim_trial(
    study: optuna.Study, budget: int, grid: bool, folder: Path,
    on_recovered: Callable[[optuna.trial.FrozenTrial], None] = lambda t: None,
) -> optuna.Trial | None:
    """The next trial to run, or None when the budget (or the grid) is used up.
    Takes the study lock; a WAITING trial (a grid point, a retry) is taken first."""
    with study_lock(study.study_name, folder):
        for t in recover_dead_trials(study):
            on_recovered(t)
        trials = study.get_trials(deepcopy=False)
        if sum(counts_toward_budget(t) for t in trials) >= budget:
            return None
        if grid and not any(t.state == TrialState.WAITING for t in trials):
            return None  # grid exhausted
        trial = study.ask()
        trial.set_user_attr(WORKER, worker_id())
        return trial


def ranked(study: optuna.Study, trials=None) -> list[optuna.trial.FrozenTrial]:
    """Completed trials, best first."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
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
