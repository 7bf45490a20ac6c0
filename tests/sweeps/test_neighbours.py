"""A training started while others already take the machine's cores says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sweeps.search import neighbours


@pytest.fixture
def trainings(tmp_path, monkeypatch):
    monkeypatch.setenv(neighbours.FOLDER_ENV, str(tmp_path / "trainings"))
    return tmp_path / "trainings"


def test_a_training_is_listed_while_it_runs_and_not_after(trainings):
    with neighbours.training(2, "dan on rt"):
        entry, = [json.loads(p.read_text()) for p in trainings.glob("*.json")]
        assert entry == {"pid": os.getpid(), "threads": 2, "what": "dan on rt"}
        assert neighbours.others() == []  # not its own neighbour
    assert list(trainings.glob("*.json")) == []


def test_live_neighbours_count_and_dead_ones_are_removed(trainings):
    trainings.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        for pid in (sleeper.pid, dead.pid):
            entry = {"pid": pid, "threads": 2, "what": "nplm on ptb"}
            (trainings / f"{pid}.json").write_text(json.dumps(entry))
        (trainings / "torn.json").write_text("{")
        assert [n["pid"] for n in neighbours.others()] == [sleeper.pid]
        assert not (trainings / f"{dead.pid}.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="stopped processes are read from /proc")
def test_a_stopped_training_takes_no_core(trainings):
    """A training paused with kill -STOP keeps its file but is not counted while it is stopped."""
    import signal
    import time

    trainings.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (trainings / f"{sleeper.pid}.json").write_text(json.dumps({"pid": sleeper.pid, "threads": 2}))
        assert [n["pid"] for n in neighbours.others()] == [sleeper.pid]
        sleeper.send_signal(signal.SIGSTOP)
        for _ in range(100):  # the state changes a moment after the signal
            if neighbours.stopped(sleeper.pid):
                break
            time.sleep(0.01)
        assert neighbours.others() == []
        assert (trainings / f"{sleeper.pid}.json").exists()
        sleeper.send_signal(signal.SIGCONT)
        for _ in range(100):
            if not neighbours.stopped(sleeper.pid):
                break
            time.sleep(0.01)
        assert [n["pid"] for n in neighbours.others()] == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_warning_comes_when_the_threads_outnumber_the_cores(trainings, capsys, monkeypatch):
    other = [{"pid": 1, "threads": 2, "what": "nplm on ptb"}]
    assert neighbours.crowding(2, [], cores=2) is None
    assert neighbours.crowding(1, [{"pid": 1, "threads": 1}], cores=2) is None
    message = neighbours.crowding(2, other, cores=2)
    assert "use 2 torch threads on this machine's 2 cores: pid 1 (nplm on ptb, 2 torch threads)" in message
    assert "threads=<n>" in message
    assert "use 1 torch thread on" in neighbours.crowding(2, [{"pid": 1, "threads": 1}], cores=2)

    monkeypatch.setattr(neighbours, "others", lambda: other)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with neighbours.training(2, "dan on sst"):
        pass
    assert capsys.readouterr().err.startswith("warning: 1 other seedsweep training(s)")
