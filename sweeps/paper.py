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

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sweeps.core.cli import answer_help_first

answer_help_first(__name__, __doc__)  # before torch, MLflow and Optuna load

import torch
from omegaconf import DictConfig, OmegaConf

from models import metrics
from models.errors import UserError
from models.training import cpu_name
from sweeps import final, store
from sweeps.config.compose import check_seeds, stop_on_sigterm
from sweeps.config.workloads import build_workload, metric
from sweeps.core.cli import Args, main_of
from sweeps.core.locks import Busy, file_lock
from sweeps.core.paths import RUNS_DIR
from sweeps.core.records import (
    CONFIG_FILE,
    HARDWARE,
    MIXED_FROM,
    PAPER_CELL,
    SEEDS_PARAM,
    mean_std,
)
from sweeps.paper_spec import (
    Cell,
    cell_config,
    differences,
    load_table,
    published_run,
    select,
    settings_of,
    tables,
    training_values,
)
from sweeps.search.seeds import run_params
from sweeps.tracking import seed_runs, trained_data
from sweeps.tracking.tracker import Tracker
from sweeps.train import train, train_ngram


def hardware(cfg: DictConfig) -> str:
    """What trained a cell, for the results page: the device, cores, threads and torch."""
    if str(cfg.device).startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()):
        gpu = torch.device("cuda" if cfg.device == "auto" else str(cfg.device))  # cuda:N: GPU N's name
        return f"{torch.cuda.get_device_name(gpu)} (torch {torch.__version__})"
    return (f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads "
            f"(torch {torch.__version__})")


CHECKPOINTS = RUNS_DIR / "checkpoints"  # a cell's checkpoint after every epoch, until it ends


def changed_since(cell: Cell, cfg: DictConfig, run_id: str) -> str:
    """How the cell's settings differ from those run `run_id` recorded."""
    return differences(settings_of(Tracker(cell.experiment, cfg.tracking.uri), run_id), training_values(cfg))


def status(cell: Cell, cfg: DictConfig, end_stale: bool = True) -> tuple[str, str | None]:
    """("tested" | "trained" | "resume" | "todo" | "changed", the run evaluated, to evaluate
    or to go on with), from MLflow and the checkpoints folder. Only runs with this cell's
    settings count: "changed" names the newest run whose test split was read with other
    settings (reading it again for these needs a reason). A run a kill cut off goes on from
    its checkpoint if it has one and its settings are this cell's; otherwise it is ended
    (unless not `end_stale`) and trained anew."""
    tracker = Tracker(cell.experiment, cfg.tracking.uri)
    runs = tracker.config_runs()
    wanted = training_values(cfg)
    test_key = metrics.seed_mean(metrics.TEST_PREFIX + cfg_monitor(cfg))
    finished = [r for r in runs if r.info.status == "FINISHED"]
    same = [r for r in finished if settings_of(tracker, r.info.run_id) == wanted]
    if tested := [r for r in same if test_key in r.data.metrics]:
        return "tested", tested[0].info.run_id
    if same:
        return "trained", same[0].info.run_id
    changed = next((r.info.run_id for r in finished if test_key in r.data.metrics), None)
    for r in runs:
        if r.info.status not in ("RUNNING", "KILLED"):
            continue
        if (CHECKPOINTS / f"{r.info.run_id}.pt").exists() and settings_of(tracker, r.info.run_id) == wanted:
            return "resume", r.info.run_id
        if r.info.status == "RUNNING" and end_stale:
            tracker.end_stale(r.info.run_id)
    return ("changed", changed) if changed else ("todo", None)


def listed(cell: Cell, extra: Sequence[str], seeds: int) -> str:
    """A cell's state for --list, changing nothing: a cell another `make paper` is training
    says so (status would take its live run for one a kill left behind)."""
    cfg = cell_config(cell, extra, seeds)
    try:
        with file_lock(cell_lock(cell, cfg), wait=False):
            state, run_id = status(cell, cfg, end_stale=False)
        if state == "changed":
            state = (f"changed: tested with other settings (run {run_id}: "
                     f"{changed_since(cell, cfg, run_id)}); "
                     "REASON='<why>' trains it anew and reads its test split again")
    except Busy:
        state = "training now (another make paper)"
    return state + (f" (mixes the networks of {cell.mixes})" if cell.mixes else "")


