"""The Python entry point: a sweep and its results as a DataFrame, with plain values."""

from __future__ import annotations

import statistics

import pytest

from models.errors import UserError
from sweeps import api
from sweeps.final import main as final_main
from tests.sweeps.test_sweep import load


def settings(tmp_path, csv) -> dict:
    return {"data.path": str(csv), "search_space": "dan_tiny",
            "tracking.uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "tracking.artifacts": str(tmp_path / "art"),
            "storage.url": f"sqlite:///{tmp_path / 'optuna.db'}", "storage.dir": str(tmp_path / "locks"),
            "model.embed_dim": 16, "model.num_layers": 1, "model.hidden_dim": 16, "train.max_epochs": 3,
            "threads": 1}


def test_overrides_are_what_make_sweep_passes():
    assert api.overrides("dan", data="csv", trials=2, seeds=3,
                         settings={"train.lr": 0.01, "model.hidden_dims": [8, 4], "sweep.new": True,
                                   "model.activation": "tanh"}) == [
        "model=dan", "data=csv", "sweep.trials=2", "seeds=3", "train.lr=0.01", "model.hidden_dims=[8,4]",
        "sweep.new=true", "model.activation=tanh"]


def test_sweep_then_one_row_per_trial_and_seed(tmp_path, polarity_csv):
    s = settings(tmp_path, polarity_csv)
    name = api.sweep("dan", data="csv", sampler="grid", trials=2, seeds=2, settings=s, quiet=True)
    assert name == "dan-csv-grid"
    df = api.results(name, settings=s)
    study = load(tmp_path, name)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(df) == 2 * len(finished) == 4
    assert {"trial", "state", "value", "seed", "dev", "best_epoch", "train.lr",
            "model.word_dropout"} <= set(df)
    for t in finished:  # the rows are the trial's seeds, and their mean is its value
        rows = df[df.trial == t.number]
        assert list(rows.seed) == t.user_attrs["seeds"]
        assert statistics.fmean(rows.dev) == pytest.approx(t.value)
        assert rows["train.lr"].iloc[0] == t.params["train.lr"]
    assert "test_accuracy" not in api.results(name, settings=s, with_test=True)
    (row,) = api.verdict(name, settings=s).to_dict("records")  # the winner against the other
    best = max(finished, key=lambda t: t.value)
    assert row["winner"] == best.number and row["seeds"] == 2 and row["diff"] >= 0
    assert row["verdict"].startswith((f"trial {best.number} beats", f"trials {best.number} and"))

    # after the final evaluation, each seed's test accuracy joins its row
    args = api.overrides("dan", data="csv", sampler="grid", settings=s)
    assert final_main(args) == 0
    tested = api.results(name, settings=s, with_test=True)
    chosen = set(tested.trial[tested.test_accuracy.notna()])
    assert len(chosen) == 1 and tested.test_accuracy.isna().sum() == 2  # one trial, both its seeds
    (trial,) = chosen  # a trial with the best dev mean (two may tie on this tiny data)
    assert tested.value[tested.trial == trial].iloc[0] == tested.value.max()


def test_unknown_study_is_a_clear_error(tmp_path, polarity_csv):
    with pytest.raises(UserError, match="no study 'nope'"):
        api.results("nope", settings=settings(tmp_path, polarity_csv))
