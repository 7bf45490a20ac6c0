"""Sweeps end to end: study and MLflow agree, pruning on the seed mean, failures, resume
after SIGKILL, and several workers sharing a grid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweeps.core import faults
from sweeps.core.records import MLFLOW_RUN_ID, TRIAL_STATE
from sweeps.search.study import Sweep
from sweeps.sweep import main
from tests.conftest import REPO, write_polarity_csv
from tests.sweeps.scripted import scripted_factory

GRID = {(0.0, 0.01), (0.0, 0.1), (0.3, 0.01), (0.3, 0.1)}  # conf/search_space/dan_tiny.yaml


def overrides(tmp_path: Path, csv: Path, *extra: str) -> list[str]:
    return [
        "data=csv", f"data.path={csv}", "search_space=dan_tiny",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"tracking.artifacts={tmp_path / 'art'}",
        f"storage.url=sqlite:///{tmp_path / 'optuna.db'}", f"storage.dir={tmp_path / 'locks'}",
        "model.embed_dim=16", "model.num_layers=1", "model.hidden_dim=16", "seeds=2",
        "train.max_epochs=3", "threads=1", *extra,
    ]


def load(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def grid_of(trials) -> set[tuple[float, float]]:
    return {(t.params["model.word_dropout"], t.params["train.lr"]) for t in trials}


def mlflow_runs(tmp_path: Path, experiment: str):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return client, parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_grid_sweep_study_and_mlflow_agree(tmp_path, polarity_csv, capsys):
    assert main(overrides(tmp_path, polarity_csv, "sampler=grid", "sweep.keep_weights=1", "device=cpu")) == 0
    out = capsys.readouterr().out
    assert "study dan-csv-grid: 4 complete" in out and "dev mean ± std" in out

    study = load(tmp_path, "dan-csv-grid")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(study.trials) == 4 and grid_of(trials) == GRID
    client, parents, children = mlflow_runs(tmp_path, "dan-csv-grid")
    assert len(parents) == 4 and len(children) == 8
    by_id = {p.info.run_id: p for p in parents}
    for t in trials:
        run = by_id[t.user_attrs[MLFLOW_RUN_ID]]
        assert run.data.metrics["best_dev_accuracy_mean"] == pytest.approx(t.value)
        assert run.data.tags[TRIAL_STATE] == "COMPLETE"
        assert run.data.params["trial"] == str(t.number)
        assert run.data.params["seeds"] == " ".join(map(str, t.user_attrs["seeds"]))
        assert run.data.params["device"] == "cpu" and run.data.tags["seeds_vectorized"] == "true"
        assert t.user_attrs["seed_values"] and len(t.user_attrs["best_epochs"]) == 2
    # Only the best trial keeps its seeds' weights.
    best = max(trials, key=lambda t: t.value)
    with_weights = {c.data.tags["mlflow.parentRunId"] for c in children
                    if client.list_artifacts(c.info.run_id, "weights")}
    assert with_weights == {best.user_attrs[MLFLOW_RUN_ID]}

    # The same command again resumes a finished study: nothing more runs. Where trials are
    # computed (device, stacked seeds or not) is no part of the study's identity.
    assert main(overrides(tmp_path, polarity_csv, "sampler=grid", "train.vectorize_seeds=false")) == 0
    assert len(load(tmp_path, "dan-csv-grid").trials) == 4


def test_random_sweep_runs_its_budget_and_resumes_with_more(tmp_path, polarity_csv):
    Sweep(overrides(tmp_path, polarity_csv, "sweep.trials=2"), quiet=True).run()
    Sweep(overrides(tmp_path, polarity_csv, "sweep.trials=3"), quiet=True).run()
    study = load(tmp_path, "dan-csv-random")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert len({tuple(t.params.items()) for t in study.trials}) == 3  # no replayed draws


def test_a_stagnant_seed_mean_ends_the_trial_as_complete(tmp_path, polarity_csv):
    # Seed mean (best so far) 0.5, 0.8, 0.8, 0.8, 0.8: with patience 2 it has not improved
    # over the last 3 epochs at epoch 5, so the trial ends there with each seed's best.
    curve = [0.5, 0.8, 0.7, 0.7, 0.7, 0.9, 0.9]
    sweep = Sweep(overrides(tmp_path, polarity_csv, "sweep.trials=1", "pruner.patience=2", "pruner.wrap=none",
                            "train.max_epochs=7", "train.patience=10"),
                  quiet=True, workload_factory=scripted_factory(curve))
    sweep.run()
    (trial,) = sweep.study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx(0.8)
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4, 5]
    assert trial.user_attrs["stopped_early"] and trial.user_attrs["seed_epochs"] == 2 * 5
    _, parents, children = mlflow_runs(tmp_path, "dan-csv-random")
    assert parents[0].data.tags[TRIAL_STATE] == "COMPLETE"
    assert all(c.info.status == "FINISHED" for c in children)


GOOD, BAD = [0.6, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], [0.5, 0.55, 0.55, 0.55, 0.55, 0.55, 0.55, 0.55]


def by_lr(cfg):
    return GOOD if cfg.train.lr > 0.05 else BAD


@pytest.mark.parametrize("prune_improving, bad_pruned_at", [(False, 4), (True, 1)])
def test_an_unpromising_trial_is_pruned_on_the_seed_mean(tmp_path, polarity_csv, prune_improving,
                                                          bad_pruned_at):
    # Grid order: (wd 0, lr .01) bad, (0, .1) good, (.3, .01) bad, (.3, .1) good. After two
    # completed trials the median at each epoch lies between the curves, so the second bad
    # trial is pruned: once it stagnates (epoch 4), or at once with prune_improving.
    sweep = Sweep(overrides(tmp_path, polarity_csv, "sampler=grid", "pruner.n_startup_trials=2",
                            "pruner.patience=1",
                            "pruner.n_warmup_steps=0", f"pruner.prune_improving={prune_improving}",
                            "train.max_epochs=8", "train.patience=10"),
                  quiet=True, workload_factory=scripted_factory(by_lr))
    sweep.run()
    states = [t.state for t in sorted(sweep.study.trials, key=lambda t: t.number)]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    pruned = sweep.study.trials[2]
    assert max(pruned.intermediate_values) == bad_pruned_at
    assert pruned.user_attrs["seed_epochs"] == 2 * bad_pruned_at
    good = [t for t in sweep.study.trials if t.params["train.lr"] == 0.1]
    assert all(t.value == pytest.approx(0.9) and max(t.intermediate_values) == 5 for t in good)
    from sweeps.search.summary import summary
    assert "1 pruned after" in summary(sweep.study, 3)


def test_without_pruner_the_same_trial_completes(tmp_path, polarity_csv):
    curve = [0.5, 0.8, 0.7, 0.7, 0.7, 0.9, 0.9]
    sweep = Sweep(overrides(tmp_path, polarity_csv, "sweep.trials=1", "pruner=none",
                            "train.max_epochs=7", "train.patience=10"),
                  quiet=True, workload_factory=scripted_factory(curve))
    sweep.run()
    (trial,) = sweep.study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx(0.9)


def test_only_trials_that_saved_weights_have_them_deleted(tmp_path, polarity_csv, monkeypatch):
    """A trial that could not be among the top k saved no weights: when it ends outside the
    top k there is nothing to delete, and no MLflow search or deletion is spent on it."""
    from sweeps.tracking import seed_runs

    values = [0.7, 0.6, 0.9, 0.5]  # trial by trial: saved, not, saved (the first drops out), not
    deleted: list[str] = []
    real = seed_runs.delete_weights
    monkeypatch.setattr(seed_runs, "delete_weights", lambda tracker, parent: (deleted.append(parent),
                                                                               real(tracker, parent)))
    curves = iter([0.0, *values])  # the sweep's own check of the config, before any trial, builds one
    sweep = Sweep(overrides(tmp_path, polarity_csv, "sweep.trials=4", "pruner=none", "sweep.keep_weights=1"),
                  quiet=True, workload_factory=scripted_factory(lambda cfg: [next(curves)]))
    sweep.run()
    trials = sorted(sweep.study.trials, key=lambda t: t.number)
    assert [t.value for t in trials] == values
    assert [t.user_attrs["weights_saved"] for t in trials] == [True, False, True, False]
    assert deleted == [trials[0].user_attrs[MLFLOW_RUN_ID]]
    assert sweep.study.user_attrs["weights_deleted"] == [0, 1, 3]
    client, _, children = mlflow_runs(tmp_path, "dan-csv-random")
    with_weights = {c.data.tags["mlflow.parentRunId"] for c in children
                    if client.list_artifacts(c.info.run_id, "weights")}
    assert with_weights == {trials[2].user_attrs[MLFLOW_RUN_ID]}


def test_nan_loss_fails_the_trial_and_the_sweep_goes_on(tmp_path, polarity_csv):
    sweep = Sweep(overrides(tmp_path, polarity_csv, "sampler=grid"), quiet=True,
                  workload_factory=scripted_factory([0.5, 0.6, 0.7], nan_when_lr_above=0.05))
    sweep.run()
    states = {t.params["train.lr"]: t.state for t in sweep.study.trials}
    failed = [t for t in sweep.study.trials if t.state == TrialState.FAIL]
    assert len(sweep.study.trials) == 4 and len(failed) == 2
    assert states[0.01] == TrialState.COMPLETE
    assert all("NonFiniteLossError" in t.user_attrs["fail_reason"] for t in failed)
    _, parents, _ = mlflow_runs(tmp_path, "dan-csv-grid")
    fails = [p for p in parents if p.data.tags[TRIAL_STATE] == "FAIL"]
    assert len(fails) == 2 and all(p.info.status == "FAILED" for p in fails)
    assert all("nan" in p.data.tags["fail_reason"] for p in fails)


SLOW_TRIALS = ("sampler=grid", "pruner=none", "train.max_epochs=15", "train.patience=15")


def wait_mid_trial(tmp_path: Path, proc: subprocess.Popen, after: int, before: int = 3) -> int | None:
    """Poll the study until a trial numbered in [after, before) is RUNNING and has reported
    an epoch (never the grid's last, so the sweep cannot be ending); its number, or None if
    the sweep process ended first."""
    store = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            study = optuna.load_study(study_name="dan-csv-grid", storage=store)
        except KeyError:
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if after <= t.number < before and t.intermediate_values:
                return t.number
    return None


def sweep_cmd(tmp_path, csv, *extra):
    return [sys.executable, "-m", "sweeps.sweep", *overrides(tmp_path, csv, *extra)]


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume_completes_the_budget(tmp_path):
    csv = write_polarity_csv(tmp_path / "big.csv", n=4000)
    args = SLOW_TRIALS
    log = open(tmp_path / "first_run.log", "w")
    proc = subprocess.Popen(sweep_cmd(tmp_path, csv, *args), cwd=REPO, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)
    killed_trial = wait_mid_trial(tmp_path, proc, after=1)  # trial 0 done, trial 1 mid-way
    if killed_trial is not None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    assert killed_trial is not None, (tmp_path / "first_run.log").read_text()[-3000:]
    before = {t.number: t.value for t in load(tmp_path, "dan-csv-grid").trials
              if t.state == TrialState.COMPLETE}

    rerun = subprocess.run(sweep_cmd(tmp_path, csv, *args), cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    study = load(tmp_path, "dan-csv-grid")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert grid_of(complete) == GRID and len(complete) == 4  # budget done, nothing repeated
    assert {n: v for n, v in ((t.number, t.value) for t in complete) if n in before} == before
    (failed,) = study.get_trials(states=(TrialState.FAIL,))
    assert failed.number == killed_trial and failed.user_attrs["interrupted"]
    retried = [t for t in complete if t.user_attrs.get("retry_of") == killed_trial]
    assert len(retried) == 1 and retried[0].params == failed.params
    _, parents, children = mlflow_runs(tmp_path, "dan-csv-grid")
    assert not [r for r in parents + children if r.info.status == "RUNNING"]
    killed = [p for p in parents if p.info.run_id == failed.user_attrs[MLFLOW_RUN_ID]]
    assert killed[0].info.status == "KILLED" and killed[0].data.tags[TRIAL_STATE] == "FAIL"


@pytest.mark.slow
def test_two_workers_run_each_grid_point_exactly_once(tmp_path, polarity_csv):
    # the sweep's own process is worker 0 and may run every tiny trial before the worker it
    # started has loaded; their first trials meet at their first epoch (sweeps/core/faults.py)
    proc = subprocess.run(sweep_cmd(tmp_path, polarity_csv, "sampler=grid", "sweep.workers=2"),
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, faults.MEET_ENV: f"epoch_logged:{tmp_path / 'met'}"})
    assert proc.returncode == 0, proc.stderr
    assert "database is locked" not in proc.stderr
    study = load(tmp_path, "dan-csv-grid")
    assert len(study.trials) == 4
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert grid_of(study.trials) == GRID
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2  # both workers took trials
    _, parents, children = mlflow_runs(tmp_path, "dan-csv-grid")
    assert len(parents) == 4 and len(children) == 8
    assert all(r.info.status == "FINISHED" for r in parents + children)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_study_resumes(tmp_path):
    csv = write_polarity_csv(tmp_path / "big.csv", n=4000)
    args = SLOW_TRIALS
    # A child inherits an ignored SIGINT from its parent; give it the default, as a shell would.
    proc = subprocess.Popen(sweep_cmd(tmp_path, csv, *args), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    mid = wait_mid_trial(tmp_path, proc, after=0)
    if mid is not None:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert mid is not None, "the sweep ended before a trial was seen mid-way"
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    study = load(tmp_path, "dan-csv-grid")
    assert not study.get_trials(states=(TrialState.RUNNING,))
    (stopped,) = study.get_trials(states=(TrialState.FAIL,))
    assert stopped.user_attrs["interrupted"]
    _, parents, children = mlflow_runs(tmp_path, "dan-csv-grid")
    assert not [r for r in parents + children if r.info.status == "RUNNING"]

    assert main(overrides(tmp_path, csv, *args)) == 0
    complete = load(tmp_path, "dan-csv-grid").get_trials(states=(TrialState.COMPLETE,))
    assert grid_of(complete) == GRID and len(complete) == 4


def test_resuming_a_study_with_another_search_space_is_an_error(tmp_path, polarity_csv, capsys):
    Sweep(overrides(tmp_path, polarity_csv, "sweep.trials=1"), quiet=True).run()
    other = [o for o in overrides(tmp_path, polarity_csv, "sweep.trials=2") if o != "search_space=dan_tiny"]
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "was created with other settings" in err and "search space: model.activation now searched" in err


@pytest.mark.slow
def test_a_worker_whose_sweep_is_killed_puts_its_trial_back_and_stops(tmp_path, polarity_csv):
    """The workers a sweep starts run in their own process group (a terminal's Ctrl-C goes
    to the sweep, which stops each once): when the sweep itself is killed, each is sent a
    SIGTERM (PR_SET_PDEATHSIG) rather than running on unseen and failing its trial on the
    closed pipe of its progress."""
    met = tmp_path / "met"
    proc = subprocess.Popen(sweep_cmd(tmp_path, polarity_csv, *SLOW_TRIALS, "sweep.workers=2"), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, faults.MEET_ENV: f"epoch_logged:{met}"})
    deadline = time.time() + 120
    while time.time() < deadline and len(list(met.glob("*"))) < 2:
        time.sleep(0.1)
    pids = {int(p.name) for p in met.glob("*")}
    assert len(pids) == 2 and proc.pid in pids, pids  # both mid-way through their first trial
    (worker,) = pids - {proc.pid}
    proc.kill()
    proc.wait()
    while time.time() < deadline:
        try:  # gone, or a zombie no one has reaped yet
            if Path(f"/proc/{worker}/stat").read_text().split(")")[-1].split()[0] == "Z":
                break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker ran on after its sweep was killed")
    study = load(tmp_path, "dan-csv-grid")
    (mine,) = [t for t in study.trials if t.user_attrs.get("worker", "").endswith(f":{worker}")]
    assert mine.state == TrialState.FAIL and mine.user_attrs.get("interrupted"), mine
