"""Configs become plain values here: a data task, a model builder and training settings.

The only place that knows how a config section maps onto `models/` constructors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from models import metrics
from models.dan import DAN
from models.data.cache import default_cache_dir
from models.data.classification import ClassificationTask, prepare_classification
from models.data.corpora import load_corpus
from models.data.csv_text import load_csv
from models.data.lm import EOS, LMTask, build_lm_vocab, encode_split
from models.data.rt import load_rt
from models.data.splits import TextSplits
from models.data.sst import load_sst
from models.errors import UserError
from models.ngram import Trigram
from models.nplm import NPLM
from models.training import SeedTrainers, Task, TrainSettings, device_name, make_trainers, resolve_device
from sweeps.config import choices


@dataclass
class Workload:
    task: Task  # on `device`
    build_model: Callable[[], nn.Module]  # builds on the CPU; the trainer moves it to `device`
    settings: TrainSettings
    info: dict[str, Any]  # derived values worth recording: vocabulary size, split sizes, device
    device: torch.device = torch.device("cpu")
    vectorize: str = "auto"  # train.vectorize_seeds: K seeds stacked as one model
    prepared: Any = None  # the data as prepared on the CPU, reusable by the next configuration

    def trainers(self, seeds: list[int]) -> SeedTrainers:
        return make_trainers(self.build_model, self.task, self.settings, seeds, self.device, self.vectorize)


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
    if data.get("corpus"):
        raise UserError(f"DAN classifies sentences: data={data.name} is a language-model corpus; "
                        f"choose one of rt, sst, sst2, csv.")
    splits = load_text_splits(data, cache)
    return prepare_classification(splits, bool(data.lowercase), int(data.min_freq),
                                  data.max_vocab)


def train_settings(cfg: DictConfig) -> TrainSettings:
    values = {k: v for k, v in OmegaConf.to_container(cfg.train).items() if k not in EXECUTION}
    try:
        return TrainSettings(**values)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad train settings: {e}.") from e


# train settings that say how seeds are computed, not what is computed
EXECUTION = ("vectorize_seeds",)


def dan_workload(cfg: DictConfig, task: ClassificationTask, device: torch.device) -> Workload:
    m = cfg.model
    settings = train_settings(cfg)
    sparse = settings.sparse_ok and device.type == "cpu"  # sparse embedding updates pay on the CPU
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
        dropout=float(m.dropout), padding_idx=task.vocab.pad_index, sparse=sparse,
        embeddings=embeddings, freeze_embeddings=bool(m.freeze_embeddings),
    )
    try:  # fail before any run starts; the throwaway model leaves the global RNG untouched
        with torch.random.fork_rng(devices=[]):
            DAN(**kwargs)
    except ValueError as e:
        raise UserError(f"bad DAN settings: {e}.") from e
    info = {"vocab_size": len(task.vocab), "num_classes": task.num_classes,
            "n_train": len(task.train), "n_dev": len(task.dev),
            "sparse_embeddings": sparse}
    if embeddings is not None:
        info["glove_coverage"] = round(coverage, 4)
    return Workload(task.to(device), lambda: DAN(**kwargs), settings, info, device, prepared=task)


LM_DATA = ("ptb", "brown", "text")


def corpus_files(data: DictConfig) -> dict[str, str | None]:
    return {s: data.get(s) for s in ("train", "valid", "test")}


def prepare_lm(data: DictConfig, cache: Path) -> LMTask:
    """Train and valid token tensors of a corpus, with its vocabulary (context set per model)."""
    if data.get("corpus") not in LM_DATA:
        raise UserError(f"language models need a corpus (data=ptb, ptb_cpu, brown or text), "
                        f"not data={data.name}.")
    train, valid = load_corpus(data.corpus, cache, bool(data.lowercase), corpus_files(data))
    vocab = build_lm_vocab(train, int(data.rare_max_count), data.max_vocab)
    return LMTask(encode_split(train, vocab), encode_split(valid, vocab), vocab, context=1,
                  cross_sentences=bool(data.cross_sentences), tokens_per_epoch=data.tokens_per_epoch)


def trigram(task: LMTask) -> Trigram:
    """The interpolated trigram of `task`'s train split, weights fit on valid (cached)."""
    if "trigram" not in task.cache:
        eos = task.vocab.stoi[EOS]
        model = Trigram(task.train.tokens.numpy(), len(task.vocab), "interpolated")
        model.fit_lambdas(task.dev.tokens.numpy(), pad=eos)
        task.cache["trigram"] = model
    return task.cache["trigram"]


