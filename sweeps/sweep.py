"""`make sweep MODEL=dan`: search a model's space with multi-seed trials, resumably.

    python -m sweeps.sweep model=dan sampler=grid sweep.trials=8 sweep.workers=2 [overrides]

Re-running the same command resumes the study: finished trials are kept, trials a
killed process left RUNNING are failed and their configuration tried again.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import optuna
import torch
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from models.errors import UserError
from sweeps import storage
from sweeps.config import compose_config
from sweeps.objective import TRIAL_STATE, Objective, WorkloadFactory
from sweeps.search_space import grid_points, parse_space
from sweeps.storage import MLFLOW_RUN_ID
from sweeps.tracking import Tracker
from sweeps.workloads import build_workload

WEIGHTS = "weights"
WEIGHTS_DELETED = "weights_deleted"  # study attribute: trials whose seed weights are gone


def _stream_seed(seed: int, existing: int, worker: int) -> int:
    """A sampler seed per worker and per resume, so no two streams replay each other."""
    return int(np.random.SeedSequence([seed, existing, worker]).generate_state(1)[0])


def make_sampler(s: DictConfig, existing: int, worker: int) -> optuna.samplers.BaseSampler:
    seed = _stream_seed(int(s.seed), existing, worker)
    if s.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=int(s.n_startup_trials),
                                          multivariate=bool(s.multivariate))
    if s.name in ("random", "grid"):  # grid trials are queued with all their values fixed
        return optuna.samplers.RandomSampler(seed=seed)
    raise UserError(f"unknown sampler {s.name!r}; choose one of: grid, random, tpe.")


def make_pruner(p: DictConfig) -> optuna.pruners.BasePruner:
    if p.name == "none":
        return optuna.pruners.NopPruner()
    if p.name != "patience":
        raise UserError(f"unknown pruner {p.name!r}; choose one of: patience, none.")
    wrapped = {"none": None,
               "median": optuna.pruners.MedianPruner(n_startup_trials=int(p.n_startup_trials),
                                                     n_warmup_steps=int(p.n_warmup_steps)),
               "successive_halving": optuna.pruners.SuccessiveHalvingPruner()}
    if p.wrap not in wrapped:
        raise UserError(f"pruner.wrap must be none, median or successive_halving, not {p.wrap!r}.")
    with warnings.catch_warnings():  # PatientPruner is marked experimental since v2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.PatientPruner(wrapped[p.wrap], patience=int(p.patience),
                                            min_delta=float(p.min_delta))


class Sweep:
    """One worker's view of a study: opens it, claims trials, runs and records them."""

    def __init__(self, overrides: Sequence[str], worker: int = 0, quiet: bool = False,
                 workload_factory: WorkloadFactory = build_workload):
        self.overrides, self.worker, self.quiet = list(overrides), worker, quiet
        self.cfg = cfg = compose_config(self.overrides)
        self.params = parse_space(cfg.search_space, cfg)
        self.grid = cfg.sampler.name == "grid"
        self.points = self._grid(cfg) if self.grid else []
        self.budget = (min(len(self.points), int(cfg.sweep.trials)) if self.grid
                       else int(cfg.sweep.trials))
        self.name = storage.study_name(cfg)
        self.folder = storage.folder_of(cfg)
        self.command = "python -m sweeps.sweep " + " ".join(shlex.quote(o) for o in self.overrides)
        self.tracker = Tracker(self.name, cfg.tracking.uri, cfg.tracking.artifacts)
        self.objective = Objective(self.overrides, self.params, self.grid, self.tracker,
                                   self.command, workload_factory)
        self.study = self._open_study()

    def _grid(self, cfg: DictConfig) -> list[dict]:
        """The product of the grid values, or the explicit `sweep.grid_points`; the latter
        also become the params' grids, so each point's values are valid choices."""
        if not cfg.sweep.get("grid_points"):
            return grid_points(self.params)
        points = [dict(p) for p in OmegaConf.to_container(cfg.sweep.grid_points)]
        names = {p.name for p in self.params}
        for point in points:
            if set(point) != names:
                raise UserError(f"sweep.grid_points entry {point} must set exactly the search-space "
                                f"keys {sorted(names)}.")
        self.params = [replace(p, grid=tuple(dict.fromkeys(pt[p.name] for pt in points)))
                       for p in self.params]
        return points

    def _open_study(self) -> optuna.Study:
        base = self.objective.workload(self.cfg)  # loads the data once; tells the direction
        direction = "maximize" if base.task.mode == "max" else "minimize"
        store = storage.open_storage(self.cfg.storage.url, self.folder)
        with storage.study_lock(self.name, self.folder):
            existing = 0
            try:
                existing = len(optuna.load_study(study_name=self.name, storage=store).trials)
            except KeyError:
                pass
            study = optuna.create_study(
                study_name=self.name, storage=store, direction=direction, load_if_exists=True,
                sampler=make_sampler(self.cfg.sampler, existing, self.worker),
                pruner=make_pruner(self.cfg.pruner))
            if study.direction.name.lower() != direction:
                raise UserError(f"study {self.name!r} exists with direction "
                                f"{study.direction.name.lower()}; pass sweep.study_name=<new name>.")
            space = OmegaConf.to_yaml(self.cfg.search_space)
            if "command" not in study.user_attrs:
                study.set_user_attr("command", self.command)
                study.set_user_attr("mlflow_experiment", self.name)
                study.set_user_attr("monitor", base.task.monitor)
                study.set_user_attr("params", [p.name for p in self.params])
                study.set_user_attr("search_space", space)
            elif study.user_attrs.get("search_space", space) != space:
                raise UserError(f"study {self.name!r} was created with another search space "
                                f"(its command: {study.user_attrs['command']}); resume it with that "
                                "space, or start a new study with sweep.study_name=<name>.")
            if self.grid:
                storage.enqueue_grid(study, self.points)
        return study

    def _recovered(self, t: optuna.trial.FrozenTrial) -> None:
        if run_id := t.user_attrs.get(MLFLOW_RUN_ID):
            self.tracker.end_stale(run_id)
            self.tracker.set_tags(run_id, {TRIAL_STATE: "FAIL"})

    def run(self) -> None:
        """Claim and run trials until the budget (or the grid) is used up."""
        while True:
            trial = storage.claim_trial(self.study, self.budget, self.grid, self.folder,
                                        self._recovered)
            if trial is None:
                return
            self.run_trial(trial)

    def run_trial(self, trial: optuna.Trial) -> None:
        start = time.time()
        try:
            result = self.objective(trial)
        except KeyboardInterrupt:
            with storage.study_lock(self.name, self.folder):
                frozen = self.study._storage.get_trial(trial._trial_id)
                storage.retry(self.study, frozen, "interrupted by the user (Ctrl-C)")
                self._recovered(frozen)
            raise
        except Exception as e:  # noqa: BLE001 - any failure fails this trial, not the sweep
            reason = f"{type(e).__name__}: {e}"
            trial.set_user_attr(storage.FAIL_REASON, reason)
            self.study.tell(trial, state=TrialState.FAIL)
            if run_id := trial.user_attrs.get(MLFLOW_RUN_ID):
                self.tracker.set_tags(run_id, {TRIAL_STATE: "FAIL", storage.FAIL_REASON: reason[:5000]})
            self._progress(trial.number, "FAIL", reason, start)
        else:
            state = TrialState.PRUNED if result.stopped else TrialState.COMPLETE
            if state == TrialState.PRUNED:
                self.study.tell(trial, state=state)
            else:
                self.study.tell(trial, result.mean)
            self.tracker.set_tags(result.run_id, {TRIAL_STATE: state.name})
            epoch = max(r.epochs_run for r in result.seed_results)
            at = f", pruned at epoch {epoch}" if result.stopped else ""
            self._progress(trial.number, state.name, f"{result.mean:.4f} ± {result.std:.4f} "
                           f"(K={len(result.seeds)}, seed-best mean{at})", start)
        self._keep_top_weights()

    def _keep_top_weights(self) -> None:
        """Delete the seed weights of trials outside the top-k completed (pruned and failed
        trials included): only those can still be finally evaluated."""
        k = int(self.cfg.sweep.keep_weights)
        with storage.study_lock(self.name, self.folder):
            trials = self.study.get_trials(deepcopy=False)
            top = {t.number for t in ranked(self.study, trials)[:k]}
            deleted = set(self.study.user_attrs.get(WEIGHTS_DELETED, []))
            for t in trials:
                if (t.state.is_finished() and t.number not in top and t.number not in deleted
                        and MLFLOW_RUN_ID in t.user_attrs):
                    for run in self.tracker.child_runs(t.user_attrs[MLFLOW_RUN_ID]):
                        self.tracker.delete_artifacts(run.info.run_id, WEIGHTS)
                    deleted.add(t.number)
            self.study.set_user_attr(WEIGHTS_DELETED, sorted(deleted))

    def _progress(self, number: int, state: str, detail: str, start: float) -> None:
        if self.quiet:
            return
        trials = self.study.get_trials(deepcopy=False)
        done = sum(storage.counts_toward_budget(t) and t.state.is_finished() for t in trials)
        best = ranked(self.study, trials)
        best_text = (f"best #{best[0].number} {best[0].value:.4f} {short(best[0].params)}"
                     if best else "no completed trial yet")
        print(f"[{done}/{self.budget}] trial {number} {state:8s} {detail}  {time.time() - start:.0f}s"
              f" | {best_text}", flush=True)


