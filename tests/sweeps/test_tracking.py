"""MLflow experiments as the UI reads them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeps.tracking import TRAINING_KIND, Tracker
from tests.conftest import REPO

KIND = "mlflow.experimentKind"


def test_experiments_new_and_old_are_marked_as_model_training(tmp_path):
    """MLflow 3's UI shows an experiment without this tag as a GenAI app (traces, no runs)
    and infers one itself; ours say model training, and one made earlier without the tag
    gets it when a run is added to it (a resumed sweep)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    old = client.create_experiment("dan-rt-random")  # as an earlier version left it
    assert KIND not in client.get_experiment(old).tags
    assert TRAINING_KIND == (KIND, "custom_model_development")  # the UI's "Machine learning"

    resumed = Tracker("dan-rt-random", uri)
    resumed.end_run(resumed.start_run("trial 1"))
    new = Tracker("dan-rt", uri)
    new.end_run(new.start_run("dan-rt"))
    assert resumed.experiment_id == old
    for exp in (old, new.experiment_id):
        assert client.get_experiment(exp).tags[KIND] == "custom_model_development"


# what only sweeps/tracking/seed_runs.py (and the tracker it writes through) may touch: the
# nesting of seed runs under a parent, and the seed weights in them
SEED_RUN_NAMES = {"child_runs", "weights_artifact", "MLFLOW_PARENT_RUN_ID", "in_seed_order", "seed_of"}
SEED_RUN_OWNERS = {"sweeps/tracking/seed_runs.py", "sweeps/tracking/tracker.py", "sweeps/core/records.py"}


def seed_run_writes(path: Path) -> list[str]:
    """Where the source at `path` nests a run under a parent, lists or reads a parent's seed
    runs or their weights itself: `parent_id=` in a call, the names above, the parent tag."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and any(k.arg == "parent_id" for k in node.keywords):
            found.append(f"line {node.lineno}: a call with parent_id=")
        elif isinstance(node, ast.Attribute | ast.Name | ast.alias):
            name = getattr(node, "attr", None) or getattr(node, "id", None) or node.name.split(".")[-1]
            if name in SEED_RUN_NAMES:
                found.append(f"line {getattr(node, 'lineno', '?')}: {name}")
        elif isinstance(node, ast.Constant) and node.value == "mlflow.parentRunId":
            found.append(f"line {node.lineno}: the parent-run tag")
    return found


def test_only_seed_runs_writes_and_reads_per_seed_runs():
    """One writer and one reader of "a parent run with one child per seed and its weights"
    (issue 35): a sweep, make train, make final, a mixed paper cell and the readers of
    results all go through sweeps/tracking/seed_runs.py."""
    offenders = {}
    for room in ("models", "sweeps", "analysis", "benchmarks"):
        for path in sorted((REPO / room).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel not in SEED_RUN_OWNERS and (found := seed_run_writes(path)):
                offenders[rel] = found
    assert offenders == {}


def test_held_curves_are_written_with_the_runs_closing_metrics(tmp_path):
    """A sweep's per-epoch curves: the first epoch at once, the rest held and written with
    the run's closing metrics, one MLflow call instead of one an epoch (issue 37)."""
    tracker = Tracker("held", f"sqlite:///{tmp_path / 'mlflow.db'}", curves_every=3600)
    run = tracker.start_run("seed 1")
    calls, real = [], tracker.client.log_batch
    tracker.client.log_batch = lambda *a, **k: (calls.append(k), real(*a, **k))[1]
    for epoch in range(1, 6):
        tracker.log_metrics(run, {"dev_accuracy": epoch / 10}, step=epoch, wait=False)
    tracker.log_metrics(run, {"best_dev_accuracy": 0.5})
    tracker.end_run(run)
    assert len(calls) == 2
    assert tracker.metric_history(run, "dev_accuracy") == [(e, e / 10) for e in range(1, 6)]
    assert tracker.get_run(run).data.metrics["best_dev_accuracy"] == 0.5


