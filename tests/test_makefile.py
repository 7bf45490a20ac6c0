"""The Makefile's own words: `make install` says what it does and about how long, before
each slow step, while pip stays quiet (issue 34)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

# A stand-in for python3 and pip: `-m venv DIR` makes DIR/bin/python (itself), `-m pip ...`
# records its arguments. The real recipe runs, nothing is downloaded.
FAKE_PYTHON = """#!/bin/sh
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi
echo "$@" >> "$FAKE_PIP_LOG"
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_install_says_what_it_does_before_each_slow_step(tmp_path):
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    log, venv = tmp_path / "pip.log", tmp_path / "venv"
    proc = subprocess.run(["make", "--no-print-directory", "install", f"PYTHON={python}", f"VENV={venv}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FAKE_PIP_LOG": str(log)})
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stdout.splitlines() if line.startswith("install: ")]
    assert len(said) >= 4, proc.stdout
    lines = proc.stdout.splitlines()
    torch_step = next(i for i, line in enumerate(lines) if "pip install" in line and "torch" in line)
    project_step = next(i for i, line in enumerate(lines) if "pip install" in line and ".[dev]" in line)
    # a line of its own, with a duration, just before each pip step; one at the start and end
    assert lines[0].startswith("install: ") and "minute" in lines[0]
    assert lines[torch_step - 1].startswith("install: ") and "minute" in lines[torch_step - 1]
    assert lines[project_step - 1].startswith("install: ") and "minute" in lines[project_step - 1]
    assert lines[-1].startswith("install: done")
    assert all("--quiet" in call for call in log.read_text().splitlines())  # pip says nothing more
    assert (venv / ".installed").exists() and Path(venv / "bin" / "python").exists()
