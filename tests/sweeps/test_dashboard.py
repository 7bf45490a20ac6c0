"""`make dashboard`: optuna-dashboard over the storage the sweep with the same overrides used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from sweeps.dashboard import main as dashboard_main
from sweeps.sweep import main as sweep_main
from tests.conftest import REPO
from tests.sweeps.test_sweep import overrides as sweep_overrides
from tests.sweeps.test_ui_browser import free_port


def test_without_optuna_dashboard_it_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails as if not installed
    assert dashboard_main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: optuna-dashboard is not installed") and "make dashboard" in err


@pytest.mark.slow
def test_the_dashboard_lists_the_sweeps_study(tmp_path, polarity_csv):
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard not installed (make dashboard)")
    args = [o for o in sweep_overrides(tmp_path, polarity_csv, "sweep.trials=1", "seeds=1",
                                       "train.max_epochs=1") if not o.startswith("storage.url=")]
    assert sweep_main(args) == 0  # the default journal, in storage.dir
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sweeps.dashboard", *args], cwd=REPO,
                              env={**os.environ, "PORT": str(port)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, studies = time.time() + 120, None
        while studies is None and time.time() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    studies = json.load(r)["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert studies is not None, "optuna-dashboard never answered"
        assert [s["study_name"] for s in studies] == ["dan-csv-random"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
