"""Racing trials over seeds (sweeps/search/racing.py): who gets more seeds, what Optuna and MLflow
record, the pruner alongside, resume, two workers, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from optuna.trial import TrialState
from torch import nn

from sweeps.config.compose import compose_config
from sweeps.core.records import MLFLOW_RUN_ID, RACED_OUT, SEED_VALUES, SEEDS, SEEDS_POLICY, TRIAL_STATE
from sweeps.search import racing
from sweeps.search.study import Sweep
from sweeps.sweep import main
from tests.conftest import REPO
from tests.sweeps.scripted import ScriptedTask, scripted_factory
from tests.sweeps.test_cluster import database, pg_server  # noqa: F401 - fixtures
from tests.sweeps.test_sweep import load, mlflow_runs, overrides

GOOD, BAD = [0.6, 0.8, 0.9, 0.9], [0.5, 0.55, 0.55, 0.55]


class SeedNoise(ScriptedTask):
    """The script plus a small offset from the seed's initial weights: seeds differ."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        value = super().evaluate(model)["accuracy"]
        return {"accuracy": value + 0.01 * float(model.bias.detach())}


def noisy_factory(curve):
    base = scripted_factory(curve)

    def factory(cfg, task=None):
        w = base(cfg, task)
        w.task = SeedNoise(w.task.curve)
        return w
    return factory


def by_lr(cfg):
    return GOOD if cfg.train.lr > 0.05 else BAD


def race(tmp_path, csv, *extra):
    return overrides(tmp_path, csv, "sweep.seeds_policy=race", "seeds=4", "train.max_epochs=4",
                     "train.patience=10", "pruner=none", *extra)


# ---- the rule


def trial_with(values: list[float], seeds: list[int], number: int = 12):
    import optuna
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


# ---- end to end


@pytest.mark.parametrize("sampler", ["grid", "random", "tpe"])
def test_bad_trials_stop_after_one_seed_and_the_winner_runs_all(tmp_path, polarity_csv, sampler):
    extra = ["sampler=grid"] if sampler == "grid" else [f"sampler={sampler}", "sweep.trials=6"]
    sweep = Sweep(race(tmp_path, polarity_csv, *extra), quiet=True, workload_factory=noisy_factory(by_lr))
    sweep.run()
    study = sweep.study
    drawn = racing.study_seeds(study.user_attrs)
    assert len(drawn) == 4 and study.user_attrs[SEEDS_POLICY]["policy"] == "race"
    trials = sorted(study.trials, key=lambda t: t.number)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # every trial ran a prefix of the study's seeds: seed i is the same value everywhere
    for t in trials:
        assert t.user_attrs[SEEDS] == drawn[:len(t.user_attrs[SEEDS])]
        assert t.value == pytest.approx(sum(t.user_attrs[SEED_VALUES]) / len(t.user_attrs[SEED_VALUES]))
    assert len(trials[0].user_attrs[SEEDS]) == 4  # nothing to race against: all K
    good = [t for t in trials if t.params.get("train.lr", 0) > 0.05]
    bad = [t for t in trials if t.params.get("train.lr", 1) <= 0.05]
    full_good = [t for t in good if len(t.user_attrs[SEEDS]) == 4]
    assert full_good, "a good configuration reaches K seeds"
    for t in bad:
        if t.number > min(g.number for g in full_good):  # raced against a good incumbent
            assert len(t.user_attrs[SEEDS]) == 1 and t.user_attrs[RACED_OUT].startswith(
                "stopped after 1 of 4 seeds: ")
    assert any(t.user_attrs.get(RACED_OUT) for t in bad)
    best = study.best_trials  # Optuna's own best may be a raced-out trial; ours never is
    from sweeps.store import ranked
    assert len(ranked(study)[0].user_attrs[SEEDS]) == 4 and best
    _, parents, children = mlflow_runs(tmp_path, study.study_name)
    by_id = {p.info.run_id: p for p in parents}
    for t in trials:
        run = by_id[t.user_attrs[MLFLOW_RUN_ID]]
        assert run.info.status == "FINISHED" and run.data.tags[TRIAL_STATE] == "COMPLETE"
        assert run.data.metrics["best_dev_accuracy_mean"] == pytest.approx(t.value)
        assert run.data.tags.get(RACED_OUT) == t.user_attrs.get(RACED_OUT)
    assert len(children) == sum(len(t.user_attrs[SEEDS]) for t in trials)
    assert all(c.info.status == "FINISHED" for c in children)


