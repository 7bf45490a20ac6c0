"""The multi-seed objective: one Optuna trial = one configuration over K seeds.

The seeds train in lockstep; after every epoch the trial reports the seed mean of the
dev metric (each seed's best so far, averaged), so the pruner sees the mean, never one
seed. The trial's value is that mean at the end: the mean over seeds of each seed's best
dev value; its user attributes hold the rest.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from sweeps import faults
from sweeps.config import compose_config
from sweeps.pruning import SeedMeanPatience
from sweeps.records import INACTIVE, MLFLOW_RUN_ID, SEEDS, TRIAL_PARAM, parent_tags, trial_attrs
from sweeps.schema import check_config
from sweeps.search_space import Lookup, Param, suggest, to_overrides
from sweeps.seeds import ConfigResult, draw_seeds, run_config, run_params
from sweeps.storage import ranked
from sweeps.tracking import Tracker
from sweeps.workloads import Workload, build_workload

RECOMPOSE = ("model.name", "data.name")  # other values interpolate these (tracking.experiment)
_ABSENT = object()
WorkloadFactory = Callable[[DictConfig, Any], Workload]
# (trial number, epoch, the trial's seeds, seeds still training, seed mean): progress inside a trial
EpochProgress = Callable[[int, int, list[int], int, float], None]


class Objective:
    """Callable on a trial; keeps the data it prepared for reuse by the worker's next trials."""

    def __init__(self, base_overrides: Sequence[str], params: list[Param], grid: bool,
                 tracker: Tracker, command: str, workload_factory: WorkloadFactory = build_workload,
                 lookup: Lookup = lambda key: None, on_epoch: EpochProgress | None = None,
                 stop: SeedMeanPatience | None = None, keep_weights: int | None = None,
                 base: DictConfig | None = None):
        self.base_overrides = list(base_overrides)
        self.params, self.grid, self.tracker, self.command = params, grid, tracker, command
        self.workload_factory, self.lookup, self.on_epoch = workload_factory, lookup, on_epoch
        self.stop = stop  # ends a trial whose seed mean stagnated (sweeps/pruning.py)
        self.keep_weights = keep_weights  # weights saved only for trials that may be in this top k
        self._tasks: dict[str, Any] = {}  # data config (yaml) -> prepared task
        self._base = base  # the config composed from `base_overrides`, when the caller has it

    def config(self, values: dict[str, Any]) -> DictConfig:
        """The trial's config: the sweep's config (composed once) with `values` set, checked
        like a composed one. Hydra composes again only where a value could change more than
        itself (a key the config lacks, or a name other values interpolate)."""
        if self._base is None:
            self._base = compose_config(self.base_overrides)
        if any(k in RECOMPOSE or OmegaConf.select(self._base, k, default=_ABSENT) is _ABSENT for k in values):
            return compose_config([*self.base_overrides, *to_overrides(values)])
        cfg = copy.deepcopy(self._base)
        OmegaConf.set_readonly(cfg, False)
        for k, v in values.items():
            OmegaConf.update(cfg, k, v, merge=False)
        OmegaConf.set_readonly(cfg, True)
        check_config(cfg)
        return cfg

    def workload(self, cfg: DictConfig) -> Workload:
        key = OmegaConf.to_yaml(cfg.data)
        workload = self.workload_factory(cfg, self._tasks.get(key))
        self._tasks[key] = workload.prepared
        return workload

    def __call__(self, trial: optuna.Trial) -> ConfigResult:
        values, inactive = suggest(trial, self.params, self.grid, self.lookup)
        if inactive:
            trial.set_user_attr(INACTIVE, inactive)
        cfg = self.config({**values, **inactive})
        workload = self.workload(cfg)
        seeds = draw_seeds(int(cfg.seeds), cfg.seed_list)
        trial.set_user_attr(SEEDS, seeds)
        parent = self.tracker.start_config_run(
            f"trial {trial.number}", {**run_params(cfg, workload, seeds), TRIAL_PARAM: trial.number},
            OmegaConf.to_yaml(cfg), self.command, tags=parent_tags(trial.number, trial.study.study_name))
        faults.point("parent_run_started")
        trial.set_user_attr(MLFLOW_RUN_ID, parent)
        faults.point("run_id_recorded")

        means: list[float] = []
        pruned = False
        maximize = trial.study.direction == optuna.study.StudyDirection.MAXIMIZE

        def report(epoch: int, mean: float, trainers) -> bool:
            nonlocal pruned
            trial.report(mean, epoch)
            means.append(mean)
            if self.on_epoch is not None:
                self.on_epoch(trial.number, epoch, seeds, sum(not t.done for t in trainers), mean)
            faults.point("epoch_logged")
            pruned = trial.should_prune()
            return pruned or (self.stop is not None
                              and self.stop.stagnant(means, maximize))

        def worth_saving(value: float) -> bool:
            """Not pruned and at least as good as the k-th best completed trial so far (a
            trial worse than that can never be among the top k whose weights are kept)."""
            if pruned or self.keep_weights is None:
                return not pruned
            top = ranked(trial.study)[: self.keep_weights]
            if len(top) < self.keep_weights:
                return True
            worst = top[-1].value
            return value >= worst if maximize else value <= worst

        result = run_config(workload, seeds, self.tracker, parent, on_epoch=report,
                            keep_weights=worth_saving)
        result.pruned = pruned
        for key, value in trial_attrs(result, pruned).items():
            trial.set_user_attr(key, value)
        return result
