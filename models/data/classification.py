"""Text classification data prepared once into padded tensors and batched by index."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from models import metrics
from models.data.splits import Example, TextSplits
from models.data.text import UNK, Vocab
from models.registry import TaskKind, register_kind

StackedBatch = tuple[torch.Tensor, torch.Tensor, list[int]]  # tokens (K, B, T), labels (K, B), widths


def per_seed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits (K, B, C), targets (K, B) -> each seed's mean cross-entropy, (K,)."""
    k, b, c = logits.shape
    losses = F.cross_entropy(logits.reshape(k * b, c), targets.reshape(k * b), reduction="none")
    return losses.view(k, b).mean(1)


@dataclass
class ClassificationSplit:
    tokens: torch.Tensor  # (N, T) int64, right-padded with 0
    lengths: torch.Tensor  # (N,)
    labels: torch.Tensor  # (N,)
    host_lengths: torch.Tensor | None = None  # `lengths` on the CPU where they live on a GPU

    def __len__(self) -> int:
        return self.labels.numel()

    def to(self, device: torch.device | str) -> ClassificationSplit:
        return ClassificationSplit(self.tokens.to(device), self.lengths.to(device), self.labels.to(device),
                                   self.lengths_on_host())

    def lengths_on_host(self) -> torch.Tensor:
        return self.host_lengths if self.host_lengths is not None else self.lengths.cpu()

    def batch(self, idx: torch.Tensor, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows `idx`, trimmed to the longest of them (`width`, where the caller knows it)."""
        if width is None:
            width = int(self.lengths[idx].max())
        return self.tokens[idx, :width], self.labels[idx]  # (B, T'), (B,)


def tensorize(examples: list[Example], vocab: Vocab, lowercase: bool) -> ClassificationSplit:
    rows = []
    for ex in examples:
        toks = [t.lower() for t in ex.tokens] if lowercase else ex.tokens
        rows.append(vocab.encode(toks) or [vocab.stoi[UNK]])  # an empty text averages `<unk>`
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    tokens = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    labels = torch.tensor([ex.label for ex in examples], dtype=torch.long)
    return ClassificationSplit(tokens, lengths, labels)


@dataclass
class ClassificationTask:
    """What the training loop needs of a classification data set."""

    train: ClassificationSplit
    dev: ClassificationSplit
    vocab: Vocab
    label_names: tuple[str, ...]
    pretrained_words: str | None = None  # whose words joined the training vocabulary: glove or None
    monitor: str = metrics.ACCURACY
    mode: str = "max"

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.train), generator=generator)
        # every batch's width, read on the host once an epoch: no batch waits for the device
        n, batches = len(order), -(-len(order) // batch_size)
        lengths = F.pad(self.train.lengths_on_host()[order], (0, batches * batch_size - n))
        widths = lengths.view(batches, batch_size).amax(1).tolist()
        order = order.to(self.train.labels.device, non_blocking=True)  # the copy need not wait
        for b, start in enumerate(range(0, n, batch_size)):
            yield self.train.batch(order[start:start + batch_size], widths[b])

    def to(self, device: torch.device | str) -> ClassificationTask:
        """This task with its tensors on `device` (moved once, before training)."""
        return replace(self, train=self.train.to(device), dev=self.dev.to(device))

    @staticmethod
    def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        tokens, labels = batch
        return F.cross_entropy(model(tokens), labels)

    @staticmethod
    def stack_batches(batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> StackedBatch:
        """K seeds' batches (each trimmed to its longest row) as one (K, B, T) batch."""
        widths = [tokens.shape[1] for tokens, _ in batches]
        width = max(widths)
        tokens = torch.stack([F.pad(t, (0, width - t.shape[1])) for t, _ in batches])  # pad is 0
        return tokens, torch.stack([labels for _, labels in batches]), widths

    @staticmethod
    def stack_loss(model: nn.Module, batch: StackedBatch) -> torch.Tensor:
        """Each seed's mean loss over its batch, (K,)."""
        tokens, labels, widths = batch
        return per_seed_cross_entropy(model(tokens, widths), labels)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: ClassificationSplit | None = None,
                 batch_size: int = 4096) -> dict[str, float]:
        """Accuracy and mean cross-entropy of `model` on `split` (dev by default)."""
        split = self.dev if split is None else split
        was_training = model.training
        model.eval()
        correct, total_loss = 0, 0.0
        for start in range(0, len(split), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(split)), device=split.labels.device)
            tokens, labels = split.batch(idx)
            logits = model(tokens)  # (B, C)
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
        model.train(was_training)
        return {metrics.ACCURACY: correct / len(split), metrics.LOSS: total_loss / len(split)}


def prepare_classification(
    splits: TextSplits, lowercase: bool = True, min_freq: int = 1, max_vocab: int | None = None,
    pretrained_words: str | None = None,
) -> ClassificationTask:
    """Vocabulary from the training split only, then every split tensorised once. With
    `pretrained_words="glove"` GloVe 6B's 400,000 words join it after the training words, as
    a model with pretrained vectors expects: a dev or test word the training split lacks
    then keeps its GloVe vector instead of becoming `<unk>` (no dev or test text is read to
    build the vocabulary, and no gradient reaches those rows while training)."""
    lower = (lambda ts: [t.lower() for t in ts]) if lowercase else (lambda ts: ts)
    vocab = Vocab.build((lower(ex.tokens) for ex in splits.train), min_freq, max_vocab)
    if pretrained_words == "glove":
        from models.embeddings import glove_words
        vocab = vocab.with_words(glove_words())
    return ClassificationTask(
        train=tensorize(splits.train, vocab, lowercase),
        dev=tensorize(splits.dev, vocab, lowercase),
        vocab=vocab,
        label_names=splits.label_names,
        pretrained_words=pretrained_words,
    )


register_kind(TaskKind(
    name="classification", metric=metrics.ACCURACY, direction="maximize",
    prepare=lambda data, splits: prepare_classification(
        splits, bool(data.get("lowercase", True)), int(data.get("min_freq", 1)), data.get("max_vocab"),
        data.get("pretrained_words")),
    encode_test=lambda task, examples, data: tensorize(examples, task.vocab,
                                                       bool(data.get("lowercase", True))),
))
