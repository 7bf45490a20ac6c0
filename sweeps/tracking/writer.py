"""A tracker's writes that the caller does not wait for (sweeps/tracking/tracker.py).

One background thread a tracker, so a run's writes are stored in the order they were made;
a run's per-epoch metrics are held between writes (at most one write every `curves_every`
seconds), and its end (`flush`) writes what is held, waits for everything the run had
pending and raises what failed. Knows nothing of MLflow: the tracker hands in the calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

MAX_METRICS = 1000  # MLflow takes at most 1,000 metrics a batch


def chunks(items: list) -> list[list]:
    """`items` in batches MLflow takes (one empty batch for none)."""
    return [items[i:i + MAX_METRICS] for i in range(0, len(items), MAX_METRICS)] or [[]]


class BackgroundWrites:
    """`write_metrics(run_id, batch)` writes one batch of metrics to a run. Called from one
    thread (the tracker's owner); the writes themselves run in the background thread."""

    def __init__(self, write_metrics: Callable[[str, list], Any], curves_every: float = 0.0):
        self.write_metrics, self.curves_every = write_metrics, curves_every
        self._pending: dict[str, list[Future]] = {}  # run id -> its background writes
        self._held: dict[str, list] = {}  # run id -> per-epoch metrics not yet written
        self._written: dict[str, float] = {}  # run id -> when its curves were last written
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, run_id: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """`call(*args, **kwargs)`, a write to run `run_id`, made by the background thread."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer")
        self._pending.setdefault(run_id, []).append(self._pool.submit(call, *args, **kwargs))

    def hold(self, run_id: str, metrics: list) -> None:
        """Per-epoch metrics: held, and written with what else is held once `curves_every`
        seconds have passed since the run's last write."""
        self._held.setdefault(run_id, []).extend(metrics)
        if time.monotonic() - self._written.get(run_id, -float("inf")) >= self.curves_every:
            self._write_held(run_id)

    def take_held(self, run_id: str) -> list:
        """The run's held metrics, for the caller to write itself (with its closing metrics)."""
        return self._held.pop(run_id, [])

    def _write_held(self, run_id: str) -> None:
        self._written[run_id] = time.monotonic()
        items = self._held.pop(run_id, [])
        for batch in chunks(items) if items else []:
            self.submit(run_id, self.write_metrics, run_id, batch)

    def flush(self, run_id: str) -> None:
        """Write the run's held metrics and wait until its writes are stored (raises what
        failed)."""
        self._write_held(run_id)
        self._written.pop(run_id, None)
        failed = [e for write in self._pending.pop(run_id, []) if (e := write.exception()) is not None]
        if failed:  # every write of the run waited for, so none lands after the run's end
            raise failed[0]
