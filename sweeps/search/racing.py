"""Racing configurations over seeds (`sweep.seeds_policy=race`), after SMAC3's intensifier.

Under `fixed` every trial runs the same K seeds. Under `race` the study draws its K seed
values once and stores them, so seed i is the same value in every trial and two trials
compare on the seeds both ran (paired). A trial starts on `min_seeds` of them and doubles
(1 -> 2 -> 4 -> K) while it may still beat the incumbent: the best trial that ran all K.
Seeds trained in a later look are a new stacked group under the same MLflow parent run.

"May still beat" (checked after each look but the last), with n the seeds run so far, c
and i the trial's and the incumbent's means on those n seeds, and sd the seed noise of a
paired per-seed difference between two trials:

    drop when  i - c > sd * (z / sqrt(n) - delta / sqrt(2)),  and i - c > 0
                                                    (maximize; mirrored to minimize)

sd is pooled over every pair of trials that ran all K seeds (each pair's per-seed
differences about their own mean, (m choose 2) * K values with m full trials; robustly, by
their median absolute value, so one seed that stopped oddly does not inflate it), so it
counts what pairing removes (seed i is the same initialisation and batch order in both)
and does not hang on one trial's K seeds; until two full trials exist it is sqrt(2) * the
incumbent's seed std. sd / sqrt(2) is one seed's std where trials share no seed effect (pairing
removes what they share, so it is at most a trial's own seed std). delta (`sweep.race_delta`,
default 0.5) is an indifference zone in those seed stds (Bechhofer's, in ranking and
selection): a difference smaller than half a seed's std is not worth the seeds it takes to
see it, and the benchmark's yardstick for the race's winner is one seed std. z is one
constant for all the looks of a race (Pocock's group-sequential boundary): the n-seed mean
differences at the looks are correlated (corr sqrt(n1 / n2)), and z is set so that a trial
delta seed stds better than the incumbent is dropped at some look with probability
`sweep.race_alpha` (default 0.2) in all, under normal seed noise with sd known (1 -> 2 ->
4 -> 5: z = 1.27). Under the defaults a trial one seed std better is dropped 8 times in
100, one exactly as good 40 in 100 (choosing either costs nothing), one seed std worse 85
in 100, three sd worse after its first seed 98 in 100 (tests/sweeps/test_racing_rule.py
checks these by simulation); a trial ahead of the incumbent on the seeds they share is
never dropped. delta = 0 gives the plain test (an equal trial dropped with probability
alpha). On the benchmark's 100 random DAN configurations, replayed from `fixed`'s
per-seed values in 150 orders (a one-off replay; its script is not kept), delta 0.5
spent 31% of fixed's seed-epochs against 39% at delta 0, and its winner was never worse
than fixed's by more than 0.32 seed std. Run for
real (benchmarks/racing.py, 100 trials, 3 sampler seeds): 33% against 41% at delta 0. The looks
barely matter at a given overall rate: in simulation 1 -> 2 -> 4 -> 5, 1 -> 3 -> 5 and
1 -> 5 spend the same seeds within 3%; doubling stays (SMAC3's). The incumbent is the best
of many trials, so its mean on the first seeds is biased upwards: the real rate of dropping
a trial is somewhat higher. The incumbent and the winner always run all K seeds: only full
trials are ranked, and a trial with no full trial to race against runs all K. The
incumbent is read from the study at each look, never kept in memory, so workers sharing a
study (journal file or PostgreSQL) never lose an update.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from models.errors import UserError
from sweeps.core.records import RACED_OUT, SEED_EPOCHS, SEED_VALUES, SEEDS, SEEDS_POLICY

POLICIES = ("fixed", "race")


@dataclass(frozen=True)
class SeedPolicy:
    name: str  # fixed or race
    k: int  # K: the seeds a full trial runs
    min_seeds: int  # race: the seeds of the first look
    alpha: float  # race: chance to drop a trial delta seed stds better than the incumbent, all looks
    delta: float = 0.0  # race: the indifference zone, in one seed's std (sd / sqrt(2))

    @property
    def racing(self) -> bool:
        return self.name == "race"

    def looks(self) -> list[int]:
        """The seeds run after each look, doubling from min_seeds: [1, 2, 4, 5] for 1 -> 5;
        [K] under fixed."""
        if not self.racing:
            return [self.k]
        out, n = [], self.min_seeds
        while n < self.k:
            out.append(n)
            n *= 2
        return [*out, self.k]

    def z(self) -> float:
        """The one boundary of every look: a trial delta seed stds better than the incumbent
        is dropped at some look before the last with probability alpha (normal seed noise)."""
        return boundary(tuple(self.looks()[:-1]), self.alpha)

    def record(self, seeds: Sequence[int] | None) -> dict[str, Any]:
        """What the study stores of this policy (race: with its K seed values)."""
        out: dict[str, Any] = {"policy": self.name}
        if self.racing:
            out |= {"min_seeds": self.min_seeds, "alpha": self.alpha, "delta": self.delta,
                    "seeds": list(seeds or [])}
        return out


def seed_policy(cfg: DictConfig) -> SeedPolicy:
    """The sweep's seed policy, its impossible combinations refused in one sentence."""
    s = cfg.sweep
    name = str(s.get("seeds_policy", "fixed"))
    if name not in POLICIES:
        raise UserError(f"unknown sweep.seeds_policy {name!r}; choose one of: {', '.join(POLICIES)}.")
    given = OmegaConf.to_container(cfg.seed_list) if OmegaConf.is_config(cfg.seed_list) else cfg.seed_list
    k = len(given) if given else int(cfg.seeds)
    min_seeds, alpha, delta = s.get("min_seeds", 1), s.get("race_alpha", 0.2), s.get("race_delta", 0.5)
    if name == "race":
        if k < 2:
            raise UserError(f"sweep.seeds_policy=race needs seeds >= 2 (it races trials over seeds), "
                            f"not seeds={k}; use sweep.seeds_policy=fixed with one seed.")
        if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or not 1 <= min_seeds <= k:
            raise UserError(f"sweep.min_seeds={min_seeds} must be a whole number from 1 to seeds={k}: "
                            "a race starts on at most K seeds.")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
            raise UserError(f"sweep.race_alpha={alpha} must lie strictly between 0 and 0.5.")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 <= delta <= 2:
            raise UserError(f"sweep.race_delta={delta} must be a number from 0 to 2 (seed stds).")
    return SeedPolicy(name, k, int(min_seeds), float(alpha), float(delta) if name == "race" else 0.0)