def test_the_progress_line_says_which_trial_the_race_stopped_and_why(tmp_path, polarity_csv):
    """Done when: the progress line shows which trials stopped early over seeds and why (the
    two means and the incumbent), not only how many seeds they ran."""
    import io

    from sweeps.search.progress import Progress
    out = io.StringIO()
    sweep = Sweep(race(tmp_path, polarity_csv, "sampler=grid"), progress=Progress(stream=out, tty=False),
                  workload_factory=noisy_factory(by_lr))
    sweep.run()
    stopped = [t for t in sweep.study.trials if t.user_attrs.get(RACED_OUT)]
    assert stopped
    lines = [line for line in out.getvalue().splitlines() if "] #" in line]
    for t in stopped:
        (line,) = [line for line in lines if f"] #{t.number} " in line]
        reason = t.user_attrs[RACED_OUT]  # "stopped after 1 of 4 seeds: 0.550 vs incumbent 0.900 (trial 0)"
        mine, theirs = reason.split(": ")[1].split(" vs incumbent ")
        assert "stopped after 1 of 4 seeds" in line and mine in line
        assert f"#{reason.split('(trial ')[1].split(')')[0]} {theirs.split()[0]}" in line, line


def test_the_pruner_prunes_within_the_first_look(tmp_path, polarity_csv):
    # grid: bad, good, bad, good; the median pruner (prune_improving) prunes the second bad
    # at its first epoch, on its first seed
    curves = {True: [0.6, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], False: [0.5] * 8}
    sweep = Sweep(race(tmp_path, polarity_csv, "sampler=grid", "pruner=patience", "pruner.wrap=median",
                       "pruner.n_startup_trials=2", "pruner.n_warmup_steps=0", "pruner.prune_improving=true",
                       "train.max_epochs=8"),
                  quiet=True, workload_factory=noisy_factory(lambda cfg: curves[cfg.train.lr > 0.05]))
    sweep.run()
    pruned = sweep.study.get_trials(states=(TrialState.PRUNED,))
    assert pruned and all(len(t.user_attrs[SEEDS]) == 1 for t in pruned)
    assert all(sorted(t.intermediate_values) == [1] for t in pruned)


def test_resume_keeps_the_study_seeds(tmp_path, polarity_csv):
    factory = noisy_factory(by_lr)
    Sweep(race(tmp_path, polarity_csv, "sweep.trials=2"), quiet=True, workload_factory=factory).run()
    first = racing.study_seeds(load(tmp_path, "dan-csv-random").user_attrs)
    Sweep(race(tmp_path, polarity_csv, "sweep.trials=4"), quiet=True, workload_factory=factory).run()
    study = load(tmp_path, "dan-csv-random")
    assert racing.study_seeds(study.user_attrs) == first and len(study.trials) == 4
    assert all(t.user_attrs[SEEDS] == first[:len(t.user_attrs[SEEDS])] for t in study.trials)


# ---- bad input: one sentence, exit 2, nothing created


@pytest.mark.parametrize("extra, words", [
    (["sweep.seeds_policy=race", "sweep.min_seeds=3", "seeds=2"], "sweep.min_seeds=3"),
    (["sweep.seeds_policy=race", "seeds=1"], "needs seeds >= 2"),
    (["sweep.seeds_policy=sometimes"], "sweep.seeds_policy"),
    (["sweep.seeds_policy=race", "sweep.race_alpha=0.7"], "sweep.race_alpha"),
])
def test_bad_policy_settings_are_refused(tmp_path, polarity_csv, capsys, extra, words):
    before = sorted(tmp_path.rglob("*"))
    assert main(overrides(tmp_path, polarity_csv, *extra)) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert sorted(tmp_path.rglob("*")) == before  # nothing created: no store, no runs, no locks


