"""The lines a finished study ends with: its trials by state, what pruning and racing
saved, and its best configurations (mean ± std over seeds, K, epochs, params)."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from sweeps import store
from sweeps.core.records import (
    EPOCHS_RUN,
    PARAMS,
    SEEDS,
    SEEDS_POLICY,
    STD,
)
from sweeps.search import racing
from sweeps.search.progress import abbreviations, legend, short_params
from sweeps.store import ranked


def summary(study: optuna.Study, top: int) -> str:
    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(t.state == s for t in trials) for s in
              (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    lines = [f"study {study.study_name}: " + ", ".join(f"{v} {k.lower()}" for k, v in states.items())]
    if saved := store.pruning_savings(trials):
        lines.append(saved)
    recorded = study.user_attrs.get(SEEDS_POLICY) or {}
    if raced := racing.savings_text(trials, len(recorded.get("seeds") or [])):
        lines.append(raced)
    rows = ranked(study, trials)[:top]
    if not rows:
        return "\n".join(lines)
    abbrev = abbreviations(list(study.user_attrs.get(PARAMS, [])) or list(rows[0].params))
    lines.append(legend(abbrev))
    lines.append(f"{'trial':>5}  {'dev mean ± std':>17}  {'K':>2}  {'epochs':>6}  params")
    for t in rows:
        std = t.user_attrs.get(STD, math.nan)
        lines.append(f"{t.number:>5}  {t.value:>8.4f} ± {std:.4f}  {len(t.user_attrs.get(SEEDS, [])):>2}"
                     f"  {t.user_attrs.get(EPOCHS_RUN, 0):>6}  {short_params(t.params, abbrev)}")
    return "\n".join(lines)
