"""What `make bench` measures on: the DAN and NPLM workloads (data, settings, builders),
the plain PyTorch DAN it is compared with, and the NPLM's FLOPs a token."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SST_ROOT = Path(os.environ.get("SST_ROOT") or REPO.parent / "shared" / "data" / "sst")


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
