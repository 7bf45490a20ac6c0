"""What a running sweep shows: a status line at each stage; on a terminal, a bar over the
budget (elapsed, ETA) whose text follows the current trial (epoch, seeds still training,
seed mean); elsewhere (CI logs, nohup) plain lines, one per trial. Lines fit 100 columns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from tqdm import tqdm

WIDTH = 100


def clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def abbreviations(names: list[str]) -> dict[str, str]:
    """Short names for config keys: initials of the last part (`model.num_layers` -> `nl`), a
    short word whole (`dropout`), else its first letters (`activation` -> `act`); where two
    would collide, initials and the next letter (`wdr` for word_dropout, `wde` for weight_decay)."""
    def short(word: str) -> str:
        parts = [w for w in word.split("_") if w]
        if len(parts) > 1:
            return "".join(w[0] for w in parts)
        return word if len(word) <= 7 else word[:3]

    last = {n: n.split(".")[-1] for n in names}
    first = {n: short(s) for n, s in last.items()}
    taken = list(first.values())
    return {n: first[n] if taken.count(first[n]) == 1 else
            (first[n] + last[n].split("_")[-1][1:2] if "_" in last[n] else last[n]) for n in names}


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


class Progress:
    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, quiet: bool = False,
                 prefix: str = ""):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet, self.prefix = quiet, prefix
        self.bar: tqdm | None = None
        self.start_time = time.time()
        self.trial_seconds: list[float] = []
        self.budget, self.workers = 0, 1

    def say(self, text: str) -> None:
        """A status line, printed at once."""
        if self.quiet:
            return
        line = clip(self.prefix + text)
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def start(self, budget: int, done: int, workers: int = 1) -> None:
        self.budget, self.workers = budget, workers
        if self.tty and not self.quiet:
            self.bar = tqdm(total=budget, initial=done, file=self.stream, ncols=WIDTH, unit="trial",
                            dynamic_ncols=False, leave=True,
                            bar_format="{n_fmt}/{total_fmt} trials |{bar:20}| {elapsed}<{remaining} "
                                       "{postfix}")

    def epoch(self, number: int, epoch: int, training: int, k: int, mean: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"trial {number}: epoch {epoch}, {training}/{k} seeds "
                                     f"training, seed mean {mean:.4f}", refresh=True)

    def eta(self, done: int) -> str:
        if not self.trial_seconds:
            return ""
        left = max(self.budget - done, 0)
        mean = sum(self.trial_seconds) / len(self.trial_seconds)
        return f", ETA {duration(left * mean / self.workers)}" if left else ""

    def trial_finished(self, seconds: float, done: int, text: str) -> None:
        """One line for a finished trial: `[done/budget] text`, elapsed and ETA."""
        self.trial_seconds.append(seconds)
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str("", refresh=False)
            self.bar.refresh()
            self.bar.write(clip(f"{self.prefix}{text}"), file=self.stream)
        else:
            clock = f" [{duration(time.time() - self.start_time)}{self.eta(done)}]"
            head = f"{self.prefix}[{done}/{self.budget}] "
            print(clip(head + text, WIDTH - len(clock)) + clock, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
