"""Kills at each named point of a trial's life, a full disk, a locked database: a rerun
of the same command finishes the budget and leaves Optuna and MLflow agreeing."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from models.errors import UserError
from sweeps.core import faults
from sweeps.core.faults import EnvironmentFailure, environment_failure
from sweeps.core.records import TRIAL_STATE
from sweeps.search.reconcile import reconcile
from sweeps.sweep import main
from sweeps.tracking.tracker import Tracker
from tests.conftest import REPO
from tests.sweeps.test_sweep import load, overrides

STUDY = "dan-csv-grid"


def agree(tmp_path) -> None:
    """Every finished trial's runs are ended and tagged with its state; none RUNNING."""
    study = load(tmp_path, STUDY)
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert reconcile(study, Tracker(STUDY, f"sqlite:///{tmp_path / 'mlflow.db'}"), repair=False) == []
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(STUDY).experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    by_id = {r.info.run_id: r for r in runs}
    for t in study.trials:
        if run_id := t.user_attrs.get("mlflow_run_id"):
            assert by_id[run_id].data.tags[TRIAL_STATE] == t.state.name


@pytest.mark.slow
@pytest.mark.parametrize("point", faults.POINTS)
def test_a_kill_at_each_named_point_then_a_rerun_leaves_the_stores_agreeing(tmp_path, polarity_csv, point):
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "seeds=1", "train.max_epochs=2")
    env = {**os.environ, faults.CRASH_ENV: point}
    first = subprocess.run([sys.executable, "-m", "sweeps.sweep", *args], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == -9, first.stderr[-2000:]  # killed where asked
    assert main(args) == 0
    study = load(tmp_path, STUDY)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len({tuple(t.params.items()) for t in complete}) == 4 == len(complete)  # nothing lost or twice
    agree(tmp_path)


def test_a_full_disk_puts_the_trial_back_and_the_same_command_resumes(tmp_path, polarity_csv, monkeypatch,
                                                                     capsys):
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "train.max_epochs=3")
    real = Tracker.log_metrics
    calls = {"n": 0}

    def full_disk(self, run_id, values, step=0, wait=True):
        calls["n"] += 1
        if calls["n"] > 8:  # trial 0 logs fine, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device", "runs/mlflow.db")
        return real(self, run_id, values, step, wait)

    monkeypatch.setattr(Tracker, "log_metrics", full_disk)
    assert main(args) == 75
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "make sweep" in err
    study = load(tmp_path, STUDY)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed and all(t.user_attrs["interrupted"] for t in failed)  # counted for nothing
    assert len(study.get_trials(states=(TrialState.WAITING,))) >= 1  # queued again

    monkeypatch.setattr(Tracker, "log_metrics", real)  # space freed
    assert main(args) == 0
    complete = load(tmp_path, STUDY).get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4 and len({tuple(t.params.items()) for t in complete}) == 4
    agree(tmp_path)


def test_environment_failures_are_told_from_trial_failures():
    import sqlite3

    assert "No space left" in environment_failure(OSError(errno.ENOSPC, "No space left on device"))
    locked = RuntimeError("write failed")
    locked.__cause__ = sqlite3.OperationalError("database is locked")
    assert environment_failure(locked) == "database is locked"
    assert environment_failure(ValueError("lower the learning rate")) is None
    assert environment_failure(OSError(errno.ENOENT, "missing")) is None
    # nor from bad input: a sweep exits 75 (resumable) on it, not 2 as on a UserError
    assert not issubclass(EnvironmentFailure, UserError)


UNREACHABLE = "http://u:pw@127.0.0.1:1"  # port 1: nothing listens, the connection is refused


