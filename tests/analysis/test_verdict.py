"""The verdict: how sure the winner is, paired on shared seeds, in a plain sentence."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.stats import mean_diff, prob_better
from analysis.verdict import as_frame, markdown, verdict


def frame(*rows) -> pd.DataFrame:
    """trials_frame rows (trial, state, seed ids, seed values), best first."""
    return pd.DataFrame([{"trial": n, "state": state, "seed_ids": ids, "seed_values": values,
                          "dev_mean": sum(values) / len(values)} for n, state, ids, values in rows])


def test_a_paired_winner_that_beats_every_seed_is_separated():
    trials = frame((12, "COMPLETE", [5, 6, 7, 8], [0.81, 0.79, 0.83, 0.80]),
                   (31, "COMPLETE", [5, 6, 7, 8], [0.78, 0.76, 0.80, 0.775]))
    (c,) = verdict(trials, maximize=True)
    assert c.paired and c.seeds == 4 and c.separated and c.p_better == 1.0
    assert c.diff == pytest.approx(0.02875) and 0 < c.low < c.diff < c.high
    assert c.sentence().startswith("trial 12 beats trial 31 over 4 seeds")


def test_close_trials_are_not_distinguishable_and_the_sentence_says_how_many_seeds():
    trials = frame((12, "COMPLETE", [5, 6, 7], [0.81, 0.78, 0.82]),
                   (31, "COMPLETE", [5, 6, 7], [0.79, 0.79, 0.80]))
    (c,) = verdict(trials, maximize=True)
    assert not c.separated and c.low < 0 < c.high
    assert c.p_better == pytest.approx(2 / 3) and c.p_low <= c.p_better <= c.p_high
    assert c.sentence().startswith("trials 12 and 31 are not distinguishable with 3 seeds (the difference's "
                                   f"95% CI [{c.low:+.4f}, {c.high:+.4f}] holds 0): run seeds=")
    assert c.seeds_needed > 3
    text = markdown([c], completed=2)
    assert "| 31 | 3 | yes |" in text and "Only 2 completed trials" in text


def test_raced_out_trials_are_no_candidates_and_unshared_seeds_use_welch():
    trials = frame((3, "RACED_OUT", [5], [0.95]),  # one lucky seed: not a winner
                   (12, "COMPLETE", [5, 6, 7], [0.80, 0.82, 0.81]),
                   (31, "COMPLETE", [1, 2, 3], [0.70, 0.72, 0.71]))
    (c,) = verdict(trials, maximize=True)
    assert (c.winner, c.other, c.paired) == (12, 31, False) and c.separated


def test_minimizing_flips_the_sign_so_positive_favours_the_winner():
    trials = frame((1, "COMPLETE", [5, 6, 7], [100.0, 102.0, 101.0]),
                   (2, "COMPLETE", [5, 6, 7], [110.0, 111.0, 113.0]))
    (c,) = verdict(trials, maximize=False)
    assert c.diff == pytest.approx(31 / 3) and c.separated and c.p_better == 1.0
    assert list(as_frame([c])["verdict"]) == [c.sentence()]


def test_stats_come_from_scipy_paired_and_welch():
    from scipy import stats
    a, b = [0.8, 0.82, 0.79, 0.85], [0.78, 0.8, 0.8, 0.81]
    diff, low, high, p = mean_diff(a, b, paired=True)
    ci = stats.ttest_rel(a, b).confidence_interval()
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert p == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)
    _, low_w, high_w, _ = mean_diff(a, b, paired=False)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert (low_w, high_w) == pytest.approx((ci.low, ci.high))
    assert prob_better(a, b, paired=False)[0] == pytest.approx(11 / 16)  # all 16 pairs, ties half


def test_one_seed_each_cannot_be_compared_and_says_so_without_nan():
    """One seed a trial has no spread: the report printed '+nan' and asked for 'seeds=51'
    (the sentinel for 'more than 50'), as a new user's first two-trial sweep showed."""
    import pandas as pd

    from analysis.verdict import markdown, verdict
    rows = pd.DataFrame([{"trial": 0, "state": "COMPLETE", "seed_ids": [1], "seed_values": [0.76]},
                         {"trial": 1, "state": "COMPLETE", "seed_ids": [2], "seed_values": [0.69]}])
    text = markdown(verdict(rows, maximize=True), completed=2)
    assert "nan" not in text and "seeds=51" not in text
    assert "cannot be compared with 1 seed(s)" in text and "run seeds=3 or more on both" in text


def test_a_small_one_sided_p_or_a_bootstrap_of_one_is_not_read_as_separated():
    # every seed favours the winner, so the bootstrap says P = 1.00 [1.00, 1.00], and the
    # one-sided p is below 0.05, yet the two-sided interval holds 0 (a fresh-clone report
    # showed exactly this beside "not distinguishable", with nothing saying why)
    trials = frame((4, "COMPLETE", [5, 6, 7], [0.80, 0.78, 0.79]),
                   (3, "COMPLETE", [5, 6, 7], [0.79, 0.775, 0.785]))
    (c,) = verdict(trials, maximize=True)
    assert c.p_better == 1.0 and 0.025 < c.p < 0.05 and c.low < 0 < c.high and not c.separated
    assert f"CI [{c.low:+.4f}, {c.high:+.4f}] holds 0" in c.sentence()
    assert "excludes 0" in markdown([c], completed=2)


def test_an_interval_below_zero_is_not_said_to_hold_it():
    # the winner by its mean over 4 seeds trails on the 3 seeds the two share
    trials = frame((12, "COMPLETE", [5, 6, 7, 8], [0.70, 0.71, 0.72, 0.99]),
                   (31, "COMPLETE", [5, 6, 7], [0.75, 0.765, 0.77]))
    (c,) = verdict(trials, maximize=True)
    assert c.paired and c.high < 0 and not c.separated
    assert "lies below 0 on the seeds they share" in c.sentence() and "holds 0" not in c.sentence()


def test_a_trial_whose_seeds_all_scored_the_same_is_compared_without_a_warning():
    # a fresh-clone `make report` printed scipy's "Precision loss ... nearly identical" warning
    # for a trial stuck at the majority class (0.5766 on all 3 seeds)
    import warnings
    trials = frame((1, "COMPLETE", [1, 2, 3], [0.7537, 0.7437, 0.7317]),
                   (0, "COMPLETE", [4, 5, 6], [0.5766, 0.5766, 0.5766]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (c,) = verdict(trials, maximize=True)
    assert not c.paired and c.separated and c.low > 0.1


def test_the_seeds_suggested_are_more_than_the_seeds_compared():
    # a fresh-clone race report said "not distinguishable with 4 seeds ...: run seeds=4 on
    # both": the normal-based count ignores the t interval's few degrees of freedom
    trials = frame((4, "COMPLETE", [5, 6, 7], [0.81, 0.82, 0.83]),
                   (3, "COMPLETE", [5, 6, 7], [0.80, 0.80, 0.80]))
    (c,) = verdict(trials, maximize=True)
    assert c.paired and not c.separated and c.low < 0
    assert c.seeds_needed > c.seeds and f"run seeds={c.seeds_needed} on both" in c.sentence()
