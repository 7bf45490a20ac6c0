"""Language-model data: one token tensor per split; context windows are gathered by
index from it, with no Python work per example."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models import metrics
from models.data.classification import per_seed_cross_entropy
from models.data.text import Vocab
from models.errors import DataError
from models.registry import TaskKind, register_kind

EOS = "<eos>"
UNK = "<unk>"


def build_lm_vocab(train: list[list[str]], rare_max_count: int = 0,
                   max_size: int | None = None) -> Vocab:
    """`<eos>` and `<unk>` first, then train words by frequency. Words seen at most
    `rare_max_count` times, and those beyond `max_size`, become `<unk>` (Bengio et al.
    merge Brown words seen 3 times or fewer into one symbol)."""
    return Vocab.build(train, min_freq=rare_max_count + 1, max_size=max_size, specials=(EOS, UNK))


@dataclass
class LMSplit:
    """Every sentence followed by `<eos>`; every token is a target, and context words
    before the first token read as `<eos>`."""

    tokens: torch.Tensor  # (L,) int64
    start: torch.Tensor  # (L,) index of the first token of the sentence holding each position

    @property
    def targets(self) -> int:
        return self.tokens.numel()

    def to(self, device: torch.device | str) -> LMSplit:
        return LMSplit(self.tokens.to(device), self.start.to(device))


def encode_split(sentences: list[list[str]], vocab: Vocab) -> LMSplit:
    eos, unk = vocab.stoi[EOS], vocab.stoi[UNK]
    ids: list[int] = []
    for sent in sentences:
        ids.extend(vocab.stoi.get(w, unk) for w in sent)
        ids.append(eos)
    tokens = torch.tensor(ids, dtype=torch.long)
    idx = torch.arange(tokens.numel())
    last_eos = torch.cummax(torch.where(tokens == eos, idx, torch.full_like(idx, -1)), 0).values
    start = torch.cat([torch.zeros(1, dtype=torch.long), last_eos[:-1] + 1])  # (L,)
    return LMSplit(tokens, start)


@dataclass
class LMTask:
    """What the training loop needs of a language-modelling corpus."""

    train: LMSplit
    dev: LMSplit
    vocab: Vocab
    context: int  # n - 1
    cross_sentences: bool = True  # Bengio et al.'s windows run across sentence ends
    tokens_per_epoch: int | None = None  # None: every training position once per epoch
    mix_probs: torch.Tensor | None = None  # (dev targets,) trigram P(w_t | ...) to mix with
    mix_weight: float = 0.5
    monitor: str = metrics.PERPLEXITY
    mode: str = "min"
    cache: dict = field(default_factory=dict, repr=False)  # shared by copies made with replace()
    _offsets: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # n-1 .. 1: oldest word first
        self._offsets = torch.arange(self.context, 0, -1, device=self.train.tokens.device)

    def to(self, device: torch.device | str) -> LMTask:
        """This task with its tensors on `device` (moved once, before training)."""
        mix = None if self.mix_probs is None else self.mix_probs.to(device)
        return replace(self, train=self.train.to(device), dev=self.dev.to(device), mix_probs=mix)

    def contexts(self, split: LMSplit, pos: torch.Tensor) -> torch.Tensor:
        """(B,) target positions -> (B, n-1) context word indices."""
        idx = pos.unsqueeze(1) - self._offsets  # (B, n-1)
        ctx = split.tokens[idx.clamp(min=0)]
        # before the corpus start, and (if windows may not cross) before the sentence start
        limit = torch.zeros_like(pos) if self.cross_sentences else split.start[pos]
        return ctx.masked_fill(idx < limit.unsqueeze(1), self.vocab.stoi[EOS])

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """One epoch's training positions in the order `generator` draws them, (N,) on the
        task's device; N is the same every epoch (models/graphed.py relies on it)."""
        n = self.train.targets
        if self.tokens_per_epoch is None or self.tokens_per_epoch >= n:
            order = torch.randperm(n, generator=generator)
        else:  # a fresh random subset of the training positions every epoch
            order = torch.randint(n, (self.tokens_per_epoch,), generator=generator)
        return order.to(self.train.tokens.device, non_blocking=True)  # the copy need not wait

    def batch_at(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch of positions `pos` (B,): contexts (B, n-1), targets (B,);
        gathered on the device, in shapes that depend on B alone."""
        return self.contexts(self.train, pos), self.train.tokens[pos]

    def train_batches(self, batch_size: int, generator: torch.Generator
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.epoch_order(generator)
        for i in range(0, len(order), batch_size):
            yield self.batch_at(order[i:i + batch_size])

    @staticmethod
    def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ctx, target = batch
        return F.cross_entropy(model(ctx), target)

    @staticmethod
    def stack_batches(batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """K seeds' batches as one: contexts (K, B, n-1), targets (K, B)."""
        return torch.stack([c for c, _ in batches]), torch.stack([t for _, t in batches])

    @staticmethod
    def stack_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Each seed's mean loss over its batch, (K,)."""
        ctx, target = batch
        return per_seed_cross_entropy(model(ctx), target)

    @torch.no_grad()
    def target_log_probs(self, model: nn.Module, split: LMSplit, batch_size: int = 4096) -> torch.Tensor:
        """log P(w_t | context) of every target of `split`, (targets,)."""
        was_training = model.training
        model.eval()
        out = []
        for i in range(0, split.tokens.numel(), batch_size):
            pos = torch.arange(i, min(i + batch_size, split.tokens.numel()), device=split.tokens.device)
            logp = torch.log_softmax(model(self.contexts(split, pos)), dim=-1)  # (B, V)
            out.append(logp.gather(1, split.tokens[pos].unsqueeze(1)).squeeze(1))
        model.train(was_training)
        return torch.cat(out)

    def evaluate(self, model: nn.Module, split: LMSplit | None = None,
                 mix_probs: torch.Tensor | None = None) -> dict[str, float]:
        """Perplexity = exp(mean negative log-likelihood per token). With a trigram to mix
        with, `perplexity` is that of the 50/50 mixture (Bengio et al.'s "mix") and
        `nplm_perplexity` the network's own."""
        split = self.dev if split is None else split
        mix = self.mix_probs if split is self.dev and mix_probs is None else mix_probs
        logp = self.target_log_probs(model, split)
        nplm = perplexity(-logp.double().mean().item())
        if mix is None:
            return {metrics.PERPLEXITY: nplm}
        p = self.mix_weight * logp.double().exp() + (1 - self.mix_weight) * mix.double()
        return {metrics.PERPLEXITY: perplexity(-p.log().mean().item()), "nplm_perplexity": nplm}


def perplexity(mean_nll: float) -> float:
    """exp(mean negative log-likelihood per token); inf (not an OverflowError) for a
    diverged model, which the training loop then reports as non-finite."""
    return math.exp(mean_nll) if mean_nll < 700 else math.inf


def prepare_lm(data: Mapping[str, Any], splits: tuple[list[list[str]], list[list[str]]]) -> LMTask:
    """Train and valid token tensors of a corpus, with its vocabulary (context set per model)."""
    train, valid = splits
    counted = {"train": train, "train_valid": train + valid}.get(str(data.get("vocab_from", "train")))
    if counted is None:
        raise DataError(f"data.vocab_from={data.get('vocab_from')!r}: train or train_valid (never test).")
    vocab = build_lm_vocab(counted, int(data.get("rare_max_count", 0)), data.get("max_vocab"))
    return LMTask(encode_split(train, vocab), encode_split(valid, vocab), vocab, context=1,
                  cross_sentences=bool(data.get("cross_sentences", True)),
                  tokens_per_epoch=data.get("tokens_per_epoch"))


def encode_test(task: LMTask, sentences: list[list[str]], data: Mapping[str, Any]) -> LMSplit:
    if not sentences:
        raise DataError(f"no test sentences for data={data.get('name')}: set data.test=<file>.")
    return encode_split(sentences, task.vocab)


register_kind(TaskKind(name="lm", metric=metrics.PERPLEXITY, direction="minimize",
                       prepare=prepare_lm, encode_test=encode_test))
