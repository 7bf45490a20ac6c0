"""Statistics over seeds and trials."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value of mean(a) vs mean(b) (unequal variances)."""
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    if np.std(a) == 0 and np.std(b) == 0:
        return (float("nan"), float("nan")) if np.mean(a) == np.mean(b) else (float("inf"), 0.0)
    t, p = stats.ttest_ind(a, b, equal_var=False)
    return float(t), float(p)


def bootstrap_diff(a: Sequence[float], b: Sequence[float], n: int = 10_000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a percentile bootstrap interval, resampling seeds of each."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    diffs = (rng.choice(a, (n, len(a))).mean(1) - rng.choice(b, (n, len(b))).mean(1))
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def expected_max(values: Sequence[float], maximize: bool = True) -> np.ndarray:
    """Expected best validation score after n = 1..N trials, drawn with replacement from the
    observed trials (Dodge et al. 2019, eq. 1): E[max_n] = sum_i v_(i) (F(v_(i))^n - F(v_(i-1))^n)."""
    v = np.sort(np.asarray(values, float))
    if not maximize:
        v = -v[::-1]
    n_obs = len(v)
    cdf = np.arange(1, n_obs + 1) / n_obs  # empirical F at each sorted value
    prev = np.concatenate([[0.0], cdf[:-1]])
    out = np.array([(v * (cdf**n - prev**n)).sum() for n in range(1, n_obs + 1)])
    return out if maximize else -out