def check_study(name: str, attrs: Mapping[str, Any], policy: SeedPolicy, delta_given: bool = False
                ) -> SeedPolicy:
    """The policy study `name` (its user attributes `attrs`) goes on under; refuses to resume
    it under another (a study made before policies existed was `fixed`). A race made before
    the indifference zone had none (delta 0): its own command resumes it so, unless it sets
    `sweep.race_delta` (`delta_given`)."""
    old = dict(attrs.get(SEEDS_POLICY) or {"policy": "fixed"})
    if old["policy"] == "race" and "delta" not in old:
        old["delta"] = 0.0
        if policy.racing and not delta_given:
            policy = replace(policy, delta=0.0)
    new = policy.record(old.get("seeds"))
    if old != new:
        shown = ", ".join(f"{k}={v}" for k, v in old.items() if k != "seeds")
        raise UserError(f"study {name!r} was made with seeds policy {shown.replace('policy=', '')}, not "
                        f"{policy.name}" + (f" (min_seeds={policy.min_seeds}, alpha={policy.alpha}, "
                                            f"delta={policy.delta})" if policy.racing else "")
                        + ": resume it with its settings (sweep.seeds_policy, sweep.min_seeds, "
                        "sweep.race_alpha, sweep.race_delta), or start a new study with sweep.new=true.")
    return policy


def study_seeds(attrs: Mapping[str, Any]) -> list[int]:
    """The K seed values a racing study drew once (from its user attributes); [] under fixed."""
    return list((attrs.get(SEEDS_POLICY) or {}).get("seeds") or [])


def is_full(t: FrozenTrial) -> bool:
    """A completed trial that ran all its seeds (not stopped by a race)."""
    return t.state == TrialState.COMPLETE and t.value is not None and not t.user_attrs.get(RACED_OUT)


def incumbent(trials: Sequence[FrozenTrial], k: int, maximize: bool) -> FrozenTrial | None:
    """The best completed trial that ran all K seeds, or None."""
    full = [t for t in trials if is_full(t) and len(t.user_attrs.get(SEED_VALUES) or []) >= k]
    if not full:
        return None
    return max(full, key=lambda t: t.value) if maximize else min(full, key=lambda t: t.value)


@functools.cache
def boundary(looks: tuple[int, ...], alpha: float) -> float:
    """Pocock's constant z for decisions after `looks` seeds: P(some look's standardised
    mean difference > z) = alpha for an equal trial (they are correlated sqrt(n1 / n2))."""
    from scipy.optimize import brentq
    from scipy.stats import multivariate_normal, norm
    if len(looks) <= 1:
        return float(norm.ppf(1 - alpha))
    n = np.array(looks, dtype=float)
    corr = np.sqrt(np.minimum.outer(n, n) / np.maximum.outer(n, n))
    law = multivariate_normal(mean=np.zeros(len(n)), cov=corr)
    return float(brentq(lambda z: 1 - law.cdf(np.full(len(n), z), rng=0) - alpha, 0.0, 6.0, xtol=1e-4))


