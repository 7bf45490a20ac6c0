"""Sweeps from Python (a notebook, a script), with plain values: no Hydra on your side.

    from sweeps import api

    name = api.sweep("dan", data="rt", trials=10, seeds=3, settings={"train.max_epochs": 5})
    df = api.results(name)                       # one row per trial and per seed
    df[df.state == "COMPLETE"].groupby("trial").dev.agg(["mean", "std"])
    api.verdict(name)                            # how sure the winner is against the next best

`settings` holds any config key (what `ARGS='key=value'` sets on the command line), as
Python values. A call resumes the study exactly as `make sweep` with the same settings
would. `results` reads the Optuna study only (the seeds' best dev values are recorded
on each trial); `with_test=True` adds each seed's test metrics from MLflow where the
final evaluation has run (it never runs it).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pandas as pd

from models import metrics
from models.errors import UserError
from sweeps import store
from sweeps.config.compose import check_sweep_settings, compose_config, whole_number
from sweeps.config.search_space import to_overrides
from sweeps.core.records import (
    BEST_EPOCHS,
    INACTIVE,
    MLFLOW_EXPERIMENT,
    MLFLOW_RUN_ID,
    MONITOR,
    SEED_VALUES,
    SEEDS,
)
from sweeps.search.progress import Progress
from sweeps.search.study import Sweep
from sweeps.tracking import seed_runs
from sweeps.tracking.tracker import Tracker


def _override(key: str, value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"{key}=[{','.join(_override('', v)[1:] for v in value)}]"
    if isinstance(value, Mapping):
        return f"{key}={{{','.join(f'{k}:' + _override('', v)[1:] for k, v in value.items())}}}"
    return to_overrides({key: value})[0]


def overrides(model: str | None, data: str | None = None, sampler: str | None = None,
              trials: int | None = None, seeds: int | None = None, workers: int | None = None,
              settings: Mapping[str, Any] | None = None) -> list[str]:
    """The command-line overrides of these values: what `make sweep` would pass."""
    values: dict[str, Any] = {"sweep.trials": trials, "seeds": seeds, "sweep.workers": workers}
    out = [*([f"model={model}"] if model else []), *([f"data={data}"] if data else []),
           *([f"sampler={sampler}"] if sampler else [])]
    out += [_override(k, v) for k, v in values.items() if v is not None]
    return out + [_override(k, v) for k, v in dict(settings or {}).items()]


def sweep(model: str | None = None, *, data: str | None = None, sampler: str | None = None,
          trials: int | None = None, seeds: int | None = None, workers: int | None = None,
          settings: Mapping[str, Any] | None = None, quiet: bool = False) -> str:
    """Run (or resume) the sweep these values describe and return its study name. With
    `workers` > 1 the workers are separate processes, as with `make sweep WORKERS=N`; by
    default the sweep runs in this process (not `make sweep`'s one worker a core). This
    process then reads denormal floats as zero (models/training/devices.py's
    flush_denormals); call that before your first torch work for the speed it brings."""
    args = overrides(model, data, sampler, trials, seeds, workers, settings)
    cfg = compose_config(args)
    check_sweep_settings(cfg, args)
    # in this process unless workers > 1 is asked for: `auto` is the command line's default
    if cfg.sweep.workers != "auto" and whole_number(cfg, "sweep.workers", 1) > 1:
        cmd = [sys.executable, "-m", "sweeps.sweep", *args]
        proc = subprocess.run(cmd, capture_output=quiet, text=True)
        if proc.returncode != 0:
            raise UserError(f"the sweep ended with exit code {proc.returncode}"
                            + (f": {proc.stderr.strip().splitlines()[-1]}"
                               if quiet and proc.stderr.strip() else "")
                            + "; call again to resume.")
        return Sweep(args, quiet=True).name if cfg.sweep.new else store.study_name(cfg)
    s = Sweep(args, progress=Progress(tty=False, quiet=quiet), cfg=cfg)
    s.run()
    return s.name


WHERE = ("storage.", "tracking.")  # the settings that say where results live


def load(study: str, settings: Mapping[str, Any] | None = None):
    """The Optuna study `study`, in the storage the config names; of `settings`, only the
    keys that say where results live (storage.*, tracking.*) are read."""
    where = {k: v for k, v in dict(settings or {}).items() if k.startswith(WHERE)}
    cfg = compose_config(overrides(None, settings=where))
    found = store.load_study(cfg, study)
    if found is None:
        raise UserError(f"no study {study!r} in this storage: run api.sweep(...) first, or pass the "
                        "settings (storage.url, storage.dir) it was made with.")
    return found, cfg


def results(study: str, settings: Mapping[str, Any] | None = None, with_test: bool = False
            ) -> pd.DataFrame:
    """One row per finished trial and per seed: the trial's number, state, value (dev mean
    over seeds) and searched values, the seed, its best dev value (`dev`) and best epoch.
    Failed trials have no seed values and are left out. `with_test`: each seed's test
    metrics (`test_<metric>`), NaN where the final evaluation has not run."""
    s, cfg = load(study, settings)
    monitor = s.user_attrs.get(MONITOR, "")
    rows = []
    for t in s.get_trials(deepcopy=False):
        values = t.user_attrs.get(SEED_VALUES) or []
        if not t.state.is_finished() or not values:
            continue
        searched = {**t.params, **t.user_attrs.get(INACTIVE, {})}
        epochs = t.user_attrs.get(BEST_EPOCHS) or [None] * len(values)
        for i, (seed, value, epoch) in enumerate(zip(t.user_attrs.get(SEEDS, []), values, epochs)):
            rows.append({"study": study, "trial": t.number, "state": t.state.name, "value": t.value,
                         **searched, "seed_index": i, "seed": seed, "dev": value, "best_epoch": epoch,
                         "metric": monitor, MLFLOW_RUN_ID: t.user_attrs.get(MLFLOW_RUN_ID, "")})
    df = pd.DataFrame(rows)
    if with_test and not df.empty:
        tracker = Tracker(s.user_attrs.get(MLFLOW_EXPERIMENT, study), cfg.tracking.uri)
        tests: dict[tuple[str, int], dict[str, float]] = {}
        for run_id in df[MLFLOW_RUN_ID].unique():
            for child in seed_runs.read(tracker, run_id) if run_id else []:
                tests[(run_id, child.seed)] = {
                    k: v for k, v in child.metrics.items() if k.startswith(metrics.TEST_PREFIX)}
        extra = pd.DataFrame([tests.get((r, s), {}) for r, s in zip(df[MLFLOW_RUN_ID], df["seed"])],
                             index=df.index)
        df = pd.concat([df, extra], axis=1)
    return df


def verdict(study: str, settings: Mapping[str, Any] | None = None, top: int = 5) -> pd.DataFrame:
    """How sure the winner is: one row per other top trial with the difference to the
    winner and its 95% CI (paired on shared seeds), P(winner > other) and a sentence
    (analysis/verdict.py, what `make report` writes). Trials a race stopped are left out."""
    from analysis.results import trials_frame  # the reading side of the same study
    from analysis.verdict import as_frame
    from analysis.verdict import verdict as compare
    s, _ = load(study, settings)
    return as_frame(compare(trials_frame(s), s.direction.name == "MAXIMIZE", top))
