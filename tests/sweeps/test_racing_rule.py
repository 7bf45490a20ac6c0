"""The racing rule (sweeps/search/racing.py): the looks, the margin, the pooled seed noise
and the error rate the README states, checked by simulation."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from sweeps.core.records import SEED_VALUES, SEEDS
from sweeps.search import racing


def trial_with(values: list[float], seeds: list[int], number: int = 12):
    t = optuna.trial.create_trial(value=sum(values) / len(values), user_attrs={
        SEEDS: seeds, SEED_VALUES: values}, params={}, distributions={})
    t.number = number
    return t


def test_looks_double_from_min_seeds_up_to_k():
    policy = racing.SeedPolicy("race", 5, 1, 0.1)
    assert policy.looks() == [1, 2, 4, 5]
    assert racing.SeedPolicy("race", 6, 2, 0.1).looks() == [2, 4, 6]
    assert racing.SeedPolicy("fixed", 5, 1, 0.1).looks() == [5]


def test_a_trial_is_dropped_only_when_behind_by_more_than_the_margin():
    seeds = [7, 8, 9]
    best = trial_with([0.80, 0.82, 0.78], seeds)  # seed std 0.02
    policy = racing.SeedPolicy("race", 3, 1, 0.1)
    # one full trial: sd = sqrt(2) * 0.02; Pocock's z for looks 1, 2 at 0.1: 1.527; margin 0.043
    assert policy.z() == pytest.approx(1.527, abs=0.002)
    assert racing.race_stop({7: 0.77}, best, policy, seeds, maximize=True) is None
    reason = racing.race_stop({7: 0.75}, best, policy, seeds, maximize=True)
    assert reason == "stopped after 1 of 3 seeds: 0.750 vs incumbent 0.800 (trial 12) on seeds 0"
    # minimizing mirrors it; no incumbent: the trial goes on
    assert racing.race_stop({7: 0.75}, best, policy, seeds, maximize=False) is None
    assert racing.race_stop({7: 0.1}, None, policy, seeds, maximize=True) is None


def full_trials(rng, means, seeds, shared, noise, first=0):
    """Trials that ran all `seeds`: a true mean, a per-seed effect `shared` by every trial
    (seed i is the same initialisation and batch order everywhere) and their own noise."""
    return [trial_with(list(m + shared + noise * rng.standard_normal(len(seeds))), seeds, first + j)
            for j, m in enumerate(means)]


def test_the_seed_noise_is_pooled_over_pairs_of_full_trials_and_pairing_removes_the_shared_part():
    import itertools
    import statistics
    rng, seeds = np.random.default_rng(0), [7, 8, 9, 10, 11]
    shared = 0.03 * rng.standard_normal(5)  # large seed effect, common to all trials
    trials = full_trials(rng, [0.7, 0.75, 0.8, 0.72, 0.78, 0.74], seeds, shared, 0.005)
    pairs = [[a - b for a, b in zip(x.user_attrs[SEED_VALUES], y.user_attrs[SEED_VALUES])]
             for x, y in itertools.combinations(trials, 2)]
    centred = [abs(d - statistics.fmean(p)) for p in pairs for d in p]
    robust = 1.4826 * statistics.median(centred) * (5 / 4) ** 0.5
    assert racing.paired_sd(trials, seeds, trials[0]) == pytest.approx(robust)
    assert robust < 0.5 * 2 ** 0.5 * statistics.stdev(trials[0].user_attrs[SEED_VALUES])
    # one full trial: its own seed std, as if unpaired
    assert racing.paired_sd(trials[:1], seeds, trials[0]) == pytest.approx(
        2 ** 0.5 * statistics.stdev(trials[0].user_attrs[SEED_VALUES]))


def test_one_seed_that_stopped_oddly_does_not_inflate_the_seed_noise():
    """The benchmark's race arm: one seed of one trial 0.035 below its others (it stopped
    early on its own) raised a mean-square pooled noise by half, and the race kept trials
    it should have stopped."""
    rng, seeds = np.random.default_rng(2), [7, 8, 9, 10, 11]
    trials = full_trials(rng, [0.77] * 9, seeds, np.zeros(5), 0.005)
    clean = racing.paired_sd(trials, seeds, trials[0])
    odd = trials[3].user_attrs[SEED_VALUES]
    trials[3] = trial_with([*odd[:4], odd[4] - 0.035], seeds, 3)
    assert clean == pytest.approx(0.005 * 2 ** 0.5, rel=0.3)
    assert racing.paired_sd(trials, seeds, trials[0]) < 1.25 * clean  # a mean-square pool: 1.56


def race_once(rng, gap, policy, seeds, others):
    """One race of a trial `gap` noise units (0.01) worse than the incumbent, trial 0 of
    `others` (true mean 0.8, each trial 0.01 / sqrt(2) of its own noise): the seeds it ran."""
    mine = dict(zip(seeds, 0.8 - gap * 0.01 + 0.01 / 2 ** 0.5 * rng.standard_normal(len(seeds))))
    for n in policy.looks()[:-1]:
        if racing.race_stop({s: mine[s] for s in seeds[:n]}, others[0], policy, seeds, True, others):
            return n
    return len(seeds)


def test_the_stated_error_rate_holds_in_simulation():
    """README and racing.py: a trial exactly as good as the incumbent is dropped, over all
    the looks of 1 -> 2 -> 4 -> 5, with probability race_alpha (0.2) under normal seed noise;
    a trial three noise units worse per seed is dropped after its first seed."""
    rng, seeds = np.random.default_rng(1), [11, 22, 33, 44, 55]
    policy = racing.SeedPolicy("race", 5, 1, 0.2)
    assert policy.looks() == [1, 2, 4, 5] and policy.z() == pytest.approx(1.273, abs=0.002)
    runs = 3000
    equal, worse = [], []
    for _ in range(runs):
        # the incumbent and 11 other full trials, true mean 0.8; per-seed differences of two
        # trials have std 0.01 (each trial 0.01 / sqrt(2) of its own noise)
        others = full_trials(rng, [0.8] * 12, seeds, np.zeros(5), 0.01 / 2 ** 0.5)
        equal.append(race_once(rng, 0.0, policy, seeds, others))
        worse.append(race_once(rng, 3.0, policy, seeds, others))
    dropped = sum(n < 5 for n in equal) / runs
    assert 0.2 - 0.03 <= dropped <= 0.2 + 0.03, dropped  # 3 standard errors of 3000 runs
    assert sum(n == 1 for n in worse) / runs >= 0.9


def test_the_indifference_zone_narrows_the_margin_and_never_drops_a_trial_ahead():
    """sweep.race_delta: the margin shrinks by delta seed stds (sd / sqrt(2)); a trial that
    leads the incumbent on the seeds they share is never dropped, whatever delta."""
    seeds = [7, 8, 9]
    best = trial_with([0.80, 0.82, 0.78], seeds)  # seed std 0.02: sd = sqrt(2) * 0.02
    plain, zoned = racing.SeedPolicy("race", 3, 1, 0.1), racing.SeedPolicy("race", 3, 1, 0.1, 0.5)
    # margin 1.527 * 0.0283 = 0.0432 without the zone; 0.0432 - 0.5 * 0.02 = 0.0332 with it
    assert racing.race_stop({7: 0.762}, best, plain, seeds, maximize=True) is None
    assert racing.race_stop({7: 0.762}, best, zoned, seeds, maximize=True).startswith("stopped after 1")
    assert racing.race_stop({7: 0.768}, best, zoned, seeds, maximize=True) is None
    wide = racing.SeedPolicy("race", 3, 1, 0.1, 2.0)  # after 2 seeds z / sqrt(2) - 2 / sqrt(2) < 0: margin 0
    assert racing.race_stop({7: 0.7999, 8: 0.82}, best, wide, seeds, maximize=True) is not None
    assert racing.race_stop({7: 0.80, 8: 0.82}, best, wide, seeds, maximize=True) is None
    assert racing.race_stop({7: 0.81, 8: 0.82}, best, wide, seeds, maximize=True) is None


def test_the_default_rule_has_the_error_rates_the_readme_states():
    """README and racing.py, under the defaults (race_alpha 0.2, race_delta 0.5, 1 -> 5): a
    trial half a seed std better than the incumbent is dropped 20 times in 100, one as good
    40, one a seed std better 8, one a seed std worse 85; three sd worse after its first
    seed 98 times in 100."""
    from sweeps.config.compose import compose_config
    policy = racing.seed_policy(compose_config(["sweep.seeds_policy=race", "seeds=5"]))
    assert (policy.alpha, policy.delta, policy.looks()) == (0.2, 0.5, [1, 2, 4, 5])
    rng, seeds, runs = np.random.default_rng(3), [11, 22, 33, 44, 55], 2000
    seed_std = 1 / 2 ** 0.5  # in units of sd, the per-seed difference's noise (0.01)
    rates = {}
    for name, gap in [("better by delta", -0.5 * seed_std), ("equal", 0.0), ("one std better", -seed_std),
                      ("one std worse", seed_std), ("3 sd worse", 3.0)]:
        ran = []
        for _ in range(runs):
            others = full_trials(rng, [0.8] * 12, seeds, np.zeros(5), 0.01 / 2 ** 0.5)
            ran.append(race_once(rng, gap, policy, seeds, others))
        rates[name] = (sum(n < 5 for n in ran) / runs, sum(n == 1 for n in ran) / runs)
    tol = 0.035  # about 3 standard errors of 2000 races, plus the pooled sd's own noise
    assert abs(rates["better by delta"][0] - 0.20) <= tol, rates
    assert abs(rates["equal"][0] - 0.40) <= tol, rates
    assert abs(rates["one std better"][0] - 0.08) <= tol, rates
    assert abs(rates["one std worse"][0] - 0.85) <= tol, rates
    assert rates["3 sd worse"][1] >= 0.95, rates
