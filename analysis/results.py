"""Tracked results as DataFrames: trials from the Optuna study, seed curves and test
metrics from MLflow (through sweeps.tracking.tracker, the one module that talks to MLflow)."""

from __future__ import annotations

import math

import optuna
import pandas as pd
from omegaconf import DictConfig

from models import metrics
from models.errors import UserError
from sweeps import store
from sweeps.core.records import (
    EPOCHS_RUN,
    INACTIVE,
    MLFLOW_RUN_ID,
    RACED_OUT,
    SEED_EPOCHS,
    SEED_VALUES,
    SEEDS,
)
from sweeps.tracking import seed_runs
from sweeps.tracking.tracker import Tracker

RUN_ID = MLFLOW_RUN_ID  # the trial attribute naming its MLflow parent run
SEED_IDS = "seed_ids"  # column: each trial's seed values, in order (analysis/verdict.py pairs on them)
RACED = "RACED_OUT"  # the state shown for a trial a race stopped before K seeds (COMPLETE in Optuna)


def require_study(cfg: DictConfig, name: str) -> optuna.Study:
    study = store.load_study(cfg, name)
    if study is None:
        raise UserError(f"no study {name!r}: run `make sweep` first or pass STUDY=<name>.")
    return study


def short_name(param: str) -> str:
    return param.split(".")[-1]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per finished trial: params, state, dev mean ± std over seeds, K, epochs. A
    trial a race stopped before K seeds shows state RACED_OUT: it is no candidate."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        values = t.user_attrs.get(SEED_VALUES) or []
        rows.append({
            "trial": t.number, "state": RACED if t.user_attrs.get(RACED_OUT) else t.state.name,
            **{short_name(k): v for k, v in t.params.items()},
            **{short_name(k): v for k, v in t.user_attrs.get(INACTIVE, {}).items()},
            "dev_mean": pd.Series(values, dtype=float).mean() if values else float("nan"),
            "dev_std": pd.Series(values, dtype=float).std(ddof=1) if len(values) > 1 else float("nan"),
            "seeds": len(t.user_attrs.get(SEEDS, [])),
            "epochs": t.user_attrs.get(EPOCHS_RUN, len(t.intermediate_values)),
            SEED_EPOCHS: t.user_attrs.get(SEED_EPOCHS, float("nan")),
            SEED_VALUES: values, SEED_IDS: list(t.user_attrs.get(SEEDS, [])),
            RUN_ID: t.user_attrs.get(RUN_ID, ""),
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    ascending = study.direction.name == "MINIMIZE"
    complete = df["state"] == "COMPLETE"
    return pd.concat([df[complete].sort_values("dev_mean", ascending=ascending),
                      df[~complete].sort_values("trial")], ignore_index=True)


def seed_curves(tracker: Tracker, run_id: str, monitor: str) -> pd.DataFrame:
    """Per-epoch dev metric of each seed of one configuration: columns epoch, seed, value."""
    rows = []
    for child in seed_runs.read(tracker, run_id):
        rows += [{"epoch": step, "seed": child.seed, "value": value}
                 for step, value in tracker.metric_history(child.run_id, metrics.dev(monitor))]
    return pd.DataFrame(rows, columns=["epoch", "seed", "value"])


def test_summary(tracker: Tracker, run_id: str, monitor: str) -> tuple[float, float] | None:
    """Test mean and std over seeds, if the final evaluation has run on this configuration."""
    m = tracker.get_run(run_id).data.metrics
    key = metrics.TEST_PREFIX + monitor
    if metrics.seed_mean(key) not in m:
        return None
    return m[metrics.seed_mean(key)], m[metrics.seed_std(key)]


def train_perplexity(tracker: Tracker, run_id: str) -> float:
    """Mean over seeds of exp(training loss) at each seed's best epoch."""
    values = []
    for child in seed_runs.read(tracker, run_id):
        best = int(child.metrics.get(metrics.BEST_EPOCH, 0))
        losses = dict(tracker.metric_history(child.run_id, metrics.TRAIN_LOSS))
        if best in losses:
            values.append(math.exp(losses[best]))
    return sum(values) / len(values) if values else float("nan")
