"""`make gpu-check`: the GPU path checked and timed on a machine that has one.

Needs torch and numpy only (no optuna, mlflow or hydra, no data download): the data are
synthetic, of the real sizes (SST: 8,544 training sentences, vocabulary 16,581, 5 classes;
PTB: V = 10,000). It checks, on the device:
  1. parity: seed s stacked with others gives the metrics it gets alone (DAN and NPLM);
  2. NPLM (V=10,000, n=5, m=60, h=50, direct) training tokens/s in the platform's own
     training step, at batch 64 and 1,024 (target: 500,000 tokens/s or more);
  3. DAN 3x300 epochs: 1 seed alone; 5 and 20 seeds stacked; 5 one after another
     (target: 20 stacked in at most 1.5x one seed's epoch time);
  4. that one epoch's batches never wait for the GPU (torch.cuda.set_sync_debug_mode);
  5. a Brown MLP9-sized epoch, 3 seeds stacked at batch 64 (target: 5 s or less);
  6. train.cuda_graphs (models/graphed.py): graphed against eager parity (benchmarks/
     gpu_graphs.py), and the NPLM and Brown rows again with the steps replayed as CUDA graphs;
  7. fused trials (benchmarks/gpu_fused.py): parity, and 20 trials in one model against one.
Each speed row stands beside plain PyTorch measured in the same run (benchmarks/gpu_plain.py).

    make gpu-check                              # device cuda; exits 3 when no GPU is seen
    make gpu-check ARGS='--only graphs'         # only 6, with its eager and plain baselines (or 7: fused)
    python -m benchmarks.gpu_check --device cpu --small   # the same code on the CPU (tests)

Prints Markdown tables, each row as soon as it is measured; writes gpu-check.json to $OUT
(or --out) when given, after every table, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from benchmarks import gpu_fused
from benchmarks.gpu_data import median_time, ptb_like, sst_like
from benchmarks.gpu_graphs import graphs_parity
from models.dan import DAN
from models.data.lm import LMTask
from models.nplm import NPLM
from models.training import SeedTrainer, TrainSettings, make_trainers


def parity(device: torch.device, small: bool) -> list[dict]:
    """Max relative difference of per-epoch dev metrics, stacked against alone."""
    out = []
    cls = sst_like(400, 100, 300, seed=1).to(device)
    lm = ptb_like(200, 6000, 2000, seed=1).to(device)
    cases = [
        ("DAN", cls, lambda: DAN(300, 5, embed_dim=16, hidden_dims=(16, 16), dropout=0.2, sparse=False),
         TrainSettings(lr=0.05, batch_size=16, max_epochs=4, patience=1, weight_decay=1e-4)),
        ("NPLM", lm, lambda: NPLM(200, 4, embed_dim=8, hidden_dim=12, dropout=0.1),
         TrainSettings(optimizer="sgd", lr=0.5, batch_size=32, max_epochs=4, patience=1, lr_decay=1e-3,
                       decay_biases=False, weight_decay=1e-4)),
    ]
    seeds = [5, 6, 7]
    for name, task, build, settings in cases:
        stack = make_trainers(build, task, settings, seeds, device, "true")
        while any(not r.done for r in stack.seeds):
            stack.step()
        worst, same_best = 0.0, True
        for record in stack.seeds:
            alone = SeedTrainer(build, task, settings, record.seed, device)
            alone.fit()
            same_best &= record.best_epoch == alone.best_epoch
            for a, b in zip(record.history, alone.history):
                for k in a.dev:
                    worst = max(worst, abs(a.dev[k] - b.dev[k]) / max(abs(b.dev[k]), 1e-12))
        out.append({"model": name, "seeds": len(seeds), "max_rel_diff": worst, "same_best_epoch": same_best,
                    "ok": same_best and worst < 1e-3})
    return out


def nplm_speed(device: torch.device, small: bool) -> Iterator[dict]:
    """Tokens/s of the platform's NPLM step, eager and with CUDA graphs, beside a plain
    PyTorch loop, same batches; a row a batch size as soon as it is measured."""
    from benchmarks import gpu_plain
    vocab = 2000 if small else 10_000
    for batch in (64, 1024):
        steps = 20 if small else 200
        task = ptb_like(vocab, 200_000 if not small else 20_000, batch * steps).to(device)
        settings = TrainSettings(optimizer="sgd", lr=1.0, batch_size=batch, weight_decay=1e-4,
                                 decay_biases=False, lr_decay=1e-8)
        row = {"V": vocab, "batch": batch}
        repeats = 1 if small else 3  # small: the code path, not the speed
        for key, graphs in (("tokens_per_s", "false"), ("graphs_tokens_per_s", "true")):
            trainer = SeedTrainer(lambda: NPLM(vocab, 4, 60, 50, True), task, settings, 0, device, graphs)
            row[key] = batch * steps / median_time(trainer._train_epoch, device, repeats)
        plain_model = NPLM(vocab, 4, 60, 50, True).to(device)
        plain = median_time(gpu_plain.nplm_epoch(plain_model, task, batch), device, repeats)
        row["plain_tokens_per_s"] = batch * steps / plain
        yield row


def dan_seeds(device: torch.device, small: bool) -> list[dict]:
    """DAN 3x300 epochs as `make train` builds them (sparse rows updated by hand), beside
    plain PyTorch: one DAN with a dense Adagrad for one seed, torch.func.vmap for K."""
    from benchmarks import gpu_plain
    task = sst_like(800 if small else 8544, 200 if small else 1101, 2000 if small else 16_581).to(device)
    settings = TrainSettings(lr=0.01, batch_size=32, weight_decay=1e-5, max_epochs=10**6, patience=10**6)

    def build():
        return DAN(len(task.vocab), 5, sparse=True)
    rows, plain_one = [], None
    for k, mode in ((1, "auto"), (5, "false"), (5, "true"), (20, "true")):
        if small and k == 20:
            k = 8
        trainers = make_trainers(build, task, settings, list(range(k)), device, mode)
        secs = median_time(trainers.step, device, repeats=1 if k > 1 or small else 3)
        row = {"k": k, "stacked": mode != "false", "epoch_s": secs, "plain_epoch_s": None}
        if mode != "false":
            models = [DAN(len(task.vocab), 5).to(device) for _ in range(k)]
            fn = (gpu_plain.dan_epoch(models[0], task, 32) if k == 1
                  else gpu_plain.dan_vmap_epoch(models, task, 32))
            row["plain_epoch_s"] = median_time(fn, device, repeats=1 if k > 1 or small else 3)
            plain_one = plain_one or row["plain_epoch_s"]
        rows.append(row)
    one = rows[0]["epoch_s"]
    for r in rows:
        r["over_one_seed"] = r["epoch_s"] / one
        r["plain_over_one_seed"] = None if r["plain_epoch_s"] is None else r["plain_epoch_s"] / plain_one
    return rows


def brown_task(device: torch.device, small: bool) -> LMTask:
    """Brown-sized synthetic data: V = 16,300, 800,000 training tokens."""
    vocab, tokens = (2000, 6_000) if small else (16_300, 800_000)
    return ptb_like(vocab, tokens, tokens).to(device)


def brown_mlp9(device: torch.device, task: LMTask, cuda_graphs: str) -> dict:
    """One training epoch of Bengio et al.'s MLP9 on Brown-sized data (n=5 h=100 m=30, no
    direct), 3 seeds stacked, batches of 64, the bengio_brown_batched recipe (target: 5 s
    or less on a GPU), with train.cuda_graphs `cuda_graphs`."""
    settings = TrainSettings(optimizer="sgd", lr=1.0, lr_decay=2e-5, weight_decay=1e-4, decay_biases=False,
                             batch_size=64)
    trainers = make_trainers(lambda: NPLM(len(task.vocab), 4, 30, 100, False), task, settings, [1, 2, 3],
                             device, "true", cuda_graphs=cuda_graphs)
    secs = median_time(trainers._train_epoch, device, repeats=1)
    return {"V": len(task.vocab), "tokens": task.train.targets, "seeds": 3, "batch": 64,
            "cuda_graphs": trainers.cuda_graphs, "epoch_s": secs}


def no_sync(device: torch.device, small: bool) -> list[dict]:
    """Whether one epoch's batches run with torch.cuda.set_sync_debug_mode("error"): any
    wait of the host for the GPU inside the batch loop raises."""
    if device.type != "cuda":
        return [{"case": "cpu: not checked here (tests/models/test_device_bound.py counts on the CPU)",
                 "ok": True}]
    task = sst_like(400, 100, 2000, seed=2).to(device)
    lm = ptb_like(2000, 20_000, 6400, seed=2).to(device)
    adagrad = TrainSettings(lr=0.01, batch_size=32, weight_decay=1e-5, l2_every_row=True)
    sgd = TrainSettings(optimizer="sgd", lr=1.0, batch_size=64, weight_decay=1e-4, decay_biases=False,
                        lr_decay=2e-5)
    cases = [
        ("DAN 5 seeds stacked, rows by hand, L2 on every row",
         make_trainers(lambda: DAN(2000, 5, sparse=True), task, adagrad, list(range(5)), device, "true")),
        ("DAN 1 seed", make_trainers(lambda: DAN(2000, 5, sparse=True), task, adagrad, [0], device, "auto")),
        ("NPLM 3 seeds stacked", make_trainers(lambda: NPLM(2000, 4, 30, 100, False), lm, sgd, [1, 2, 3],
                                               device, "true", cuda_graphs="false")),
        ("NPLM 1 seed", SeedTrainer(lambda: NPLM(2000, 4, 60, 50, True), lm, sgd, 0, device, "false")),
        ("NPLM 3 seeds stacked, CUDA graphs", make_trainers(lambda: NPLM(2000, 4, 30, 100, False), lm, sgd,
                                                            [1, 2, 3], device, "true", cuda_graphs="true")),
    ]
    out = []
    for name, trainers in cases:
        run = trainers.run_batches if hasattr(trainers, "run_batches") else trainers.seeds[0].run_batches
        run()  # warm-up: cuBLAS handles and the allocator may wait once
        torch.cuda.synchronize(device)
        try:
            torch.cuda.set_sync_debug_mode("error")
            run()
            ok, why = True, ""
        except RuntimeError as e:
            ok, why = False, str(e).splitlines()[0][:160]
        finally:
            torch.cuda.set_sync_debug_mode(0)
        out.append({"case": name, "ok": ok, "why": why})
    return out


def emit(text: str = "") -> None:
    print(text, flush=True)  # a run cut short still shows every row it measured


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny sizes: check the code path, not the speed")
    ap.add_argument("--only", choices=["graphs", "fused"], help="graphs: only the CUDA-graph rows, with "
                    "their eager and plain baselines (a few minutes at most); fused: only fused trials")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu-check: torch {torch.__version__} sees no GPU; nothing to check here "
              "(CI and the CPU tests cover device=cpu).", file=sys.stderr)
        return 3
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    everything = args.only is None
    report: dict = {"device": name, "torch": torch.__version__, "only": args.only}

    def save() -> None:
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "gpu-check.json").write_text(json.dumps(report, indent=2) + "\n")

    def table(key: str, rows: Iterable[dict]) -> None:
        header, line = TABLES[key]
        emit("\n" + header)
        report[key] = []
        for r in rows:
            report[key].append(r)
            emit(line(r))
        save()

    emit(f"# gpu-check on {name}, torch {torch.__version__}" + (f", only {args.only}" if args.only else ""))
    if args.only != "graphs":
        table("fused", gpu_fused.fused_rows(device, args.small))
    if args.only == "fused":
        return 0 if all(r["ok"] for r in report["fused"]) else 1
    if everything:
        table("parity", parity(device, args.small))
        table("no_sync", no_sync(device, args.small))
    table("graphs_parity", graphs_parity(device, ptb_like(200, 6000, 2000, seed=1).to(device), args.small))
    table("nplm", nplm_speed(device, args.small))
    if everything:
        table("dan", dan_seeds(device, args.small))
    brown = brown_task(device, args.small)
    # graphed first: the new row, and the eager one takes ~25 s an epoch on a GPU
    table("brown_mlp9", (brown_mlp9(device, brown, graphs) for graphs in ("true", "false")))
    checks = (report.get("parity", []) + report.get("no_sync", []) + report["graphs_parity"]
              + report.get("fused", []))
    return 0 if all(r["ok"] for r in checks) else 1


def parity_line(r: dict) -> str:
    return f"| {r['model']} | {r['seeds']} | {r['max_rel_diff']:.2e} | {r['same_best_epoch']} | {r['ok']} |"


def dan_line(r: dict) -> str:
    how = "stacked" if r["stacked"] and r["k"] > 1 else ("alone" if r["k"] == 1 else "one after another")
    plain = "" if r["plain_epoch_s"] is None else (
        f"{r['plain_epoch_s']:.2f} ({'plain loop' if r['k'] == 1 else 'torch.func vmap'}) "
        f"| {r['plain_over_one_seed']:.2f}x")
    return f"| {how} | {r['k']} | {r['epoch_s']:.2f} | {r['over_one_seed']:.2f}x | {plain or '– | –'} |"


TABLES = {  # report key -> (Markdown header, a row's line)
    "fused": gpu_fused.TABLE,
    "parity": ("| parity | seeds | max relative dev difference | same best epoch | ok |"
               "\n|---|---:|---:|---|---|", parity_line),
    "no_sync": ("| one epoch's batches, sync_debug_mode=error | no host-device sync |\n|---|---|",
                lambda r: f"| {r['case']} | {r['ok']} {r.get('why', '')} |"),
    "graphs_parity": ("| CUDA graphs against eager | seeds | max relative difference (dev, train loss) "
                      "| same best epoch | ok |\n|---|---:|---:|---|---|", parity_line),
    "nplm": ("| NPLM n=5 m=60 h=50 direct | batch | tokens/s | CUDA graphs tokens/s "
             "| plain PyTorch tokens/s |\n|---|---:|---:|---:|---:|",
             lambda r: f"| V={r['V']} | {r['batch']} | {r['tokens_per_s']:,.0f} "
             f"| {r['graphs_tokens_per_s']:,.0f} | {r['plain_tokens_per_s']:,.0f} |"),
    "dan": ("| DAN 3x300 epoch (train + dev) | K | s | / one seed | plain PyTorch s | plain / one seed |"
            "\n|---|---:|---:|---:|---:|---:|", dan_line),
    "brown_mlp9": ("| Brown MLP9 training epoch (n=5 h=100 m=30) | V | tokens | seeds stacked | batch | s |"
                   "\n|---|---:|---:|---:|---:|---:|",
                   lambda r: f"| synthetic, Brown's size, {'CUDA graphs' if r['cuda_graphs'] else 'eager'} "
                   f"| {r['V']:,} | {r['tokens']:,} | {r['seeds']} | {r['batch']} | {r['epoch_s']:.2f} |"),
}


if __name__ == "__main__":
    sys.exit(main())
