"""What training used of its data, the vocabulary and the labels, kept with a configuration's
run and compared by the final evaluation with what the data files give now.

Weights fit only the vocabulary and labels they were trained with. The final evaluation
rebuilds the task from the data files as they are at test time, so a training file edited
after the sweep would give a shape traceback or, where the size happens to match, silently
wrong test metrics. It refuses instead, in one sentence (exit 2): it does not evaluate with
the saved vocabulary, because what else it takes from the training split (the NPLM's trigram
mixture, an n-gram's counts, GloVe rows) would still come from the edited files. A run
written before this record existed is evaluated with the rebuilt vocabulary, with a note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Protocol

from models.errors import UserError

# the artifact: the vocabulary and labels training used, in the configuration's run
TRAINED_DATA_FOLDER, TRAINED_DATA_FILE = "data", "trained_data.json"
TRAINED_DATA = f"{TRAINED_DATA_FOLDER}/{TRAINED_DATA_FILE}"


class ArtifactLog(Protocol):
    def log_artifact(self, run_id: str, path: Path, folder: str) -> None: ...


def of_task(task: Any) -> dict[str, list[str] | None]:
    """The vocabulary (index order) and the label names (class order) of a prepared task."""
    vocab = getattr(task, "vocab", None)
    labels = getattr(task, "label_names", None)
    return {"vocabulary": None if vocab is None else list(vocab.itos),
            "labels": None if labels is None else list(labels)}


def save(log: ArtifactLog, run_id: str, task: Any, folder: Path) -> None:
    """Write `task`'s record into `folder` and log it to the configuration's run `run_id`."""
    path = folder / TRAINED_DATA_FILE
    path.write_text(json.dumps(of_task(task)))
    log.log_artifact(run_id, path, TRAINED_DATA_FOLDER)


def check(tracker: Any, run_id: str, task: Any, folder: Path) -> None:
    """Refuse (UserError) when the data files no longer give the vocabulary or the labels run
    `run_id` trained with; a run without the record passes, with a note on stderr."""
    path = tracker.download(run_id, TRAINED_DATA, folder)
    if path is None:
        print(f"note: run {run_id} was trained before runs kept their vocabulary; evaluating with the "
              "vocabulary rebuilt from the data files as they are now.", file=sys.stderr, flush=True)
        return
    saved, now = json.loads(path.read_text()), of_task(task)
    changed = [f"{what} {_difference(saved[what], now[what])}" for what in ("vocabulary", "labels")
               if saved.get(what) != now[what]]
    if changed:
        raise UserError(f"the training data of run {run_id} changed since it was trained "
                        f"({'; '.join(changed)}), so its weights no longer fit it: restore the data "
                        "files as they were, or train again.")


def _difference(then: list[str] | None, now: list[str] | None) -> str:
    """How two lists differ, briefly: their sizes and the first entry that differs."""
    if then is None or now is None:
        return "absent then" if then is None else "absent now"
    at = next((i for i, (a, b) in enumerate(zip(then, now)) if a != b), min(len(then), len(now)))
    shown = lambda xs: repr(xs[at]) if at < len(xs) else "none"  # noqa: E731
    return f"{len(then)} entries then, {len(now)} now; entry {at} was {shown(then)}, is {shown(now)}"
