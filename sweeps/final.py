"""`make final`: evaluate a configuration's seeds on the test split, once, at the end.

usage: python -m sweeps.final model=dan [--study NAME] [--trial N] [--run RUN_ID] [--reason TEXT]
                                  [--allow-unfinished]

Takes the best completed trial of a study (by dev mean), or the trial given, or a
configuration trained by `make train` (its MLflow parent run id). Each seed's saved best
weights are evaluated on the test split; the test metrics are logged to that seed's run
and the parent run, and the evaluation is entered in the lockbox ledger. This is the
only module that reads a test split (models/data/lockbox.py enforces it). A study whose
test set was already evaluated needs a reason to evaluate it again, recorded as a repeat.
A study whose search has not run its budget of trials is refused unless --allow-unfinished
(make final ALLOW_UNFINISHED=1) says to evaluate its best trial so far.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sweeps.core.cli import answer_help_first

answer_help_first(__name__, __doc__)  # before torch, MLflow and Optuna load

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from models import metrics
from models.errors import UserError
from models.ngram import ngram_perplexities
from sweeps import store
from sweeps.config.compose import compose_config
from sweeps.config.workloads import COUNTED, build_workload, prepare_task, test_split
from sweeps.core import faults
from sweeps.core.cli import Args, main_of, whole
from sweeps.core.locks import file_lock, store_lock_path
from sweeps.core.records import (
    BUDGET,
    CONFIG_FILE,
    MLFLOW_EXPERIMENT,
    MLFLOW_RUN_ID,
    SWEEP_ONLY,
    TEST_EVALUATIONS_METRIC,
    mean_std,
    trial_of,
)
from sweeps.store import ranked
from sweeps.tracking import seed_runs, trained_data
from sweeps.tracking.tracker import Tracker, git_commit


@dataclass
class Target:
    run_id: str  # the configuration's parent run
    scope: str  # what the ledger counts evaluations of: the study, or the train experiment
    trial: int | None
    tracker: Tracker
    study: optuna.Study | None = None  # holds its own copy of the ledger


@dataclass
class FinalResult:
    target: Target
    seeds: list[int]
    dev: list[float]
    test: list[dict[str, float]]
    monitor: str
    evaluations: int  # test evaluations of this scope, this one included
    repeat: bool


def config_hash(cfg: DictConfig) -> str:
    training = {k: v for k, v in OmegaConf.to_container(cfg).items()
                if k not in (*SWEEP_ONLY, "tracking")}
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(training)).encode()).hexdigest()[:16]


def resolve(cfg: DictConfig, study: str | None, trial: int | None, run: str | None) -> Target:
    """The configuration to evaluate: a run id, a study's trial, or a study's best trial."""
    if run:
        tracker = Tracker.of_run(run, cfg.tracking.uri)
        study_of_run, number = trial_of(tracker.get_run(run).data.tags)
        scope = study_of_run or tracker.experiment
        return Target(run, scope, number, tracker,
                      store.load_study(cfg, scope) if study_of_run else None)
    name = study or store.study_name(cfg)
    s = store.load_study(cfg, name)
    if s is None:
        raise UserError(f"no study {name!r}: run `make sweep` first, or pass STUDY=<name> "
                        "or RUN=<MLflow run id of make train>.")
    if trial is None:
        best = ranked(s)
        if not best:
            raise UserError(f"study {name!r} has no completed trial to evaluate.")
        chosen = best[0]
    else:
        chosen = next((t for t in s.trials if t.number == trial), None)
        if chosen is None or chosen.state != TrialState.COMPLETE:
            raise UserError(f"study {name!r} has no completed trial {trial}.")
    tracker = Tracker(s.user_attrs.get(MLFLOW_EXPERIMENT, name), cfg.tracking.uri)
    return Target(chosen.user_attrs[MLFLOW_RUN_ID], name, chosen.number, tracker, s)


def unfinished(study: optuna.Study | None) -> tuple[str, str] | None:
    """(`ran N of its B trials`, the command that goes on) when a study's search is short of
    the budget its latest start set; None when it is not, or nothing says (a study made
    before the budget was recorded, a run of `make train`)."""
    budget = study.user_attrs.get(BUDGET) if study is not None else None
    if not budget:
        return None
    done = sum(store.counts_toward_budget(t) and t.state.is_finished()
               for t in study.get_trials(deepcopy=False))
    if done >= budget["trials"]:
        return None
    return f"ran {done} of its {budget['trials']} trials", budget["command"]


def check_finished(target: Target, allow: bool) -> str:
    """Refuse a study whose search has not run its budget, unless `allow`: its best trial so
    far is not the search's answer. Returns a note for the report ('' when finished)."""
    found = unfinished(target.study)
    if found is None:
        return ""
    short, rerun = found
    if not allow:
        raise UserError(f"study {target.scope!r} {short}, so its best trial is not yet the search's "
                        f"answer: finish the search with `{rerun}`, or evaluate it as it stands with "
                        "ALLOW_UNFINISHED=1 (python -m sweeps.final --allow-unfinished).")
    return f"\nevaluated with the search unfinished: study {target.scope} {short}"


