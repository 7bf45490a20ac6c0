"""The shared study (sweeps/store/): the budget and the grid hold when many workers claim
at once, on the journal and on PostgreSQL; heartbeats fail the trial of a worker that
stopped; storage settings that cannot work are refused in one sentence; a database URL's
password never shows. The PostgreSQL cases need SEEDSWEEP_TEST_PG_URL (see test_cluster)."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from models.errors import UserError
from sweeps import store
from sweeps.core import faults
from sweeps.core.faults import EnvironmentFailure
from sweeps.core.records import FAIL_REASON, INTERRUPTED, RETRY_OF, WORKER
from sweeps.search.identity import joined_overrides
from sweeps.sweep import main
from tests.sweeps.test_cluster import PG_ENV, database, pg_server  # noqa: F401 - fixtures


def settings(folder: Path, url: str | None, **extra) -> OmegaConf:
    return OmegaConf.create({"storage": {"url": url, "url_env": None, "dir": str(folder),
                                         "heartbeat_interval": None, "grace_period": None,
                                         "pool_size": 2, **extra}})


def _worker(cfg_yaml: str, budget: int, grid: bool, out) -> None:
    cfg = OmegaConf.create(cfg_yaml)
    shared = store.SharedStudy(cfg, "race")
    shared.study = optuna.load_study(study_name="race", storage=shared.storage,
                                     sampler=optuna.samplers.RandomSampler())
    mine = []
    while (trial := shared.claim(budget, grid, poll=0.05)) is not None:
        trial.suggest_float("x", 0, 10)  # a queued grid point's value, else a random one
        shared.study.tell(trial, 0.5)
        mine.append(trial.number)
    out.put(mine)


def race(cfg, budget: int, grid: bool, processes: int = 4) -> list[int]:
    """`processes` workers claim and finish trials as fast as they can."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(OmegaConf.to_yaml(cfg), budget, grid, out))
             for _ in range(processes)]
    for p in procs:
        p.start()
    numbers = [n for _ in procs for n in out.get(timeout=300)]
    for p in procs:
        p.join(60)
    return numbers


@pytest.fixture(params=["journal", "postgres"])
def backend(request, tmp_path):
    if request.param == "journal":
        return settings(tmp_path, None)
    return settings(tmp_path, request.getfixturevalue("database"))


@pytest.mark.slow
@pytest.mark.parametrize("grid", [False, True], ids=["random", "grid"])
def test_workers_claiming_at_once_never_overrun_the_budget_nor_repeat_a_grid_point(backend, grid):
    shared = store.SharedStudy(backend, "race")
    points = [{"x": float(i)} for i in range(9)] if grid else None
    shared.open("maximize", lambda n: optuna.samplers.RandomSampler(), optuna.pruners.NopPruner(),
                check=lambda s: None, attrs={}, points=points)
    budget = 9 if grid else 7
    numbers = race(backend, budget, grid)
    trials = shared.study.get_trials()
    assert sorted(numbers) == sorted(t.number for t in trials) and len(set(numbers)) == len(numbers)
    assert len(trials) == budget and all(t.state == TrialState.COMPLETE for t in trials)
    if grid:
        assert sorted(t.params["x"] for t in trials) == [float(i) for i in range(9)]


def test_a_trial_whose_heartbeat_stops_is_failed_and_queued_again(database, tmp_path):  # noqa: F811
    cfg = settings(tmp_path, database, heartbeat_interval=1, grace_period=2)
    shared = store.SharedStudy(cfg, "beats")
    shared.open("maximize", lambda n: optuna.samplers.RandomSampler(), optuna.pruners.NopPruner(),
                check=lambda s: None, attrs={}, points=[{"x": 1.0}, {"x": 2.0}])
    os.environ[store.HOST_ENV] = "elsewhere"  # the claim looks as if made on another host
    try:
        lost = shared.claim(budget=2, grid=True)
        with shared.heartbeat(lost):  # a live worker keeps its trial
            time.sleep(3)
            assert not shared.recover()
    finally:
        del os.environ[store.HOST_ENV]
    assert lost.number == 0 and shared.study.trials[0].user_attrs[WORKER].startswith("elsewhere:")
    time.sleep(3)  # ... then it stops beating, as a killed one does
    recovered = []
    nxt = shared.claim(budget=2, grid=True, on_recovered=recovered.append)
    assert [t.number for t in recovered] == [0]
    failed = shared.study.trials[0]
    assert failed.state == TrialState.FAIL and failed.user_attrs[INTERRUPTED]
    assert "no heartbeat for 2 s" in failed.user_attrs[FAIL_REASON]
    assert nxt.number == 1  # the other grid point first; the retry waits in the queue
    retry = [t for t in shared.study.trials if t.user_attrs.get(RETRY_OF) == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    assert shared.finished_elsewhere(lost) is not None  # the lost worker learns it on return


def test_storage_settings_that_cannot_work_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("SEEDSWEEP_DB_URL", raising=False)
    with pytest.raises(UserError, match=r"\$SEEDSWEEP_DB_URL, which is not set"):
        store.storage_url({"url": None, "url_env": "SEEDSWEEP_DB_URL"})
    with pytest.raises(UserError, match="at least twice"):
        store.open_storage(f"sqlite:///{tmp_path / 'o.db'}", tmp_path, heartbeat_interval=10,
                             grace_period=15)


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path, polarity_csv, capsys,
                                                                   monkeypatch):
    monkeypatch.setenv("SEEDSWEEP_DB_URL", "postgresql://me:hunter2@127.0.0.1:9/nowhere")
    with pytest.raises(EnvironmentFailure) as e:
        store.open_storage(os.environ["SEEDSWEEP_DB_URL"], tmp_path)
    assert "hunter2" not in str(e.value) and "me:***@127.0.0.1:9" in str(e.value)
    code = main(["data=csv", f"data.path={polarity_csv}", "storage=postgres",
                 f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "search_space=dan_tiny"])
    err = capsys.readouterr().err
    assert code == 75 and "cannot reach the study database" in err and "hunter2" not in err


