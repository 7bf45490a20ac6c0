"""Workers sharing one study through PostgreSQL: trials per hour with 1 and with 2 workers
(each with one torch thread), in one run, on the same grid of the default DAN space on RT;
then a kill: one of two workers SIGKILLed mid-trial, and the time until another worker
runs its trial again (heartbeats at the config's defaults unless told otherwise).

    python -m benchmarks.workers [--trials 8] [--interval 10 --grace 60] [-- overrides]
    make bench-workers

Uses $SEEDSWEEP_DB_URL's server if set (a new database per arm), else starts one of its
own with cluster/postgres.sh in a temporary folder. MLflow: a local SQLite store per arm.
Writes benchmarks/results/workers-<timestamp>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweeps.core.paths import ROOT
from sweeps.core.records import RETRY_OF, WORKER
from sweeps.store import open_storage

RESULTS = Path(__file__).resolve().parent / "results"
STUDY = "bench-workers"


def admin(url: str, sql: str) -> None:
    import psycopg2
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def new_database(server: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin(server, f"CREATE DATABASE {name}")
    return f"{server.rsplit('/', 1)[0]}/{name}"


def run_arm(server: str, folder: Path, workers: int, overrides: list[str], kill: bool = False) -> dict:
    folder.mkdir(parents=True)
    db = new_database(server)
    env = dict(os.environ, SEEDSWEEP_DB_URL=db, MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}")
    made = subprocess.run([sys.executable, "-m", "sweeps.sweep", "--create-only", *overrides],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if made.returncode:
        raise SystemExit(f"make study failed:\n{made.stderr[-3000:]}")
    start = time.time()
    procs = {f"host-{i}": subprocess.Popen(
        [sys.executable, "-m", "sweeps.sweep", f"--join={STUDY}", "storage=postgres", "threads=1"],
        cwd=ROOT, env=dict(env, SEEDSWEEP_HOST=f"host-{i}"), start_new_session=True,
        stdout=open(folder / f"host-{i}.log", "w"), stderr=subprocess.STDOUT) for i in range(workers)}
    store = open_storage(db, folder)
    victim = killed_at = None
    while kill and victim is None and procs["host-1"].poll() is None:
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name=STUDY, storage=store)
        except KeyError:
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get(WORKER, "").startswith("host-1:") and t.intermediate_values:
                os.killpg(procs["host-1"].pid, signal.SIGKILL)
                victim, killed_at = t.number, time.time()
                break
    codes = {h: p.wait() for h, p in procs.items()}
    wall = time.time() - start
    trials = optuna.load_study(study_name=STUDY, storage=store).get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    row = {"workers": workers, "exit_codes": codes, "wall_s": round(wall, 1), "trials_done": len(done),
           "trials_per_hour": round(len(done) / wall * 3600, 1),
           "states": {s.name: sum(t.state == s for t in trials) for s in TrialState},
           "trial_s_mean": round(sum((t.datetime_complete - t.datetime_start).total_seconds()
                                     for t in done) / max(len(done), 1), 1)}
    if kill:
        retry = [t for t in trials if t.user_attrs.get(RETRY_OF) == victim and t.datetime_start]
        row |= {"killed_trial": victim, "retried_as": retry[0].number if retry else None,
                "kill_to_retry_s": (round(retry[0].datetime_start.timestamp() - killed_at, 1)
                                    if retry else None),
                "retried_by": retry[0].user_attrs.get(WORKER) if retry else None}
    admin(server, f"DROP DATABASE IF EXISTS {db.rsplit('/', 1)[1]} WITH (FORCE)")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--interval", type=int, default=None, help="heartbeat interval, s (config default)")
    ap.add_argument("--grace", type=int, default=None, help="grace period, s (config default)")
    ap.add_argument("--no-kill", action="store_true")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    overrides = ["model=dan", "sampler=grid", f"sweep.trials={args.trials}",
                 f"sweep.study_name={STUDY}", "storage=postgres", "threads=1", "device=cpu",
                 *([f"storage.heartbeat_interval={args.interval}"] if args.interval else []),
                 *([f"storage.grace_period={args.grace}"] if args.grace else []), *args.overrides]
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)  # the server of our own runs as `postgres` when we are root
        own = not os.environ.get("SEEDSWEEP_DB_URL")
        if own:
            server = subprocess.run([str(ROOT / "cluster" / "postgres.sh"), "start", str(tmp / "pg"), "5441"],
                                    capture_output=True, text=True, check=True).stdout.strip()
        else:
            server = os.environ["SEEDSWEEP_DB_URL"]
        try:
            rows = [run_arm(server, tmp / "one", 1, overrides), run_arm(server, tmp / "two", 2, overrides)]
            if not args.no_kill:
                rows.append(run_arm(server, tmp / "kill", 2, overrides, kill=True))
        finally:
            if own:
                subprocess.run([str(ROOT / "cluster" / "postgres.sh"), "stop", str(tmp / "pg")])
    import torch
    header = {"when": dt.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "torch": torch.__version__, "optuna": optuna.__version__, "overrides": overrides}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"workers-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    print(f"{header}\n\n| workers | trials done | wall s | trials/hour | mean trial s | states "
          "| kill → retry |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        states = ", ".join(f"{v} {k.lower()}" for k, v in r["states"].items() if v)
        kill = (f"trial {r['killed_trial']} → #{r['retried_as']} on {r['retried_by']}, "
                f"{r['kill_to_retry_s']} s") if "killed_trial" in r else ""
        print(f"| {r['workers']} | {r['trials_done']} | {r['wall_s']} | {r['trials_per_hour']} | "
              f"{r['trial_s_mean']} | {states} | {kill} |")
    one, two = rows[0], rows[1]
    print(f"\n2 workers / 1 worker: {two['trials_per_hour'] / one['trials_per_hour']:.2f}x trials per hour; "
          f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