def ranked(study: optuna.Study, trials=None) -> list[optuna.trial.FrozenTrial]:
    """Completed trials, best first."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return sorted(done, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")


def short(params: dict) -> str:
    return " ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                    for k, v in params.items())


def summary(study: optuna.Study, top: int) -> str:
    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(t.state == s for t in trials) for s in
              (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    lines = [f"study {study.study_name}: " + ", ".join(f"{v} {k.lower()}" for k, v in states.items())]
    rows = ranked(study, trials)[:top]
    if not rows:
        return lines[0]
    lines.append(f"{'trial':>5}  {'dev mean ± std':>17}  {'K':>2}  {'epochs':>6}  params")
    for t in rows:
        std = t.user_attrs.get("std", math.nan)
        lines.append(f"{t.number:>5}  {t.value:>8.4f} ± {std:.4f}  {len(t.user_attrs.get('seeds', [])):>2}"
                     f"  {t.user_attrs.get('epochs_run', 0):>6}  {short(t.params)}")
    return "\n".join(lines)


def worker_threads(cfg: DictConfig, workers: int) -> int:
    return int(cfg.threads) if cfg.threads else max(1, (os.cpu_count() or 1) // workers)


def main(argv: Sequence[str] | None = None) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = list(sys.argv[1:] if argv is None else argv)
    worker = None
    if args and args[0].startswith("--worker="):
        worker = int(args.pop(0).split("=", 1)[1])
    try:
        cfg = compose_config(args)
        workers = int(cfg.sweep.workers)
        torch.set_num_threads(worker_threads(cfg, workers))
        if worker is not None or workers <= 1:
            sweep = Sweep(args, worker or 0)
            sweep.run()
            if worker is not None:
                return 0
            study, command = sweep.study, sweep.command
        else:
            # Create the study and queue the grid once, up front, then let the workers run it.
            command = Sweep(args, 0, quiet=True).command
            procs = [subprocess.Popen([sys.executable, "-m", "sweeps.sweep", f"--worker={i}", *args])
                     for i in range(workers)]
            codes = [p.wait() for p in procs]
            if any(codes):
                print(f"error: worker exit codes {codes}; run the same command to resume.",
                      file=sys.stderr)
                return 1
            study = storage.load_study(cfg, storage.study_name(cfg))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the study is intact; run the same command to resume.", file=sys.stderr)
        return 130
    print(summary(study, int(cfg.sweep.show_top)))
    print(f"Optuna study and MLflow experiment {study.study_name!r}; reproduce: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
