"""The study store: all Optuna storage handling, in one room.

- backends.py: opening a study's storage (journal file, PostgreSQL), its name and folder
- workers.py: this worker's identity, the study lock, recovering a dead worker's trials
- shared.py: `SharedStudy`, a study and this worker's part in it (claims, heartbeats)
- results.py: completed trials ranked, pruning's savings, the study's test-evaluation record

Stands on sweeps/core only: it never imports tracking, search or the commands.
"""

from sweeps.store.backends import (
    DEFAULT_DIR,
    DurableJournal,
    folder_of,
    load_study,
    open_storage,
    psycopg2_url,
    storage_of,
    storage_url,
    study_name,
)
from sweeps.store.results import (
    pruning_savings,
    ranked,
    record_test_evaluation,
    test_evaluations,
    trial_seconds,
)
from sweeps.store.shared import SharedStudy
from sweeps.store.workers import (
    HOST_ENV,
    counts_toward_budget,
    enqueue_grid,
    host,
    recover_dead_trials,
    retry,
    study_lock,
    trial_config,
    worker_id,
)