def test_a_worker_joins_with_the_study_s_overrides_then_its_own():
    recorded = ["data=csv", "storage=postgres", "tracking.uri=http://a:5000", "sweep.new=true", "seeds=2"]
    assert joined_overrides(recorded, ["tracking.uri=http://b:5000", "threads=1", "sweep.study_name=s"]) == [
        "data=csv", "storage=postgres", "seeds=2", "tracking.uri=http://b:5000", "threads=1",
        "sweep.study_name=s"]


def test_make_worker_on_a_missing_study_says_how_to_create_it(tmp_path, capsys):
    code = main(["--join=nope", f"storage.dir={tmp_path}"])
    assert code == 2 and "no study 'nope'" in capsys.readouterr().err


def test_mlflow_server_refuses_a_taken_port_instead_of_trusting_another_server(monkeypatch, capsys):
    import socket

    from sweeps import mlflow_server
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("SEEDSWEEP_MLFLOW_DB_URL", "postgresql://me:hunter2@127.0.0.1:9/mlflow")
        monkeypatch.setenv("PORT", str(busy.getsockname()[1]))
        assert mlflow_server.main([]) == 1
    assert "is taken" in capsys.readouterr().err
    monkeypatch.delenv("SEEDSWEEP_MLFLOW_DB_URL")
    assert mlflow_server.main([]) == 2
    assert "set SEEDSWEEP_MLFLOW_DB_URL" in capsys.readouterr().err


def _open_and_claim(cfg_yaml: str, points: list[dict], out) -> None:
    """One sweep's worker: open the study (queueing the grid), claim and finish trials."""
    shared = store.SharedStudy(OmegaConf.create(cfg_yaml), "shared-db")
    shared.open("maximize", lambda n: optuna.samplers.RandomSampler(), optuna.pruners.NopPruner(),
                check=lambda s: None, attrs={}, points=points)
    mine = []
    while (trial := shared.claim(len(points), True, poll=0.05)) is not None:
        trial.suggest_float("x", 0, 10)
        shared.study.tell(trial, 0.5)
        mine.append(trial.number)
    out.put(mine)


def test_sweeps_sharing_a_sqlite_database_from_other_folders_share_its_lock(tmp_path, monkeypatch):
    """The study lock follows the database, not storage.dir: two sweeps on one SQLite file
    from two folders queue the grid once and run each point once. Both processes are made to
    read the queue at the same moment (faults.meet); without a common lock both queue it."""
    monkeypatch.setenv(faults.MEET_ENV, f"grid_read:{tmp_path / 'met'}")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    points = [{"x": float(i)} for i in range(4)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_open_and_claim, args=(OmegaConf.to_yaml(settings(tmp_path / d, url)),
                                                        points, out)) for d in ("a", "b")]
    for p in procs:
        p.start()
    numbers = [n for _ in procs for n in out.get(timeout=300)]
    for p in procs:
        p.join(60)
    trials = optuna.load_study(study_name="shared-db", storage=url).get_trials()
    assert len(trials) == 4 and sorted(numbers) == [0, 1, 2, 3]
    assert sorted(t.params["x"] for t in trials) == [0.0, 1.0, 2.0, 3.0]


def _journal_write_in_thread(folder: Path):
    """Create a study in the journal under `folder` from a thread: (thread, what it raised)."""
    import threading
    raised = []

    def write():
        try:
            optuna.create_study(study_name="after-a-kill", storage=store.open_storage(None, folder))
        except Exception as e:  # noqa: BLE001 - handed to the test
            raised.append(e)
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, raised


def test_a_journal_lock_left_by_a_killed_process_is_broken_at_once(tmp_path, monkeypatch, capsys):
    """The lock file names its owner: one whose process is gone is broken at once, not after
    Optuna's silent 30 s grace period (frozen here, so without the owner's name it would
    wait for ever; the join's timeout only stops such a hang)."""
    import subprocess
    import time
    store.open_storage(None, tmp_path)  # the journal exists
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "studies.journal.lock").write_text(f"{store.host()}:{gone.pid}")
    monkeypatch.setattr(time, "monotonic", lambda: 0.0)  # no grace period ever runs out
    thread, raised = _journal_write_in_thread(tmp_path)
    thread.join(60)
    assert not thread.is_alive() and not raised
    assert "broke the study journal's lock" in capsys.readouterr().err
    assert not (tmp_path / "studies.journal.lock").exists()


def test_a_wait_for_a_live_journal_lock_says_what_it_waits_for(tmp_path, monkeypatch, capsys):
    from sweeps.store import journal_lock as locks
    store.open_storage(None, tmp_path)
    lock = tmp_path / "studies.journal.lock"
    lock.write_text(store.worker_id())  # held by this very process, alive
    monkeypatch.setattr(locks, "TELL_AFTER", 0.0)
    thread, raised = _journal_write_in_thread(tmp_path)
    deadline = time.monotonic() + 60
    while "waiting for the study journal's lock" not in (err := capsys.readouterr().err) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.worker_id() in err and thread.is_alive()
    lock.unlink()  # the owner lets go
    thread.join(60)
    assert not thread.is_alive() and not raised
