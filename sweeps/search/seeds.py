"""One configuration over K seeds, trained in lockstep and tracked.

Seeds are a nuisance axis to average over, never a hyper-parameter (tuning playbook):
they are drawn at random unless given, and always recorded. Each epoch every unfinished
seed trains once and the seed mean of the dev metric is computed, which is what a
sweep's pruner sees.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from models import metrics
from models.errors import UserError
from models.training import SeedRecord, SeedResult, load_trainers, save_trainers
from sweeps.config.workloads import Workload
from sweeps.core import faults
from sweeps.core.records import (
    K_SEEDS_PARAM,
    SEEDS_PARAM,
    SEEDS_VECTORIZED,
    SWEEP_ONLY,
    flatten,
    mean_std,
)
from sweeps.tracking import seed_runs
from sweeps.tracking.seed_runs import RunLog

SEED_BITS = 31


def draw_seeds(k: int, given: Sequence[int] | None = None) -> list[int]:
    """`given` as ints, or `k` distinct seeds from the OS's entropy."""
    if given:
        seeds = [int(s) for s in given]
        if len(set(seeds)) != len(seeds):
            raise UserError(f"seed_list must hold distinct seeds, got {seeds}.")
        return seeds
    if k < 1:
        raise UserError(f"need at least one seed, got seeds={k}.")
    rng = random.SystemRandom()
    seeds: list[int] = []
    while len(seeds) < k:
        s = rng.randrange(2**SEED_BITS)
        if s not in seeds:
            seeds.append(s)
    return seeds


def run_params(cfg: DictConfig, workload: Workload, seeds: list[int]) -> dict:
    """What a configuration's parent run records as params: the training config (not the
    sweep's own settings), derived data values and the seeds."""
    training = {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in SWEEP_ONLY}
    return {**flatten(training), **workload.info, SEEDS_PARAM: " ".join(map(str, seeds)),
            K_SEEDS_PARAM: len(seeds)}


@dataclass
class ConfigResult:
    run_id: str
    monitor: str  # e.g. "accuracy"
    seed_results: list[SeedResult]
    stopped: bool = False  # stopped by the epoch hook before every seed stopped by itself
    pruned: bool = False  # ... because the sweep's pruner found it unpromising
    raced_out: str = ""  # seeds_policy=race: why it ran fewer than K seeds (sweeps/search/racing.py)
    weights_saved: bool = True  # its seed runs were given their best weights (False: none to delete)

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.seed_results]

    @property
    def best_values(self) -> list[float]:
        return [r.best_value for r in self.seed_results]

    @property
    def mean(self) -> float:
        return mean_std(self.best_values)[0]

    @property
    def std(self) -> float:
        return mean_std(self.best_values)[1]


# (epoch, seed mean of the dev metric, trainers) -> True to stop every seed now
EpochHook = Callable[[int, float, list[SeedRecord]], bool | None]


