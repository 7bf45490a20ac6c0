"""What the README offers and no other test ran: the default DAN search space, a TPE sweep,
`make doctor` repairing a disagreement, `make report STUDY=`, and `make ui` answering."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweeps.core.paths import CONF_DIR
from sweeps.core.records import MLFLOW_RUN_ID, TRIAL_STATE
from sweeps.search.study import Sweep
from tests.sweeps.test_sweep import load, overrides
from tests.test_user_paths import in_process


def where(tmp_path) -> list[str]:
    return [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"tracking.artifacts={tmp_path / 'art'}",
            f"storage.url=sqlite:///{tmp_path / 'optuna.db'}", f"storage.dir={tmp_path / 'locks'}"]


def test_the_default_dan_search_space_runs_a_trial(tmp_path, polarity_csv):
    """conf/search_space/dan.yaml as composed by default (no search_space= override)."""
    args = ["data=csv", f"data.path={polarity_csv}", *where(tmp_path), "seeds=1", "train.max_epochs=1",
            "threads=1", "sweep.trials=1"]
    sweep = Sweep(args, quiet=True)
    space = yaml.safe_load((CONF_DIR / "search_space" / "dan.yaml").read_text())
    assert [p.name for p in sweep.params] == list(space) and not any(p.fixed for p in sweep.params)
    sweep.run()
    (trial,) = load(tmp_path, "dan-csv-random").trials
    assert trial.state == TrialState.COMPLETE, trial.user_attrs
    # every unconditional entry was sampled, within its range
    assert set(trial.params) >= {k for k, e in space.items() if "when" not in e}
    assert trial.params["model.embed_dim"] in space["model.embed_dim"]["choices"]
    assert 0 <= trial.params["model.num_layers"] <= 3


def test_a_tpe_sweep_fits_its_trials(tmp_path, polarity_csv):
    args = overrides(tmp_path, polarity_csv, "sampler=tpe", "sampler.n_startup_trials=2",
                     "sweep.trials=4", "seeds=1", "train.max_epochs=1")
    sweep = Sweep(args, quiet=True)
    assert isinstance(sweep.study.sampler, optuna.samplers.TPESampler)
    sweep.run()
    study = load(tmp_path, "dan-csv-tpe")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 4


def test_make_doctor_repairs_what_disagrees_and_report_takes_a_study(tmp_path, polarity_csv, capsys):
    args = overrides(tmp_path, polarity_csv, "sweep.trials=1", "seeds=1", "train.max_epochs=1",
                     "sweep.study_name=mine")
    Sweep(args, quiet=True).run()
    (trial,) = load(tmp_path, "mine").trials
    run_id = trial.user_attrs[MLFLOW_RUN_ID]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.set_tag(run_id, TRIAL_STATE, "FAIL")  # what a kill between Optuna and MLflow leaves
    quoted = "'" + " ".join(args) + "'"

    code, out = in_process(f"make doctor MODEL=dan STUDY=mine ARGS={quoted[:-1]} --dry-run'", capsys)
    assert code == 0 and "1 disagreement(s) found in 1 trial(s)" in out, out
    assert client.get_run(run_id).data.tags[TRIAL_STATE] == "FAIL"  # a dry run repairs nothing
    code, out = in_process(f"make doctor MODEL=dan STUDY=mine ARGS={quoted}", capsys)
    assert code == 0 and "1 disagreement(s) repaired in 1 trial(s)" in out, out
    assert client.get_run(run_id).data.tags[TRIAL_STATE] == "COMPLETE"
    code, out = in_process(f"make doctor MODEL=dan STUDY=mine ARGS={quoted}", capsys)
    assert code == 0 and "0 disagreement(s) repaired in 0 trial(s)" in out, out

    # make report STUDY=mine: the study is found by the name given, not <model>-<data>-<sampler>
    plain = "'" + " ".join(a for a in args if a != "sweep.study_name=mine")
    report = tmp_path / "report"
    code, out = in_process(f"make report MODEL=dan STUDY=mine ARGS={plain} --out={report}'", capsys)
    assert code == 0, out
    assert "mine" in (report / "report.md").read_text()
    code, out = in_process(f"make report MODEL=dan ARGS={plain} --out={tmp_path / 'none'}'", capsys)
    assert code == 2 and "dan-csv-random" in out, out  # without STUDY: the default name, absent
    assert not (tmp_path / "none").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_ui_serves_the_tracking_store(tmp_path):
    port = free_port()
    env = dict(os.environ, PORT=str(port), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    log = open(tmp_path / "ui.log", "w")
    ui = subprocess.Popen([sys.executable, "-m", "sweeps.ui"], cwd=tmp_path, env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        status, deadline = None, time.time() + 240
        while status is None and time.time() < deadline and ui.poll() is None:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    status = r.status
            except OSError:
                continue
        assert status == 200, (tmp_path / "ui.log").read_text()[-3000:]
    finally:
        if ui.poll() is None:
            ui.send_signal(signal.SIGINT)  # Ctrl-C: the UI stops its server
            try:
                ui.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(ui.pid, signal.SIGKILL)
                ui.wait()
        log.close()
    assert ui.returncode == 0, f"exit {ui.returncode}: " + (tmp_path / "ui.log").read_text()[-2000:]
    with pytest.raises(OSError):  # stopped, and its server with it
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
