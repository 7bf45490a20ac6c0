"""`make paper TABLE=iyyer2015`: a paper's table, cell by cell, each over K seeds, each
cell's test split read once at the end.

usage: python -m sweeps.paper TABLE [--rows a,b] [--columns x,y] [--list] [overrides...]

For every cell of conf/paper/<TABLE>.yaml (a row's overrides plus a column's) it trains
the configuration over the table's K seeds, like `make train`, into its own MLflow
experiment `paper-<table>-<row>-<column>`, then evaluates the seeds' best weights on the
test split with `make final`'s evaluation. It resumes: a cell already evaluated is left
alone, one trained but not evaluated is evaluated, and one a kill cut off goes on from its
last epoch (a checkpoint under runs/checkpoints/ after every epoch). A cell whose test
split an earlier run already read needs --reason (REASON=), which the lockbox ledger
records as a repeat. A cell whose data is missing (SST without SST_ROOT) is skipped with
the reason. `python -m analysis.paper` then writes docs/results.md from what MLflow holds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from models import metrics
from models.errors import UserError
from models.training import cpu_name
from sweeps import final, storage
from sweeps.config import check_seeds, compose_config, run_cli
from sweeps.locks import Busy, file_lock
from sweeps.paper_spec import Cell, load_table, select, tables
from sweeps.paths import RUNS_DIR
from sweeps.records import CONFIG_FILE, HARDWARE, PAPER_CELL, SWEEP_ONLY
from sweeps.tracking import Tracker
from sweeps.train import train, train_ngram


def hardware(cfg: DictConfig) -> str:
    """What trained a cell, for the results page: the device, cores, threads and torch."""
    if str(cfg.device).startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return (f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads "
            f"(torch {torch.__version__})")


def cell_config(cell: Cell, extra: Sequence[str], seeds: int) -> DictConfig:
    return compose_config([*cell.overrides, f"seeds={seeds}", *extra,
                           f"tracking.experiment={cell.experiment}"])


CHECKPOINTS = RUNS_DIR / "checkpoints"  # a cell's checkpoint after every epoch, until it ends
MACHINE_KEYS = ("threads", "device", "cache_dir", "tracking")  # may differ when a run goes on


def training_values(cfg: DictConfig) -> dict:
    values = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in values.items() if k not in (*SWEEP_ONLY, *MACHINE_KEYS)}


def status(cell: Cell, cfg: DictConfig) -> tuple[str, str | None]:
    """("tested" | "trained" | "resume" | "todo", the run to evaluate or go on with), from
    MLflow and the checkpoints folder. A run a kill cut off goes on from its checkpoint if
    it has one and its settings are this cell's; otherwise it is ended and trained anew."""
    tracker = Tracker(cell.experiment, cfg.tracking.uri)
    runs = tracker.config_runs()
    finished = [r for r in runs if r.info.status == "FINISHED"]
    test_key = metrics.seed_mean(metrics.TEST_PREFIX + cfg_monitor(cfg))
    if any(test_key in r.data.metrics for r in finished):
        return "tested", None
    if finished:
        return "trained", finished[0].info.run_id
    for r in runs:
        if r.info.status not in ("RUNNING", "KILLED"):
            continue
        saved = CHECKPOINTS / f"{r.info.run_id}.pt"
        if saved.exists() and training_values(
                OmegaConf.create(tracker.load_text(r.info.run_id, CONFIG_FILE))) == training_values(cfg):
            return "resume", r.info.run_id
        if r.info.status == "RUNNING":
            tracker.end_stale(r.info.run_id)
    return "todo", None


def cfg_monitor(cfg: DictConfig) -> str:
    return metrics.PERPLEXITY if cfg.model.name in ("nplm", "ngram") else metrics.ACCURACY


def run_cell(cell: Cell, extra: Sequence[str], seeds: int, reason: str | None = None) -> str:
    if (why := cell.missing()) is not None:
        return f"{cell.row}/{cell.column}: skipped, {why}"
    cfg = cell_config(cell, extra, seeds)
    check_seeds(cfg)
    try:  # one process a cell: a second would take the first's live run for a killed one
        with file_lock(storage.folder_of(cfg) / f"train-{cell.experiment}.lock", wait=False):
            return _run_cell(cell, cfg, seeds, reason)
    except Busy:
        raise UserError(f"{cell.row}/{cell.column} is being trained by another `make paper` on this "
                        "machine; let it finish, or stop it (it goes on from its checkpoint).") from None


def _run_cell(cell: Cell, cfg: DictConfig, seeds: int, reason: str | None) -> str:
    state, run_id = status(cell, cfg)
    if state == "tested":
        return f"{cell.row}/{cell.column}: done (test evaluated), nothing to do"
    started = time.monotonic()
    if state in ("todo", "resume"):
        doing = "going on with run " + str(run_id) if state == "resume" else "training"
        print(f"{cell.row}/{cell.column}: {doing} {' '.join(cell.overrides)}"
              + ("" if cfg.model.name == "ngram" else f" over {seeds} seeds"), flush=True)
        command = f"make paper TABLE={cell.table} ROWS={cell.row} COLUMNS={cell.column}"
        run_id = (train_ngram(cfg, command)[0] if cfg.model.name == "ngram"
                  else train(cfg, command, checkpoints=CHECKPOINTS, resume=run_id).run_id)
        Tracker(cell.experiment, cfg.tracking.uri).set_tags(run_id, {
            PAPER_CELL: f"{cell.table}/{cell.row}/{cell.column}", HARDWARE: hardware(cfg)})
    out = final.evaluate(final.resolve(cfg, None, None, run_id), reason, storage.folder_of(cfg))
    return (f"{cell.row}/{cell.column}: {time.monotonic() - started:.0f} s\n" + final.report(out))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sweeps.paper", description=__doc__.splitlines()[0])
    ap.add_argument("table", nargs="?")
    ap.add_argument("--rows")
    ap.add_argument("--columns")
    ap.add_argument("--list", action="store_true", help="list the cells and their state, train nothing")
    ap.add_argument("--reason", help="why a cell's test split is read again (recorded as a repeat)")
    args, extra = ap.parse_known_args(sys.argv[1:] if argv is None else argv)

    def body() -> str:
        if not args.table:
            raise UserError(f"name a table: TABLE=<one of {', '.join(tables())}>")
        table = load_table(args.table)
        cells = select(table, args.rows, args.columns)
        if args.list:
            return "\n".join(f"{c.row}/{c.column}: " + (c.missing() or
                             status(c, cell_config(c, extra, table.seeds))[0]) for c in cells)
        for cell in cells:
            print(run_cell(cell, extra, table.seeds, args.reason), flush=True)
        return f"{table.name}: {len(cells)} cell(s) looked at; docs/results.md: python -m analysis.paper"

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