def test_an_unreachable_tracking_server_ends_the_sweep_in_one_redacted_sentence(tmp_path, polarity_csv):
    """Not MLflow's ~4 minutes of silent retries then a traceback with the raw URL: exit 75,
    one line without the password, before a study is made (the generous timeout only stops a
    hang; the speed is not what is asserted)."""
    args = [a if not a.startswith("tracking.uri=") else f"tracking.uri={UNREACHABLE}"
            for a in overrides(tmp_path, polarity_csv, "sweep.trials=1")]
    done = subprocess.run([sys.executable, "-m", "sweeps.sweep", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=150)
    assert done.returncode == 75, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and "pw" not in done.stderr + done.stdout
    assert "http://u:***@127.0.0.1:1" in done.stderr and "tracking server" in done.stderr
    assert not (tmp_path / "optuna.db").exists()  # nothing made: the rerun starts clean


def test_other_commands_answer_an_unreachable_tracking_server_with_exit_75(tmp_path, polarity_csv, capsys):
    from sweeps.train import main as train_main
    from tests.conftest import tiny_overrides
    assert train_main(tiny_overrides(polarity_csv, UNREACHABLE, tmp_path)) == 75
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pw" not in err and "u:***@127.0.0.1:1" in err


def test_a_tracking_server_lost_mid_trial_is_one_redacted_sentence_and_exit_75(tmp_path, polarity_csv,
                                                                                monkeypatch, capsys):
    """MLflow's own error, after its retries, quotes the URL with its password."""
    from sweeps.search import study
    lost = RuntimeError(f"API request to {UNREACHABLE}/api/2.0/mlflow/runs/log-batch failed with exception "
                        "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded")
    assert environment_failure(lost)

    def cut_off(self, *a, **k):
        raise lost
    monkeypatch.setattr(study.Sweep, "run_trial", cut_off)  # outside the trial's own handler
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=1")) == 75
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pw" not in err and "http://u:***@127.0.0.1:1/api" in err


def test_doctor_fails_a_trial_whose_worker_was_killed_and_ends_its_runs(tmp_path, polarity_csv, capsys):
    """A worker SIGKILLed mid-trial leaves the trial RUNNING in Optuna and its runs RUNNING in
    MLflow: `make doctor` reports it (dry run: repairs nothing), then fails it as interrupted,
    queues its configuration again and ends its runs KILLED; a second doctor finds nothing."""
    from sweeps.doctor import main as doctor
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "seeds=1", "train.max_epochs=2")
    killed = subprocess.run([sys.executable, "-m", "sweeps.sweep", *args], cwd=REPO, capture_output=True,
                            env={**os.environ, faults.CRASH_ENV: "epoch_logged"}, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert load(tmp_path, STUDY).get_trials(states=(TrialState.RUNNING,))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")

    def runs():
        return client.search_runs([client.get_experiment_by_name(STUDY).experiment_id])
    assert any(r.info.status == "RUNNING" for r in runs())

    assert doctor([*args, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "RUNNING, but its worker" in dry and "0 disagreement" not in dry
    assert any(r.info.status == "RUNNING" for r in runs())  # a dry run repairs nothing

    assert doctor(args) == 0
    out = capsys.readouterr().out
    assert "RUNNING, but its worker" in out and "0 disagreement" not in out
    # the dry run listed what the repair did, line for line, counted alike: one dead trial
    # (it once said 1 disagreement found, then 4 repaired: its runs and state tag came after)
    assert dry.replace("to fail and retry", "failed as interrupted and queued again").replace(
        "found", "repaired") == out and "disagreement(s) repaired in 1 trial(s)." in out, (dry, out)
    assert out.count("left RUNNING, ended KILLED") >= 2  # the parent run and its seed run
    study = load(tmp_path, STUDY)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].user_attrs["interrupted"]
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 4  # its point queued again
    assert {r.info.status for r in runs()} == {"KILLED"}
    assert {r.data.tags[TRIAL_STATE] for r in runs() if "mlflow.parentRunId" not in r.data.tags} == {"FAIL"}
    assert doctor(args) == 0
    assert "0 disagreement(s) repaired" in capsys.readouterr().out


def test_a_failed_trial_s_reason_is_stored_and_printed_without_credentials(tmp_path, polarity_csv,
                                                                          monkeypatch, capsys):
    """A trial's own error quoting a URL with its password went raw into Optuna's
    fail_reason and onto the terminal (only the MLflow tag was redacted) (review)."""
    from sweeps.core.records import FAIL_REASON
    from sweeps.search import objective

    def refused(*a, **k):
        raise ValueError("login refused by postgresql://ann:hunter2@db/x")
    monkeypatch.setattr(objective, "run_config", refused)
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=1")) == 0
    (trial,) = load(tmp_path, "dan-csv-random").trials
    assert trial.user_attrs[FAIL_REASON] == "ValueError: login refused by postgresql://ann:***@db/x"
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err


@pytest.mark.parametrize("error, status", [(ValueError("no room for the models"), "FAILED"),
                                           (KeyboardInterrupt(), "KILLED")])
def test_seed_runs_started_beside_a_build_that_fails_are_ended(tmp_path, polarity_csv, error, status):
    """A trial's seed runs are created while its models are built (sweeps/search/seeds.py):
    when the build fails or is interrupted, the runs already created end, none left RUNNING."""
    from sweeps.config.compose import compose_config
    from sweeps.config.workloads import build_workload
    from sweeps.search.seeds import run_config
    from tests.conftest import tiny_overrides

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    workload = build_workload(compose_config(tiny_overrides(polarity_csv, uri, tmp_path)))

    def fails(seeds):
        raise error
    workload.trainers = fails
    tracker = Tracker("build-fails", uri)
    parent = tracker.start_run("trial 0", {"lr": 0.1}, wait=False)  # params in the background
    with pytest.raises(type(error)):
        run_config(workload, [1, 2], tracker, parent)
    children = tracker.child_runs(parent)
    assert len(children) == 2 and {c.info.status for c in children} == {status}
    run = tracker.get_run(parent)  # the parent run ends too, with what it was sent
    assert run.info.status == status and run.data.params == {"lr": "0.1"}


@pytest.mark.slow
def test_a_full_disk_in_a_worker_stops_the_sweep_with_75_and_the_same_command_resumes(tmp_path):
    """With workers (sweep.workers=auto's default on several cores) a worker's environment
    failure once went unseen until the sweep's own process had run the rest of the budget
    alone, and then ended with exit 1; it stops the sweep before its next trial, with 75."""
    from tests.conftest import write_polarity_csv
    from tests.sweeps.test_sweep import SLOW_TRIALS
    csv = write_polarity_csv(tmp_path / "big.csv", n=4000)
    args = overrides(tmp_path, csv, *SLOW_TRIALS)
    env = {**os.environ, "SEEDSWEEP_WORKERS": "2"}
    full = subprocess.run([sys.executable, "-m", "sweeps.sweep", *args], cwd=REPO, capture_output=True,
                          env={**env, faults.FULL_ENV: "epoch_logged@worker",  # both mid-way first
                               faults.MEET_ENV: f"epoch_logged:{tmp_path / 'met'}"}, text=True, timeout=600)
    assert "2 worker processes (this one and 1 more)" in full.stdout, full.stdout
    assert full.returncode == 75, full.stderr[-2000:]
    assert "no space left on device" in full.stderr.lower() and "Traceback" not in full.stderr
    assert "run the same command to resume" in full.stderr
    study = load(tmp_path, STUDY)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) < 4  # it stopped; not all run alone
    assert not study.get_trials(states=(TrialState.RUNNING,))
    again = subprocess.run([sys.executable, "-m", "sweeps.sweep", *args], cwd=REPO, capture_output=True,
                           env=env, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(load(tmp_path, STUDY).get_trials(states=(TrialState.COMPLETE,))) == 4
    agree(tmp_path)
