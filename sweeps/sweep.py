"""`make sweep MODEL=dan`: search a model's space with multi-seed trials, resumably.

usage: make sweep MODEL=dan [DATA=rt] [SAMPLER=grid|random|tpe] [TRIALS=N] [SEEDS=K]
                  [WORKERS=W] [ARGS='<hydra overrides>']
   or: python -m sweeps.sweep model=dan sampler=grid sweep.trials=8 sweep.workers=2 [overrides]

WORKERS (sweep.workers) defaults to auto: one worker process a core of this machine (at
most 4, one on a GPU), whose progress this process shows as one; WORKERS=1 runs the
trials in this process.

Workers on several hosts (storage=postgres; the README's "Many machines"):
       make study MODEL=dan ARGS='storage=postgres ...'    # create it once, queue its grid
       make worker STUDY=<name> ARGS='storage=postgres'    # on each host, as many as you like
   or: python -m sweeps.sweep --create-only <overrides> / --join=<name> <overrides>
A worker joins with the overrides the study was made with; its own (storage, tracking,
threads, device) come after them.

Re-running the same command resumes the study: finished trials are kept, trials a
killed process left RUNNING are failed and their configuration tried again. A study
keeps a fingerprint of its settings; resuming it with other settings is refused (start
a new one with sweep.study_name=<name> or sweep.new=true). A searched key given on the
command line (ARGS='train.lr=0.01') is fixed for the whole study.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import zlib
from collections.abc import Sequence

from models.errors import UserError
from sweeps.config.compose import (
    check_sweep_settings,
    compose_config,
    default_recipe_note,
    stop_on_sigterm,
    whole_number,
)
from sweeps.core import faults
from sweeps.core.cli import Args, main_of, whole
from sweeps.core.redact import redact
from sweeps.search import neighbours
from sweeps.search.progress import Progress
from sweeps.search.relay import Relay, die_with_parent, show

# sweep.workers=auto starts at most this many: every worker of a machine writes the same
# local files (the study's journal, MLflow's SQLite) and holds its own torch and data
AUTO_WORKERS = 4


def cores() -> int:
    """The cores this process may run on (a container's or a Slurm job's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_threads(cfg, workers: int) -> int:
    return int(cfg.threads) if cfg.threads else max(1, cores() // workers)


def local_workers(cfg, gpu: bool) -> int:
    """How many worker processes `sweep.workers` asks for. `auto`: $SEEDSWEEP_WORKERS if set;
    else one on a GPU (the workers would share it); else one a core (`threads` cores each
    if given), at most AUTO_WORKERS (which share the cores as torch threads): a small
    model's step is too short for a second torch thread to pay, while a second trial
    beside it runs at nearly full speed."""
    if cfg.sweep.workers != "auto":
        return whole_number(cfg, "sweep.workers", 1)
    if given := os.environ.get("SEEDSWEEP_WORKERS"):
        if not given.isdigit() or int(given) < 1:
            raise UserError(f"SEEDSWEEP_WORKERS must be a whole number >= 1, not {given!r}.")
        return int(given)
    if gpu:
        return 1
    return max(1, min(AUTO_WORKERS, cores() // (int(cfg.threads) if cfg.threads else 1)))


def on_gpu(device: str) -> bool:
    import torch
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def gpu_for_worker(i: int, device: str, gpus: int, visible: str | None) -> str | None:
    """The CUDA_VISIBLE_DEVICES of worker i: GPU i mod G when the sweep runs on "the" GPU
    (device auto or cuda) on a host with G > 0 GPUs; None leaves the environment alone
    (no GPU, device=cpu, or an explicit cuda:N)."""
    if gpus < 1 or device not in ("auto", "cuda"):
        return None
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(g) for g in range(gpus)]
    return ids[i % len(ids)] if ids else None


def worker_env(i: int, device: str) -> dict[str, str]:
    import torch
    env = dict(os.environ)
    gpu = gpu_for_worker(i, device, torch.cuda.device_count() if torch.cuda.is_available() else 0,
                         os.environ.get("CUDA_VISIBLE_DEVICES"))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def joined_args(name: str, local: list[str]) -> list[str]:
    """The overrides of a worker joining study `name`: the study's own, then `local`."""
    from sweeps.core.records import OVERRIDES
    from sweeps.search.identity import joined_overrides
    from sweeps.store import load_study
    study = load_study(compose_config(local), name)
    if study is None:
        raise UserError(f"no study {name!r} in this storage; create it first with `make study` "
                        "(or `make sweep`), passing the same storage settings to both.")
    if OVERRIDES not in study.user_attrs:
        raise UserError(f"study {name!r} was made by an earlier version that did not record its "
                        "overrides; run `make sweep` with its overrides instead of `make worker`.")
    return joined_overrides(study.user_attrs[OVERRIDES], [*local, f"sweep.study_name={name}"])


def worker_command(name: str, args: list[str]) -> str:
    """`make worker` for study `name`, repeating the overrides that say where the study and
    its runs are stored (their credentials masked: this is printed)."""
    where = [a for a in args if a.split("=", 1)[0].lstrip("+").startswith(("storage", "tracking"))]
    return redact(f"make worker STUDY={name}" + (f" ARGS='{' '.join(where)}'" if where else ""))


def main(argv: Sequence[str] | None = None) -> int:
    """The sweep through the one error path (sweeps/core/cli.py), but for its stop: Ctrl-C
    or a SIGTERM both exit 130 with the command that resumes the study (as before the
    convention; a scheduler's SIGTERM reads as an interruption to resume)."""
    state: dict = {}

    def stopped(_term: bool) -> str:
        sweep, worker, join = state.get("sweep"), state.get("worker"), state.get("join")
        if worker is not None:  # the sweep that started it says how to resume
            return f"worker {worker}: stopped; its trial goes back in the queue."
        again = None if sweep is None or worker is not None else (
            worker_command(join, state["local"]) if join else sweep.command)
        return ("\ninterrupted: the study is intact; run the same command to resume"
                + (f":\n  {again}" if again else "."))

    return main_of(argv, __doc__, "python -m sweeps.sweep", lambda args: run(args, state),
                   values=("worker", "join"), switches=("create-only",), intact="the study is intact",
                   stopped=stopped, sigterm_status=130)


def worker_of(parsed: Args) -> tuple[int | None, int]:
    """`--worker=i/n` (worker i of the n a sweep started; an older `--worker=i`: of
    sweep.workers) -> (i, n); (None, 0) for a sweep or a `make worker`."""
    value = parsed.get("worker")
    if value is None:
        return None, 0
    i, _, n = str(value).partition("/")
    return whole({"worker": i}, "worker"), whole({"worker": n}, "worker") if n else 0


def run(parsed: Args, state: dict) -> str | int:
    (worker, of), join, create_only = worker_of(parsed), parsed.get("join"), bool(parsed.get("create-only"))
    if sum((worker is not None, join is not None, create_only)) > 1:
        raise UserError("--worker, --join and --create-only go one at a time.")
    args = parsed.overrides
    state.update(worker=worker, join=join, local=list(args))
    progress = Relay() if worker is not None else Progress()
    if worker is None:  # composing checks the model's values, which loads the registry (torch)
        progress.say("sweep: loading libraries and the config")
    from sweeps.store import worker_id  # optuna: after the first line
    local = list(args)
    if join is not None:
        args = joined_args(join, args)
    cfg = compose_config(args)
    check_sweep_settings(cfg, args)
    from sweeps.search.racing import seed_policy
    seed_policy(cfg)  # race with seeds=1, min_seeds > seeds: refused before anything loads
    if worker is None:
        progress.say(f"sweep: {cfg.model.name} on {cfg.data.name}, {cfg.sampler.name} search"
                     + (f", joining study {join} as worker {worker_id()}" if join else ""))
        if note := default_recipe_note(cfg, args):
            print(note, file=progress.stream, flush=True)
    import torch

    from sweeps.search.study import Sweep
    from sweeps.search.summary import summary
    if worker is not None:  # started by a sweep, which says how many it started
        faults.ROLE = "worker"
        workers = of or local_workers(cfg, False)
    elif join or create_only:
        workers = 1
    else:
        workers = local_workers(cfg, on_gpu(str(cfg.device)))
    torch.set_num_threads(worker_threads(cfg, workers))
    index = worker if worker is not None else zlib.crc32(worker_id().encode()) if join else 0
    sweep = state["sweep"] = Sweep(args, index, progress=progress, join=join, cfg=cfg)
    sweep.local_workers = worker is not None
    if create_only:
        return (f"study {sweep.name}: {sweep.budget} trials"
                + (f", {len(sweep.points)} grid points queued" if sweep.grid else "")
                + f"; start workers on any host with:\n  {worker_command(sweep.name, args)}")
    if worker is None and workers > 1:  # no more workers than trials left
        workers = max(1, min(workers, sweep.budget - sweep.done()))
        torch.set_num_threads(worker_threads(cfg, workers))
    if worker is not None or workers == 1:
        with neighbours.training(torch.get_num_threads(), f"sweep {sweep.name}"):
            sweep.run(announce=worker is None)
        if worker is not None:
            return 0
    else:  # the study exists and the grid is queued: let the workers run it
        code = run_workers(sweep, workers, args, str(cfg.device), worker_threads(cfg, workers))
        if code:
            return code
    again = worker_command(join, local) if join else sweep.command
    return (f"{summary(sweep.study, int(cfg.sweep.show_top))}\n"
            f"Optuna study and MLflow experiment {sweep.name!r} (make ui); rerun or resume with:\n  {again}")


class WorkerEnded(Exception):
    """A worker this sweep started ended before the study did (its own error above)."""


def run_workers(sweep, workers: int, args: list[str], device: str, threads: int) -> int:
    """Run the study in `workers` processes of this machine: this one (worker 0, whose
    imports and data are already loaded) and workers - 1 started beside it, whose progress
    this one shows with its own (sweeps/search/relay.py). A worker that ends with an error
    stops the sweep before its next trial. 0, or the exit status to end with."""
    sweep.progress.say(f"{workers} worker processes (this one and {workers - 1} more), {threads} torch "
                       f"thread{'s' if threads > 1 else ''} each; WORKERS=1 runs one")
    sweep.announce(workers)
    sweep.local_workers = True
    dies_with_this = die_with_parent()
    procs = [subprocess.Popen([sys.executable, "-m", "sweeps.sweep", f"--worker={i}/{workers}", *args],
                              env=worker_env(i, device), stdout=subprocess.PIPE, text=True, bufsize=1,
                              errors="replace", preexec_fn=dies_with_this,
                              start_new_session=True)  # a terminal's Ctrl-C reaches this process alone
             for i in range(1, workers)]
    readers = [threading.Thread(target=show, args=(p.stdout, sweep.progress, f"worker {i}"), daemon=True)
               for i, p in enumerate(procs, start=1)]
    for r in readers:
        r.start()

    def check() -> None:
        if any(p.poll() not in (None, 0) for p in procs):
            raise WorkerEnded

    sweep.before_claim = check
    try:
        try:
            with neighbours.training(threads, f"sweep {sweep.name}"):
                sweep.run(announce=False)
            codes = [p.wait() for p in procs]
        except BaseException as e:  # Ctrl-C, a SIGTERM, a full disk: each worker is stopped once, by SIGTERM
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            codes = [p.wait() for p in procs]
            if not isinstance(e, WorkerEnded):
                raise
        finally:
            for r in readers:
                r.join()
    finally:
        sweep.progress.close()
    if any(codes):
        print(f"error: worker exit codes {codes}; run the same command to resume:\n"
              f"  {sweep.command}", file=sys.stderr)
        return 75 if 75 in codes else 1
    return 0


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
