"""`make doctor`: check a study against MLflow, trial for trial, and repair where they
disagree (runs a killed process left RUNNING, a `trial_state` tag a kill cut off), and
fail (and queue again) a trial left RUNNING by a worker that died, as the next sweep would.

    make doctor MODEL=dan [STUDY=name] [ARGS='--dry-run']
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from models.errors import UserError
from sweeps import store
from sweeps.config.compose import compose_config, run_cli
from sweeps.core.records import MLFLOW_EXPERIMENT, WORKER
from sweeps.search.reconcile import reconcile
from sweeps.tracking.tracker import Tracker


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sweeps.doctor", description=__doc__.splitlines()[0])
    ap.add_argument("--study")
    ap.add_argument("--dry-run", action="store_true", help="report only, repair nothing")
    args, overrides = ap.parse_known_args(sys.argv[1:] if argv is None else argv)

    def body() -> str:
        cfg = compose_config(overrides)
        name = args.study or store.study_name(cfg)
        shared = store.SharedStudy(cfg, name)
        study = shared.study = shared.load()
        if study is None:
            raise UserError(f"no study {name!r}: pass STUDY=<name> (make sweep prints it).")
        tracker = Tracker(study.user_attrs.get(MLFLOW_EXPERIMENT, name), cfg.tracking.uri)
        with shared.lock():
            then = "to fail and retry" if args.dry_run else "failed as interrupted and queued again"
            found = [f"trial {t.number}: RUNNING, but its worker {t.user_attrs.get(WORKER, '?')} "
                     f"is gone; {then}" for t in shared.dead()]
            if not args.dry_run:
                shared.recover()  # its runs are ended KILLED below, as an interrupted trial's
            found += reconcile(study, tracker, repair=not args.dry_run)
        verb = "found" if args.dry_run else "repaired"
        return "\n".join([*found, f"study {name!r} and MLflow: {len(found)} disagreement(s) {verb}."])

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