def test_a_tracker_asks_git_for_the_commit_once(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr("sweeps.tracking.tracker.git_commit", lambda: asked.append(1) or "abc")
    tracker = Tracker("commit", f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = [tracker.start_config_run(f"trial {i}", {}, "{}", "make sweep") for i in range(3)]
    assert len(asked) == 1
    assert {tracker.get_run(r).data.tags["mlflow.source.git.commit"] for r in runs} == {"abc"}


def tracking_calls(tmp_path: Path, csv: Path, epochs: int, monkeypatch) -> int:
    """MLflow client calls of a one-trial sweep whose seeds train `epochs` epochs."""
    from sweeps.search.study import Sweep
    from tests.sweeps.test_sweep import overrides
    count = [0]
    for name in ("log_batch", "create_run", "log_artifact", "log_text", "set_terminated", "get_run",
                 "search_runs", "update_run"):
        real = getattr(MlflowClient, name)
        monkeypatch.setattr(MlflowClient, name, lambda *a, _real=real, **k: (
            count.__setitem__(0, count[0] + 1), _real(*a, **k))[1])
    folder = tmp_path / str(epochs)
    folder.mkdir()
    Sweep(overrides(folder, csv, "sweep.trials=1", f"train.max_epochs={epochs}", "pruner=none",
                    "train.patience=100", "seed_list=[1,2]"), quiet=True).run()
    monkeypatch.undo()
    return count[0]


def test_a_trials_tracking_calls_do_not_grow_with_its_epochs(tmp_path, polarity_csv, monkeypatch):
    assert tracking_calls(tmp_path, polarity_csv, 1, monkeypatch) == \
        tracking_calls(tmp_path, polarity_csv, 4, monkeypatch)


def test_a_trial_waits_for_none_of_its_parent_runs_params_config_or_tags(tmp_path, polarity_csv, monkeypatch):
    """A sweep's trial writes its parent run's params, resolved config and vectorized tag in
    the background while its models are built (issue 37: fewer MLflow round trips a trial
    wait for); the run's end waits for them, so the run has them all once the trial ends."""
    import threading

    from sweeps.core.records import CONFIG_FILE, MLFLOW_RUN_ID, SEEDS_VECTORIZED, TRIAL_PARAM
    from sweeps.search.study import Sweep
    from tests.sweeps.test_sweep import load, overrides
    on_main: list[str] = []
    for name in ("log_batch", "log_text"):
        real = getattr(MlflowClient, name)

        def counted(*a, _real=real, _name=name, **k):
            if threading.current_thread() is threading.main_thread():
                kind = "config" if _name == "log_text" else "params" if k.get("params") else \
                    "tags" if k.get("tags") else "metrics"
                on_main.append(f"{kind} {sorted(p.key for p in k.get('params') or k.get('tags') or [])}")
            return _real(*a, **k)
        monkeypatch.setattr(MlflowClient, name, counted)
    Sweep(overrides(tmp_path, polarity_csv, "sweep.trials=1", "train.max_epochs=2", "seed_list=[1,2]"),
          quiet=True).run()
    monkeypatch.undo()
    assert not [c for c in on_main if c.startswith(("config", "params"))], on_main
    assert not [c for c in on_main if SEEDS_VECTORIZED in c], on_main
    study = load(tmp_path, "dan-csv-random")
    tracker = Tracker("dan-csv-random", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = tracker.get_run(study.trials[0].user_attrs[MLFLOW_RUN_ID])
    assert run.data.params[TRIAL_PARAM] == "0" and run.data.tags[SEEDS_VECTORIZED] in ("true", "false")
    assert "seed_list" in tracker.load_text(run.info.run_id, CONFIG_FILE)


def test_background_writes_are_stored_in_order_and_the_runs_end_raises_what_failed():
    """sweeps/tracking/writer.py: one thread, a run's writes in the order made; flush waits
    for the run's writes only and raises the first that failed (a full disk is not lost)."""
    import errno

    from sweeps.tracking.writer import BackgroundWrites
    done: list[tuple[str, object]] = []
    writes = BackgroundWrites(lambda run_id, batch: done.append((run_id, tuple(batch))), curves_every=3600)
    writes.hold("a", [1])  # the first curve is written at once, the next held
    writes.hold("a", [2])
    writes.submit("a", lambda: done.append(("a", "tag")))
    writes.submit("b", lambda: done.append(("b", "tag")))
    writes.flush("a")
    assert [d for d in done if d[0] == "a"] == [("a", (1,)), ("a", "tag"), ("a", (2,))]

    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    writes.submit("b", full)
    writes.submit("b", lambda: done.append(("b", "after")))
    with pytest.raises(OSError, match="No space left"):
        writes.flush("b")
    assert done[-1] == ("b", "after")  # flush waited for every write of the run, then raised
    writes.flush("b")  # nothing left pending


@pytest.mark.parametrize("status, ends, raised", [("FINISHED", "FAILED", True), ("KILLED", "KILLED", False)])
def test_a_run_whose_background_write_failed_does_not_end_finished(tmp_path, status, ends, raised):
    """A run's end waits for its background writes: when one failed (a full disk), the run
    ends FAILED, not FINISHED, and the failure is raised; a run ended KILLED stays KILLED and
    the failure does not replace the kill (the resume runs the trial again)."""
    import errno

    tracker = Tracker("ends", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = tracker.start_run("trial 0")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    tracker.set_tags(run, {"x": "1"}, wait=False)
    tracker._writes.submit(run, full)
    if raised:
        with pytest.raises(OSError, match="No space left"):
            tracker.end_run(run, status)
    else:
        tracker.end_run(run, status)
    assert tracker.get_run(run).info.status == ends
