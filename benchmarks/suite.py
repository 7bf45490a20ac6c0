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
  sweep       a 10-trial DAN sweep (`python -m sweeps.sweep`, random search on RT): wall time
              against the trainer's own compute time; the rest is the platform's overhead.
With a GPU, the rows run again with device=cuda (plus NPLM at batch 1,024).

    make bench                                   # everything, ~10 min on 2 CPU cores
    python -m benchmarks.suite --rows dan_seeds,nplm_flops [--device cpu|cuda|all] [--quick]

Writes benchmarks/results/<timestamp>.json and .md, and prints the Markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SST_ROOT = Path(os.environ.get("SST_ROOT") or REPO.parent / "shared" / "data" / "sst")
MATMUL_REPS = 200
ROWS = ("dan_epoch", "dan_seeds", "nplm_seeds", "nplm_flops", "nplm_ptb", "sweep")
PTB_TRAIN_POSITIONS = 929_589


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def sync(device) -> None:
    import torch
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device="cpu", warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


# ---------------------------------------------------------------- data and models


def dan_task():
    """SST fine-grained sentences when present, else RT (fetched): (task, name)."""
    from models.data.cache import default_cache_dir
    from models.data.classification import prepare_classification
    from models.data.rt import load_rt
    from models.data.sst import load_sst
    if (SST_ROOT / "train.txt").is_file():
        return prepare_classification(load_sst(str(SST_ROOT), binary=False, phrases=False)), "SST fine"
    return prepare_classification(load_rt(default_cache_dir(), 13, (0.8, 0.1, 0.1))), "RT"


def dan_settings():
    from models.training import TrainSettings
    return TrainSettings(optimizer="adagrad", lr=0.01, weight_decay=1e-5, batch_size=64, max_epochs=10**6,
                         patience=10**6)


def dan_builder(task, device):
    from models.dan import DAN
    sparse = str(device) == "cpu"
    return lambda: DAN(len(task.vocab), task.num_classes, sparse=sparse)


def plain_dan(vocab_size: int, num_classes: int, word_dropout: float = 0.3):
    """The textbook DAN: nn.Embedding over the padded batch, masked mean, dense grads."""
    import torch
    from torch import nn

    class PlainDAN(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, 300, padding_idx=0)
            self.mlp = nn.Sequential(nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 300), nn.ReLU(),
                                     nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, num_classes))

        def forward(self, tokens):
            mask = (tokens != 0).float()  # (B, T)
            if self.training:
                mask = mask * (torch.rand_like(mask) >= word_dropout).float()
                mask[mask.sum(1) == 0, 0] = 1.0  # keep a token
            summed = (self.embed(tokens) * mask.unsqueeze(-1)).sum(1)  # (B, E)
            return self.mlp(summed / mask.sum(1, keepdim=True))  # (B, C)
    return PlainDAN()


def ptb_train():
    from models.data.cache import default_cache_dir
    from models.data.corpora import load_corpus
    return load_corpus("ptb", default_cache_dir())


def nplm_task(train, valid, vocab_size: int, tokens_per_epoch: int, dev_tokens: int | None = None):
    from models.data.lm import LMSplit, LMTask, build_lm_vocab, encode_split
    vocab = build_lm_vocab(train, max_size=vocab_size)
    dev = encode_split(valid, vocab)
    if dev_tokens:
        dev = LMSplit(dev.tokens[:dev_tokens], dev.start[:dev_tokens])
    return LMTask(encode_split(train, vocab), dev, vocab, context=4, tokens_per_epoch=tokens_per_epoch)


def nplm_settings(batch: int = 64):
    from models.training import TrainSettings
    return TrainSettings(optimizer="sgd", lr=1.0, batch_size=batch, weight_decay=1e-4, decay_biases=False,
                         lr_decay=1e-8, max_epochs=10**6, patience=10**6)


def nplm_builder(vocab_size: int, n=5, m=60, h=50, direct=True):
    from models.nplm import NPLM
    return lambda: NPLM(vocab_size, n - 1, m, h, direct)


def training_flops(n: int, m: int, h: int, V: int, direct: bool) -> float:
    """FLOPs a token of a training step: forward multiply-adds of H, U and W, x2 (multiply and
    add), x3 (forward, gradient of inputs, gradient of weights)."""
    return 6.0 * ((n - 1) * m * h + h * V + ((n - 1) * m * V if direct else 0))