def nplm_workload(cfg: DictConfig, base: LMTask, device: torch.device) -> Workload:
    m = cfg.model
    settings = train_settings(cfg)
    mix = None
    if m.mix:
        if "trigram_dev" not in base.cache:
            probs = trigram(base).target_probs(base.dev.tokens.numpy(), pad=base.vocab.stoi[EOS])
            base.cache["trigram_dev"] = torch.from_numpy(probs)
        mix = base.cache["trigram_dev"]
    task = replace(base, context=int(m.n) - 1, mix_probs=mix, mix_weight=float(m.mix_weight))
    kwargs = dict(vocab_size=len(task.vocab), context=int(m.n) - 1, embed_dim=int(m.embed_dim),
                  hidden_dim=int(m.hidden_dim), direct=bool(m.direct), dropout=float(m.dropout),
                  modern=bool(m.modern))
    try:
        with torch.random.fork_rng(devices=[]):
            NPLM(**kwargs)
    except ValueError as e:
        raise UserError(f"bad NPLM settings: {e}.") from e
    info = {"vocab_size": len(task.vocab), "train_tokens": task.train.targets,
            "valid_tokens": task.dev.targets}
    return Workload(task.to(device), lambda: NPLM(**kwargs), settings, info, device, prepared=base)


def ngram_perplexities(task: LMTask, kind: str) -> dict[str, float]:
    """Valid perplexity of the interpolated trigram and/or Kneser-Ney, in the NPLM's tokens."""
    kinds = ["interpolated", "kneser_ney"] if kind == "both" else [kind]
    if any(k not in ("interpolated", "kneser_ney") for k in kinds):
        raise UserError(f"model.kind must be interpolated, kneser_ney or both, not {kind!r}.")
    eos = task.vocab.stoi[EOS]
    valid = task.dev.tokens.numpy()
    out = {}
    for k in kinds:
        model = trigram(task) if k == "interpolated" else Trigram(task.train.tokens.numpy(),
                                                                   len(task.vocab), k)
        out[metrics.dev(f"{k}_perplexity")] = model.perplexity(valid, pad=eos)
        if k == "interpolated":
            out |= {f"lambda_{order}": float(v) for order, v in
                    zip(("trigram", "bigram", "unigram", "uniform"), model.lambdas)}
    out[metrics.dev(metrics.PERPLEXITY)] = out[metrics.dev(f"{kinds[0]}_perplexity")]
    return out


def build_workload(cfg: DictConfig, task: Any | None = None, device: str | None = None) -> Workload:
    """The workload of `cfg`; pass `task` to reuse data already prepared for the same data
    config, `device` to override `cfg.device`."""
    device = resolve_device(device or str(cfg.get("device", "cpu")))
    if cfg.model.name == "dan":
        workload = dan_workload(cfg, task or prepare_task(cfg.data, cache_dir(cfg)), device)
    elif cfg.model.name == "nplm":
        workload = nplm_workload(cfg, task or prepare_lm(cfg.data, cache_dir(cfg)), device)
    elif cfg.model.name == "ngram":
        raise UserError("n-gram baselines are counted, not trained over seeds: use make train MODEL=ngram.")
    else:
        raise UserError(f"unknown model {cfg.model.name!r}; choose one of: {', '.join(choices('model'))}.")
    workload.vectorize = str(cfg.train.get("vectorize_seeds", "auto")).lower()
    workload.info["device"] = device_name(device)
    return workload
