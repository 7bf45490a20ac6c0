"""NPLM training throughput (tokens/s) and achieved GFLOP/s, against a plain torch matmul
of similar shape timed in the same run.

FLOPs per token of a training step: forward multiply-adds of H ((n-1)m x h), U (h x V) and
W ((n-1)m x V), times 2 for multiply+add, times 3 for forward + backward (grad of inputs
and of weights). The reference is the output layer's matmul alone, (B x (h+(n-1)m)) @
((h+(n-1)m) x V), forward only: the best this machine does on that shape.

    make bench-nplm                                   # PTB, V=10,000 and the CPU-sized V=2,000
    python -m benchmarks.nplm_throughput --steps 200 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from models.data.cache import default_cache_dir
from models.data.corpora import load_corpus
from models.data.lm import LMTask, build_lm_vocab, encode_split
from models.nplm import NPLM
from models.training import SeedTrainer, TrainSettings


def training_flops(n: int, m: int, h: int, V: int, direct: bool) -> float:
    macs = (n - 1) * m * h + h * V + ((n - 1) * m * V if direct else 0)
    return 6.0 * macs


def bench(train_sents, V: int, n: int, m: int, h: int, direct: bool, batch: int, steps: int):
    vocab = build_lm_vocab(train_sents, max_size=V)
    split = encode_split(train_sents, vocab)
    task = LMTask(split, split, vocab, context=n - 1, tokens_per_epoch=batch * steps)
    settings = TrainSettings(optimizer="sgd", lr=0.5, batch_size=batch, weight_decay=1e-4,
                             decay_biases=False)
    trainer = SeedTrainer(lambda: NPLM(len(vocab), n - 1, m, h, direct), task, settings, seed=0)
    trainer._train_epoch()  # warm-up
    start = time.perf_counter()
    trainer._train_epoch()
    secs = time.perf_counter() - start
    tokens = batch * steps
    flops = training_flops(n, m, h, len(vocab), direct) * tokens

    k = h + (n - 1) * m if direct else h
    a, w = torch.randn(batch, k), torch.randn(k, len(vocab))
    for _ in range(5):
        a @ w
    start = time.perf_counter()
    reps = 200
    for _ in range(reps):
        a @ w
    mm_secs = time.perf_counter() - start
    mm_gflops = 2.0 * batch * k * len(vocab) * reps / mm_secs / 1e9
    return tokens / secs, flops / secs / 1e9, mm_gflops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="0: torch's default")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train, _ = load_corpus("ptb", default_cache_dir())
    print(f"NPLM training steps on PTB, batch {args.batch}, {args.steps} steps, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"  {'V':>6} {'n':>2} {'m':>4} {'h':>4} {'direct':>6}  {'tokens/s':>9}  {'GFLOP/s':>8}"
          f"  {'matmul GFLOP/s':>14}  {'share':>6}")
    for V, n, m, h, direct in [(10_000, 5, 60, 50, True), (10_000, 5, 30, 100, False),
                               (2_000, 5, 60, 50, True)]:
        tps, gf, mm = bench(train, V, n, m, h, direct, args.batch, args.steps)
        print(f"  {V:>6} {n:>2} {m:>4} {h:>4} {str(direct):>6}  {tps:>9.0f}  {gf:>8.1f}"
              f"  {mm:>14.1f}  {gf / mm:>6.0%}")


if __name__ == "__main__":
    main()
