"""One command-line convention through one error path (sweeps/core/cli.py): every command
reads `--flag`, `--flag=value`, `--flag value` and Hydra overrides alike, and refuses an
unknown flag or a bad override in one line, exit 2, before anything is created."""

from __future__ import annotations

import importlib
import subprocess

import pytest

from models.errors import UserError
from sweeps.core.cli import parse, run_cli
from sweeps.core.faults import EnvironmentFailure
from tests.conftest import REPO

# each command's module, and the arguments it needs besides the ones under test
COMMANDS = {
    "sweeps.sweep": [], "sweeps.train": [], "sweeps.final": [], "sweeps.doctor": [],
    "sweeps.paper": ["iyyer2015"], "analysis.report": [], "sweeps.dashboard": [],
    "analysis.paper": ["iyyer2015"], "sweeps.ui": [], "sweeps.mlflow_server": [],
}
SERVERS = ("sweeps.ui", "sweeps.mlflow_server")  # set by environment variables: no overrides


def test_the_three_flag_forms_and_the_overrides():
    a = parse(["--study=s1", "--trial", "3", "model=nplm", "+experiment=x", "--dry-run", "~train.lr"],
              "cmd", values=("study", "trial"), switches=("dry-run",))
    assert a.flags == {"study": "s1", "trial": "3", "dry-run": True}
    assert a.overrides == ["model=nplm", "+experiment=x", "~train.lr"] and a.words == []
    assert parse(["t1", "seeds=3", "t2"], "cmd", words=True).words == ["t1", "t2"]
    assert parse(["--reason", "a=b c"], "cmd", values=("reason",)).flags == {"reason": "a=b c"}


@pytest.mark.parametrize("argv, says", [
    (["--bogus"], "unknown flag '--bogus'; cmd takes --study, --dry-run"),
    (["--bogus=1"], "unknown flag '--bogus'"),
    (["-x"], "unknown flag '-x'"),
    (["--study"], "--study needs a value"),
    (["--study", "--dry-run"], "--study needs a value"),
    (["--dry-run=yes"], "--dry-run takes no value"),
    (["nplm"], "unexpected argument 'nplm': overrides are key=value"),
])
def test_what_the_convention_refuses(argv, says):
    with pytest.raises(UserError, match="^" + says.replace("(", r"\(").replace("?", r"\?")):
        parse(argv, "cmd", values=("study",), switches=("dry-run",))


def test_the_one_error_path(capsys):
    def raises(e):
        def body():
            raise e
        return body
    assert run_cli(raises(UserError("bad seeds."))) == 2
    assert capsys.readouterr().err == "error: bad seeds.\n"
    assert run_cli(raises(OSError(28, "No space left on device", "runs/mlflow.db"))) == 75
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: No space left on device (runs/mlflow.db)")
    assert err.endswith("nothing is lost; run the same command to resume.\n")
    assert run_cli(raises(EnvironmentFailure("x. rerun the same command to resume: make sweep")),
                   intact="the study is intact") == 75
    assert capsys.readouterr().err == "error: x. rerun the same command to resume: make sweep\n"
    assert run_cli(raises(KeyboardInterrupt("SIGTERM"))) == 143
    assert run_cli(raises(KeyboardInterrupt())) == 130
    assert run_cli(raises(KeyboardInterrupt("SIGTERM")), sigterm_status=130) == 130
    assert run_cli(lambda: 1) == 1 and run_cli(lambda: "done") == 0
    assert capsys.readouterr().out == "done\n"
    with pytest.raises(ValueError):  # anything else is a bug: its traceback is shown
        run_cli(raises(ValueError("lower the learning rate")))


def places(tmp_path) -> list[str]:
    return [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"tracking.artifacts={tmp_path / 'art'}",
            f"storage.dir={tmp_path / 'optuna'}", f"storage.url=sqlite:///{tmp_path / 'optuna.db'}"]


@pytest.mark.parametrize("module", sorted(COMMANDS))
@pytest.mark.parametrize("bad", ["--bogus", "--bogus=1", "train.lrr=0.1"])
def test_every_command_refuses_an_unknown_flag_or_a_bad_override_in_one_line(
        module, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PORT", "1")  # a server that got past its arguments would fail, not serve
    main = importlib.import_module(module).main
    where = [] if module in SERVERS else places(tmp_path / "store")
    assert main([*COMMANDS[module], *where, bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    if bad.startswith("--"):
        assert "unknown flag '--bogus'" in err, err
    elif module in SERVERS:
        assert "takes no overrides" in err, err
    else:
        assert "train.lrr" in err and "did you mean 'train.lr'" in err, err
    assert list(tmp_path.iterdir()) == []  # no runs/, no study file, no store


def make_dry(*args: str) -> str:
    return subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_the_default_model_is_conf_config_yamls_alone():
    """Without MODEL, the commands pass no model= and compose conf/config.yaml's default
    (the Makefile used to say MODEL ?= dan, a second default a conf change would not move)."""
    for target in ("sweep", "train", "final", "doctor", "report", "study"):
        out = make_dry(target)
        assert "model=" not in out, (target, out)
        assert "model=nplm" in make_dry(target, "MODEL=nplm"), target
    from sweeps import api
    assert not [o for o in api.overrides(None, data="csv") if o.startswith("model=")]
    from sweeps.train import command_line
    assert command_line(["seeds=3"]) == "make train ARGS=seeds=3"


@pytest.mark.parametrize("command", ["sweeps.sweep", "sweeps.train", "sweeps.final", "sweeps.paper"])
def test_help_answers_before_the_heavy_libraries_load(command):
    """`--help` prints the usage without importing torch, MLflow or Optuna (seconds each):
    the command modules answer it first (cli.answer_help_first)."""
    import sys
    probe = (f"import runpy, sys; sys.argv = ['{command}', '--help']\n"
             f"try:\n    runpy.run_module('{command}', run_name='__main__')\n"
             "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
             "print(sorted({'torch', 'mlflow', 'optuna'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout and out.stdout.strip().endswith("[]"), out.stdout[-300:]
