"""One study shared by workers on several "hosts" through PostgreSQL and a real MLflow
tracking server: a worker killed mid-trial has its trial failed by heartbeat and run by
another worker, no grid point runs twice, the budget holds, and Optuna and MLflow agree.

Needs a PostgreSQL server: SEEDSWEEP_TEST_PG_URL=postgresql://USER:PASSWORD@HOST:PORT/DB,
a role that may create databases (.ci/run starts one with cluster/postgres.sh). Without
it these tests skip, unless SEEDSWEEP_REQUIRE_PG=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweeps import store
from sweeps.core.records import FAIL_REASON, INTERRUPTED, MLFLOW_RUN_ID, RETRY_OF, TRIAL_STATE, WORKER
from tests.conftest import REPO, write_polarity_csv

PG_ENV = "SEEDSWEEP_TEST_PG_URL"
GRID = {(0.0, 0.01), (0.0, 0.1), (0.3, 0.01), (0.3, 0.1)}  # conf/search_space/dan_tiny.yaml
RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED"}


@pytest.fixture(scope="module")
def pg_server() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("SEEDSWEEP_REQUIRE_PG"):
            pytest.fail(f"SEEDSWEEP_REQUIRE_PG is set but {PG_ENV} is not")
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}=postgresql://USER:PASSWORD@127.0.0.1:PORT/DB "
                    "(cluster/postgres.sh start DIR prints one)")
    pytest.importorskip("psycopg2")
    return url


def _admin(url: str, sql: str) -> None:
    import psycopg2
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


@pytest.fixture
def database(pg_server: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(pg_server, f"CREATE DATABASE {name}")
    base = pg_server.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    _admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(pg_server: str, tmp_path: Path) -> Iterator[str]:
    """`make mlflow-server` on a new PostgreSQL database; its tracking URI."""
    name = f"t_{uuid.uuid4().hex[:12]}_mlflow"
    _admin(pg_server, f"CREATE DATABASE {name}")
    port = free_port()
    env = dict(os.environ, SEEDSWEEP_MLFLOW_DB_URL=f"{pg_server.rsplit('/', 1)[0]}/{name}",
               PORT=str(port), ARTIFACTS=str(tmp_path / "server-artifacts"), MLFLOW_WORKERS="2")
    log = open(tmp_path / "mlflow-server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.mlflow_server"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while "workers: export" not in (tmp_path / "mlflow-server.log").read_text():
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "mlflow-server.log").read_text()
        time.sleep(0.5)
    yield uri
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    log.close()
    _admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def venv_is_made() -> bool:
    """Whether the tests run in a .venv that `make` made and considers up to date."""
    made = Path(sys.executable).parents[1] / ".installed"
    return made.is_file() and made.stat().st_mtime >= (REPO / "pyproject.toml").stat().st_mtime


def overrides(csv: Path) -> list[str]:
    return ["data=csv", f"data.path={csv}", "search_space=dan_tiny", "sampler=grid", "pruner=none",
            "model.embed_dim=16", "model.num_layers=1", "model.hidden_dim=16", "seeds=2",
            "train.max_epochs=12", "train.patience=12", "threads=1",
            "storage=postgres", "storage.heartbeat_interval=1", "storage.grace_period=4"]


@pytest.mark.slow
def test_a_worker_killed_on_one_host_has_its_trial_retried_by_another(
        tmp_path, database, mlflow_server, pg_server):
    csv = write_polarity_csv(tmp_path / "big.csv", n=3000)
    password = database.split("@")[0].rsplit(":", 1)[1]
    env = dict(os.environ, SEEDSWEEP_DB_URL=database, MLFLOW_TRACKING_URI=mlflow_server,
               SEEDSWEEP_CACHE=str(tmp_path / "cache"))
    made = subprocess.run([sys.executable, "-m", "sweeps.sweep", "--create-only", *overrides(csv)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert "make worker STUDY=dan-csv-grid" in made.stdout

    workers, logs = {}, {}
    for host in ("host-a", "host-b", "host-c"):  # distinct identities, as on three machines
        logs[host] = tmp_path / f"{host}.log"
        # host-c starts as a Slurm array task would: through the launchers' cluster/worker.sh
        # (`make worker`), where make would not rebuild the venv the tests run in
        cmd = ([str(REPO / "cluster" / "worker.sh")] if host == "host-c" and venv_is_made() else
               [sys.executable, "-m", "sweeps.sweep", "--join=dan-csv-grid", "storage=postgres", "threads=1"])
        job = {"STUDY": "dan-csv-grid", "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "2",
               "SLURM_CPUS_PER_TASK": "1", "VENV": str(Path(sys.executable).parents[1])}
        workers[host] = subprocess.Popen(
            cmd, cwd=REPO, env=dict(env, SEEDSWEEP_HOST=host, **(job if host == "host-c" else {})),
            start_new_session=True, stdout=open(logs[host], "w"), stderr=subprocess.STDOUT)

    optuna_store = store.open_storage(database, tmp_path)
    victim, killed_at = None, None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline:
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name="dan-csv-grid", storage=optuna_store)
        except KeyError:
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get(WORKER, "").startswith("host-b:") and t.intermediate_values:
                victim = t.number
                os.killpg(workers["host-b"].pid, signal.SIGKILL)  # mid-trial, an epoch reported
                killed_at = time.time()
                break
    assert victim is not None, logs["host-b"].read_text()[-3000:]
    codes = {h: p.wait(timeout=600) for h, p in workers.items()}
    output = {h: logs[h].read_text() for h in workers}
    assert codes["host-b"] == -signal.SIGKILL
    assert codes["host-a"] == 0 and codes["host-c"] == 0, output
    if venv_is_made():
        assert "make worker STUDY=dan-csv-grid" in output["host-c"] and "threads=1" in output["host-c"]

    study = optuna.load_study(study_name="dan-csv-grid", storage=optuna_store)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # the budget holds and each grid point completed exactly once
    assert len(complete) == 4 and {(t.params["model.word_dropout"], t.params["train.lr"])
                                   for t in complete} == GRID
    assert sum(store.counts_toward_budget(t) for t in trials) == 4
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed.number == victim and failed.user_attrs[INTERRUPTED]
    assert "heartbeat" in failed.user_attrs[FAIL_REASON]
    (retried,) = [t for t in complete if t.user_attrs.get(RETRY_OF) == victim]
    assert retried.params == failed.params
    assert retried.user_attrs[WORKER].split(":")[0] in ("host-a", "host-c")
    retry_after = retried.datetime_start.timestamp() - killed_at
    assert retry_after >= 4 - 1  # not before the grace period (1 s for clocks)

    # MLflow agrees trial for trial: one parent run each, in the state Optuna has
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("dan-csv-grid")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    by_trial = {t.number: t.user_attrs[MLFLOW_RUN_ID] for t in trials if MLFLOW_RUN_ID in t.user_attrs}
    assert sorted(by_trial) == sorted(t.number for t in trials)
    assert set(by_trial.values()) == set(parents)  # no run twice, no run without its trial
    for t in trials:
        run = parents[by_trial[t.number]]
        expected = "KILLED" if t.state == TrialState.FAIL else RUN_STATUS[t.state]
        assert (run.info.status, run.data.tags[TRIAL_STATE]) == (expected, t.state.name), t.number
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == by_trial[retried.number]]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)

    # the database password reached no log and no MLflow param or tag
    everything = made.stdout + made.stderr + "".join(output.values())
    assert password not in everything and "***" not in password
    for r in runs:
        assert password not in repr(r.data.params) + repr(r.data.tags)
    print(f"\nkill test: trial {victim} killed on host-b; retried as trial {retried.number} on "
          f"{retried.user_attrs[WORKER]} {retry_after:.1f} s after the kill (grace 4 s, heartbeat 1 s); "
          f"{len(trials)} trials, {len(parents)} parent runs")
