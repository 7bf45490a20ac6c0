"""Optuna and MLflow agree, trial for trial: every start of a sweep (and `make doctor`)
checks each finished trial's MLflow parent run and seed runs, ends those a killed process
left RUNNING and sets the `trial_state` tag that a kill may have cut off. `make doctor`
also fails (and queues again) a trial left RUNNING by a worker that died, as the next
sweep would, so its runs end KILLED and its state tag says FAIL. The command is
sweeps/doctor.py.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from sweeps.core.records import INTERRUPTED, MLFLOW_RUN_ID, TRIAL_NUMBER, TRIAL_STATE
from sweeps.tracking import seed_runs
from sweeps.tracking.tracker import Tracker

# The MLflow status a trial's runs end with
RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED", TrialState.FAIL: "FAILED"}


def reconcile(study: optuna.Study, tracker: Tracker, repair: bool = True,
              dying: frozenset[int] = frozenset()) -> list[str]:
    """What disagrees between the study and its MLflow experiment (repaired unless told not
    to), one line each. Runs of trials still RUNNING in Optuna are left alone, but for those
    numbered in `dying`: RUNNING trials whose worker died, read as the FAIL (interrupted)
    that recovering them makes them (`make doctor --dry-run` lists what the repair would)."""
    runs, children = seed_runs.every_run(tracker)
    by_number: dict[str, list[str]] = {}  # a parent run a kill cut off before Optuna learnt its id
    for r in runs.values():
        if TRIAL_NUMBER in r.data.tags:  # a parent run (seed runs carry no trial number)
            by_number.setdefault(r.data.tags[TRIAL_NUMBER], []).append(r.info.run_id)
    found = []
    for t in study.get_trials(deepcopy=False):
        gone = t.number in dying
        if not t.state.is_finished() and not gone:
            continue
        recorded = t.user_attrs.get(MLFLOW_RUN_ID)
        interrupted = gone or (t.state == TrialState.FAIL and t.user_attrs.get(INTERRUPTED))
        for run_id in dict.fromkeys([*([recorded] if recorded in runs else []),
                                     *by_number.get(str(t.number), [])]):
            orphan = run_id != recorded
            status = "KILLED" if interrupted or orphan else RUN_STATUS[t.state]
            state = "FAIL" if orphan or gone else t.state.name
            for r in [runs[run_id], *children.get(run_id, [])]:
                if r.info.status == "RUNNING":
                    found.append(f"trial {t.number}: run {r.info.run_id} left RUNNING, ended {status}")
                    if repair:
                        tracker.end_run(r.info.run_id, status)
            if runs[run_id].data.tags.get(TRIAL_STATE) != state:
                found.append(f"trial {t.number}: {TRIAL_STATE} tag "
                             f"{runs[run_id].data.tags.get(TRIAL_STATE, 'missing')}, study says {state}")
                if repair:
                    tracker.set_tags(run_id, {TRIAL_STATE: state})
    return found