# ---------------------------------------------------------------- rows


def row_dan_epoch(device: str, quick: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from models.training import OneAfterAnother, make_trainers
    torch.set_num_threads(1)
    task, name = dan_task()
    task = task.to(device)
    # what `make train ... seeds=1` trains with: the stacked form where it is the faster
    trainers = make_trainers(dan_builder(task, device), task, dan_settings(), [0], device)
    trainer = trainers.seeds[0] if isinstance(trainers, OneAfterAnother) else trainers
    torch.manual_seed(0)
    plain = plain_dan(len(task.vocab), task.num_classes).to(device)
    opt = torch.optim.Adagrad(plain.parameters(), lr=0.01, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(0)
    tokens, labels = task.train.tokens, task.train.labels

    def plain_epoch():
        plain.train()
        order = torch.randperm(len(labels), generator=gen).to(device)
        for start in range(0, len(order), 64):
            idx = order[start:start + 64]
            opt.zero_grad()
            F.cross_entropy(plain(tokens[idx]), labels[idx]).backward()
            opt.step()
    reps = 1 if quick else 3
    ours = statistics.median(timed(trainer._train_epoch, reps, device))
    base = statistics.median(timed(plain_epoch, 1 if quick else 2, device))
    return {"data": f"{name} sentences", "examples": len(task.train), "vocab": len(task.vocab),
            "threads": 1, "platform_s": ours, "plain_s": base, "speedup": base / ours,
            "platform_trainer": type(trainers).__name__}


def seed_epochs(build, task, settings, device, ks, quick) -> list[dict]:
    """Wall time of one epoch (train + dev) of K seeds, stacked and one after another."""
    from models.training import make_trainers
    rows = []
    warm = make_trainers(build, task, settings, [0], device, "false")
    warm.step()  # first-touch costs out of the way
    for k in ks:
        row = {"k": k}
        for mode in ("true", "false"):
            if k == 1 and mode == "true":
                continue
            trainers = make_trainers(build, task, settings, list(range(1, k + 1)), device, mode)
            row["stacked_s" if mode == "true" else "one_after_another_s"] = statistics.median(
                timed(trainers.step, 1, device, warmup=0 if quick else 1))
        rows.append(row)
    one = rows[0]["one_after_another_s"]
    for row in rows:
        row["stacked_over_one_seed"] = row.get("stacked_s", one) / one
        row["one_after_another_over_one_seed"] = row["one_after_another_s"] / one
    return rows


def row_dan_seeds(device: str, quick: bool) -> dict:
    task, name = dan_task()
    task = task.to(device)
    ks = (1, 5) if quick else (1, 5, 10)
    return {"data": f"{name} sentences", "threads": _threads(), "model": "DAN 3x300 relu, Adagrad, batch 64",
            "rows": seed_epochs(dan_builder(task, device), task, dan_settings(), device, ks, quick)}


def row_nplm_seeds(device: str, quick: bool) -> dict:
    train, valid = ptb_train()
    task = nplm_task(train, valid, 2000, 20_000, 10_000).to(device)
    ks = (1, 5) if quick else (1, 5, 10)
    return {"data": "PTB, V=2,000, 20,000 positions an epoch, dev 10,000 tokens", "threads": _threads(),
            "model": "NPLM n=5 m=60 h=50 direct, SGD, batch 64",
            "rows": seed_epochs(nplm_builder(len(task.vocab)), task, nplm_settings(), device, ks, quick)}


def row_nplm_flops(device: str, quick: bool) -> dict:
    import torch

    from models.training import SeedTrainer
    train, valid = ptb_train()
    batches = (64, 1024) if torch.device(device).type == "cuda" else (64,)
    steps = 50 if quick else 300
    rows = []
    for V in (2_000, 10_000):
        for batch in batches:
            task = nplm_task(train, valid, V, batch * steps).to(device)
            trainer = SeedTrainer(nplm_builder(len(task.vocab)), task, nplm_settings(batch), 0, device)
            secs = statistics.median(timed(trainer._train_epoch, 1 if quick else 2, device))
            tokens = batch * steps
            flops = training_flops(5, 60, 50, len(task.vocab), True) * tokens
            k = 50 + 4 * 60
            a = torch.randn(batch, k, device=device)
            w = torch.randn(k, len(task.vocab), device=device)
            mm = statistics.median(timed(lambda a=a, w=w: [a @ w for _ in range(MATMUL_REPS)], 3, device))
            peak = 2.0 * batch * k * len(task.vocab) * MATMUL_REPS / mm / 1e9
            rows.append({"V": len(task.vocab), "batch": batch, "tokens_per_s": tokens / secs,
                         "gflops": flops / secs / 1e9, "matmul_gflops": peak,
                         "share_of_matmul": flops / secs / 1e9 / peak})
    return {"threads": _threads(), "model": "NPLM n=5 m=60 h=50 direct, SGD, training step", "rows": rows}


def row_nplm_ptb(device: str, quick: bool) -> dict:
    from models.training import make_trainers
    train, valid = ptb_train()
    steps, seeds = (20 if quick else 150), [1, 2, 3]
    task = nplm_task(train, valid, 10_000, 64 * steps, 1000).to(device)
    build, settings = nplm_builder(len(task.vocab)), nplm_settings()

    def per_step(mode: str, fused: bool = True) -> float:
        trainers = make_trainers(build, task, settings, seeds, device, mode)
        holders = [trainers, *trainers.seeds]
        if not fused:
            for o in (h.optimizer for h in holders if hasattr(h, "optimizer")):
                for g in o.param_groups:
                    g["fused"] = None
        epoch = trainers._train_epoch if mode == "true" else \
            (lambda: [t._train_epoch() for t in trainers.seeds])
        return statistics.median(timed(epoch, 1 if quick else 3, device)) / steps

    rows = [{"trainer": name, "ms_per_step": 1e3 * per_step(mode, fused)}
            for name, mode, fused in (("stacked", "true", True), ("stacked, SGD unfused", "true", False),
                                      ("one after another", "false", True))]
    for r in rows:
        r["min_per_epoch"] = r["ms_per_step"] / 1e3 * PTB_TRAIN_POSITIONS / 64 / 60
        r["vs_stacked"] = r["ms_per_step"] / rows[0]["ms_per_step"]
    return {"threads": _threads(), "seeds": len(seeds), "steps": steps,
            "model": "NPLM n=5 m=60 h=50 direct, V=10,000, batch 64, SGD wd 1e-4", "rows": rows}


def row_sweep(device: str, quick: bool) -> dict:
    import optuna

    from sweeps.store import open_storage
    trials = 3 if quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        name = "bench-sweep"
        cmd = [sys.executable, "-m", "sweeps.sweep", "model=dan", f"sweep.trials={trials}",
               f"sweep.study_name={name}", f"tracking.uri=sqlite:///{tmp}/mlflow.db",
               f"tracking.artifacts={tmp}/art", f"storage.dir={tmp}",  # the default: a journal file
               f"device={device}", "sampler.seed=0"]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        study = optuna.load_study(study_name=name, storage=open_storage(None, Path(tmp)))
        trials_ = study.trials
        compute = sum(t.user_attrs.get("compute_seconds", 0.0) for t in trials_)
        in_trials = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials_
                        if t.datetime_complete is not None)
        states = {s: sum(t.state.name == s for t in trials_) for s in ("COMPLETE", "PRUNED", "FAIL")}
    return {"trials": len(trials_), "states": states, "wall_s": wall, "training_s": compute,
            "overhead_s": wall - compute, "overhead_share": (wall - compute) / wall,
            # where the overhead lies: inside trials (runs, models, weights) or around them
            # (process start, imports, stores, data, the closing table)
            "in_trials_overhead_s": in_trials - compute, "outside_trials_s": wall - in_trials,
            "sweep_peak_rss_mb": peak_rss_mb(children=True)}


def _threads() -> int:
    import torch
    return torch.get_num_threads()


RUN = {"dan_epoch": row_dan_epoch, "dan_seeds": row_dan_seeds, "nplm_seeds": row_nplm_seeds,
       "nplm_flops": row_nplm_flops, "nplm_ptb": row_nplm_ptb, "sweep": row_sweep}


# ---------------------------------------------------------------- driver and report


def header() -> dict:
    import torch

    from models.training import cpu_name
    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"when": dt.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
            "cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "gpu": gpu,
            "python": platform.python_version()}