POOL = 300  # the latest full trials the seed noise is pooled over (45,000 pairs at most)


def paired_sd(trials: Sequence[FrozenTrial], study_seeds: Sequence[int], best: FrozenTrial) -> float:
    """The seed noise of a per-seed difference between two trials, pooled over every pair of
    the latest POOL full trials on the study's K seeds, robustly: 1.4826 * the median absolute
    per-seed difference about the pair's mean difference, * sqrt(K / (K - 1)) (consistent
    for normal noise; one seed that stopped oddly does not inflate it). With fewer than two
    full trials: sqrt(2) * `best`'s seed std."""
    k, rows = len(study_seeds), []
    for t in trials:
        theirs = dict(zip(t.user_attrs.get(SEEDS) or [], t.user_attrs.get(SEED_VALUES) or []))
        if is_full(t) and all(s in theirs for s in study_seeds):
            rows.append([theirs[s] for s in study_seeds])
    if len(rows) < 2 or k < 2:
        own = best.user_attrs.get(SEED_VALUES) or []
        return math.sqrt(2) * statistics.stdev(own) if len(own) > 1 else 0.0
    r = np.asarray(rows[-POOL:], dtype=float)
    r -= r.mean(axis=1, keepdims=True)  # each trial about its own mean
    a, b = np.triu_indices(len(r), 1)
    return float(1.4826 * np.median(np.abs(r[a] - r[b])) * math.sqrt(k / (k - 1)))


def race_stop(values: Mapping[int, float], best: FrozenTrial | None, policy: SeedPolicy,
              study_seeds: Sequence[int], maximize: bool, trials: Sequence[FrozenTrial] = ()) -> str | None:
    """Why the trial with `values` (seed value -> best dev value) can no longer beat the
    incumbent `best`, in one sentence; None while it may (see the module's rule). `trials`:
    the study's trials, whose full ones give the pooled seed noise."""
    if best is None:
        return None
    theirs = dict(zip(best.user_attrs.get(SEEDS) or [], best.user_attrs.get(SEED_VALUES) or []))
    shared = [s for s in study_seeds if s in values and s in theirs]
    if not shared:
        return None
    n = len(shared)
    mine, inc = statistics.fmean(values[s] for s in shared), statistics.fmean(theirs[s] for s in shared)
    sd = paired_sd([*trials] or [best], study_seeds, best)
    # never below 0: a trial ahead of the incumbent on the seeds they share may still beat it
    margin = max(0.0, sd * (policy.z() / math.sqrt(n) - policy.delta / math.sqrt(2)))
    behind = inc - mine if maximize else mine - inc
    if behind <= margin:
        return None
    where = ",".join(str(study_seeds.index(s)) for s in shared)
    return (f"stopped after {len(values)} of {policy.k} seeds: {mine:.3f} vs incumbent {inc:.3f} "
            f"(trial {best.number}) on seeds {where}")


def brief(reason: str) -> str:
    """A race's stop reason for the progress line: "stopped after 1 of 5 seeds: 0.712 vs #4
    0.781" (the seeds compared left out)."""
    m = re.match(r"(.*): (\S+) vs incumbent (\S+) \(trial (\d+)\)", reason)
    return f"{m[1]}: {m[2]} vs #{m[4]} {m[3]}" if m else reason.split(":")[0]


def race_savings(trials: Sequence[FrozenTrial], k: int) -> tuple[int, float, int]:
    """(trials stopped by the race, seed-epochs they saved, seed-epochs all trials spent).
    A stopped trial that ran n seeds would have spent K / n times its seed-epochs."""
    stopped = [t for t in trials if t.user_attrs.get(RACED_OUT)]
    saved = sum(t.user_attrs.get(SEED_EPOCHS, 0) * (k - len(t.user_attrs.get(SEED_VALUES) or [1]))
                / max(len(t.user_attrs.get(SEED_VALUES) or [1]), 1) for t in stopped)
    spent = sum(t.user_attrs.get(SEED_EPOCHS, 0) for t in trials)
    return len(stopped), saved, spent


def savings_text(trials: Sequence[FrozenTrial], k: int) -> str:
    """One line on what the race saved; empty when no trial was stopped by it."""
    n, saved, spent = race_savings(trials, k)
    if not n:
        return ""
    return (f"race: {n} trial(s) stopped early over seeds, ~{saved:.0f} seed-epochs saved "
            f"({spent} spent), {saved / (spent + saved):.0%} of what the sweep would "
            f"have spent with every trial on K={k} seeds")