def seen(target: Target, reason: str | None) -> int:
    """How often the scope's test set was evaluated, by every record of the ledger: the
    `lockbox` runs, the count on the scope's runs and the study's own list. They must
    agree: a deleted or renamed MLflow record cannot make an evaluation the first."""
    counts = {"the lockbox ledger": len(target.tracker.ledger(target.scope)),
              "the runs' test_evaluations": target.tracker.evaluations_on_runs()}
    if target.study is not None:
        counts["the study's own record"] = len(store.test_evaluations(target.study))
    times = max(counts.values())
    if len(set(counts.values())) > 1 and not reason:
        shown = ", ".join(f"{k}: {v}" for k, v in counts.items())
        raise UserError(f"the test-evaluation records of {target.scope!r} disagree ({shown}), so an "
                        f"MLflow record was deleted or renamed: its test set counts as seen {times} "
                        "time(s), and evaluating it again needs REASON='<why>' (recorded as a repeat).")
    if times and not reason:
        raise UserError(f"the test set of {target.scope!r} was already evaluated {times} time(s); "
                        "evaluating it again needs REASON='<why>' and is recorded as a repeat.")
    return times


def evaluate(target: Target, reason: str | None) -> FinalResult:
    """Test metrics of every seed of the target configuration, logged and entered in the
    ledger. One evaluation of a scope at a time: a second waits, then finds the first. The
    lock follows the tracking store that holds the ledger, whatever storage.dir says."""
    lock = store_lock_path(target.tracker.uri, Path(), f"final-{target.scope}")
    with file_lock(lock):
        earlier = seen(target, reason)
        faults.meet("final_counted")
        return _evaluate(target, reason, earlier)


