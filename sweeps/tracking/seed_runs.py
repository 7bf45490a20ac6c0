"""Per-seed runs: a configuration's parent run with one nested run per seed (param `seed`,
its per-epoch curves, its best-epoch metrics, later its test metrics) and each seed's best
weights as an artifact, beside the vocabulary and labels they fit on the parent run
(sweeps/tracking/trained_data.py).

The one writer and the one reader of that shape: a sweep's trials and `make train`
(sweeps/search/seeds.py), `make final` (sweeps/final.py), a mixed paper cell
(sweeps/paper.py) and the readers of results (analysis/, sweeps/api.py) all go through
here, so the shape is written once and read back once. MLflow itself is reached only
through the tracker handed in (sweeps/tracking/tracker.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from sweeps.core.records import SEED_PARAM, WEIGHTS, in_seed_order, seed_of, weights_artifact, weights_file
from sweeps.tracking import trained_data


class RunLog(Protocol):
    """What seed runs are written through: sweeps.tracking.tracker.Tracker is one."""

    def start_run(self, name: str, params: Any = (), tags: Any = (), parent_id: str | None = None
                  ) -> str: ...

    def set_tags(self, run_id: str, tags: Any, wait: bool = True) -> None: ...

    def log_metrics(self, run_id: str, values: Any, step: int = 0, wait: bool = True) -> None: ...

    def log_artifact(self, run_id: str, path: Path, folder: str) -> None: ...

    def end_run(self, run_id: str, status: str) -> None: ...

    def reopen(self, run_id: str) -> None: ...


@dataclass(frozen=True)
class SeedRun:
    """One seed's run as read back."""
    run_id: str
    seed: int
    metrics: Mapping[str, float]
    status: str = "FINISHED"


@dataclass
class Closing:
    """What a seed run ends with: its final metrics (none if it reached no epoch) and its best
    weights (a state dict, or a file of one), if they are kept."""
    run_id: str
    seed: int
    values: Mapping[str, float] = field(default_factory=dict)
    weights: Mapping[str, Any] | Path | None = None


# ---------------------------------------------------------------- writing


def start(log: RunLog, parent_id: str, seeds: Sequence[int]) -> list[str]:
    """One run per seed under the parent run `parent_id`, in the order of `seeds`; their ids."""
    return [log.start_run(f"seed {s}", {SEED_PARAM: s}, parent_id=parent_id) for s in seeds]


def reopen(log: RunLog, parent_id: str, run_ids: Sequence[str]) -> None:
    """A parent run and its seed runs that a kill ended (or left RUNNING) go on."""
    for run_id in [parent_id, *run_ids]:
        log.reopen(run_id)


def log_epoch(log: RunLog, run_ids: Sequence[str],
              values: Sequence[tuple[int, Mapping[str, float]] | None]) -> None:
    """One epoch's (epoch, metrics) of each seed that trained in it (None: it did not),
    written in the background while training goes on (the run's end waits for them)."""
    for run_id, v in zip(run_ids, values):
        if v is not None:
            log.log_metrics(run_id, v[1], step=v[0], wait=False)


def log_metrics(log: RunLog, runs: Sequence[SeedRun], values: Sequence[Mapping[str, float]],
                step: int) -> None:
    """Metrics of ended seed runs (the test metrics `make final` adds), one batch a run."""
    for run, v in zip(runs, values):
        log.log_metrics(run.run_id, v, step=step)


def close(log: RunLog, parent_id: str, closing: Sequence[Closing], status: str, task: Any = None) -> None:
    """End each seed run with its final metrics and, where given, its weights; the parent run
    keeps the vocabulary and labels of `task` before any weights are written."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        if task is not None and any(c.weights is not None for c in closing):
            trained_data.save(log, parent_id, task, Path(tmp))
        for c in closing:
            if c.values:
                log.log_metrics(c.run_id, c.values)
            if c.weights is not None:
                path = c.weights if isinstance(c.weights, Path) else Path(tmp) / weights_file(c.seed)
                if not isinstance(c.weights, Path):
                    torch.save({k: v.cpu() for k, v in c.weights.items()}, path)
                log.log_artifact(c.run_id, path, WEIGHTS)
            log.end_run(c.run_id, status)


def write(log: RunLog, parent_id: str, closing: Sequence[Closing], task: Any = None) -> list[str]:
    """Seed runs written whole under `parent_id` (a cell that trains nothing: each seed's
    values and weights are known at once), their `run_id`s set; their ids."""
    for c, run_id in zip(closing, start(log, parent_id, [c.seed for c in closing])):
        c.run_id = run_id
    close(log, parent_id, closing, "FINISHED", task)
    return [c.run_id for c in closing]


def delete_weights(tracker: Any, parent_id: str) -> None:
    """Remove the weights of every seed run of `parent_id` (they can no longer be evaluated)."""
    for child in tracker.child_runs(parent_id):
        tracker.delete_artifacts(child.info.run_id, WEIGHTS, child.info.artifact_uri)


# ---------------------------------------------------------------- reading


def read(tracker: Any, parent_id: str, order: Sequence[str | int] | None = None) -> list[SeedRun]:
    """The seed runs of `parent_id`: in the order of `order` (the parent's `seeds` param; a
    seed not named goes last), else by seed. Runs of every version of this layout read."""
    children = tracker.child_runs(parent_id)
    if order is not None:
        children = in_seed_order(children, [str(s) for s in order])
    runs = [SeedRun(c.info.run_id, seed_of(c.data.params), dict(c.data.metrics), c.info.status)
            for c in children]
    return runs if order is not None else sorted(runs, key=lambda r: r.seed)


def every_run(tracker: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Every run of the tracker's experiment in one search (MLflow runs, by id) and the seed
    runs of each parent (by the parent's id): what a sweep's start checks against its study."""
    runs = {r.info.run_id: r for r in tracker.every_run()}
    children: dict[str, list[Any]] = {}
    for r in runs.values():
        if parent := r.data.tags.get(MLFLOW_PARENT_RUN_ID):
            children.setdefault(parent, []).append(r)
    return runs, children


def weights(tracker: Any, run: SeedRun, folder: Path) -> Path | None:
    """A seed run's best weights, downloaded into `folder`; None if it kept none."""
    return tracker.download(run.run_id, weights_artifact(run.seed), folder)


def load_weights(path: Path) -> dict[str, Any]:
    """The state dict in a weights file, on the CPU (whatever device wrote it)."""
    import torch

    return torch.load(path, weights_only=True, map_location="cpu")
