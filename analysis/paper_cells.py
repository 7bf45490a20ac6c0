"""One cell of a paper table as the results page shows it: read from MLflow (`read_cell`),
or from the record the page last wrote (docs/results/<table>.json) where this store lacks
it or holds an older run (`choose`), or how far its training got (`in_training`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.results import train_perplexity
from models import metrics
from models.errors import UserError
from sweeps.core.records import HARDWARE, SEEDS_PARAM
from sweeps.paper_spec import (
    Cell,
    Table,
    cell_config,
    differences,
    settings_of,
    training_values,
    without_nulls,
)
from sweeps.tracking import seed_runs
from sweeps.tracking.tracker import Tracker


@dataclass
class Found:
    """One cell as MLflow holds it (test figures already scaled)."""
    run_id: str
    test: tuple[float, float] | None
    dev: tuple[float, float]
    seeds: str
    best_epochs: list[int]
    wall_s: float
    hardware: str
    values: list[float]  # each seed's test figure
    reads: list[dict]  # every test evaluation of the cell, oldest first: {id, time, reason} (lockbox ledger)
    train: float | None = None  # language models: training perplexity at the best epochs
    changed: str | None = None  # how the table's configuration of the cell differs from the run's
    finished: int = 0  # the run's end (ms since the epoch): of the store's and the record's, the later shows
    settings: dict | None = None  # the training settings the run recorded (for `changed`)
    recorded: bool = False  # taken from docs/results/<table>.json: this MLflow store does not hold the run

    @property
    def repeats(self) -> list[str]:
        """The reasons of the test evaluations after the first."""
        return [r["reason"] for r in self.reads[1:]]


NO_REASON = "no reason recorded (read in another MLflow store than the cell's earlier reads)"
RECORD_FIELDS = ("run_id", "test", "dev", "seeds", "best_epochs", "wall_s", "hardware", "values",
                 "reads", "train", "finished", "settings")


def load_record(path: Path) -> dict[str, Found]:
    """The cells a results page last showed (docs/results/<table>.json), by `row/column`:
    a store that lacks a run (a fresh clone, another machine) keeps them rather than
    writing the table anew with their figures gone."""
    if not path.is_file():
        return {}
    try:
        cells = json.loads(path.read_text())["cells"]
        return {key: Found(**{k: (tuple(v) if k in ("test", "dev") and v is not None else v)
                              for k, v in c.items() if k in RECORD_FIELDS}, recorded=True)
                for key, c in cells.items()}
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not a results record ({e}); restore it with git, or delete it to "
                        "write the tables from this MLflow store alone") from e


def save_record(path: Path, table: Table, found: dict[Cell, Found | None]) -> None:
    cells = {f"{c.row}/{c.column}": {k: v for k, v in dataclasses.asdict(f).items() if k in RECORD_FIELDS}
             for c, f in found.items() if f is not None}
    text = json.dumps({"table": table.name, "cells": cells}, indent=1, sort_keys=True) + "\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_cell(cell: Cell, table: Table, uri: str | None) -> Found | None:
    tracker = Tracker(cell.experiment, uri)
    runs = [r for r in tracker.config_runs() if r.info.status == "FINISHED"]
    if not runs:
        return None
    test_key = metrics.TEST_PREFIX + table.metric
    run = next((r for r in runs if metrics.seed_mean(test_key) in r.data.metrics), runs[0])
    m, s = run.data.metrics, table.scale
    test = ((m[metrics.seed_mean(test_key)] * s, m[metrics.seed_std(test_key)] * s)
            if metrics.seed_mean(test_key) in m else None)
    seeds = run.data.params.get(SEEDS_PARAM, "").split()
    children = seed_runs.read(tracker, run.info.run_id, order=seeds)  # one seed's figures each
    dev_values = [c.metrics.get(metrics.best_dev(table.metric), float("nan")) * s for c in children]
    if not children:  # a counted n-gram model: one dev value on the run itself
        dev_values = [m.get(metrics.dev(table.metric), float("nan")) * s]
    dev = pd.Series(dev_values, dtype=float)
    return Found(
        run.info.run_id, test, (dev.mean(), dev.std(ddof=1) if len(dev) > 1 else 0.0),
        " ".join(seeds) if children else "",
        [int(c.metrics.get(metrics.BEST_EPOCH, 0)) for c in children],
        ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000,
        run.data.tags.get(HARDWARE, "not recorded"),
        [c.metrics[test_key] * s for c in children if test_key in c.metrics],
        [{"id": e["run_id"], "time": e.get("time", ""), "reason": e.get("reason", "")}
         for e in tracker.ledger(cell.experiment)],
        # a mixing cell has no training of its own (its networks' is the row it mixes)
        train_perplexity(tracker, run.info.run_id)
        if children and table.metric == metrics.PERPLEXITY and not cell.mixes else None,
        finished=run.info.end_time or run.info.start_time,
        settings=settings_of(tracker, run.info.run_id),
    )


def settings_changed(cell: Cell, table: Table, had: dict | None) -> str | None:
    """How the cell as conf/ configures it now differs from what the shown run was trained
    with (None when they agree): a table edited since its cells ran shows stale figures."""
    wanted = training_values(cell_config(cell, [], table.seeds))
    had = None if had is None else without_nulls(had)  # records written before nulls were left out
    return None if had == wanted else differences(had, wanted)


def choose(cell: Cell, table: Table, stored: Found | None, kept: Found | None) -> Found | None:
    """The store's run, or the record's where the store lacks it or holds an older one. The
    test reads of either count: the record keeps those of stores this page no longer reads
    (a cell trained again on a fresh clone has read its test split again)."""
    f = kept if stored is None or (kept is not None and kept.finished > stored.finished) else stored
    if f is not None and stored is not None and kept is not None:
        known = {r["id"] for r in kept.reads}
        f.reads = kept.reads + [r for r in stored.reads if r["id"] not in known]
    if f is not None:
        f.changed = settings_changed(cell, table, f.settings)
    return f


def in_training(cell: Cell, table: Table, uri: str | None) -> str | None:
    """A cell whose training has started and not finished (running now, or cut off and
    waiting to go on from its checkpoint): how far it got, from its seed-mean dev history."""
    tracker = Tracker(cell.experiment, uri)
    runs = [r for r in tracker.config_runs() if r.info.status in ("RUNNING", "KILLED")]
    if not runs:
        return None
    run = runs[0]  # the newest
    history = tracker.metric_history(run.info.run_id, metrics.seed_mean(metrics.dev(table.metric)))
    if not history:
        return None
    epoch, value = history[-1]  # the mean over seeds of each seed's best so far
    state = ("running when this page was generated" if run.info.status == "RUNNING"
             else "stopped; it goes on from its checkpoint")
    return (f"in training ({state}; MLflow run `{run.info.run_id}`): {epoch} epoch(s), dev seed mean "
            f"{value * table.scale:.2f} so far; `make paper` goes on with it")
