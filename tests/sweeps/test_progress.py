"""What a running sweep shows (issue 34): a line per epoch when the output is piped, a
terminal display that moves inside a trial, and parameter names that mean one thing."""

from __future__ import annotations

import io
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sweeps.search.progress import Progress, abbreviations, legend, short_params
from sweeps.sweep import main
from tests.sweeps.test_sweep import load, overrides


def test_piped_sweep_prints_a_line_per_epoch_with_seeds_metric_and_clock(tmp_path, polarity_csv, capsys):
    args = overrides(tmp_path, polarity_csv, "sweep.trials=1", "train.max_epochs=2", "seeds=1",
                     "train.patience=5", "pruner=none")
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    (trial,) = load(tmp_path, "dan-csv-random").trials
    (seed,) = trial.user_attrs["seeds"]
    epochs = [line for line in lines if re.match(r"\s*#0 epoch \d", line)]
    assert [line.split()[2] for line in epochs] == ["1/2", "2/2"], lines
    for line, value in zip(epochs, trial.intermediate_values.values()):
        assert f"seed {seed}:" in line and f"dev accuracy {value:.4f}" in line
        assert re.search(r"\[[\dhms]+, ETA [\dhms]+]$", line), line
    # the legend once, before the first trial; the trial line spells every parameter with it
    shown = [i for i, line in enumerate(lines) if line.startswith("params: ")]
    assert {lines[i] for i in shown} == {"params: wd=model.word_dropout lr=train.lr"}
    assert shown[0] < lines.index(epochs[0]) and len(shown) == 2  # and above the final table
    (done,) = [line for line in lines if line.startswith("[1/1]")]
    assert f"wd={trial.params['model.word_dropout']:.3g}" in done and "lr=" in done


def test_piped_trial_lines_show_every_parameter_of_a_large_space(tmp_path, polarity_csv, capsys):
    # search_space=dan has nine keys, two of them with initials `wd` (word_dropout, weight_decay)
    args = overrides(tmp_path, polarity_csv, "search_space=dan", "sweep.trials=1", "train.max_epochs=1",
                     "seeds=1")
    args = [a for a in args if not a.startswith(("model.embed_dim", "model.num_layers", "model.hidden_dim"))]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    (trial,) = load(tmp_path, "dan-csv-random").trials
    shown = next(line for line in lines if line.startswith("params: "))
    names = dict(pair.split("=") for pair in shown.removeprefix("params: ").split())
    assert len(names) == 9 and names["wdr"] == "model.word_dropout" and names["wde"] == "train.weight_decay"
    (done,) = [line for line in lines if line.startswith("[1/1]")]
    short = {key: name for name, key in names.items()}
    for key in trial.params:
        assert f" {short[key]}=" in done, (key, done)


@pytest.mark.parametrize("keys", [
    ["model.dropout", "train.dropout"],  # the same last part in two groups
    ["a.word_dropout", "b.word_dropout", "c.weight_decay"],  # initials and next letter alike
    ["model.wd", "model.word_dropout"],  # one key's whole name is another's initials
    ["x.activation", "y.act"],
])
def test_abbreviations_never_share_a_name(keys):
    short = abbreviations(keys)
    assert len(set(short.values())) == len(keys), short


@given(st.lists(st.from_regex(r"[a-c]{1,2}\.[a-c]{1,3}(_[a-c]{1,3})?", fullmatch=True),
                min_size=1, max_size=8, unique=True))
def test_abbreviations_are_unique_for_any_keys(keys):
    short = abbreviations(keys)
    assert sorted(short) == sorted(keys) and len(set(short.values())) == len(keys)


def test_legend_and_short_params_use_the_same_names():
    short = abbreviations(["model.word_dropout", "train.weight_decay", "train.lr"])
    assert short == {"model.word_dropout": "wdr", "train.weight_decay": "wde", "train.lr": "lr"}
    assert legend(short) == "params: wdr=model.word_dropout wde=train.weight_decay lr=train.lr"
    assert short_params({"train.weight_decay": 3.5e-6, "model.word_dropout": 0.3}, short) == \
        "wde=3.5e-06 wdr=0.3"
    assert abbreviations(["model.wd", "model.word_dropout"]) == \
        {"model.wd": "wd", "model.word_dropout": "wdr"}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_terminal_bar_estimates_the_eta_from_epochs_before_a_trial_ends():
    clock, out = Clock(), io.StringIO()
    progress = Progress(stream=out, tty=True, clock=clock, tick=None)
    progress.start(budget=4, done=0, max_epochs=10, metric="dev accuracy")
    progress.trial_started(0)
    clock.now += 30  # one epoch in 30 s: a trial of 10 epochs takes ~300 s, 4 trials ~1200 s
    progress.epoch(0, 1, [7], 1, 0.6)
    frame = out.getvalue().split("\r")[-1]
    assert "trial 0: epoch 1/10" in frame and "<19:30" in frame and "<?" not in frame, frame
    progress.close()