@pytest.mark.parametrize("first, then", [("fixed", "race"), ("race", "fixed")])
def test_resuming_under_another_policy_is_refused(tmp_path, polarity_csv, capsys, first, then):
    Sweep(race(tmp_path, polarity_csv, "sweep.trials=1", f"sweep.seeds_policy={first}"), quiet=True,
          workload_factory=noisy_factory(by_lr)).run()
    before = load(tmp_path, "dan-csv-random")
    runs_before = len(mlflow_runs(tmp_path, "dan-csv-random")[1])
    assert main(race(tmp_path, polarity_csv, "sweep.trials=3", f"sweep.seeds_policy={then}")) == 2
    err = capsys.readouterr().err
    assert f"was made with seeds policy {first}" in err and err.count("\n") == 1
    after = load(tmp_path, "dan-csv-random")
    assert len(after.trials) == len(before.trials) == 1 and after.user_attrs == before.user_attrs
    assert len(mlflow_runs(tmp_path, "dan-csv-random")[1]) == runs_before == 1  # no MLflow run either


def test_a_race_configuration_composes():
    cfg = compose_config(["sweep.seeds_policy=race", "seeds=5", "sweep.min_seeds=2"])
    assert racing.seed_policy(cfg).looks() == [2, 4, 5]


# ---- real training: several workers, a kill


def sweep_cmd(tmp_path, csv, *extra):
    return [sys.executable, "-m", "sweeps.sweep",
            *overrides(tmp_path, csv, "sweep.seeds_policy=race", "seeds=3", "train.max_epochs=2", *extra)]


@pytest.fixture(params=["journal", "postgres"])
def shared_storage(request, tmp_path, monkeypatch):
    """The settings and environment of a study two workers share: a journal file, or a new
    PostgreSQL database (SEEDSWEEP_TEST_PG_URL; skipped without it)."""
    if request.param == "journal":
        return ["storage.url=null", f"storage.dir={tmp_path / 'journal'}"], dict(os.environ)
    url = request.getfixturevalue("database")
    return ["storage=postgres"], {**os.environ, "SEEDSWEEP_DB_URL": url}


