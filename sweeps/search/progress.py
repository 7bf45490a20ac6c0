"""What a running sweep shows: a status line at each stage and a legend of the parameters'
short names; on a terminal, a bar over the budget whose clock ticks and whose ETA is
estimated from the epochs done so far, its text following the current trial (epoch, seeds
still training, seed mean); elsewhere (`| tee`, CI logs, nohup) plain lines: one per epoch
(trial, seeds, epoch, dev metric, clock and ETA) and one per finished trial with every
parameter. Status lines fit 100 columns; epoch and trial lines say all they hold.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from tqdm import tqdm

WIDTH = 100
TICK = 1.0  # seconds between redraws of the terminal bar's clock


def clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _candidates(key: str) -> list[str]:
    """Ever longer short names of a config key, the key itself last: initials of the last
    part (`model.num_layers` -> `nl`) or a short word whole (`dropout`), else its first
    letters (`activation` -> `act`); then the last part's word grown a letter at a time
    (`wdr`, `wdro`, ...), the last part whole, the group's initial and it, the key."""
    last = key.split(".")[-1]
    parts = [w for w in last.split("_") if w]
    names = []
    if len(parts) > 1:
        head = "".join(w[0] for w in parts[:-1])
        names += [head + parts[-1][:i] for i in range(1, len(parts[-1]) + 1)]
    else:
        names += [last] if len(last) <= 7 else [last[:i] for i in range(3, len(last) + 1)]
    names.append(last)
    if "." in key:
        names.append(key.split(".")[0][0] + "." + last)
    names.append(key)
    return list(dict.fromkeys(names))


def abbreviations(names: list[str]) -> dict[str, str]:
    """A short name for each config key, no two alike: each key takes its first candidate,
    and keys that share one move on to their next until none do (`wdr` for word_dropout,
    `wde` for weight_decay), but for one spelt whole (`wd` beside word_dropout's `wdr`). A
    key's last candidate is the key itself, so this ends."""
    options = {n: _candidates(n) for n in names}
    at = dict.fromkeys(names, 0)
    while True:
        chosen = {n: options[n][at[n]] for n in names}
        holders: dict[str, list[str]] = {}
        for n, short in chosen.items():
            holders.setdefault(short, []).append(n)
        clashes = [group for group in holders.values() if len(group) > 1]
        if not clashes:
            return chosen
        for group in clashes:
            whole = [n for n in group if chosen[n] == n.split(".")[-1]]
            for n in group:  # a key spelt whole keeps its name when it is the only one so
                if at[n] < len(options[n]) - 1 and (len(whole) != 1 or n not in whole):
                    at[n] += 1


def legend(abbrev: Mapping[str, str]) -> str:
    """`params: wdr=model.word_dropout lr=train.lr`: what each short name stands for."""
    return "params: " + " ".join(f"{short}={key}" for key, short in abbrev.items())


def short_params(params: Mapping[str, Any], abbrev: Mapping[str, str] | None = None) -> str:
    abbrev = abbrev or abbreviations(list(params))
    return " ".join(f"{abbrev.get(k, k)}={v:.3g}" if isinstance(v, float) else f"{abbrev.get(k, k)}={v}"
                    for k, v in params.items())


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _Bar(tqdm):
    """tqdm whose `{sweep_eta}` field is the sweep's own estimate (tqdm's own needs a finished trial)."""

    estimate: Callable[[], float | None] = staticmethod(lambda: None)

    @property
    def format_dict(self):
        d = super().format_dict
        seconds = self.estimate()
        d["sweep_eta"] = "?" if seconds is None else self.format_interval(seconds)
        return d