def cell_lock(cell: Cell, cfg: DictConfig) -> Path:
    return store.folder_of(cfg) / f"train-{cell.experiment}.lock"


def cfg_monitor(cfg: DictConfig) -> str:
    """The metric a cell is judged by, as the registry defines it for its model and data."""
    return metric(cfg)[0]


def run_cell(cell: Cell, extra: Sequence[str], seeds: int, reason: str | None = None) -> str:
    if (why := cell.missing()) is not None:
        return f"{cell.row}/{cell.column}: skipped, {why}"
    cfg = cell_config(cell, extra, seeds)
    check_seeds(cfg)
    try:  # one process a cell: a second would take the first's live run for a killed one
        with file_lock(cell_lock(cell, cfg), wait=False):
            return _run_cell(cell, cfg, seeds, reason, extra)
    except Busy:
        raise UserError(f"{cell.row}/{cell.column} is being trained by another `make paper` on this "
                        "machine; let it finish, or stop it (it goes on from its checkpoint).") from None


def _run_cell(cell: Cell, cfg: DictConfig, seeds: int, reason: str | None, extra: Sequence[str]) -> str:
    state, run_id = status(cell, cfg)
    if state == "tested":
        return f"{cell.row}/{cell.column}: done (test evaluated), nothing to do"
    if state == "changed":
        was = changed_since(cell, cfg, run_id)
        if not reason:
            raise UserError(f"{cell.row}/{cell.column} was tested with other settings (run {run_id}: {was}). "
                            "Training it with these reads its test split again: pass REASON='<why>' "
                            "(recorded as a repeat), or undo the change.")
        print(f"{cell.row}/{cell.column}: settings changed since run {run_id} ({was}); training anew",
              flush=True)
        state, run_id = "todo", None
    if state == "todo" and (shown := published_run(cell)):
        print(f"{cell.row}/{cell.column}: docs/results.md shows run {shown} of this cell, tested; this "
              "store has no tested run of its settings, so this reads the test split again and the "
              "page will count the read" + ("" if reason else " (REASON='<why>' records why)"), flush=True)
    started = time.monotonic()
    if state == "todo" and cell.mixes:
        run_id = mix_cell(cell, cfg, cell_config(source_of(cell), extra, seeds))
    elif state in ("todo", "resume"):
        doing = "going on with run " + str(run_id) if state == "resume" else "training"
        print(f"{cell.row}/{cell.column}: {doing} {' '.join(cell.overrides)}"
              + ("" if cfg.model.name == "ngram" else f" over {seeds} seeds"), flush=True)
        command = f"make paper TABLE={cell.table} ROWS={cell.row} COLUMNS={cell.column}"
        run_id = (train_ngram(cfg, command)[0] if cfg.model.name == "ngram"
                  else train(cfg, command, checkpoints=CHECKPOINTS, resume=run_id).run_id)
        Tracker(cell.experiment, cfg.tracking.uri).set_tags(run_id, {
            PAPER_CELL: f"{cell.table}/{cell.row}/{cell.column}", HARDWARE: hardware(cfg)})
    out = final.evaluate(final.resolve(cfg, None, None, run_id), reason)
    return (f"{cell.row}/{cell.column}: {time.monotonic() - started:.0f} s\n" + final.report(out))


def source_of(cell: Cell) -> Cell:
    """The cell whose networks `cell` mixes: row `cell.mixes`, same column."""
    return load_table(cell.table).cell(str(cell.mixes), cell.column)


def without_mix(values: dict) -> dict:
    model = {k: v for k, v in values["model"].items() if k not in ("mix", "mix_weight")}
    return {**values, "model": model}