@pytest.mark.slow
def test_two_workers_race_on_a_shared_study(tmp_path, polarity_csv, shared_storage, monkeypatch):
    """No seed of a trial runs twice and no incumbent update is lost: a trial stopped by the
    race names an incumbent that ran all K seeds and is at least as good as every full trial
    that had completed before the stopped trial started."""
    storage, env = shared_storage
    args = ["sampler=random", "sweep.trials=6", "sweep.workers=2", *storage]
    proc = subprocess.run(sweep_cmd(tmp_path, polarity_csv, *args), cwd=REPO, capture_output=True,
                          text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr
    from sweeps.store import load_study
    if "SEEDSWEEP_DB_URL" in env:
        monkeypatch.setenv("SEEDSWEEP_DB_URL", env["SEEDSWEEP_DB_URL"])
    study = load_study(compose_config(overrides(tmp_path, polarity_csv, *args)), "dan-csv-random")
    drawn = racing.study_seeds(study.user_attrs)
    assert len(study.trials) == 6 and len({t.user_attrs["worker"] for t in study.trials}) == 2
    by_number = {t.number: t for t in study.trials}
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        assert t.user_attrs[SEEDS] == drawn[:len(t.user_attrs[SEEDS])]  # no seed run twice
        assert len(t.user_attrs[SEEDS]) == 3 or t.user_attrs[RACED_OUT]
        if reason := t.user_attrs.get(RACED_OUT):
            named = by_number[int(reason.split("(trial ")[1].split(")")[0])]
            assert racing.is_full(named) and len(named.user_attrs[SEEDS]) == 3
            seen = [f for f in study.trials if racing.is_full(f) and f.datetime_complete < t.datetime_start]
            assert all(named.value >= f.value for f in seen), (reason, [(f.number, f.value) for f in seen])
    assert any(t.user_attrs.get(RACED_OUT) for t in study.trials)  # lr=0.01 ends far behind
    _, parents, children = mlflow_runs(tmp_path, "dan-csv-random")
    assert len(children) == sum(len(t.user_attrs[SEEDS]) for t in study.trials)
    assert all(r.info.status == "FINISHED" for r in parents + children)


@pytest.mark.slow
def test_a_killed_race_resumes_on_the_same_seeds(tmp_path, polarity_csv):
    args = ["sampler=grid"]
    env = {**os.environ, "SEEDSWEEP_CRASH_AT": "epoch_logged"}
    killed = subprocess.run(sweep_cmd(tmp_path, polarity_csv, *args), cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode != 0
    drawn = racing.study_seeds(load(tmp_path, "dan-csv-grid").user_attrs)
    rerun = subprocess.run(sweep_cmd(tmp_path, polarity_csv, *args), cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    study = load(tmp_path, "dan-csv-grid")
    assert racing.study_seeds(study.user_attrs) == drawn
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    (failed,) = study.get_trials(states=(TrialState.FAIL,))
    assert len(complete) == 4 and failed.user_attrs["interrupted"]
    assert all(t.user_attrs[SEEDS] == drawn[:len(t.user_attrs[SEEDS])] for t in complete)
    _, parents, children = mlflow_runs(tmp_path, "dan-csv-grid")
    assert not [r for r in parents + children if r.info.status == "RUNNING"]


def test_every_look_of_a_race_keeps_its_weights_so_the_winner_can_be_evaluated(tmp_path, polarity_csv,
                                                                               monkeypatch):
    """A look's seed mean is not the trial's: judging each look's weights by it (the fixed
    policy's rule) dropped the first seed's weights of a trial that went on to win, and
    `make final` then refused the winner for missing weights (review)."""
    from sweeps.search import objective
    calls = []
    real = objective.run_config

    def recording(workload, seeds, *a, **k):
        calls.append((list(seeds), k.get("keep_weights")))
        return real(workload, seeds, *a, **k)
    monkeypatch.setattr(objective, "run_config", recording)
    sweep = Sweep(race(tmp_path, polarity_csv, "sampler=grid", "sweep.keep_weights=1"), quiet=True,
                  workload_factory=noisy_factory(by_lr))
    sweep.run()
    looks = [keep for seeds, keep in calls if len(seeds) < 4]
    assert looks and all(keep is None for keep in looks)


def test_the_report_of_a_race_counts_the_savings_and_says_how_sure_the_winner_is(tmp_path, polarity_csv):
    """Done when: `make report` on a race study says which trials the race stopped, the
    seed-epochs it saved, and the verdict: the winner against the next full trials."""
    from analysis.report import main as report_main
    args = race(tmp_path, polarity_csv, "sampler=grid")
    sweep = Sweep(args, quiet=True, workload_factory=noisy_factory(by_lr))
    sweep.run()
    stopped = [t for t in sweep.study.trials if t.user_attrs.get(RACED_OUT)]
    assert stopped
    assert report_main([*args, f"--out={tmp_path / 'reports'}"]) == 0
    report = (tmp_path / "reports" / "report.md").read_text()
    assert f"race: {len(stopped)} trial(s) stopped early over seeds" in report
    assert "## How sure is the winner?" in report and "Winner: trial " in report
    assert ("beats trial" in report or "not distinguishable with" in report), report
    trials = (tmp_path / "reports" / "trials.csv").read_text()
    assert trials.count("RACED_OUT") == len(stopped)