class SeedGroup:
    """K trainers of one workload, one nested MLflow run each under `parent_id`."""

    def __init__(self, workload: Workload, seeds: Sequence[int], tracker: RunLog, parent_id: str,
                 checkpoint: Path | None = None):
        self.workload, self.tracker, self.checkpoint = workload, tracker, checkpoint
        self.parent_id = parent_id
        self.monitor = workload.task.monitor
        if checkpoint is not None and checkpoint.exists():  # go on where a killed run stopped
            self.seeds, saved = load_trainers(checkpoint, workload.task, workload.device)
            self.trainers = self.seeds.seeds
            if [t.seed for t in self.trainers] != list(seeds):
                raise UserError(f"checkpoint {checkpoint} holds seeds {[t.seed for t in self.trainers]}, "
                                f"not {list(seeds)}: delete it to train anew.")
            self.run_ids, self.epoch = list(saved["run_ids"]), int(saved["epoch"])
            seed_runs.reopen(tracker, parent_id, self.run_ids)
            return
        # The seed runs are created while the models are built: building is torch's work, which
        # releases the GIL, creating runs is MLflow's Python and SQL, so on two cores they
        # overlap (~50 ms a trial of a default sweep). Runs whose models could not be built end.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-runs") as pool:
            starting = pool.submit(seed_runs.start, tracker, parent_id, seeds)
            try:
                self.seeds = workload.trainers(list(seeds))
            except BaseException as e:
                _end_started(tracker, starting, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
                raise
            self.run_ids = starting.result()
        self.trainers = self.seeds.seeds
        tracker.set_tags(parent_id, {SEEDS_VECTORIZED: str(self.seeds.vectorized).lower()}, wait=False)
        faults.point("seed_runs_started")
        self.epoch = 0

    def save(self) -> None:
        """A checkpoint after the epoch just logged (when the group has a checkpoint file)."""
        if self.checkpoint is not None:
            self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            save_trainers(self.seeds, self.checkpoint, {"run_ids": self.run_ids, "epoch": self.epoch})

    @property
    def done(self) -> bool:
        return all(t.done for t in self.trainers)

    @property
    def training(self) -> int:
        return sum(not t.done for t in self.trainers)

    def step(self) -> float:
        """One epoch of every unfinished seed; the seed mean after it: the mean over seeds of
        each seed's best dev value so far (the weights it would keep). The one definition of
        "seed mean" everywhere: at the last epoch it is the trial's value."""
        self.epoch += 1
        seed_runs.log_epoch(self.tracker, self.run_ids,
                            [None if m is None else (m.epoch, m.as_dict()) for m in self.seeds.step()])
        return mean_std([t.best_value for t in self.trainers])[0]

    def close(self, status: str, save_weights: bool = True) -> list[SeedResult]:
        """Log each seed's best epoch, value and (if `save_weights`) weights, whatever it
        reached, and end its run; with weights, the parent run keeps the vocabulary and labels
        they fit (sweeps/tracking/trained_data.py)."""
        results = [t.result() for t in self.trainers]
        closing = [seed_runs.Closing(run_id, r.seed) for r, run_id in zip(results, self.run_ids)]
        for c, r, trainer in zip(closing, results, self.trainers):
            if r.best_epoch > 0:
                c.values = {metrics.best_dev(self.monitor): r.best_value,
                            metrics.BEST_EPOCH: r.best_epoch, metrics.EPOCHS_RUN: r.epochs_run}
                c.weights = trainer.best_state_dict() if save_weights else None
        seed_runs.close(self.tracker, self.parent_id, closing, status, self.workload.task)
        return results


def _end_started(tracker: RunLog, starting: Future, status: str) -> None:
    """End the seed runs `starting` created, if it did (what it raised is not the story)."""
    try:
        run_ids = starting.result()
    except Exception:  # noqa: BLE001 - the build's own error is raised instead
        return
    for run_id in run_ids:
        tracker.end_run(run_id, status)


def run_config(
    workload: Workload,
    seeds: Sequence[int],
    tracker: RunLog,
    parent_id: str,
    on_epoch: EpochHook | None = None,
    keep_weights: Callable[[float], bool] | None = None,
    checkpoint: Path | None = None,
    end_parent: bool = True,
) -> ConfigResult:
    """Train every seed to its early stop, tracking into `parent_id`, and end that run.

    `on_epoch(epoch, seed_mean, trainers)` returning True stops every seed there (a sweep
    prunes so). `keep_weights(seed mean)` False: the seeds' weights are not saved (a sweep
    keeps them only for trials that can still be among its best). An exception propagates
    after every run is closed with what it logged. `checkpoint`: a file written after every
    epoch and kept when the run is killed; a run started again with it (and its parent run
    id) goes on from the last epoch as if it had never stopped. `end_parent` False: these
    are some of the parent's seeds (a race adds more later); the parent gets no seed-mean
    metrics and stays open, and the caller ends it (sweeps/search/racing.py).
    """
    resuming = checkpoint is not None and checkpoint.exists()
    try:
        group = SeedGroup(workload, seeds, tracker, parent_id, checkpoint)
    except BaseException as e:  # nothing trained: the parent run ends with what it was sent
        if not resuming:  # (a checkpoint that cannot go on leaves its runs as they were)
            with contextlib.suppress(Exception):  # the build's own failure is the story
                end_parent_run(tracker, parent_id, workload.task.monitor, [],
                               "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    monitor = group.monitor
    status, stopped = "FAILED", False
    try:
        while not group.done and not stopped:
            mean = group.step()
            if end_parent:  # a race's later seeds would log a second curve over the same epochs
                tracker.log_metrics(parent_id, {metrics.seed_mean(metrics.dev(monitor)): mean},
                                    step=group.epoch, wait=False)
            group.save()
            if on_epoch is not None:
                stopped = bool(on_epoch(group.epoch, mean, group.trainers)) and not group.done
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        reached = [t.best_value for t in group.trainers if t.best_epoch > 0]
        save = keep_weights is None or (status == "FINISHED" and bool(reached)
                                        and keep_weights(mean_std(reached)[0]))
        results = group.close(status, save)
        faults.point("seed_runs_closed")
        if end_parent or status != "FINISHED":
            end_parent_run(tracker, parent_id, monitor, results, status)
        if checkpoint is not None and status != "KILLED":
            checkpoint.unlink(missing_ok=True)
    return ConfigResult(parent_id, monitor, results, stopped, weights_saved=save)


def end_parent_run(tracker: RunLog, parent_id: str, monitor: str, results: Sequence[SeedResult],
                   status: str) -> None:
    """Log the seed mean and std of `results` (the seeds that reached an epoch) on a
    configuration's parent run and end it."""
    reached = [r.best_value for r in results if r.best_epoch > 0]
    if reached:
        mean, std = mean_std(reached)
        best = metrics.best_dev(monitor)
        tracker.log_metrics(parent_id, {metrics.seed_mean(best): mean, metrics.seed_std(best): std})
    tracker.end_run(parent_id, status)
