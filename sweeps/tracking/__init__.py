"""Run tracking: every MLflow call of the project, in one room.

- client.py: where runs are kept (the tracking URI, a client on it), the git commit
- tracker.py: `Tracker`, one experiment's runs: configuration runs, seed runs, the ledger
- trained_data.py: the vocabulary and labels a configuration's run trained with

Stands on sweeps/core only: it never imports store, search or the commands.
"""

from sweeps.tracking.client import TRAINING_KIND, git_commit, mark_as_training, open_client, resolve_uri
from sweeps.tracking.tracker import Tracker

__all__ = ["TRAINING_KIND", "Tracker", "git_commit", "mark_as_training", "open_client", "resolve_uri"]
