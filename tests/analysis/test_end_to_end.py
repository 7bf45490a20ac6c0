"""Sweep, final evaluation and report end to end; the report agrees with MLflow."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from analysis.report import main as report_main
from analysis.stats import expected_max
from sweeps.final import main as final_main
from sweeps.sweep import main as sweep_main
from tests.sweeps.test_sweep import overrides

STUDY = "dan-csv-grid"


def _mlflow(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(STUDY)
    return client, client.search_runs([exp.experiment_id])


def _mean_std(values):
    return pytest.approx(statistics.fmean(values)), pytest.approx(statistics.stdev(values))


@pytest.mark.slow
def test_sweep_final_report(tmp_path, polarity_csv, monkeypatch, capsys):
    log = tmp_path / "test_reads.log"
    monkeypatch.setenv("SEEDSWEEP_TEST_READ_LOG", str(log))
    args = overrides(tmp_path, polarity_csv, "sampler=grid")
    assert sweep_main(args) == 0
    assert not log.exists()  # the sweep never touched the test split

    assert final_main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "test evaluations of dan-csv-grid: 1" in out
    assert len(log.read_text().splitlines()) == 1  # read exactly once, by the final step

    reports = tmp_path / "reports"
    assert report_main([*args, f"--out={reports}"]) == 0
    assert len(log.read_text().splitlines()) == 1  # the report reads no test split
    for name in ("trials.md", "trials.tex", "trials.csv", "results.md", "results.tex", "results.csv",
                 "significance.md", "report.md", "curves.png", "params.png", "expected_max.png"):
        assert (reports / name).stat().st_size > 0, name
    report = (reports / "report.md").read_text()
    assert "test-set evaluations of this study: **1**" in report
    for png in ("curves.png", "params.png", "expected_max.png"):
        assert f"({png})" in report
    assert "\\toprule" in (reports / "trials.tex").read_text()

    # The report's numbers equal those recomputed straight from MLflow.
    client, runs = _mlflow(tmp_path)
    children: dict[str, list] = {}
    for r in runs:
        if parent := r.data.tags.get("mlflow.parentRunId"):
            children.setdefault(parent, []).append(r)
    parents = {int(r.data.params["trial"]): r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    trials = pd.read_csv(reports / "trials.csv")
    assert len(trials) == 4
    for _, row in trials.iterrows():  # numbers in the CSV, mean and std apart
        seeds = children[parents[row["trial"]].info.run_id]
        assert (row["dev mean"], row["dev std"]) == _mean_std([c.data.metrics["best_dev_accuracy"]
                                                               for c in seeds])
        assert row["seed-epochs"] == sum(c.data.metrics["epochs_run"] for c in seeds)
    results = pd.read_csv(reports / "results.csv")
    best = results.iloc[0]
    seeds = children[parents[best["trial"]].info.run_id]
    assert (best["csv test† mean"], best["csv test† std"]) == _mean_std(
        [c.data.metrics["test_accuracy"] for c in seeds])
    assert (best["csv dev mean"], best["csv dev std"]) == _mean_std(
        [c.data.metrics["best_dev_accuracy"] for c in seeds])
    assert "dev mean ± std" in (reports / "trials.md").read_text()  # text only in md and tex
    assert "\\resizebox{\\linewidth}" in (reports / "trials.tex").read_text()
    # the study's identity is in the report; K=2 and 4 trials get their warnings
    assert "## Study settings" in report and "fingerprint `" in report
    assert "`train.max_epochs`" not in report and "| train.max_epochs | 3 |" in report
    significance = (reports / "significance.md").read_text()
    assert "With fewer than 5 seeds the intervals are wide" in significance
    assert "P(winner > other)" in significance and "## How sure is the winner?" in report
    assert "Only 4 completed trials" in significance
    # the terminal shows the verdict's sentences, as significance.md words them, and no caveat line
    said = capsys.readouterr().out.splitlines()
    assert said[0] == f"report: {reports / 'report.md'}"
    sentences = [line[2:] for line in significance.splitlines() if line.startswith("- trial")]
    assert len(sentences) == 3 and said[1:] == [f"  {x}" for x in sentences], said


@pytest.mark.slow
def test_second_test_evaluation_needs_a_reason(tmp_path, polarity_csv, capsys):
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "sweep.trials=1")
    assert sweep_main(args) == 0
    assert final_main(args) == 0
    capsys.readouterr()
    assert final_main(args) == 2
    assert "already evaluated 1 time(s)" in capsys.readouterr().err
    assert final_main([*args, "--reason=fixed a tokenisation bug"]) == 0
    assert "(a repeat)" in capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    ledger = client.search_runs([client.get_experiment_by_name("lockbox").experiment_id],
                                order_by=["attributes.start_time ASC"])
    assert [r.data.params["repeat"] for r in ledger] == ["False", "True"]
    assert ledger[1].data.params["reason"] == "fixed a tokenisation bug"
    assert {"scope", "trial", "config_hash", "seeds", "git_commit", "time"} <= set(ledger[0].data.params)


def test_expected_max_is_monotone_and_ends_near_the_max():
    values = [0.70, 0.75, 0.72, 0.80, 0.78]
    curve = expected_max(values)
    assert curve[0] == pytest.approx(statistics.fmean(values))
    assert all(b >= a for a, b in zip(curve, curve[1:]))
    assert curve[-1] <= 0.80 and curve[-1] > 0.77
    low = expected_max([3.0, 2.0, 5.0], maximize=False)
    assert low[0] == pytest.approx(10 / 3) and low[-1] < low[0]