def _table(caption: str, header: str, align: str, lines: list[str]) -> list[str]:
    return [caption, "", header, align, *lines, ""]


def markdown(report: dict) -> str:
    h = report["header"]
    out = [f"# make bench, {h['when']}", "",
           f"torch {h['torch']}, {h['cpu']}, {h['cores']} cores, {h['threads']} torch threads, "
           f"GPU: {h['gpu'] or 'none'}", ""]
    for device, rows in report["devices"].items():
        out.append(f"## device={device}")
        out.append("")
        if "dan_epoch" in rows:
            r = rows["dan_epoch"]
            out += [f"**DAN 3x300 epoch, one thread** ({r['data']}, {r['examples']} examples, "
                    f"vocab {r['vocab']}; "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB)", "",
                    "| trainer | s / epoch | vs plain loop |", "|---|---:|---:|",
                    f"| platform ({r.get('platform_trainer', 'SeedTrainer')}) | {r['platform_s']:.3f} | "
                    f"{r['speedup']:.2f}x |",
                    f"| plain PyTorch loop | {r['plain_s']:.3f} | 1.00x |", ""]
        for key, title in (("dan_seeds", "DAN"), ("nplm_seeds", "NPLM")):
            if key in rows:
                r = rows[key]
                out += [f"**{title}: one epoch (train + dev) of K seeds** ({r['model']}; {r['data']}; "
                        f"{r['threads']} threads; peak RSS {r['peak_rss_mb']:.0f} MB)", "",
                        "| K | stacked s | one after another s | stacked / 1 seed "
                        "| one after another / 1 seed |",
                        "|---:|---:|---:|---:|---:|"]
                for x in r["rows"]:
                    st = f"{x['stacked_s']:.2f}" if "stacked_s" in x else "-"
                    out.append(f"| {x['k']} | {st} | {x['one_after_another_s']:.2f} | "
                               f"{x['stacked_over_one_seed']:.2f}x | "
                               f"{x['one_after_another_over_one_seed']:.2f}x |")
                out.append("")
        if "nplm_flops" in rows:
            r = rows["nplm_flops"]
            out += _table(f"**NPLM training throughput** ({r['model']}; {r['threads']} threads; "
                          f"peak RSS {r['peak_rss_mb']:.0f} MB)",
                          "| V | batch | tokens/s | GFLOP/s | matmul GFLOP/s (same shape) | share |",
                          "|---:|---:|---:|---:|---:|---:|",
                          [f"| {x['V']} | {x['batch']} | {x['tokens_per_s']:,.0f} | {x['gflops']:.1f} | "
                           f"{x['matmul_gflops']:.1f} | {x['share_of_matmul']:.0%} |" for x in r["rows"]])
        if "nplm_ptb" in rows:
            r = rows["nplm_ptb"]
            out += _table(f"**NPLM at PTB size, {r['seeds']} seeds** ({r['model']}; {r['steps']} steps; "
                          f"{r['threads']} threads; peak RSS {r['peak_rss_mb']:.0f} MB)",
                          "| trainer | ms / step (all seeds) | PTB epoch, min (projected) | vs stacked |",
                          "|---|---:|---:|---:|",
                          [f"| {x['trainer']} | {x['ms_per_step']:.1f} | {x['min_per_epoch']:.1f} | "
                           f"{x['vs_stacked']:.2f}x |" for x in r["rows"]])
        if "sweep" in rows:
            r = rows["sweep"]
            out += [f"**DAN sweep, {r['trials']} trials** ({r['states']}; sweep peak RSS "
                    f"{r['sweep_peak_rss_mb']:.0f} MB)", "",
                    "| wall s | training + dev s | overhead s | overhead share | of it: in trials s "
                    "| around trials s |", "|---:|---:|---:|---:|---:|---:|",
                    f"| {r['wall_s']:.1f} | {r['training_s']:.1f} | {r['overhead_s']:.1f} | "
                    f"{r['overhead_share']:.1%} | {r.get('in_trials_overhead_s', float('nan')):.1f} | "
                    f"{r.get('outside_trials_s', float('nan')):.1f} |", ""]
        for name, err in rows.get("errors", {}).items():
            out.append(f"- {name} failed: {err}")
    return "\n".join(out).rstrip() + "\n"


def run_row(name: str, device: str, quick: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.suite", "--row", name, "--device", device]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    ap.add_argument("--device", default="all", help="cpu, cuda, or all (cuda too when a GPU is seen)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and seeds: a smoke run")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--row", help=argparse.SUPPRESS)  # internal: one row in this process
    args = ap.parse_args(argv)
    if args.row:
        result = RUN[args.row](args.device, args.quick)
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
                rows[name] = run_row(name, device, args.quick)
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