def _evaluate(target: Target, reason: str | None, earlier: int) -> FinalResult:
    tracker = target.tracker
    cfg = OmegaConf.create(tracker.load_text(target.run_id, CONFIG_FILE))
    counted = cfg.model.name in COUNTED  # n-gram baselines: no seeds, no weights, counted again
    workload = None if counted else build_workload(cfg, device="cpu")  # the CPU, weights as saved
    task = prepare_task(cfg) if counted else workload.task
    children = seed_runs.read(tracker, target.run_id)
    if not children and not counted:
        raise UserError(f"run {target.run_id} has no seed runs to evaluate.")
    seeds = [c.seed for c in children]
    with tempfile.TemporaryDirectory() as tmp:
        weights = []  # every seed's weights are in hand before the test split is opened
        for child, seed in zip(children, seeds):
            path = seed_runs.weights(tracker, child, Path(tmp))
            if path is None:
                raise UserError(f"seed {seed} of run {target.run_id} has no saved weights (a sweep "
                                "keeps them for its top sweep.keep_weights trials only).")
            weights.append(path)
        trained_data.check(tracker, target.run_id, task, Path(tmp))  # the vocabulary the weights fit
        step = earlier + 1
        entry = {"scope": target.scope, "trial": "-" if target.trial is None else target.trial,
                 "run_id": target.run_id, "config_hash": config_hash(cfg),
                 "seeds": " ".join(map(str, seeds)),
                 "git_commit": git_commit(), "repeat": bool(earlier), "reason": reason or "",
                 "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "data": cfg.data.name}
        # The ledger first, in all three records: an evaluation killed after this still counts.
        study_entry = {"started": entry["time"], "trial": entry["trial"], "reason": entry["reason"]}
        if target.study is not None:
            store.record_test_evaluation(target.study, {**study_entry, "done": False})
        on_run = int(tracker.get_run(target.run_id).data.metrics.get(TEST_EVALUATIONS_METRIC, 0))
        tracker.log_metrics(target.run_id, {TEST_EVALUATIONS_METRIC: on_run + 1}, step=step)
        ledger_run = tracker.start_test_evaluation(entry)

        test, extra = test_split(cfg, task, None if counted else workload.built)  # the lockbox opens
        dev, test_metrics = [], []  # here, and only here
        if counted:
            test_metrics.append(ngram_perplexities(task, cfg.model.kind, test))
        for child, path in zip(children, weights):
            model = workload.build_model()
            model.load_state_dict(seed_runs.load_weights(path))
            test_metrics.append(task.evaluate(model, test, **extra))
            dev.append(child.metrics[metrics.best_dev(task.monitor)])
    seed_runs.log_metrics(tracker, children, [{metrics.TEST_PREFIX + k: v for k, v in values.items()}
                                              for values in test_metrics], step=step)
    summary = {}
    for k in test_metrics[0]:
        mean, std = mean_std([m[k] for m in test_metrics])
        summary |= {metrics.seed_mean(metrics.TEST_PREFIX + k): mean,
                    metrics.seed_std(metrics.TEST_PREFIX + k): std}
    tracker.log_metrics(target.run_id, summary, step=step)
    tracker.finish_test_evaluation(ledger_run, summary)
    if target.study is not None:
        store.record_test_evaluation(target.study, {**study_entry, "done": True})
    return FinalResult(target, seeds, dev, test_metrics, task.monitor, step, bool(earlier))


def report(r: FinalResult) -> str:
    m = r.monitor
    which = f"trial {r.target.trial} of " if r.target.trial is not None else ""
    where = (f"{which}{r.target.scope} (MLflow run {r.target.run_id}); test evaluations of "
             f"{r.target.scope}: {r.evaluations}" + (" (a repeat)" if r.repeat else ""))
    if not r.seeds:  # a counted n-gram model: its values, no seeds
        return "\n".join([*(f"{'test ' + k:>32}  {v:.4f}" for k, v in r.test[0].items()), where])
    lines = [f"{'seed':>12}  {'dev ' + m:>14}  {'test ' + m:>14}"]
    lines += [f"{s:>12}  {d:>14.4f}  {t[m]:>14.4f}" for s, d, t in zip(r.seeds, r.dev, r.test)]
    dm, ds = mean_std(r.dev)
    tm, ts = mean_std([t[m] for t in r.test])
    lines.append(f"{'mean ± std':>12}  {dm:.4f} ± {ds:.4f}  {tm:.4f} ± {ts:.4f}")
    lines.append(where)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    # --allow-unfinished: evaluate a study whose search has not yet run its budget of trials
    return main_of(argv, __doc__, "python -m sweeps.final", body, values=("study", "trial", "run", "reason"),
                   switches=("allow-unfinished",))


def body(args: Args) -> str:
    trial = whole(args, "trial")
    cfg = compose_config(args.overrides)
    target = resolve(cfg, args.get("study"), trial, args.get("run"))
    note = check_finished(target, bool(args.get("allow-unfinished")))
    return report(evaluate(target, args.get("reason"))) + note


if __name__ == "__main__":
    sys.exit(main())
