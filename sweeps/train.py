"""`make train MODEL=dan ARGS='<overrides>'`: one configuration over K seeds.

Prints each seed's best dev value and the mean ± std over seeds; MLflow holds a parent
run for the configuration and a nested run per seed.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from models.errors import UserError
from models.training import SeedTrainer
from sweeps.config import compose_config
from sweeps.seeds import ConfigResult, draw_seeds, run_config, run_params
from sweeps.tracking import Tracker
from sweeps.workloads import build_workload


def command_line(overrides: Sequence[str]) -> str:
    return "python -m sweeps.train " + " ".join(shlex.quote(o) for o in overrides)


def print_epoch(epoch: int, mean: float, trainers: list[SeedTrainer]) -> bool:
    monitor = trainers[0].task.monitor
    cells = "  ".join(f"{t.history[-1].dev[monitor]:.4f}" if not t.done or t.epoch == epoch
                      else "  --  " for t in trainers)
    print(f"epoch {epoch:3d}  dev {monitor} per seed: {cells}   mean {mean:.4f}", flush=True)
    return False


def train(cfg: DictConfig, command: str = "", quiet: bool = False) -> ConfigResult:
    """Train `cfg` over its seeds with tracking; re-entrant, no module-level state."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        seeds = draw_seeds(int(cfg.seeds), cfg.seed_list)
    except ValueError as e:
        raise UserError(f"bad seeds: {e}.") from e
    workload = build_workload(cfg)
    tracker = Tracker(cfg.tracking.experiment, cfg.tracking.uri, cfg.tracking.artifacts)
    parent = tracker.start_config_run(f"{cfg.model.name}-{cfg.data.name}",
                                      run_params(cfg, workload, seeds), OmegaConf.to_yaml(cfg), command)
    return run_config(workload, seeds, tracker, parent, on_epoch=None if quiet else print_epoch)


def report(result: ConfigResult) -> str:
    name = f"best dev {result.monitor}"
    lines = [f"{'seed':>12}  {name}  best epoch"]
    lines += [f"{r.seed:>12}  {r.best_value:>{len(name)}.4f}  {r.best_epoch:>10d}"
              for r in result.seed_results]
    lines.append(f"{'mean ± std':>12}  {result.mean:.4f} ± {result.std:.4f}  "
                 f"(K={len(result.seed_results)}, MLflow run {result.run_id})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    show_cfg = "--cfg" in args
    overrides = [a for a in args if a != "--cfg"]
    try:
        cfg = compose_config(overrides)
        if show_cfg:
            print(OmegaConf.to_yaml(cfg))
            return 0
        result = train(cfg, command_line(overrides))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
