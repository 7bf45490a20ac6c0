"""`make doctor`: check a study against MLflow, trial for trial, and repair where they
disagree (runs a killed process left RUNNING, a `trial_state` tag a kill cut off), and
fail (and queue again) a trial left RUNNING by a worker that died, as the next sweep would.

    make doctor MODEL=dan [STUDY=name] [ARGS='--dry-run']
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from models.errors import UserError
from sweeps import store
from sweeps.config.compose import compose_config
from sweeps.core.cli import Args, main_of
from sweeps.core.records import MLFLOW_EXPERIMENT, WORKER
from sweeps.search.reconcile import reconcile
from sweeps.tracking.tracker import Tracker


def main(argv: Sequence[str] | None = None) -> int:
    # --dry-run: report only, repair nothing
    return main_of(argv, __doc__, "python -m sweeps.doctor", body, values=("study",), switches=("dry-run",),
                   intact="the study is intact")


def body(args: Args) -> str:
    dry_run = bool(args.get("dry-run"))
    cfg = compose_config(args.overrides)
    name = args.get("study") or store.study_name(cfg)
    shared = store.SharedStudy(cfg, name)
    study = shared.study = shared.load()
    if study is None:
        raise UserError(f"no study {name!r}: pass STUDY=<name> (make sweep prints it).")
    tracker = Tracker(study.user_attrs.get(MLFLOW_EXPERIMENT, name), cfg.tracking.uri)
    with shared.lock():
        then = "to fail and retry" if dry_run else "failed as interrupted and queued again"
        dead = shared.dead()
        found = [f"trial {t.number}: RUNNING, but its worker {t.user_attrs.get(WORKER, '?')} "
                 f"is gone; {then}" for t in dead]
        if not dry_run:
            shared.recover()  # its runs are ended KILLED below, as an interrupted trial's
        # a dry run reads the dead trials as recovered, so it lists what the repair will do
        found += reconcile(study, tracker, repair=not dry_run,
                           dying=frozenset(t.number for t in dead) if dry_run else frozenset())
    verb = "found" if dry_run else "repaired"
    trials = {line.split(":")[0] for line in found}  # "trial N: ..."
    return "\n".join([*found, f"study {name!r} and MLflow: {len(found)} disagreement(s) {verb} "
                               f"in {len(trials)} trial(s)."])


if __name__ == "__main__":
    sys.exit(main())
