"""The MLflow UI as a user meets it, in a real headless browser (Debian's chromium driven by
playwright): `make ui` prints a link per experiment that opens on its runs table, not on
MLflow 3's GenAI view (traces, an assistant, no runs). Skipped, saying why, without them;
`make ui-check` runs it and keeps the screenshot (runs/ui-check.png)."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sweeps.train import main as train_main
from sweeps.ui import port_taken
from tests.conftest import REPO, tiny_overrides

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def link_of(server: subprocess.Popen, experiment: str, seconds: float = 180) -> str:
    """The runs-table link `make ui` prints for `experiment`, once the server answers."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in server.stdout], daemon=True).start()
    deadline, seen = time.time() + seconds, []
    while time.time() < deadline and server.poll() is None:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if m := re.match(rf"\s+{re.escape(experiment)}\s+(http://\S+)$", seen[-1]):
            return m.group(1)
    raise AssertionError(f"make ui printed no link for {experiment}: {''.join(seen)!r}")


def test_make_ui_opens_an_experiment_on_its_runs_table(tmp_path, polarity_csv):
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                          "(pip install playwright, or make ui-check)").sync_playwright
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert train_main(tiny_overrides(polarity_csv, uri, tmp_path, "seeds=1", "train.max_epochs=1")) == 0
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sweeps.ui"], cwd=REPO, text=True,
                              env={**os.environ, "MLFLOW_TRACKING_URI": uri, "PORT": str(port)},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    shot = Path(os.environ.get("SEEDSWEEP_UI_SHOT") or tmp_path / "ui.png")
    try:
        link = link_of(server, "dan-csv")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(link)
            shot.parent.mkdir(parents=True, exist_ok=True)
            try:  # the runs table's footer and header, shown once the runs are listed
                page.get_by_text(re.compile(r"\d+ matching runs?")).first.wait_for(timeout=90_000)
                page.get_by_text("Run Name", exact=True).first.wait_for(timeout=60_000)
            finally:
                page.screenshot(path=str(shot))
            assert "/runs" in page.url and "workflowType=machine_learning" in page.url
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)  # as Ctrl-C: the MLflow server goes too
        server.wait(timeout=60)
    deadline = time.time() + 30
    while port_taken("127.0.0.1", port) and time.time() < deadline:
        time.sleep(0.5)
    assert not port_taken("127.0.0.1", port), "the MLflow server outlived make ui"
