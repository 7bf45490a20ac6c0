"""How sure is the winner? The top trials against the best one, over their seeds.

For each of the next best completed trials (those that ran every seed): the difference of
seed means to the winner with a 95% confidence interval and the one-sided p of a t-test,
paired on the seeds both ran when they share seed values (`seeds_policy=race`, or a
`seed_list`), Welch's otherwise; and P(winner > other) with a bootstrap interval
(Bouthillier et al. 2021, "Accounting for variance in machine learning benchmarks").
Where the interval holds 0, a plain sentence says how many seeds might separate them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from analysis.results import SEED_IDS
from analysis.stats import mean_diff, prob_better
from sweeps.core.records import SEED_VALUES

MAX_SEEDS = 50  # a suggestion beyond this says the two are, for practical purposes, equal


@dataclass(frozen=True)
class Comparison:
    winner: int  # trial numbers
    other: int
    paired: bool  # compared seed by seed on shared seed values
    seeds: int  # seeds compared (paired) or the smaller K
    diff: float  # winner - other (maximize) or other - winner (minimize): > 0 favours the winner
    low: float  # 95% confidence interval of diff
    high: float
    p: float  # one-sided: the winner is not better
    p_better: float  # P(winner > other) on a random seed
    p_low: float
    p_high: float
    seeds_needed: int  # 0 when the interval already separates them

    @property
    def separated(self) -> bool:
        return self.low > 0

    def sentence(self) -> str:
        if self.separated:
            return (f"trial {self.winner} beats trial {self.other} over {self.seeds} seeds "
                    f"(difference {self.diff:+.4f}, 95% CI [{self.low:+.4f}, {self.high:+.4f}]).")
        if math.isnan(self.low):
            return (f"trials {self.winner} and {self.other} cannot be compared with {self.seeds} seed(s), "
                    "which show no spread: run seeds=3 or more on both.")
        more = (f"run seeds={self.seeds_needed} on both" if self.seeds_needed <= MAX_SEEDS else
                f"even {MAX_SEEDS} seeds would likely not separate them: treat them as equal")
        # the interval, so a small one-sided p or P(winner > other) = 1.00 beside it is read right
        where = "holds 0" if self.high >= 0 else "lies below 0 on the seeds they share"
        return (f"trials {self.winner} and {self.other} are not distinguishable with {self.seeds} "
                f"seeds (the difference's 95% CI [{self.low:+.4f}, {self.high:+.4f}] {where}): {more}.")


def seeds_needed(diffs_or_spread: float, diff: float) -> int:
    """Seeds per trial for a two-sided 5% test to find `diff` with 80% power, given the std
    of one seed's difference: n = ((z_.975 + z_.8) * s / diff)^2."""
    if diff == 0 or math.isnan(diff) or math.isnan(diffs_or_spread):
        return MAX_SEEDS + 1
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    return max(2, math.ceil((z * diffs_or_spread / abs(diff)) ** 2))


def compare(winner: pd.Series, other: pd.Series, maximize: bool) -> Comparison:
    """Trial `winner` against trial `other` (rows of analysis.results.trials_frame)."""
    a_ids, b_ids = list(winner[SEED_IDS]), list(other[SEED_IDS])
    a_of, b_of = dict(zip(a_ids, winner[SEED_VALUES])), dict(zip(b_ids, other[SEED_VALUES]))
    shared = [s for s in a_ids if s in b_of]
    paired = len(shared) >= 2
    a = np.array([a_of[s] for s in shared] if paired else list(winner[SEED_VALUES]), float)
    b = np.array([b_of[s] for s in shared] if paired else list(other[SEED_VALUES]), float)
    if not maximize:
        a, b = -a, -b
    diff, low, high, p = mean_diff(a, b, paired)
    pb, plo, phi = prob_better(a, b, paired)
    if min(len(a), len(b)) < 2:
        spread = float("nan")
    elif paired:  # the std of one seed's difference
        spread = float(np.std(a - b, ddof=1))
    else:
        spread = float(np.sqrt(np.var(a, ddof=1) + np.var(b, ddof=1)))
    n = len(shared) if paired else min(len(a), len(b))
    # at least one seed more than compared: the normal-based count can fall at or below it where
    # the t interval (n - 1 degrees of freedom) still holds 0 ("run seeds=4" to a pair of 4)
    need = 0 if low > 0 else max(seeds_needed(spread, diff), n + 1)
    return Comparison(int(winner["trial"]), int(other["trial"]), paired, n, diff, low, high, p,
                      pb, plo, phi, need)


def verdict(trials: pd.DataFrame, maximize: bool, top: int = 5) -> list[Comparison]:
    """The winner (first COMPLETE row: trials_frame sorts them best first) against each of
    the next `top` - 1 completed trials."""
    done = trials[trials["state"] == "COMPLETE"].head(top)
    if len(done) < 2:
        return []
    winner = done.iloc[0]
    return [compare(winner, other, maximize) for _, other in done.iloc[1:].iterrows()]


def as_frame(comparisons: list[Comparison]) -> pd.DataFrame:
    return pd.DataFrame([asdict(c) | {"separated": c.separated, "verdict": c.sentence()}
                         for c in comparisons], columns=[*Comparison.__dataclass_fields__, "separated",
                                                         "verdict"])


def markdown(comparisons: list[Comparison], completed: int) -> str:
    """The verdict section of report.md (`completed`: the trials that ran every seed)."""
    if not comparisons:
        return "Fewer than two completed trials: no comparison.\n"
    w = comparisons[0].winner
    lines = [f"Winner: trial {w}. Each row: the winner minus the other trial (positive favours the "
             "winner), over the seeds both ran when they share seed values (paired t), else Welch's t; "
             "P(winner > other) is the chance the winner scores better on a random seed.", "",
             "| trial | seeds | paired | difference [95% CI] | p (one-sided) | P(winner > other) [95% CI] |",
             "|---|---|---|---|---|---|"]
    def show(x: float, form: str) -> str:
        return "n/a" if math.isnan(x) else format(x, form)
    for c in comparisons:
        lines.append(f"| {c.other} | {c.seeds} | {'yes' if c.paired else 'no'} | {c.diff:+.4f} "
                     f"[{show(c.low, '+.4f')}, {show(c.high, '+.4f')}] | {show(c.p, '.3g')} | "
                     f"{c.p_better:.2f} [{show(c.p_low, '.2f')}, {show(c.p_high, '.2f')}] |")
    lines += ["", "A trial is separated from the winner when the 95% interval of the difference excludes 0 "
              "(a two-sided 5% test: the one-sided p is then below 0.025); a one-sided p between 0.025 and "
              "0.05, or P(winner > other) = 1.00 from 3 seeds that all favour the winner, is not enough.", "",
              *(f"- {c.sentence()}" for c in comparisons)]
    if any(c.seeds < 5 for c in comparisons):
        lines.append("- With fewer than 5 seeds the intervals are wide and the bootstrap of P(winner > "
                     "other) can take only a few values: read them as rough.")
    if completed < 10:
        lines.append(f"- Only {completed} completed trials: the ranking itself may change with more.")
    return "\n".join(lines) + "\n"
