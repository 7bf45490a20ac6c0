"""`make final` on a search that has not run its budget refuses, says how far it got and
how to go on, and reads no test split; an explicit override evaluates it (issue 34)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from sweeps.final import main as final_main
from sweeps.sweep import main as sweep_main
from tests.sweeps.test_sweep import load, overrides


@pytest.mark.slow
def test_final_refuses_an_unfinished_search(tmp_path, polarity_csv, monkeypatch, capsys):
    reads = tmp_path / "test_reads.log"
    monkeypatch.setenv("SEEDSWEEP_TEST_READ_LOG", str(reads))
    assert sweep_main(overrides(tmp_path, polarity_csv, "sweep.trials=1", "seeds=1")) == 0
    args = overrides(tmp_path, polarity_csv, "sweep.trials=3", "seeds=1")
    assert sweep_main(["--create-only", *args]) == 0  # the budget is now 3: a search stopped after 1
    capsys.readouterr()

    assert final_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ran 1 of its 3 trials" in err, err
    assert "make sweep MODEL=dan DATA=csv TRIALS=3 SEEDS=1" in err  # what the sweep prints to resume
    assert "ALLOW_UNFINISHED=1" in err and "--allow-unfinished" in err
    assert not reads.exists()  # no test split read, and no evaluation counted
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_experiment_by_name("lockbox") is None
    assert "test_evaluations" not in load(tmp_path, "dan-csv-random").user_attrs

    assert final_main([*args, "--allow-unfinished"]) == 0
    out = capsys.readouterr().out
    assert "test evaluations of dan-csv-random: 1" in out and "1 of its 3 trials" in out
    assert len(reads.read_text().splitlines()) == 1
