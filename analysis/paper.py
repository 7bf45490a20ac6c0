"""docs/results.md: the papers' tables as this platform reproduced them, beside the papers'.

    python -m analysis.paper [TABLE ...] [--out docs/results.md] [tracking.uri=...]

Reads every cell of conf/paper/<table>.yaml from MLflow (the experiment
`paper-<table>-<row>-<column>` that `make paper` trains into) and writes, for each table:
the table itself (test mean ± std over seeds, the paper's figure beside it), a line per
cell with its dev and test figures, seeds, best epochs, wall time, hardware and the
commands that reproduce it, whether the paper's ordering of rows holds, and a note on
every gap to the paper larger than the seed std. Also <table>.md/.tex/.csv under
docs/results/, and <table>.json: the record of every cell shown (figures, seeds, run,
settings). A cell this MLflow store lacks (a fresh clone, another machine, a lost
runs/ folder) is shown from that record, so rewriting the page after training one
cell keeps the others; a newer run in the store replaces it. Reads only; trains nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.results import train_perplexity
from analysis.tables import write_all
from models import metrics
from models.errors import UserError
from sweeps.config.compose import run_cli
from sweeps.core.paths import ROOT
from sweeps.core.records import HARDWARE, SEEDS_PARAM
from sweeps.paper_spec import (
    Cell,
    Table,
    cell_config,
    differences,
    load_table,
    settings_of,
    tables,
    training_values,
    without_nulls,
)
from sweeps.tracking import seed_runs
from sweeps.tracking.tracker import Tracker

DOCS = ROOT / "docs"


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


def fmt(x: tuple[float, float] | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x[0]:.{digits}f} ± {x[1]:.{digits}f}"


def commands(cell: Cell, found: Found | None, seeds: int) -> str:
    paper = f"make paper TABLE={cell.table} ROWS={cell.row} COLUMNS={cell.column}"
    env = "SST_ROOT=<sst folder> " if "sst" in cell.needs else ""
    if found is None:
        return f"`{env}{paper}`"
    if cell.mixes:
        return (f"`{env}{paper}` (after row {cell.mixes}), which mixes the trained networks of row "
                f"{cell.mixes} with the trigram and trains nothing")
    args = " ".join(o for o in cell.overrides if not o.startswith("model=")) + f" seeds={seeds}"
    model = next((o.split("=", 1)[1] for o in cell.overrides if o.startswith("model=")), "dan")
    return (f"`{env}{paper}`, or by hand "
            f"`{env}make train MODEL={model} ARGS='{args} tracking.experiment={cell.experiment}'` then "
            f"`make final MODEL={model} RUN={found.run_id}`")


def frame(table: Table, found: dict[Cell, Found | None]) -> pd.DataFrame:
    """Rows × columns, ours (mean, std) and the paper's figure: for the .csv/.tex/.md files."""
    out = []
    for row in table.rows:
        r: dict[str, object] = {"model": table.label(row)}
        for col, c in table.columns.items():
            cell, f = table.cell(row, col), found[table.cell(row, col)]
            r[f"{c['label']} mean"] = f.test[0] if f and f.test else float("nan")
            r[f"{c['label']} std"] = f.test[1] if f and f.test else float("nan")
            r[f"{c['label']} (paper)"] = cell.paper if cell.paper is not None else float("nan")
        out.append(r)
    return pd.DataFrame(out)


def ordering(table: Table, found: dict[Cell, Found | None]) -> list[str]:
    """Whether the paper's ranking of rows holds, column by column, on the test means."""
    if len(table.ordering) < 2:
        return []
    lines = []
    sign = -1 if table.lower_is_better else 1
    for col, c in table.columns.items():
        means = [found[table.cell(r, col)] for r in table.ordering]
        if any(f is None or f.test is None for f in means):
            lines.append(f"- {c['label']}: not all of {', '.join(table.label(r) for r in table.ordering)} "
                         "evaluated yet.")
            continue
        test, dev = chain(table, [f.test for f in means]), chain(table, [f.dev for f in means])
        claimed = (" > " if table.lower_is_better else " < ").join(table.label(r) for r in table.ordering)
        line = (f"- {c['label']}: {test[0]}: the paper's ordering ({claimed} in {table.metric}) "
                f"**{'holds' if test[1] else 'does not hold'}**")
        if not test[1]:
            line += f"; on dev it {'holds' if dev[1] else 'does not either'}: {dev[0]}"
            reversed_ = [(f, g) for f, g in zip(means, means[1:]) if sign * f.test[0] >= sign * g.test[0]]
            if all(abs(f.test[0] - g.test[0]) <= max(f.test[1], g.test[1]) for f, g in reversed_):
                line += "; every reversed pair differs on test by no more than the larger of its seed stds"
        lines.append(line + ".")
    return lines


def chain(table: Table, figures: list[tuple[float, float]]) -> tuple[str, bool]:
    """`row a < row b < ...` with the sign true of `figures` (mean, std), one per row of
    table.ordering, and whether they rank as the paper's ordering says."""
    sign = -1 if table.lower_is_better else 1
    parts = []
    for r, (a, _), (b, _) in zip(table.ordering, figures, figures[1:]):
        parts += [f"{table.label(r)} {a:.1f}", "<" if a < b else ">" if a > b else "="]
    parts.append(f"{table.label(table.ordering[-1])} {figures[-1][0]:.1f}")
    return " ".join(parts), all(sign * a < sign * b for (a, _), (b, _) in zip(figures, figures[1:]))


