"""One view of a sweep run by several worker processes on this machine (`make sweep` with
sweep.workers > 1, `auto` by default): each worker sends its progress to the sweep that
started it as marked lines on its stdout (`Relay`), and that sweep shows them through its
own `Progress` (`show`): one bar on a terminal, one log elsewhere, one count and ETA for
the whole study. What the parent already said (loading, the study, the legend) the
workers do not repeat; anything else a worker prints passes through under its name."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

from sweeps.search.progress import Progress

MARK = "##seedsweep-progress "  # starts a relayed line (JSON follows)


class Relay(Progress):
    """A worker's progress, written for its parent to show (see the module's docstring)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream, tty=False)

    def _send(self, kind: str, *args: Any) -> None:
        try:
            print(MARK + json.dumps([kind, *args]), file=self.stream, flush=True)
        except BrokenPipeError:  # the parent is gone; its death's SIGTERM (die_with_parent) follows
            pass

    def say(self, text: str, clipped: bool = True) -> None:
        self._send("say", text)

    def show_legend(self, abbrev: Mapping[str, str]) -> None:
        pass  # the parent showed it

    def trial_started(self, number: int) -> None:
        self._send("trial_started", number)

    def epoch(self, number: int, epoch: int, seeds: list[int], training: int, mean: float) -> None:
        self._send("epoch", number, epoch, [int(s) for s in seeds], training, float(mean))

    def trial_finished(self, seconds: float, done: int, text: str, params: str = "",
                       number: int | None = None) -> None:
        self._send("trial_finished", seconds, done, text, params, number)

    def close(self) -> None:
        pass


def die_with_parent() -> Callable[[], None] | None:
    """A Popen preexec_fn for a worker: SIGTERM it when the sweep that started it dies,
    however (a kill, a closed terminal), so its trial goes back in the queue rather than
    running on unseen. Linux's prctl, found here rather than in the forked child (where
    loading a library could wait on a lock another thread held); None elsewhere, where a
    worker outlives its parent's SIGKILL."""
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def show(lines: Iterable[str], progress: Progress, name: str) -> None:
    """Show a worker's stdout `lines` through the parent's `progress` (which the parent's
    own trials and other workers' lines use at the same time) until they end. Its status
    lines before its first trial (loading, joining) repeat what the parent said and are
    left out; its later ones (e.g. MLflow brought in line with the study) and any line
    not relayed are shown under `name`."""
    started, mine = False, set()
    for line in lines:  # read to the end whatever comes: a worker never blocks on a full pipe
        try:
            kind, *args = json.loads(line[len(MARK):]) if line.startswith(MARK) else ("line", line)
            if kind == "trial_started":  # a worker a sweep started announces nothing
                started = True
            if kind == "say":
                if started:
                    progress.say(f"{name}: {args[0]}")
            elif kind in ("trial_started", "epoch", "trial_finished"):
                getattr(progress, kind)(*args)
                if kind == "trial_started":
                    mine.add(args[0])
                elif kind == "trial_finished" and args[4] is not None:
                    mine.discard(args[4])
            else:
                progress.say(f"{name}: {line.rstrip()}", clipped=False)
        except Exception:  # noqa: BLE001 - a line cut short, or of another version: shown as it is
            try:
                progress.say(f"{name}: {line.rstrip()}", clipped=False)
            except Exception:  # noqa: BLE001 - this process's own output is gone: drain on
                pass
    progress.forget(mine)  # a worker that died mid-trial never says it ended
