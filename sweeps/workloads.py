"""Configs become plain values here: a data task, a model builder and training settings.

The only place that knows how a config section maps onto `models/` constructors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from models.dan import DAN
from models.data.cache import default_cache_dir
from models.data.classification import ClassificationTask, prepare_classification
from models.data.csv_text import load_csv
from models.data.rt import load_rt
from models.data.splits import TextSplits
from models.data.sst import load_sst
from models.errors import UserError
from models.training import Task, TrainSettings
from sweeps.config import choices


@dataclass
class Workload:
    task: Task
    build_model: Callable[[], nn.Module]
    settings: TrainSettings
    info: dict[str, Any]  # derived values worth recording: vocabulary size, split sizes


def cache_dir(cfg: DictConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.get("cache_dir") else default_cache_dir()


def load_text_splits(data: DictConfig, cache: Path) -> TextSplits:
    """Train and dev examples of a classification data set."""
    if data.name == "rt":
        return load_rt(cache, int(data.split_seed), tuple(data.fractions))
    if data.name in ("sst", "sst2"):
        return load_sst(data.root, binary=data.name == "sst2", phrases=bool(data.phrases))
    if data.name == "csv":
        return load_csv(data.path, data.train, data.dev, data.text_column, data.label_column,
                        data.split_column)
    raise UserError(f"unknown data set {data.name!r}; choose one of: {', '.join(choices('data'))}.")


def prepare_task(data: DictConfig, cache: Path) -> ClassificationTask:
    splits = load_text_splits(data, cache)
    return prepare_classification(splits, bool(data.lowercase), int(data.min_freq),
                                  data.max_vocab)


def train_settings(cfg: DictConfig) -> TrainSettings:
    try:
        return TrainSettings(**OmegaConf.to_container(cfg.train))
    except (TypeError, ValueError) as e:
        raise UserError(f"bad train settings: {e}.") from e


def dan_workload(cfg: DictConfig, task: ClassificationTask) -> Workload:
    m = cfg.model
    settings = train_settings(cfg)
    hidden = list(m.hidden_dims) if m.hidden_dims is not None else [m.hidden_dim] * m.num_layers
    embeddings = None
    if m.embeddings == "glove":
        from models.embeddings import glove_50d
        embeddings, coverage = glove_50d(task.vocab.itos)
        if m.embed_dim != embeddings.shape[1]:
            raise UserError(f"GloVe 6B vectors are {embeddings.shape[1]}-d: set "
                            f"model.embed_dim={embeddings.shape[1]}.")
    elif m.embeddings != "random":
        raise UserError(f"model.embeddings must be random or glove, not {m.embeddings!r}.")
    kwargs = dict(
        vocab_size=len(task.vocab), num_classes=task.num_classes, embed_dim=int(m.embed_dim),
        hidden_dims=hidden, activation=m.activation, word_dropout=float(m.word_dropout),
        dropout=float(m.dropout), padding_idx=task.vocab.pad_index, sparse=settings.sparse_ok,
        embeddings=embeddings, freeze_embeddings=bool(m.freeze_embeddings),
    )
    try:  # fail before any run starts; the throwaway model leaves the global RNG untouched
        with torch.random.fork_rng(devices=[]):
            DAN(**kwargs)
    except ValueError as e:
        raise UserError(f"bad DAN settings: {e}.") from e
    info = {"vocab_size": len(task.vocab), "num_classes": task.num_classes,
            "n_train": len(task.train), "n_dev": len(task.dev),
            "sparse_embeddings": settings.sparse_ok}
    if embeddings is not None:
        info["glove_coverage"] = round(coverage, 4)
    return Workload(task, lambda: DAN(**kwargs), settings, info)


def build_workload(cfg: DictConfig, task: Any | None = None) -> Workload:
    """The workload of `cfg`; pass `task` to reuse data already prepared for the same data config."""
    if cfg.model.name == "dan":
        return dan_workload(cfg, task or prepare_task(cfg.data, cache_dir(cfg)))
    raise UserError(f"unknown model {cfg.model.name!r}; choose one of: {', '.join(choices('model'))}.")
