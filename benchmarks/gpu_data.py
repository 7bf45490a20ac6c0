"""Synthetic data of the real sizes for `make gpu-check` (torch only), and its timer."""

from __future__ import annotations

import statistics

import torch

from benchmarks.suite_timing import timed  # stdlib-only at import: fine on a torch-only machine
from models.data.classification import ClassificationSplit, ClassificationTask
from models.data.lm import LMTask, encode_split
from models.data.text import Vocab


def median_time(fn, device: torch.device, repeats: int = 3) -> float:
    """Median wall time of `fn` after one warm-up call (kernels, allocator, cuBLAS handles)."""
    return statistics.median(timed(fn, repeats, device))


def sst_like(n_train: int, n_dev: int, vocab: int, classes: int = 5, seed: int = 0) -> ClassificationTask:
    """Sentences of 2-50 tokens (mean ~19, as SST's), Zipf-like word ids, random labels."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        lengths = torch.clamp(torch.poisson(torch.full((n,), 18.0), generator=g).long(), 2, 50)
        ranks = torch.rand(n, int(lengths.max()), generator=g)
        words = (2 + (vocab - 2) ** ranks).long().clamp(max=vocab - 1)  # log-uniform: Zipf-like
        mask = torch.arange(words.shape[1]) < lengths.unsqueeze(1)
        return ClassificationSplit(words * mask, lengths, torch.randint(classes, (n,), generator=g))
    names = [f"w{i}" for i in range(vocab)]
    return ClassificationTask(split(n_train), split(n_dev), Vocab(names),
                              tuple(map(str, range(classes))))


def ptb_like(vocab: int, tokens: int, tokens_per_epoch: int, seed: int = 0) -> LMTask:
    g = torch.Generator().manual_seed(seed)
    ranks = torch.rand(tokens, generator=g)
    ids = (2 + (vocab - 2) ** ranks).long().clamp(max=vocab - 1).tolist()
    names = ["<eos>", "<unk>", *(f"w{i}" for i in range(2, vocab))]
    sents = [[names[i] for i in ids[j:j + 20]] for j in range(0, tokens, 20)]
    v = Vocab(names)
    train = encode_split(sents, v)
    dev = encode_split(sents[: max(1, len(sents) // 20)], v)
    return LMTask(train, dev, v, context=4, tokens_per_epoch=tokens_per_epoch)
