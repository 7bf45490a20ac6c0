"""One worker's view of a study: opens it (checking what its trials mean), claims trials,
runs them over K seeds and records them in Optuna and MLflow."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from models.errors import UserError
from sweeps import store
from sweeps.config.compose import compose_config
from sweeps.config.search_space import check_point, config_lookup, grid_points, parse_space
from sweeps.config.workloads import build_workload, metric
from sweeps.core import faults
from sweeps.core.records import (
    BUDGET,
    COMMAND,
    FAIL_REASON,
    FINGERPRINT,
    IDENTITY,
    MLFLOW_EXPERIMENT,
    MLFLOW_RUN_ID,
    MONITOR,
    OVERRIDES,
    PARAMS,
    SEEDS_POLICY,
    TRIAL_STATE,
    WEIGHTS_DELETED,
    WEIGHTS_SAVED,
)
from sweeps.core.redact import redact
from sweeps.search import racing
from sweeps.search.identity import check_resume, make_command, override_key, pin, study_identity
from sweeps.search.objective import Objective, WorkloadFactory
from sweeps.search.progress import Progress, abbreviations, short_params
from sweeps.search.pruning import make_pruner
from sweeps.search.reconcile import reconcile
from sweeps.search.samplers import make_sampler
from sweeps.search.seeds import draw_seeds
from sweeps.store import ranked
from sweeps.tracking import seed_runs
from sweeps.tracking.tracker import Tracker

optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happens


# seconds between the writes of a trial's per-epoch curves to MLflow: a call a run per
# interval, not per epoch (a killed trial is run again anew, so held curves never matter)
CURVES_EVERY = 30.0


class Sweep:
    """One worker's view of a study: opens it, claims trials, runs and records them.

    Long because opening (resume checks, the fingerprint, the grid) and the trial loop
    (claim, heartbeat, record, interrupt) share the study, the tracker and the policy it
    holds; splitting them is left to a later round (issue 35)."""

    def __init__(self, overrides: Sequence[str], worker: int = 0, quiet: bool = False,
                 workload_factory: WorkloadFactory = build_workload, progress: Progress | None = None,
                 join: str | None = None, cfg: DictConfig | None = None):
        """`join`: the name of an existing study to work on (`make worker`); it is not created.
        `cfg`: the config the caller already composed from `overrides` (composing is ~0.3 s)."""
        self.overrides, self.worker = list(overrides), worker
        self.progress = progress or Progress(quiet=quiet)
        self.cfg = cfg = compose_config(self.overrides) if cfg is None else cfg
        self.policy = racing.seed_policy(cfg)
        lookup = config_lookup(cfg)
        self.params = pin(parse_space(cfg.search_space, cfg), self.overrides, cfg)
        self.grid = cfg.sampler.name == "grid"
        self.points = self._grid(cfg, lookup) if self.grid else []
        self.budget = (min(len(self.points), int(cfg.sweep.trials)) if self.grid
                       else int(cfg.sweep.trials))
        self.tracker = Tracker("", cfg.tracking.uri, cfg.tracking.artifacts,  # named once opened
                               curves_every=CURVES_EVERY)
        self.plan = make_pruner(cfg.pruner)
        self.objective = Objective(self.overrides, self.params, self.grid, self.tracker, "",
                                   workload_factory, lookup, on_epoch=self.progress.epoch,
                                   stop=self.plan.stop, keep_weights=int(cfg.sweep.keep_weights),
                                   base=cfg)
        self.progress.say(f"loading data ({cfg.data.name}) and checking the {cfg.model.name} settings")
        self.monitor, self.direction = metric(cfg)  # from the registry
        self.objective.workload(cfg)  # loads the data once, checks the model's settings
        self.identity = study_identity(cfg, self.params, f"dev_{self.monitor} ({self.direction})")
        self.name = join or store.study_name(cfg, self.identity.fingerprint)
        self.joined = join is not None  # a `make worker`: the budget is the maker's
        self.local_workers = False  # one of a sweep's worker processes on this machine
        self.before_claim: Callable[[], None] = lambda: None  # may raise to stop before a trial
        self.command = make_command(self.overrides, cfg.model.name, self.name if cfg.sweep.new else None)
        self.tracker.experiment = self.name
        self.objective.command = self.command
        self.abbrev = abbreviations([p.name for p in self.params])
        self.tracker.check_reachable()  # before a study is made or a trial claimed
        self.shared = store.SharedStudy(cfg, self.name)
        self.created = self.shared.open(
            self.direction, lambda n: make_sampler(cfg.sampler, n, self.worker), self.plan.pruner,
            self._check, {COMMAND: self.command, MLFLOW_EXPERIMENT: self.name, MONITOR: self.monitor,
                          PARAMS: [p.name for p in self.params], IDENTITY: self.identity.as_dict(),
                          FINGERPRINT: self.identity.fingerprint,
                          OVERRIDES: [redact(o) for o in self.overrides],
                          SEEDS_POLICY: self.policy.record(
                              draw_seeds(self.policy.k, cfg.seed_list) if self.policy.racing else None)},
            self.points if self.grid else None, create=join is None)
        self.study = self.shared.study
        # `make final` refuses a search short of its budget, naming the command that finishes it
        # a `make worker` joins, so the budget and its command are the study's maker's; a
        # smaller TRIALS than the trials done leaves them: that command did not run them all
        if join is None and self.budget >= self.done():
            self.study.set_user_attr(BUDGET, {"trials": self.budget, "command": self.command})
        if self.policy.racing:  # the K seeds drawn once, when the study was made
            self.objective.policy = self.policy
            self.objective.race_seeds = racing.study_seeds(self.study.user_attrs)

    def _grid(self, cfg: DictConfig, lookup) -> list[dict]:
        """The valid combinations of the grid values, or the explicit `sweep.grid_points`."""
        if not cfg.sweep.get("grid_points"):
            return grid_points(self.params, lookup)
        points = [dict(p) for p in OmegaConf.to_container(cfg.sweep.grid_points)]
        for point in points:
            check_point(self.params, point, lookup)
        # the points' values become the entries' grids, so each is a valid choice
        self.params = [p if p.fixed else replace(p, grid=tuple(dict.fromkeys(
            pt[p.name] for pt in points if p.name in pt)) or p.grid) for p in self.params]
        return points

    def _check(self, study: optuna.Study) -> None:
        identity = self.identity
        recorded = study.user_attrs.get(IDENTITY)
        if recorded is None:
            raise UserError(f"study {self.name!r} was made by an earlier version that recorded no "
                            "fingerprint of its settings; start a new study with sweep.new=true or "
                            "sweep.study_name=<name>.")
        check_resume(self.name, recorded, identity)
        given = "sweep.race_delta" in {override_key(o) for o in self.overrides}
        self.policy = racing.check_study(self.name, study.user_attrs, self.policy, given)

    def _recovered(self, t: optuna.trial.FrozenTrial) -> None:
        if run_id := t.user_attrs.get(MLFLOW_RUN_ID):
            self.tracker.end_stale(run_id)
            self.tracker.set_tags(run_id, {TRIAL_STATE: "FAIL"})

    def _reconcile(self) -> None:
        with self.shared.lock():
            if fixed := reconcile(self.study, self.tracker):
                self.progress.say(f"MLflow brought in line with the study: {len(fixed)} fix(es), "
                                  f"e.g. {fixed[0]}")

    def done(self) -> int:
        return sum(store.counts_toward_budget(t) and t.state.is_finished()
                   for t in self.study.get_trials(deepcopy=False))

    def run(self, announce: bool = True) -> None:
        """Claim and run trials until the budget (or the grid) is used up. `announce`: say
        what the study is, start the progress and close it at the end (False: the caller
        does, as a sweep running its trials beside workers of its own)."""
        if announce:
            self.announce(1)
        try:
            while True:
                self.before_claim()
                trial = self.shared.claim(self.budget, self.grid, self._recovered, self._waiting)
                if trial is None:
                    self._reconcile()  # trials recovered on the way may have left runs behind
                    return
                faults.point("trial_claimed")
                self.run_trial(trial)
        finally:
            if announce:
                self.progress.close()

    def announce(self, workers: int) -> None:
        """The study's status lines and legend; the progress starts, for `workers` at once."""
        done = self.done()
        trials = self.study.get_trials(deepcopy=False)
        k = len(self.cfg.seed_list) if self.cfg.seed_list else self.cfg.seeds
        if self.policy.racing:
            k = f"{self.policy.min_seeds}->{k} (race)"
        if self.created:
            self.progress.say(f"new study {self.name}: {self.budget} trials x {k} seeds")
        elif done > self.budget:  # a smaller TRIALS than before: not "7 of 6 trials done"
            self.progress.say(f"resuming study {self.name}: {done} trials done, more than this "
                              f"command's budget of {self.budget}: nothing to run")
            if not (self.joined or self.grid):  # its own line: a status line is clipped to 100
                self.progress.say("a larger TRIALS adds trials")
        elif any(t.state.is_finished() for t in trials):
            self.progress.say(f"resuming study {self.name}: {done} of {self.budget} trials done"
                              + (f", {sum(t.state == TrialState.WAITING for t in trials)} queued"
                                 if self.grid else ""))
        else:
            self.progress.say(f"joining study {self.name}: {self.budget} trials x {k} seeds")
        if trials:
            self._reconcile()
        self.progress.show_legend(self.abbrev)
        self.progress.start(max(self.budget, done), done, workers,
                            int(OmegaConf.select(self.cfg, "train.max_epochs", default=0) or 0),
                            f"dev {self.monitor}", past=store.trial_seconds(trials))

    def _waiting(self, running: int) -> None:
        if self.local_workers:  # one view of them all shows those trials running
            return
        self.progress.say(f"nothing left to claim; waiting for {running} trial(s) of other workers "
                          "(one that dies is failed and run again)")

    def run_trial(self, trial: optuna.Trial) -> None:
        start = time.time()
        self.progress.trial_started(trial.number)
        try:
            with self.shared.heartbeat(trial):
                result = self.objective(trial)
        except KeyboardInterrupt:
            self._interrupted(trial, "interrupted (Ctrl-C, or SIGTERM: a scheduler's preemption)")
            raise
        except Exception as e:  # noqa: BLE001 - any failure fails this trial, not the sweep
            if cause := faults.environment_failure(e):
                cause = redact(cause)[:200]
                self._interrupted(trial, f"environment failure: {cause}")
                raise faults.EnvironmentFailure(
                    f"the sweep stopped: {cause}. Trial {trial.number} goes back in the queue and "
                    "counts for nothing; fix the cause (free space, release the database, start the "
                    f"server) and rerun the same command to resume: {self.command}") from e
            if self._lost(trial, start):
                return
            reason = redact(f"{type(e).__name__}: {e}")  # stored and printed: no credentials
            trial.set_user_attr(FAIL_REASON, reason)
            self.study.tell(trial, state=TrialState.FAIL)
            if run_id := trial.user_attrs.get(MLFLOW_RUN_ID):
                self.tracker.set_tags(run_id, {TRIAL_STATE: "FAIL", FAIL_REASON: reason[:5000]})
            self._finished(trial, "FAIL", reason, start)
        else:
            state = TrialState.PRUNED if result.pruned else TrialState.COMPLETE
            faults.point("before_tell")
            if self._lost(trial, start):
                return
            if state == TrialState.PRUNED:
                self.study.tell(trial, state=state)
            else:
                self.study.tell(trial, result.mean)
            faults.point("after_tell")
            self.tracker.set_tags(result.run_id, {TRIAL_STATE: state.name})
            faults.point("after_tag")
            epoch = max(r.epochs_run for r in result.seed_results)
            at = f" at ep {epoch}" if result.pruned else f" {epoch}ep"
            if result.raced_out:
                at += f", {racing.brief(result.raced_out)}"
            self._finished(trial, state.name, f"{result.mean:.4f}±{result.std:.4f}{at}", start)
        self._keep_top_weights()

    def _interrupted(self, trial: optuna.Trial, reason: str) -> None:
        """Fail the trial as interrupted (not in the budget), queue its configuration again
        and end its MLflow runs; a store that still fails is left for the next start."""
        try:
            self.shared.interrupt(trial, reason, self._recovered)
        except Exception:  # noqa: BLE001 - the next start recovers a trial left RUNNING
            pass

    def _lost(self, trial: optuna.Trial, start: float) -> bool:
        """Whether another worker already failed this trial (its heartbeat went stale while
        this worker was cut off or stopped): its result is dropped, the retry counts."""
        frozen = self.shared.finished_elsewhere(trial)
        if frozen is None:
            return False
        self._recovered(frozen)
        self._finished(trial, "LOST", "failed by another worker (stale heartbeat); its retry runs it",
                       start)
        return True

    def _keep_top_weights(self) -> None:
        """Delete the seed weights of trials outside the top-k completed (pruned and failed
        trials included): only those can still be finally evaluated."""
        k = int(self.cfg.sweep.keep_weights)
        with self.shared.lock():
            trials = self.study.get_trials(deepcopy=False)
            top = {t.number for t in ranked(self.study, trials)[:k]}
            deleted = set(self.study.user_attrs.get(WEIGHTS_DELETED, []))
            for t in trials:
                if (t.state.is_finished() and t.number not in top and t.number not in deleted
                        and MLFLOW_RUN_ID in t.user_attrs):
                    if t.user_attrs.get(WEIGHTS_SAVED) is not False:  # unknown (a kill, older records): look
                        seed_runs.delete_weights(self.tracker, t.user_attrs[MLFLOW_RUN_ID])
                    deleted.add(t.number)
            self.study.set_user_attr(WEIGHTS_DELETED, sorted(deleted))

    def _finished(self, trial: optuna.Trial, state: str, detail: str, start: float) -> None:
        trials = self.study.get_trials(deepcopy=False)
        done = sum(store.counts_toward_budget(t) and t.state.is_finished() for t in trials)
        best = ranked(self.study, trials)
        best_text = f"best #{best[0].number} {best[0].value:.4f}".replace(" 0.", " .") if best else "no best"
        seconds = time.time() - start
        if self.policy.racing and (raced := racing.race_savings(trials, self.policy.k))[0]:
            best_text += f" | race: {raced[0]} stopped, ~{raced[1]:.0f} seed-epochs saved"
        # a comma before the time: "vs #1 0.775, 53s", not "vs #1 0.775 53s"
        text = f"#{trial.number} {state} {detail}, {seconds:.0f}s | {best_text}"
        self.progress.trial_finished(seconds, done, text, short_params(trial.params, self.abbrev),
                                     trial.number)
