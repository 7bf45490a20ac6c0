"""A sweep that cannot mislead: study identity, fixed command-line keys, bad input that
creates nothing, and plain progress lines when the output is not a terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from sweeps.search.identity import make_command
from sweeps.search.study import Sweep
from sweeps.sweep import main
from tests.conftest import REPO
from tests.sweeps.test_sweep import load, overrides


def test_changed_fixed_settings_are_refused_with_the_keys_named(tmp_path, polarity_csv, capsys):
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=1")) == 0
    capsys.readouterr()
    changed = overrides(tmp_path, polarity_csv, "sweep.trials=2", "train.max_epochs=2", "seeds=3")
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was created with other settings" in err
    assert "train.max_epochs: 3 -> 2" in err and "seeds: 2 -> 3" in err
    assert "sweep.study_name=" in err and "sweep.new=true" in err
    assert len(load(tmp_path, "dan-csv-random").trials) == 1  # nothing ran


def test_budget_and_workers_may_change_on_resume(tmp_path, polarity_csv):
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=1")) == 0
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=2", "sweep.keep_weights=1",
                          "sweep.show_top=3")) == 0
    assert len(load(tmp_path, "dan-csv-random").trials) == 2


def test_new_study_gets_a_derived_name_and_its_command_resumes_it(tmp_path, polarity_csv, capsys):
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=1")) == 0
    other = overrides(tmp_path, polarity_csv, "sweep.trials=1", "train.max_epochs=2", "sweep.new=true")
    sweep = Sweep(other, quiet=True)
    sweep.run()
    assert sweep.name.startswith("dan-csv-random-") and sweep.name != "dan-csv-random"
    assert f"sweep.study_name={sweep.name}" in sweep.command and "sweep.new" not in sweep.command
    assert sweep.study.user_attrs["fingerprint"].startswith(sweep.name.rsplit("-", 1)[1])
    # the first study is untouched
    assert load(tmp_path, "dan-csv-random").user_attrs["identity"]["settings"]["train.max_epochs"] == 3


def test_a_searched_key_on_the_command_line_is_fixed_in_every_trial(tmp_path, polarity_csv):
    args = overrides(tmp_path, polarity_csv, "sampler=grid", "train.lr=0.05")
    sweep = Sweep(args, quiet=True)
    sweep.run()
    trials = sweep.study.trials
    assert len(trials) == 2  # the 2 x 2 grid is 2 x 1 with lr fixed
    assert all(t.params["train.lr"] == 0.05 for t in trials)
    assert {t.params["model.word_dropout"] for t in trials} == {0.0, 0.3}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dan-csv-grid")
    runs = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" not in r.data.tags]
    assert {r.data.params["train.lr"] for r in runs} == {"0.05"}
    assert sweep.study.user_attrs["identity"]["space"]["train.lr"] == {"fixed": 0.05}
    assert sweep.command.startswith("make sweep MODEL=dan DATA=csv SAMPLER=grid SEEDS=2 ARGS=")
    assert "train.lr=0.05" in sweep.command
    # the same command with another fixed value is another study's settings
    with pytest.raises(Exception, match="train.lr"):
        Sweep(overrides(tmp_path, polarity_csv, "sampler=grid", "train.lr=0.01"), quiet=True)


def test_make_command_spells_make_variables():
    assert make_command(["model=nplm", "sweep.trials=5", "seeds=2", "train.lr=0.1", "sweep.new=true"],
                        "nplm", "nplm-ptb_cpu-random-abc123") == (
        "make sweep MODEL=nplm TRIALS=5 SEEDS=2 "
        "ARGS='train.lr=0.1 sweep.study_name=nplm-ptb_cpu-random-abc123'")


BAD = [
    ("sweep.trials=abc", "sweep.trials must be a whole number >= 1, not 'abc'"),
    ("sweep.trials=0", "sweep.trials must be a whole number >= 1, not 0"),
    ("sweep.trials=-1", "sweep.trials must be a whole number >= 1"),
    ("sweep.workers=0", "sweep.workers must be auto or a whole number >= 1"),
    ("sweep.workers=many", "sweep.workers must be auto or a whole number >= 1"),
    ("seeds=0", "seeds must be a whole number >= 1"),
    ("seeds=abc", "seeds must be a whole number >= 1"),
    ("seed_list=[1.5,2.7]", "seed_list must be a list of whole numbers"),
    ("search_space=dan_tny", "unknown search_space 'dan_tny'; choose one of: dan, dan_tiny"),
    ("train.lrr=0.1", "bad override 'train.lrr'"),
]


@pytest.mark.parametrize("override, message", BAD)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, polarity_csv, capsys, override,
                                                          message):
    args = [o for o in overrides(tmp_path, polarity_csv) if not o.startswith("search_space=")
            or not override.startswith("search_space=")]
    assert main([*args, override]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert message in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize("module", ["sweeps.sweep", "sweeps.train", "sweeps.final", "analysis.report"])
def test_help_prints_usage(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower() and "Traceback" not in proc.stderr


def test_progress_is_one_line_per_trial_when_not_a_terminal(tmp_path, polarity_csv):
    proc = subprocess.run([sys.executable, "-m", "sweeps.sweep",
                           *overrides(tmp_path, polarity_csv, "sweep.trials=3")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "sweep: loading libraries and the config"  # at once, before any import
    assert lines[1].startswith("sweep: dan on csv, random search")
    trial_lines = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] for line in trial_lines] == ["[1/3", "[2/3", "[3/3"]
    assert all(len(line) <= 100 for line in trial_lines)
    assert "\r" not in proc.stdout and "\x1b" not in proc.stdout  # no bar drawing
    assert any("new study dan-csv-random: 3 trials x 2 seeds" in line for line in lines)
    assert lines[-2].endswith("rerun or resume with:")
    assert lines[-1].startswith("  make sweep MODEL=dan DATA=csv")


def test_resume_says_so(tmp_path, polarity_csv, capsys):
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=1")) == 0
    capsys.readouterr()
    assert main(overrides(tmp_path, polarity_csv, "sweep.trials=1")) == 0
    assert "resuming study dan-csv-random: 1 of 1 trials done" in capsys.readouterr().out



def test_a_key_added_since_with_a_null_default_is_no_difference():
    """A config key added after a study began, whose null default keeps the old behaviour
    (model.hidden_init_range), must not lock the study out; setting it must."""
    from sweeps.search.identity import differences
    old = {"settings": {"model.embed_dim": 8}, "space": {}, "metric": "accuracy"}
    new = {**old, "settings": {"model.embed_dim": 8, "model.hidden_init_range": None}}
    assert differences(old, new) == []
    assert differences(old, {**old, "settings": {"model.embed_dim": 8, "model.hidden_init_range": 0.08}}) \
        == ["model.hidden_init_range: <unset> -> 0.08"]


def test_identities_with_list_settings_compare(tmp_path):
    """RT, the default data, has a list setting (data.fractions): resuming compared it by
    hashing and crashed with `unhashable type: 'list'` (issue 34)."""
    from sweeps.search.identity import differences
    old = {"settings": {"data.fractions": [0.8, 0.1, 0.1], "seeds": 1}, "space": {}, "metric": "m"}
    assert differences(old, old) == []
    new = {"settings": {"data.fractions": [0.7, 0.2, 0.1], "seeds": 1, "train.new_key": None},
           "space": {}, "metric": "m"}
    assert differences(old, new) == ["data.fractions: [0.8,0.1,0.1] -> [0.7,0.2,0.1]"]
