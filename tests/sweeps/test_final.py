"""The lockbox ledger holds: deleting or renaming MLflow records, two evaluations at once
or a kill while the test split is open never make a test evaluation count as the first."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

import sweeps.final
from sweeps.final import main as final_main
from sweeps.sweep import main as sweep_main
from tests.conftest import REPO
from tests.sweeps.test_sweep import overrides


@pytest.fixture
def evaluated(tmp_path, polarity_csv, capsys):
    """A one-trial study whose test set was evaluated once; its args and MLflow client."""
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "sweep.trials=1")
    assert sweep_main(args) == 0
    assert final_main(args) == 0
    capsys.readouterr()
    return args, MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def refused(args, capsys) -> str:
    assert final_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err


@pytest.mark.slow
def test_deleting_the_ledger_runs_does_not_reset_the_count(evaluated, capsys):
    args, client = evaluated
    lockbox = client.get_experiment_by_name("lockbox")
    for run in client.search_runs([lockbox.experiment_id]):
        client.delete_run(run.info.run_id)
    assert "already evaluated 1 time(s)" in refused(args, capsys)


@pytest.mark.slow
def test_renaming_the_lockbox_experiment_is_detected(evaluated, capsys):
    args, client = evaluated
    client.rename_experiment(client.get_experiment_by_name("lockbox").experiment_id, "old-ledger")
    err = refused(args, capsys)
    assert "records of 'dan-csv-grid' disagree (the lockbox ledger: 0" in err
    assert "counts as seen 1 time(s)" in err
    assert final_main([*args, "--reason=ledger renamed by mistake"]) == 0  # a recorded repeat
    assert "(a repeat)" in capsys.readouterr().out


@pytest.mark.slow
def test_a_kill_while_the_test_split_is_open_still_counts(tmp_path, polarity_csv, capsys, monkeypatch):
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "sweep.trials=1")
    assert sweep_main(args) == 0

    def killed(*a, **k):
        raise KeyboardInterrupt  # the process dies between the ledger entry and the results

    monkeypatch.setattr(sweeps.final, "test_split", killed)
    assert final_main(args) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert "already evaluated 1 time(s)" in refused(args, capsys)


@pytest.mark.slow
def test_two_evaluations_at_once_are_serialised(tmp_path, polarity_csv):
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "sweep.trials=1")
    assert sweep_main(args) == 0
    procs = [subprocess.Popen([sys.executable, "-m", "sweeps.final", *args], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    assert any("already evaluated 1 time(s)" in err for _, err in results)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("lockbox").experiment_id])) == 1


@pytest.mark.slow
def test_evaluations_at_once_from_other_folders_or_by_run_id_share_one_lock(tmp_path, polarity_csv):
    """The test-set lock follows what is evaluated (the tracking store and the study), not
    storage.dir: `make final RUN=<best run>` and `make final` with another storage.dir, made
    to count earlier evaluations at the same moment (faults.meet), still count one first."""
    import os

    import optuna

    from sweeps.core import faults
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "sweep.trials=1")
    assert sweep_main(args) == 0
    study = optuna.load_study(study_name="dan-csv-grid", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    env = {**os.environ, faults.MEET_ENV: f"final_counted:{tmp_path / 'met'}"}
    runs = [[*args, f"--run={study.trials[0].user_attrs['mlflow_run_id']}"],
            [*args, f"storage.dir={tmp_path / 'elsewhere'}"]]
    procs = [subprocess.Popen([sys.executable, "-m", "sweeps.final", *a], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in runs]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    assert any("already evaluated 1 time(s)" in err for _, err in results)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("lockbox").experiment_id])) == 1
