"""Racing configurations over seeds (`sweep.seeds_policy=race`), after SMAC3's intensifier.

Under `fixed` every trial runs the same K seeds. Under `race` the study draws its K seed
values once and stores them, so seed i is the same value in every trial and two trials
compare on the seeds both ran (paired). A trial starts on `min_seeds` of them and doubles
(1 -> 2 -> 4 -> K) while it may still beat the incumbent: the best trial that ran all K.
Seeds trained in a later look are a new stacked group under the same MLflow parent run.

"May still beat" (checked after each look but the last), with n the seeds run so far,
c and i the trial's and the incumbent's means on those n seeds, s the incumbent's seed
std over its K seeds and z the standard normal (1 - alpha) quantile:

    drop when  i - c > z * sqrt(2) * s / sqrt(n)      (maximize; mirrored to minimize)

sqrt(2) * s / sqrt(n) is the std of the difference of two n-seed means with independent
seed noise of std s, so a trial exactly as good as the incumbent is dropped at one look
with probability alpha (normal seed noise); over the L looks of a race, at most L * alpha
(Bonferroni: 3 * 0.1 for 1 -> 5). Pairing (same seed values) only lowers that noise. The
incumbent is the best of many trials, so its mean on the first seeds is biased upwards:
the real rate of dropping an equal trial is somewhat higher. The incumbent and the winner
always run all K seeds: only full trials are ranked, and a trial with no full trial to
race against runs all K. The incumbent is read from the study at each look, never kept
in memory, so workers sharing a study (journal file or PostgreSQL) never lose an update.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

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
    alpha: float  # race: chance to drop a trial as good as the incumbent at one look

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

    def record(self, seeds: Sequence[int] | None) -> dict[str, Any]:
        """What the study stores of this policy (race: with its K seed values)."""
        out: dict[str, Any] = {"policy": self.name}
        if self.racing:
            out |= {"min_seeds": self.min_seeds, "alpha": self.alpha, "seeds": list(seeds or [])}
        return out


def seed_policy(cfg: DictConfig) -> SeedPolicy:
    """The sweep's seed policy, its impossible combinations refused in one sentence."""
    s = cfg.sweep
    name = str(s.get("seeds_policy", "fixed"))
    if name not in POLICIES:
        raise UserError(f"unknown sweep.seeds_policy {name!r}; choose one of: {', '.join(POLICIES)}.")
    given = OmegaConf.to_container(cfg.seed_list) if OmegaConf.is_config(cfg.seed_list) else cfg.seed_list
    k = len(given) if given else int(cfg.seeds)
    min_seeds, alpha = s.get("min_seeds", 1), s.get("race_alpha", 0.1)
    if name == "race":
        if k < 2:
            raise UserError(f"sweep.seeds_policy=race needs seeds >= 2 (it races trials over seeds), "
                            f"not seeds={k}; use sweep.seeds_policy=fixed with one seed.")
        if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or not 1 <= min_seeds <= k:
            raise UserError(f"sweep.min_seeds={min_seeds} must be a whole number from 1 to seeds={k}: "
                            "a race starts on at most K seeds.")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
            raise UserError(f"sweep.race_alpha={alpha} must lie strictly between 0 and 0.5.")
    return SeedPolicy(name, k, int(min_seeds), float(alpha))


def check_study(name: str, attrs: Mapping[str, Any], policy: SeedPolicy) -> None:
    """Refuse to resume study `name` (its user attributes `attrs`) under another seed
    policy (a study made before policies existed was `fixed`)."""
    old = dict(attrs.get(SEEDS_POLICY) or {"policy": "fixed"})
    new = policy.record(old.get("seeds"))
    if old != new:
        shown = ", ".join(f"{k}={v}" for k, v in old.items() if k != "seeds")
        raise UserError(f"study {name!r} was made with seeds policy {shown.replace('policy=', '')}, not "
                        f"{policy.name}" + (f" (min_seeds={policy.min_seeds}, race_alpha={policy.alpha})"
                                            if policy.racing else "")
                        + ": resume it with its settings (sweep.seeds_policy, sweep.min_seeds, "
                        "sweep.race_alpha), or start a new study with sweep.new=true.")


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


def race_stop(values: Mapping[int, float], best: FrozenTrial | None, policy: SeedPolicy,
              study_seeds: Sequence[int], maximize: bool) -> str | None:
    """Why the trial with `values` (seed value -> best dev value) can no longer beat the
    incumbent `best`, in one sentence; None while it may (see the module's rule)."""
    if best is None:
        return None
    theirs = dict(zip(best.user_attrs.get(SEEDS) or [], best.user_attrs.get(SEED_VALUES) or []))
    shared = [s for s in study_seeds if s in values and s in theirs]
    if not shared:
        return None
    n = len(shared)
    mine, inc = statistics.fmean(values[s] for s in shared), statistics.fmean(theirs[s] for s in shared)
    spread = statistics.stdev(theirs.values()) if len(theirs) > 1 else 0.0
    margin = NormalDist().inv_cdf(1 - policy.alpha) * math.sqrt(2) * spread / math.sqrt(n)
    behind = inc - mine if maximize else mine - inc
    if behind <= margin:
        return None
    where = ",".join(str(study_seeds.index(s)) for s in shared)
    return (f"stopped after {len(values)} of {policy.k} seeds: {mine:.3f} vs incumbent {inc:.3f} "
            f"(trial {best.number}) on seeds {where}")


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

