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

from models.training import SeedResult
from sweeps.config.compose import compose_config
from sweeps.config.schema import check_config
from sweeps.config.search_space import Lookup, Param, suggest, to_overrides
from sweeps.config.workloads import Workload, build_workload
from sweeps.core import faults
from sweeps.core.records import (
    INACTIVE,
    MLFLOW_RUN_ID,
    RACED_OUT,
    SEEDS,
    SEEDS_RUN_TAG,
    TRIAL_PARAM,
    parent_tags,
    trial_attrs,
)
from sweeps.search import racing
from sweeps.search.pruning import SeedMeanPatience
from sweeps.search.seeds import ConfigResult, draw_seeds, end_parent_run, run_config, run_params
from sweeps.store import ranked
from sweeps.tracking.tracker import Tracker

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
        self.stop = stop  # ends a trial whose seed mean stagnated (sweeps/search/pruning.py)
        self.keep_weights = keep_weights  # weights saved only for trials that may be in this top k
        self._tasks: dict[str, Any] = {}  # data config (yaml) -> prepared task
        self._base = base  # the config composed from `base_overrides`, when the caller has it
        self.policy: racing.SeedPolicy | None = None  # seeds_policy=race: set once the study is open
        self.race_seeds: list[int] = []  # ... with the K seeds the study drew once

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
        seeds = list(self.race_seeds) if self.race_seeds else draw_seeds(int(cfg.seeds), cfg.seed_list)
        trial.set_user_attr(SEEDS, seeds)
        # params and config are written while the models are built; the run's end waits for them
        parent = self.tracker.start_config_run(
            f"trial {trial.number}", {**run_params(cfg, workload, seeds), TRIAL_PARAM: trial.number},
            lambda: OmegaConf.to_yaml(cfg), self.command,
            tags=parent_tags(trial.number, trial.study.study_name), wait=False)
        faults.point("parent_run_started")
        trial.set_user_attr(MLFLOW_RUN_ID, parent)
        faults.point("run_id_recorded")

        pruned = False
        maximize = trial.study.direction == optuna.study.StudyDirection.MAXIMIZE

        def report(look: int, look_seeds: list[int]):
            """The epoch hook of one look's seeds: the first look reports to the pruner (its
            epochs are the trial's steps); every look stops on its own stagnant seed mean."""
            means: list[float] = []

            def hook(epoch: int, mean: float, trainers) -> bool:
                nonlocal pruned
                means.append(mean)
                if look == 0:
                    trial.report(mean, epoch)
                if self.on_epoch is not None:
                    self.on_epoch(trial.number, epoch, look_seeds, sum(not t.done for t in trainers), mean)
                faults.meet("epoch_logged", timeout=30.0)  # tests: a trial held mid-way, on cue
                faults.point("epoch_logged")
                pruned = look == 0 and trial.should_prune()
                return pruned or (self.stop is not None and self.stop.stagnant(means, maximize))
            return hook

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

        looks = self.policy.looks() if self.policy is not None else [len(seeds)]
        if len(looks) == 1:
            result = run_config(workload, seeds, self.tracker, parent, on_epoch=report(0, seeds),
                                keep_weights=worth_saving)
        else:
            result = self._race(trial, workload, seeds, parent, looks, report, worth_saving,
                                lambda: pruned, maximize)
        result.pruned = pruned
        for key, value in trial_attrs(result, pruned).items():
            trial.set_user_attr(key, value)
        return result

    def _race(self, trial: optuna.Trial, workload: Workload, seeds: list[int], parent: str,
              looks: list[int], report, worth_saving, pruned: Callable[[], bool],
              maximize: bool) -> ConfigResult:
        """The trial's seeds look by look (sweeps/search/racing.py), each look a stacked group
        under the same parent run; stops when pruned or when it can no longer beat the
        incumbent, read from the study at each look. Every look keeps its seeds' weights:
        one look's mean says nothing of the trial's K-seed mean, which may end up the best
        (the sweep removes the weights of trials outside the top k once they end)."""
        results: list[SeedResult] = []
        stopped, reason, status, ended = False, "", "FAILED", False
        try:
            for look, upto in enumerate(looks):
                try:
                    part = run_config(workload, seeds[len(results):upto], self.tracker, parent,
                                      on_epoch=report(look, seeds[len(results):upto]),
                                      keep_weights=None, end_parent=False)
                except BaseException:
                    ended = True  # run_config ended the parent run with what it logged
                    raise
                results += part.seed_results
                stopped = stopped or part.stopped
                if upto == len(seeds) or pruned():
                    break
                values = {r.seed: r.best_value for r in results}
                everyone = trial.study.get_trials(deepcopy=False)
                best = racing.incumbent(everyone, len(seeds), maximize)
                if reason := racing.race_stop(values, best, self.policy, seeds, maximize, everyone) or "":
                    trial.set_user_attr(RACED_OUT, reason)
                    self.tracker.set_tags(parent, {RACED_OUT: reason, SEEDS_RUN_TAG: str(len(results))})
                    break
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            if not ended:
                end_parent_run(self.tracker, parent, workload.task.monitor, results, status)
        trial.set_user_attr(SEEDS, [r.seed for r in results])
        return ConfigResult(parent, workload.task.monitor, results, stopped, raced_out=reason)
