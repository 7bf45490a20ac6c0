"""`make bench`: the platform's speed, one suite, one run, each row beside its baseline.

Rows (each in a fresh process, so its peak RSS is its own):
  dan_epoch   DAN 3x300 ReLU, one epoch over SST sentences (RT when SST is absent), one thread:
              the platform's trainer against a plain PyTorch loop (padded nn.Embedding, masked
              mean, dense gradients, Python batching).
  dan_seeds   K = 1, 5, 10 seeds of that DAN: one epoch (train + dev), stacked and one after
              another.
  nplm_seeds  the same for the NPLM (n=5, m=60, h=50, direct) on CPU-sized PTB (V = 2,000,
              20,000 training positions an epoch, dev = the first 10,000 valid tokens).
  nplm_flops  NPLM training tokens/s and achieved GFLOP/s at V = 2,000 and 10,000, against a
              torch matmul of the output layer's shape (this machine's attainable peak).
  nplm_ptb    the PTB paper cell's training step at full size (n=5, m=60, h=50, direct, V =
              10,000, batch 64, SGD with weight decay): ms a step for 3 seeds stacked, stacked
              with SGD unfused (torch's default), and one after another; minutes an epoch of
              PTB's 929,589 training positions, projected from the step.
  sweep       a 10-trial DAN sweep (`python -m sweeps.sweep`, random search on RT; --sweep-trials
              100 for the default budget): wall time against the models' own work (training,
              dev evaluation, building each seed's model); the rest is the sweep's overhead,
              paid once and paid a trial, with the share projected for 100 trials.
With a GPU, the rows run again with device=cuda (plus NPLM at batch 1,024).

    make bench                                   # everything, ~10 min on 2 CPU cores
    python -m benchmarks.suite --rows dan_seeds,nplm_flops [--device cpu|cuda|all] [--quick]

Writes benchmarks/results/<timestamp>.json and .md, and prints the Markdown. The rows are in
suite_rows.py, what they run on in suite_cases.py, the report in suite_report.py, the
timing helpers in suite_timing.py; this module runs each row in its own process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.suite_cases import REPO
from benchmarks.suite_report import header, markdown
from benchmarks.suite_rows import RUN
from benchmarks.suite_timing import peak_rss_mb

RESULTS = REPO / "benchmarks" / "results"
ROWS = tuple(RUN)


def run_row(name: str, device: str, quick: bool, sweep_trials: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.suite", "--row", name, "--device", device]
    if quick:
        cmd.append("--quick")
    if sweep_trials:
        cmd += ["--sweep-trials", str(sweep_trials)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    ap.add_argument("--device", default="all", help="cpu, cuda, or all (cuda too when a GPU is seen)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and seeds: a smoke run")
    ap.add_argument("--sweep-trials", type=int, help="the sweep row's budget (default 10; 100 is the "
                    "default sweep's own)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--row", help=argparse.SUPPRESS)  # internal: one row in this process
    args = ap.parse_args(argv)
    if args.row:
        from models.training import flush_denormals
        flush_denormals()  # as a sweep's process does, before the row's first tensors
        extra = {"trials": args.sweep_trials} if args.row == "sweep" and args.sweep_trials else {}
        result = RUN[args.row](args.device, args.quick, **extra)
        result.setdefault("peak_rss_mb", peak_rss_mb())
        print(json.dumps(result))
        return 0
    names = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in names if r not in RUN]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    head = header()
    devices = ["cpu", "cuda"] if args.device == "all" and head["gpu"] else \
        ["cpu"] if args.device == "all" else [args.device]
    report = {"header": head, "devices": {}}
    for device in devices:
        rows: dict = {}
        for name in names:
            start = time.perf_counter()
            print(f"bench: {name} on {device} ...", file=sys.stderr, flush=True)
            try:
                rows[name] = run_row(name, device, args.quick, args.sweep_trials)
            except RuntimeError as e:
                rows.setdefault("errors", {})[name] = str(e)
            print(f"bench: {name} on {device} took {time.perf_counter() - start:.0f} s", file=sys.stderr)
        report["devices"][device] = rows
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (out / f"bench-{stamp}.md").write_text(md)
    print(md)
    print(f"written: {out / f'bench-{stamp}.json'} and .md", file=sys.stderr)
    return 1 if any("errors" in rows for rows in report["devices"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
