"""When a trial stops early, decided on its seed mean (each seed's best dev value so far,
averaged), never on one seed.

Two questions, asked after every epoch:
- *Has the seed mean stagnated?* Not better by more than `min_delta` (relative: 0.002 is
  0.2% of the mean, so one default serves an accuracy near 0.8 and a perplexity near 100)
  over the last `patience` + 1 epochs. Then the trial is over: every seed keeps its best
  weights and the trial COMPLETEs, the per-seed patience's extra epochs unspent.
- *Is the trial unpromising?* The `wrap` pruner (median: below the median of earlier
  trials at the same epoch) says so. A stagnant, unpromising trial is PRUNED; with
  `prune_improving: true` an unpromising trial is pruned even while it still improves.

Optuna's PatientPruner answers the first question with an absolute min_delta and never
counts a flat curve as stagnant when min_delta is 0, and on its own it prunes every trial
at its natural end, which is why it never saved compute here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from omegaconf import DictConfig
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from models.errors import UserError


class SeedMeanPatience(optuna.pruners.BasePruner):
    """Prune once the best of the last `patience` + 1 reported seed means is not better than
    the best before them by more than `min_delta` (relative), and `wrapped` (if any) agrees."""

    def __init__(self, wrapped: optuna.pruners.BasePruner | None, patience: int, min_delta: float):
        if patience < 0 or min_delta < 0:
            raise ValueError("patience and min_delta must be >= 0")
        self.wrapped, self.patience, self.min_delta = wrapped, patience, min_delta

    def stagnant(self, values: list[float], maximize: bool) -> bool:
        if len(values) <= self.patience + 1:
            return False
        before, recent = values[:-(self.patience + 1)], values[-(self.patience + 1):]
        best_before = max(before) if maximize else min(before)
        best_recent = max(recent) if maximize else min(recent)
        gain = (best_recent - best_before) if maximize else (best_before - best_recent)
        return gain <= self.min_delta * abs(best_before)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        steps = sorted(trial.intermediate_values)
        values = [v for v in (trial.intermediate_values[s] for s in steps) if math.isfinite(v)]
        if not self.stagnant(values, study.direction == StudyDirection.MAXIMIZE):
            return False
        return True if self.wrapped is None else self.wrapped.prune(study, trial)


@dataclass(frozen=True)
class PruningPlan:
    pruner: optuna.pruners.BasePruner  # the study's pruner: PRUNED when it says so
    stop: SeedMeanPatience | None  # ends a stagnant trial as COMPLETE; None: seeds decide alone


def make_pruner(p: DictConfig) -> PruningPlan:
    if p.name == "none":
        return PruningPlan(optuna.pruners.NopPruner(), None)
    if p.name != "patience":
        raise UserError(f"unknown pruner {p.name!r}; choose one of: patience, none.")
    wrapped = {"none": None,
               "median": optuna.pruners.MedianPruner(n_startup_trials=int(p.n_startup_trials),
                                                     n_warmup_steps=int(p.n_warmup_steps)),
               "successive_halving": optuna.pruners.SuccessiveHalvingPruner()}
    if p.wrap not in wrapped:
        raise UserError(f"pruner.wrap must be none, median or successive_halving, not {p.wrap!r}.")
    if not isinstance(p.prune_improving, bool):
        raise UserError(f"pruner.prune_improving must be true or false, not {p.prune_improving!r}.")
    try:
        stop = SeedMeanPatience(None, int(p.patience), float(p.min_delta))
    except (TypeError, ValueError) as e:
        raise UserError(f"bad pruner settings: {e}.") from e
    unpromising = wrapped[p.wrap]
    if unpromising is None:
        return PruningPlan(optuna.pruners.NopPruner(), stop)
    if p.prune_improving:
        return PruningPlan(unpromising, stop)
    return PruningPlan(SeedMeanPatience(unpromising, stop.patience, stop.min_delta), stop)