def _locked(method):
    """One call at a time: a sweep's own trials and the lines its workers relay
    (sweeps/search/relay.py) come from different threads. The clock's thread takes no
    lock (tqdm's own, taken while this one is held, would deadlock against it)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


class Progress:
    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, quiet: bool = False,
                 prefix: str = "", clock: Callable[[], float] = time.time, tick: float | None = TICK):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet, self.prefix, self.clock, self.tick = quiet, prefix, clock, tick
        self.bar: _Bar | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self.start_time = clock()
        self.trial_seconds: list[float] = []
        self.budget, self.done, self.workers = 0, 0, 1
        self.max_epochs, self.metric = 0, "dev"
        # the trials now running (one a worker): number -> [start, epochs done, when the last ended]
        self.running: dict[int, list[float]] = {}

    @_locked
    def say(self, text: str, clipped: bool = True) -> None:
        """A status line, printed at once (`clipped`: to the status lines' width)."""
        if self.quiet:
            return
        self._write(clip(self.prefix + text) if clipped else self.prefix + text)

    @_locked
    def show_legend(self, abbrev: Mapping[str, str]) -> None:
        """The legend of the parameters' short names, whole however long."""
        if not self.quiet:
            self._write(self.prefix + legend(abbrev))

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def start(self, budget: int, done: int, workers: int = 1, max_epochs: int = 0,
              metric: str = "dev", past: Sequence[float] = ()) -> None:
        """The sweep begins its trials: `done` of `budget` are already finished; a trial runs
        at most `max_epochs` epochs (0: unknown) and reports `metric` (e.g. dev accuracy).
        `past`: the seconds the study's finished trials took, where it resumes: the ETA starts
        from them instead of assuming the next trial runs all `max_epochs`."""
        self.budget, self.done, self.workers = budget, done, workers
        self.trial_seconds = [float(x) for x in past]
        self.max_epochs, self.metric = max_epochs, metric
        if self.tty and not self.quiet:
            self.bar = _Bar(total=budget, initial=done, file=self.stream, ncols=WIDTH, unit="trial",
                            dynamic_ncols=False, leave=True, mininterval=0,
                            bar_format="{n_fmt}/{total_fmt} trials |{bar:20}| {elapsed}<{sweep_eta}{postfix}")
            self.bar.estimate = self.eta_seconds
            if self.tick:
                self._stop.clear()
                self._ticker = threading.Thread(target=self._tick, daemon=True, name="progress-clock")
                self._ticker.start()

    def _tick(self) -> None:
        """Redraw the bar every `tick` seconds: its clock and ETA move during a long epoch."""
        while not self._stop.wait(self.tick):
            bar = self.bar
            if bar is not None:
                bar.refresh()

    @_locked
    def trial_started(self, number: int) -> None:
        self.running[number] = [self.clock(), 0, 0.0]

    def eta_seconds(self) -> float | None:
        """Seconds left for the budget: trials left times the mean trial time (before any
        trial ended: a running trial's time per finished epoch times the epochs a trial may
        run), less what the running trials have done, shared among the workers. None until
        anything is known. Between epochs it counts down with the clock."""
        now, now_running = self.clock(), list(self.running.values())  # a copy: other threads add to it
        if self.trial_seconds:
            per_trial = sum(self.trial_seconds) / len(self.trial_seconds)
        elif started := [(epoch_at - start) / epochs * self.max_epochs
                         for start, epochs, epoch_at in now_running if epochs and self.max_epochs]:
            per_trial = max(started)
        else:
            return None
        left = max(self.budget - self.done, 0)
        if not left:
            return 0.0
        running = [max(per_trial - (now - start), 0.0) for start, _, _ in now_running][:left]
        # shared among the workers, but never less than the longest running trial has left
        shared = (sum(running) + (left - len(running)) * per_trial) / self.workers
        return max(max(running, default=0.0), shared)

    @_locked
    def forget(self, numbers: set[int]) -> None:
        """Trials a worker that ended (killed, failed) will never report finished."""
        for n in numbers:
            self.running.pop(n, None)
    def _clock(self) -> str:
        seconds = self.eta_seconds()
        eta = "?" if seconds is None else duration(seconds)
        return f"[{duration(self.clock() - self.start_time)}, ETA {eta}]"

    @_locked
    def epoch(self, number: int, epoch: int, seeds: list[int], training: int, mean: float) -> None:
        """Trial `number` finished `epoch`; `training` of its `seeds` go on; `mean`: the seed
        mean of each seed's best dev value so far."""
        if number in self.running:
            self.running[number][1:] = [epoch, self.clock()]
        if self.quiet:
            return
        of = f"/{self.max_epochs}" if self.max_epochs else ""
        if self.bar is not None:
            self.bar.set_postfix_str(f"trial {number}: epoch {epoch}{of}, {training}/{len(seeds)} "
                                     f"training, seed mean {mean:.4f}", refresh=True)
            return
        k = len(seeds)
        which = f"seed {seeds[0]}" if k == 1 else "seeds " + " ".join(map(str, seeds))
        how = "best so far" if k == 1 else f"seed mean of bests so far, {training}/{k} training"
        trial = duration(self.clock() - self.running[number][0]) if number in self.running else "?"
        print(f"{self.prefix}  #{number} epoch {epoch}{of} {which}: {self.metric} {mean:.4f} ({how}), "
              f"{trial} in trial {self._clock()}", file=self.stream, flush=True)

    @_locked
    def trial_finished(self, seconds: float, done: int, text: str, params: str = "",
                       number: int | None = None) -> None:
        """One line for trial `number`, finished: `[done/budget] text`, elapsed and ETA, then
        every parameter (a terminal wraps a long line; a log keeps it whole). `done`: the
        study's count then; workers' lines may arrive out of order, so the count only grows."""
        self.trial_seconds.append(seconds)
        self.done = max(self.done, done)
        if number is None:
            self.running.clear()
        else:
            self.running.pop(number, None)
        if self.quiet:
            return
        tail = f" | {params}" if params else ""
        if self.bar is not None:
            self.bar.n = self.done
            self.bar.set_postfix_str("", refresh=False)
            self.bar.refresh()
            self.bar.write(f"{self.prefix}{text}{tail}", file=self.stream)
        else:
            print(f"{self.prefix}[{self.done}/{self.budget}] {text} {self._clock()}{tail}",
                  file=self.stream, flush=True)

    @_locked
    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