def gaps(table: Table, found: dict[Cell, Found | None]) -> list[str]:
    """A line for every evaluated cell whose gap to the paper is larger than its seed std."""
    lines = []
    for cell, f in found.items():
        if f is None or f.test is None or cell.paper is None:
            continue
        gap = f.test[0] - cell.paper
        if abs(gap) > f.test[1]:
            better = (gap < 0) if table.lower_is_better else (gap > 0)
            lines.append(f"- {table.label(cell.row)}, {table.columns[cell.column]['label']}: "
                         f"{f.test[0]:.1f} against the paper's {cell.paper:.1f} "
                         f"({'+' if gap > 0 else ''}{gap:.1f}, {'better' if better else 'worse'}; "
                         f"seed std {f.test[1]:.1f}).")
    return lines


def section(table: Table, uri: str | None, files: Path) -> str:
    record = files / f"{table.name}.json"
    kept = load_record(record)
    found = {c: choose(c, table, read_cell(c, table, uri), kept.get(f"{c.row}/{c.column}"))
             for c in table.cells}
    head = "| model | " + " | ".join(c["label"] for c in table.columns.values()) + " |"
    again = [c for c, f in found.items() if f is not None and f.repeats]
    once = ("each cell's test split evaluated once" if not again else
            f"each cell's test split evaluated once, except {len(again)} read again (each says why below)")
    stale = [c for c, f in found.items() if f is not None and f.changed]
    dagger = ("" if not stale else f" †: trained with settings other than this table's now ({len(stale)} "
              "cell(s); each says which below), so not the table's current recipe.")
    lines = [f"## {table.title}", "",
             f"Ours: test mean ± std over {table.seeds} seeds, {once}; "
             f"the paper's figure in brackets. – : not run yet.{dagger}", "", head,
             "|---|" + "---|" * len(table.columns)]
    for row in table.rows:
        cells = []
        for col in table.columns:
            cell = table.cell(row, col)
            f = found[cell]
            paper = "" if cell.paper is None else f" ({cell.paper:.1f})"
            cells.append(f"{fmt(f.test if f else None)}{' †' if f and f.changed else ''}{paper}")
        label = table.label(row)
        if table.label(row, paper=True) != label:
            label += f" [paper: {table.label(row, paper=True)}]"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "**Ordering of the rows**", "", *(ordering(table, found) or ["- (none given)"]), ""]
    lines += ["**Gaps larger than the seed std**", "",
              *(gaps(table, found) or ["- none among the cells evaluated."]), ""]
    if table.notes:
        lines += ["**Notes**", "", table.notes.strip(), ""]
    lines += ["**Each cell**", ""]
    for cell, f in found.items():
        name = f"{table.label(cell.row)}, {table.columns[cell.column]['label']}"
        if f is None:
            why = cell.missing() or in_training(cell, table, uri) or "not run yet"
            lines.append(f"- {name}: {why}: {commands(cell, f, table.seeds)}.")
            continue
        trained = (f"test {fmt(f.test, 2)} (per seed: {', '.join(f'{v:.2f}' for v in f.values)}), "
                   f"dev {fmt(f.dev, 2)}" + (f", train {f.train:.2f}" if f.train is not None else "")
                   + f"; seeds {f.seeds}; best epochs {f.best_epochs}; training {f.wall_s / 60:.1f} min"
                   if f.seeds else f"test {f.test[0] if f.test else float('nan'):.2f}, dev {f.dev[0]:.2f} "
                   f"(counted, no seeds; {f.wall_s / 60:.1f} min)")
        held = f"MLflow run `{f.run_id}`" + (
            f" (not in the store this page was written from: shown from its record, "
            f"{record.relative_to(files.parent)})" if f.recorded else "")
        lines.append(
            f"- {name}: {trained} on {f.hardware}; {held}. "
            + "".join(f"**Test split read again** (lockbox ledger): {r or NO_REASON}. " for r in f.repeats)
            + (f"**† Trained with other settings than the table's now** ({f.changed}): `make paper` with "
               "REASON= trains it anew. " if f.changed else "")
            + f"{commands(cell, f, table.seeds)}.")
    paths = write_all(frame(table, found), files, table.name, table.title)
    save_record(record, table, found)
    paths.append(record)
    links = ", ".join(f"[{p.name}]({p.relative_to(files.parent)})" for p in paths)
    lines += ["", f"Also as {links}.", ""]
    return "\n".join(lines)


def write(names: Sequence[str], out: Path, uri: str | None) -> Path:
    parts = ["# Results: the papers' tables on this platform", "",
             f"Generated by `make paper` (`python -m analysis.paper`) on "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from the MLflow store; "
             "do not edit by hand: edit conf/paper/<table>.yaml and rerun.", ""]
    ordered = sorted((load_table(n) for n in names), key=lambda t: (t.position, t.name))
    parts += [section(t, uri, out.parent / out.stem) for t in ordered]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.paper", description=__doc__.splitlines()[0])
    ap.add_argument("tables", nargs="*")
    ap.add_argument("--out", default=str(DOCS / "results.md"))
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = [a for a in argv if "=" in a and not a.startswith("-")]  # overrides, not table names
    args, unknown = ap.parse_known_args([a for a in argv if a not in extra])
    if unknown:
        ap.error(f"unrecognised arguments: {' '.join(unknown)}")
    uri = next((o.split("=", 1)[1] for o in extra if o.startswith("tracking.uri=")), None)
    return run_cli(lambda: f"wrote {write(args.tables or tables(), Path(args.out), uri)}")


if __name__ == "__main__":
    sys.exit(main())
