"""`make train MODEL=dan ARGS='<overrides>'`: one configuration over K seeds.

usage: make train MODEL=dan|nplm|ngram [ARGS='<hydra overrides>']
   or: python -m sweeps.train model=dan [overrides]    (--cfg prints the composed config)

Prints each seed's best dev value and the mean ± std over seeds; MLflow holds a parent
run for the configuration and a nested run per seed.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sweeps.core.cli import answer_help_first

answer_help_first(__name__, __doc__)  # before torch, MLflow and Optuna load

import torch
from omegaconf import DictConfig, OmegaConf

from models.errors import UserError
from models.ngram import ngram_perplexities
from models.training import SeedRecord
from sweeps.config.compose import (
    check_seeds,
    compose_config,
    default_recipe_note,
    stop_on_sigterm,
)
from sweeps.config.workloads import build_workload, data_source, prepare_task
from sweeps.core.cli import Args, main_of
from sweeps.core.records import SEEDS_PARAM, SWEEP_ONLY, flatten
from sweeps.core.redact import redact
from sweeps.search import neighbours
from sweeps.search.seeds import ConfigResult, draw_seeds, run_config, run_params
from sweeps.tracking import trained_data
from sweeps.tracking.tracker import Tracker


def command_line(overrides: Sequence[str]) -> str:
    """The make command that reruns this configuration (with credentials redacted)."""
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)
    rest = [o for o in overrides if not o.startswith("model=")]
    return redact("make train" + (f" MODEL={model}" if model else "")
                  + (f" ARGS={shlex.quote(' '.join(rest))}" if rest else ""))


def print_epoch(epoch: int, mean: float, trainers: list[SeedRecord]) -> bool:
    monitor = trainers[0].task.monitor
    cells = "  ".join(f"{t.history[-1].dev[monitor]:.4f}" if not t.done or t.epoch == epoch
                      else "  --  " for t in trainers)
    print(f"epoch {epoch:3d}  dev {monitor} per seed: {cells}   seed mean (best so far) {mean:.4f}",
          flush=True)
    return False


def train(cfg: DictConfig, command: str = "", quiet: bool = False, checkpoints: Path | None = None,
          resume: str | None = None) -> ConfigResult:
    """Train `cfg` over its seeds with tracking; re-entrant, no module-level state.
    `checkpoints`: a folder for a checkpoint after every epoch (`<parent run id>.pt`, kept
    if the run is killed); `resume`: the parent run id of such a killed run, to go on with it."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    workload = build_workload(cfg)
    tracker = Tracker(cfg.tracking.experiment, cfg.tracking.uri, cfg.tracking.artifacts)
    if resume:
        parent = resume
        seeds = [int(s) for s in tracker.get_run(resume).data.params[SEEDS_PARAM].split()]
    else:
        seeds = draw_seeds(int(cfg.seeds), cfg.seed_list)
        parent = tracker.start_config_run(f"{cfg.model.name}-{cfg.data.name}",
                                          run_params(cfg, workload, seeds), OmegaConf.to_yaml(cfg), command)
    on_cpu = workload.device.type == "cpu"
    with neighbours.training(torch.get_num_threads(), f"{cfg.model.name} on {cfg.data.name}") if on_cpu \
            else contextlib.nullcontext():
        return run_config(workload, seeds, tracker, parent, on_epoch=None if quiet else print_epoch,
                          checkpoint=checkpoints / f"{parent}.pt" if checkpoints else None)


def train_ngram(cfg: DictConfig, command: str = "") -> tuple[str, dict[str, float]]:
    """The n-gram baselines of `cfg.data`: counted once (no seeds), tracked as one run."""
    if data_source(cfg.data).kind != "lm":
        raise UserError(f"n-gram baselines need a language-model corpus, not data={cfg.data.name}.")
    task = prepare_task(cfg)
    tracker = Tracker(cfg.tracking.experiment, cfg.tracking.uri, cfg.tracking.artifacts)
    params = {**flatten({k: v for k, v in OmegaConf.to_container(cfg).items() if k not in SWEEP_ONLY}),
              "vocab_size": len(task.vocab), "train_tokens": task.train.targets,
              "valid_tokens": task.dev.targets}
    run_id = tracker.start_config_run(f"ngram-{cfg.data.name}", params, OmegaConf.to_yaml(cfg), command)
    status = "FAILED"
    try:
        values = ngram_perplexities(task, cfg.model.kind)
        tracker.log_metrics(run_id, values)
        with tempfile.TemporaryDirectory() as tmp:  # the vocabulary `make final` counts with
            trained_data.save(tracker, run_id, task, Path(tmp))
        status = "FINISHED"
    finally:
        tracker.end_run(run_id, status)
    return run_id, values


def report(result: ConfigResult) -> str:
    name = f"best dev {result.monitor}"
    lines = [f"{'seed':>12}  {name}  best epoch"]
    lines += [f"{r.seed:>12}  {r.best_value:>{len(name)}.4f}  {r.best_epoch:>10d}"
              for r in result.seed_results]
    lines.append(f"{'mean ± std':>12}  {result.mean:.4f} ± {result.std:.4f}  "
                 f"(K={len(result.seed_results)}, MLflow run {result.run_id})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return main_of(argv, __doc__, "python -m sweeps.train", body, switches=("cfg",))


def body(args: Args) -> str:
    overrides = args.overrides
    cfg = compose_config(overrides)
    if args.get("cfg"):
        return OmegaConf.to_yaml(cfg)
    check_seeds(cfg)
    if note := default_recipe_note(cfg, overrides):
        print(note, flush=True)
    if cfg.model.name == "ngram":
        run_id, values = train_ngram(cfg, command_line(overrides))
        return "\n".join(f"{k:>32}  {v:.4f}" for k, v in values.items()) + f"\n(MLflow run {run_id})"
    return report(train(cfg, command_line(overrides)))


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
