"""Statistics over seeds and trials."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
from scipy import stats


@contextmanager
def _one_constant_side_is_fine():
    """scipy warns of "precision loss" when one side's seeds all scored the same (a trial
    stuck at the majority class, say), though Welch's t takes a zero variance on one side:
    the warning reached `make report`'s terminal with nothing for the user to do."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        yield


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value of mean(a) vs mean(b) (unequal variances)."""
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    if np.std(a) == 0 and np.std(b) == 0:
        return (float("nan"), float("nan")) if np.mean(a) == np.mean(b) else (float("inf"), 0.0)
    with _one_constant_side_is_fine():
        t, p = stats.ttest_ind(a, b, equal_var=False)
    return float(t), float(p)


def mean_diff(a: Sequence[float], b: Sequence[float], paired: bool, level: float = 0.95
              ) -> tuple[float, float, float, float]:
    """mean(a) - mean(b), its `level` confidence interval and the one-sided p-value of
    "a is not better" (a > b): a paired t-test on seeds both ran (`paired`, same length,
    same order) or Welch's t-test. (nan, nan, nan, nan) below two values a side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if min(len(a), len(b)) < 2:
        return float(a.mean() - b.mean()) if len(a) and len(b) else float("nan"), *(float("nan"),) * 3
    diff = float(a.mean() - b.mean())
    spread = np.std(a - b) if paired else np.std(a) + np.std(b)
    if spread == 0:  # scipy's t is undefined without spread: the difference is exact
        return diff, diff, diff, (0.0 if diff > 0 else 1.0)
    with _one_constant_side_is_fine():
        test = stats.ttest_rel(a, b, alternative="greater") if paired else \
            stats.ttest_ind(a, b, equal_var=False, alternative="greater")
        two_sided = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
        ci = two_sided.confidence_interval(level)
    return diff, float(ci.low), float(ci.high), float(test.pvalue)


def prob_better(a: Sequence[float], b: Sequence[float], paired: bool, level: float = 0.95,
                seed: int = 0) -> tuple[float, float, float]:
    """P(A > B) (Bouthillier et al. 2021): the chance that a draws a better value than b on a
    random seed (ties count half), paired seed by seed or over all pairs, with scipy's
    bootstrap interval (percentile: BCa is undefined on the few values seeds give)."""
    a, b = np.asarray(a, float), np.asarray(b, float)

    def p(x, y, axis=-1):
        if paired:
            return np.mean((x > y) + 0.5 * (x == y), axis=axis)
        return np.mean((x[..., :, None] > y[..., None, :]) + 0.5 * (x[..., :, None] == y[..., None, :]),
                       axis=(-2, -1))

    value = float(p(a, b))
    if min(len(a), len(b)) < 2:
        return value, float("nan"), float("nan")
    res = stats.bootstrap((a, b), p, paired=paired, vectorized=True, confidence_level=level,
                          method="percentile", n_resamples=2000, random_state=seed)
    return value, float(res.confidence_interval.low), float(res.confidence_interval.high)


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