def test_terminal_bar_redraws_between_epochs():
    out = io.StringIO()
    progress = Progress(stream=out, tty=True, tick=0.01)
    progress.start(budget=2, done=0, max_epochs=3, metric="dev accuracy")
    progress.trial_started(0)
    drawn = out.getvalue().count("\r")
    deadline = time.monotonic() + 20
    while out.getvalue().count("\r") < drawn + 3 and time.monotonic() < deadline:
        time.sleep(0.02)  # no call to progress here: only its own clock can redraw the bar
    progress.close()
    assert out.getvalue().count("\r") >= drawn + 3


def test_a_resumed_sweeps_eta_starts_from_the_time_its_finished_trials_took():
    """A resumed sweep's first ETA comes from the study's finished trials (a fresh-clone
    resume of `make sweep MODEL=dan` said "ETA 21m" for ~7 minutes of work: it assumed
    every trial runs all max_epochs, where early stopping ends most after ~5)."""
    clock, out = Clock(), io.StringIO()
    progress = Progress(stream=out, tty=False, clock=clock, tick=None)
    progress.start(budget=10, done=4, max_epochs=20, metric="dev accuracy", past=[10.0, 20.0, 30.0, 20.0])
    progress.trial_started(4)
    clock.now += 5
    progress.epoch(4, 1, [7, 8, 9], 3, 0.6)  # 5 s an epoch: all 20 epochs would take 100 s
    assert "ETA 1m55s]" in out.getvalue(), out.getvalue()  # (20 - 5) + 5 x 20 s, not (100 - 5) + 5 x 100


def test_the_trials_a_resumed_eta_counts_are_those_that_ended_complete_or_pruned():
    import datetime as dt

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from sweeps.store import trial_seconds
    start = dt.datetime(2026, 12, 6, 12, 0, 0)
    study = optuna.create_study()
    for state, seconds in ((TrialState.COMPLETE, 12), (TrialState.PRUNED, 30), (TrialState.FAIL, 500)):
        trial = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                             params={"x": 0.1}, distributions={"x": FloatDistribution(0, 1)},
                             intermediate_values={0: 0.5})
        trial.datetime_start, trial.datetime_complete = start, start + dt.timedelta(seconds=seconds)
        study.add_trial(trial)
    study.enqueue_trial({"x": 0.2})  # WAITING: not started
    assert trial_seconds(study.get_trials(deepcopy=False)) == [12.0, 30.0]


def test_the_eta_of_several_workers_counts_every_trial_they_run():
    """Two workers' trials run at once: each running trial has done part of its time (one
    trial start for the whole view took the last one started as the only one running)."""
    clock, out = Clock(), io.StringIO()
    progress = Progress(stream=out, tty=False, clock=clock, tick=None)
    progress.start(budget=6, done=2, workers=2, max_epochs=20, metric="dev accuracy", past=[10.0, 10.0])
    progress.trial_started(2)
    clock.now += 4
    progress.trial_started(3)
    clock.now += 2  # trial 2 has run 6 s of its 10, trial 3 2 s
    assert progress.eta_seconds() == pytest.approx((4 + 8 + 2 * 10) / 2)
    progress.trial_finished(10.0, 3, "#2 COMPLETE", number=2)
    assert progress.eta_seconds() == pytest.approx((8 + 2 * 10) / 2)  # trial 3 still runs


def relayed(worker_events) -> list[str]:
    """What each worker's Relay writes, one list of lines a worker."""
    from sweeps.search.relay import Relay
    lines = []
    for events in worker_events:
        out = io.StringIO()
        relay = Relay(out)
        for name, *args in events:
            getattr(relay, name)(*args)
        lines.append(out.getvalue().splitlines(keepends=True))
    return lines


