"""What a study holds once trials finish: its completed trials ranked (raced-out ones are no
candidates), what pruning saved, how long its trials took, and its own record of test
evaluations."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from sweeps.core.records import (
    RACED_OUT,
    SEED_EPOCHS,
    TEST_EVALUATIONS,
)


def ranked(study: optuna.Study, trials=None) -> list[optuna.trial.FrozenTrial]:
    """Completed trials, best first; a trial a race stopped before K seeds is no candidate
    (its mean is over fewer seeds: sweeps/search/racing.py)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
            and not t.user_attrs.get(RACED_OUT)]
    return sorted(done, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")


def pruning_savings(trials: list[optuna.trial.FrozenTrial]) -> str:
    """How many trials were pruned and the training compute they saved, estimated as what
    an average completed trial spent (in seed-epochs) less what the pruned ones spent."""
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t.user_attrs[SEED_EPOCHS] for t in trials
                if t.state == TrialState.COMPLETE and SEED_EPOCHS in t.user_attrs]
    if not pruned:
        return ""
    spent = sum(t.user_attrs.get(SEED_EPOCHS, 0) for t in pruned)
    if not complete:
        return f"{len(pruned)} pruned, after {spent} seed-epochs"
    per_trial = sum(complete) / len(complete)
    saved = max(len(pruned) * per_trial - spent, 0)
    total = sum(complete) + spent
    return (f"{len(pruned)} pruned after {spent} seed-epochs; run to the end they would have taken "
            f"~{len(pruned) * per_trial:.0f} (the completed trials' mean, {per_trial:.1f}): "
            f"~{saved:.0f} seed-epochs saved, {saved / (total + saved):.0%} of the sweep's training")


def trial_seconds(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    """The seconds each trial that ended COMPLETE or PRUNED took, start to end (a failed or
    interrupted one says nothing of how long a trial takes)."""
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and t.datetime_start is not None and t.datetime_complete is not None]


def test_evaluations(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's own record of its test evaluations (started ones included)."""
    return list(study.user_attrs.get(TEST_EVALUATIONS, []))


def record_test_evaluation(study: optuna.Study, entry: dict[str, Any]) -> None:
    """Append to (or, for an entry with the same `started` time, update) the study's record.
    Call under the final evaluation's lock."""
    entries = [e for e in test_evaluations(study) if e.get("started") != entry["started"]]
    study.set_user_attr(TEST_EVALUATIONS, [*entries, entry])