def mix_cell(cell: Cell, cfg: DictConfig, source_cfg: DictConfig) -> str:
    """A cell that trains nothing: the networks of its source cell (each seed's best epoch by
    the network's own valid perplexity), mixed with the trigram as `cfg.model` says and
    evaluated on valid, tracked as this cell's own run and seed runs (weights included), so
    that `make final` reads the test split for it once like any cell. Bengio et al. mix the
    trained network's output probabilities with the trigram's; training the same network
    again would cost the same hours for the same weights. Returns the new parent run."""
    source = source_of(cell)
    state, src_run = status(source, source_cfg, end_stale=False)  # reads only: it may be training
    if state not in ("trained", "tested"):
        raise UserError(f"{cell.row}/{cell.column} mixes the networks of {source.row}/{source.column}, "
                        f"which are not trained yet ({state}): make paper TABLE={cell.table} "
                        f"ROWS={source.row} COLUMNS={cell.column} first.")
    src = Tracker(source.experiment, cfg.tracking.uri)
    trained = OmegaConf.create(src.load_text(src_run, CONFIG_FILE))
    if without_mix(training_values(trained)) != without_mix(training_values(cfg)):
        raise UserError(f"{cell.row}/{cell.column} and {source.row}/{source.column} differ in more than "
                        "model.mix and model.mix_weight, so the trained networks are not this cell's.")
    print(f"{cell.row}/{cell.column}: mixing the networks of {source.row}/{source.column} "
          f"(run {src_run}) with the trigram", flush=True)
    workload = build_workload(cfg)
    task, monitor = workload.task, workload.task.monitor
    # the source's seed runs in its own order, so that both cells list their seeds alike
    children = seed_runs.read(src, src_run, order=src.get_run(src_run).data.params[SEEDS_PARAM].split())
    seeds = [c.seed for c in children]
    tracker = Tracker(cell.experiment, cfg.tracking.uri, cfg.tracking.artifacts)
    command = f"make paper TABLE={cell.table} ROWS={cell.row} COLUMNS={cell.column}"
    parent = tracker.start_config_run(f"{cfg.model.name}-{cfg.data.name}", run_params(cfg, workload, seeds),
                                      OmegaConf.to_yaml(cfg), command)
    tracker.set_tags(parent, {MIXED_FROM: src_run, PAPER_CELL: f"{cell.table}/{cell.row}/{cell.column}",
                              HARDWARE: src.get_run(src_run).data.tags.get(HARDWARE, hardware(cfg))})
    status_, values = "FAILED", []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trained_data.check(src, src_run, task, Path(tmp))  # the networks fit the data as it is
            closing = []
            for child in children:
                path = seed_runs.weights(src, child, Path(tmp))
                if path is None:
                    raise UserError(f"seed {child.seed} of run {src_run} has no saved weights to mix.")
                model = workload.build_model()
                model.load_state_dict(seed_runs.load_weights(path))
                model.to(workload.device)
                dev = task.evaluate(model)
                values.append(dev[monitor])
                epochs = {k: child.metrics[k] for k in (metrics.BEST_EPOCH, metrics.EPOCHS_RUN)
                          if k in child.metrics}
                closing.append(seed_runs.Closing("", child.seed, {
                    metrics.best_dev(monitor): dev[monitor], **epochs,
                    **{metrics.best_dev(k): v for k, v in dev.items() if k != monitor}}, path))
            seed_runs.write(tracker, parent, closing, task)
        mean, std = mean_std(values)
        tracker.log_metrics(parent, {metrics.seed_mean(metrics.best_dev(monitor)): mean,
                                     metrics.seed_std(metrics.best_dev(monitor)): std})
        status_ = "FINISHED"
    finally:
        tracker.end_run(parent, status_)
    return parent


def main(argv: Sequence[str] | None = None) -> int:
    # --list: the cells and their state, training nothing; --reason: why a cell's test split is
    # read again (recorded as a repeat)
    return main_of(argv, __doc__, "python -m sweeps.paper", body, values=("rows", "columns", "reason"),
                   switches=("list",), words=True)


def body(args: Args) -> str:
    extra = args.overrides
    if not args.words:
        raise UserError(f"name a table: TABLE=<one of {', '.join(tables())}>")
    if len(args.words) > 1:
        raise UserError(f"one table at a time, not {' '.join(args.words)}; overrides are key=value.")
    table = load_table(args.words[0])
    cells = select(table, args.get("rows"), args.get("columns"))
    if args.get("list"):
        return "\n".join(f"{c.row}/{c.column}: " + (c.missing() or listed(c, extra, table.seeds))
                         for c in cells)
    for cell in cells:
        print(run_cell(cell, extra, table.seeds, args.get("reason")), flush=True)
    return f"{table.name}: {len(cells)} cell(s) looked at; docs/results.md: python -m analysis.paper"


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