def test_workers_progress_is_shown_as_one_log_by_the_sweep_that_started_them():
    from sweeps.search.relay import show
    # what a worker a sweep started sends: no announcement (its sweep made it), status
    # lines while it loads, then its trials, then a status line after them
    w1, w2 = relayed([
        [("say", "loading data (rt) and checking the dan settings"), ("show_legend", {"a.b": "b"}),
         ("trial_started", 1), ("epoch", 1, 1, [11, 12], 2, 0.7),
         ("trial_finished", 9.0, 2, "#1 COMPLETE 0.7000", "lr=0.1", 1)],
        [("say", "loading data (rt) and checking the dan settings"), ("trial_started", 2),
         ("trial_finished", 8.0, 1, "#2 PRUNED 0.6000", "lr=0.2", 2),
         ("say", "MLflow brought in line with the study: 1 fix(es), e.g. run x ended"),
         ("trial_started", 3)],  # ... and dies in trial 3 (killed): it never says it ended
    ])
    out = io.StringIO()
    parent = Progress(stream=out, tty=False, clock=Clock(), tick=None)
    parent.start(budget=4, done=0, workers=3, max_epochs=5, metric="dev accuracy")
    # worker 2's lines first: its trial ended before worker 1's, though it counted 1 then
    show(w2 + ["a warning some library printed\n"], parent, "worker 2")
    show(w1, parent, "worker 1")
    lines = out.getvalue().splitlines()
    # what the parent already said is not repeated; the count only grows; one view
    assert not [x for x in lines if "loading data" in x or x.startswith("params")], lines
    assert [x.split()[0] for x in lines if x.startswith("[")] == ["[1/4]", "[2/4]"], lines
    assert "worker 2: MLflow brought in line with the study: 1 fix(es), e.g. run x ended" in lines
    assert "worker 2: a warning some library printed" in lines
    (epoch,) = [x for x in lines if "epoch 1/5" in x]
    assert epoch.startswith("  #1 epoch 1/5 seeds 11 12: dev accuracy 0.7000") and " in trial [" in epoch
    assert parent.running == {}  # trial 3's worker is gone: the ETA no longer waits on it


def test_the_eta_is_never_less_than_what_the_last_running_trial_has_left():
    clock = Clock()
    progress = Progress(stream=io.StringIO(), tty=False, clock=clock, tick=None)
    progress.start(budget=4, done=3, workers=2, max_epochs=20, past=[10.0, 10.0, 10.0])
    progress.trial_started(3)
    clock.now += 2  # 8 s left, one worker idle: not 8 / 2
    assert progress.eta_seconds() == pytest.approx(8.0)


@pytest.mark.parametrize("cores, threads, gpu, env, expected", [
    (2, None, False, None, 2),   # this machine: a worker a core, one torch thread each
    (16, None, False, None, 4),  # at most AUTO_WORKERS
    (8, 4, False, None, 2),      # threads=4: a worker per 4 cores
    (1, None, False, None, 1),
    (8, None, True, None, 1),    # a GPU is not shared among workers
    (2, None, False, "3", 3),    # $SEEDSWEEP_WORKERS says what auto means here
])
def test_sweep_workers_auto_runs_a_worker_a_core(monkeypatch, cores, threads, gpu, env, expected):
    from sweeps import sweep
    from sweeps.config.compose import compose_config
    monkeypatch.setattr(sweep, "cores", lambda: cores)
    monkeypatch.delenv("SEEDSWEEP_WORKERS", raising=False)
    if env:
        monkeypatch.setenv("SEEDSWEEP_WORKERS", env)
    cfg = compose_config([f"threads={threads}"] if threads else [])
    assert cfg.sweep.workers == "auto"  # the default
    assert sweep.local_workers(cfg, gpu) == expected
    assert sweep.local_workers(compose_config(["sweep.workers=3"]), gpu) == 3  # as given


def test_a_bad_seedsweep_workers_is_one_sentence_and_creates_nothing(tmp_path, polarity_csv, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv("SEEDSWEEP_WORKERS", "two")
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=1")) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: SEEDSWEEP_WORKERS must be a whole number >= 1, not 'two'."
    assert not [p for p in tmp_path.rglob("*") if p != polarity_csv]
