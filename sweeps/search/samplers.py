"""The Optuna sampler of a study's config: each worker and each resume draws from a stream
of its own, derived from `sampler.seed`."""

from __future__ import annotations

import numpy as np
import optuna
from omegaconf import DictConfig

from models.errors import UserError


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
