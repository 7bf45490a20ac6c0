"""One training epoch of DAN 3 x 300 on SST sentences, one thread: the platform's loop
(EmbeddingBag, sparse embedding gradients, lazy L2) against a plain PyTorch loop
(padded nn.Embedding, masked mean, dense gradients) timed in the same process.

    make bench                      # SST from $SST_ROOT or ../shared/data/sst
    python -m benchmarks.dan_epoch --sst-root DIR --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.dan import DAN
from models.data.classification import prepare_classification
from models.data.sst import load_sst
from models.training import SeedTrainer, TrainSettings

SETTINGS = TrainSettings(optimizer="adagrad", lr=0.01, weight_decay=1e-5, batch_size=64)


class PlainDAN(nn.Module):
    """The textbook version: nn.Embedding over the padded batch, masked mean, dense grads."""

    def __init__(self, vocab_size: int, num_classes: int, word_dropout: float = 0.3):
        super().__init__()
        self.word_dropout = word_dropout
        self.embed = nn.Embedding(vocab_size, 300, padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 300), nn.ReLU(),
                                 nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, num_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).float()  # (B, T)
        if self.training:
            mask = mask * (torch.rand_like(mask) >= self.word_dropout).float()
            mask[mask.sum(1) == 0, 0] = 1.0  # keep a token
        summed = (self.embed(tokens) * mask.unsqueeze(-1)).sum(1)  # (B, E)
        return self.mlp(summed / mask.sum(1, keepdim=True))  # (B, C)


def plain_epoch(model: nn.Module, opt: torch.optim.Optimizer, tokens, labels, batch_size, gen):
    model.train()
    order = torch.randperm(len(labels), generator=gen)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        opt.zero_grad()
        F.cross_entropy(model(tokens[idx]), labels[idx]).backward()
        opt.step()


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = os.environ.get("SST_ROOT") or Path(__file__).resolve().parents[2] / "shared/data/sst"
    ap.add_argument("--sst-root", default=str(default_root))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = prepare_classification(load_sst(args.sst_root, binary=False, phrases=False))
    v, c = len(task.vocab), task.num_classes

    def platform_epoch(sparse: bool):
        trainer = SeedTrainer(lambda: DAN(v, c, sparse=sparse), task, SETTINGS, seed=0)
        return trainer._train_epoch

    torch.manual_seed(0)
    plain = PlainDAN(v, c)
    opt = torch.optim.Adagrad(plain.parameters(), lr=SETTINGS.lr, weight_decay=SETTINGS.weight_decay)
    gen = torch.Generator().manual_seed(0)
    tokens, labels = task.train.tokens, task.train.labels
    rows = {
        "platform (EmbeddingBag, sparse grads, lazy L2)": timed(platform_epoch(True), args.repeats),
        "platform, dense embedding grads": timed(platform_epoch(False), args.repeats),
        "plain PyTorch (padded nn.Embedding, dense)": timed(
            lambda: plain_epoch(plain, opt, tokens, labels, SETTINGS.batch_size, gen), args.repeats),
    }
    print(f"DAN 3x300 ReLU, SST fine sentences: {len(task.train)} examples, vocab {v}, "
          f"batch {SETTINGS.batch_size}, Adagrad, 1 thread, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}; median of {args.repeats} epochs")
    base = statistics.median(rows["plain PyTorch (padded nn.Embedding, dense)"])
    for name, times in rows.items():
        med = statistics.median(times)
        print(f"  {name:<50} {med * 1000:8.0f} ms/epoch  (min {min(times) * 1000:.0f})  "
              f"x{base / med:.2f} vs plain")


if __name__ == "__main__":
    main()
