"""The type, range and allowed values of every config value, checked when a config is
composed (before any study, run or download exists). Unknown keys are already refused by
Hydra's struct mode; this refuses known keys with impossible values, in one sentence."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from models.checks import Check, boolean, integer, number, one_of
from models.errors import UserError

OPTIMIZERS = ("adagrad", "sgd", "adam", "rmsprop")  # models.training.OPTIMIZERS, without torch


def url(v: Any) -> str | None:
    return None if v is None or (isinstance(v, str) and "://" in v) else "a URL such as scheme://..."


def env_name(v: Any) -> str | None:
    ok = v is None or (isinstance(v, str) and v.replace("_", "a").isalnum() and not v[0].isdigit())
    return None if ok else "the name of an environment variable, e.g. SEEDSWEEP_DB_URL"


def device(v: Any) -> str | None:
    ok = v in ("auto", "cpu", "cuda") or (isinstance(v, str) and v.startswith("cuda:") and v[5:].isdigit())
    return None if ok else "auto, cpu, cuda or cuda:N"


def workers(v: Any) -> str | None:
    return None if v == "auto" or integer(1)(v) is None else "auto or a whole number >= 1"


RULES: dict[str, Check] = {
    "seeds": integer(1), "threads": integer(1, optional=True), "device": device,
    "train.vectorize_seeds": one_of("auto", True, False), "train.cuda_graphs": one_of("auto", True, False),
    "sweep.trials": integer(1), "sweep.workers": workers, "sweep.keep_weights": integer(0),
    "sweep.show_top": integer(0), "sweep.new": boolean, "sweep.min_seeds": integer(1),
    "sweep.seeds_policy": one_of("fixed", "race"), "sweep.race_alpha": number(0, 0.5, low_open=True),
    "sweep.race_delta": number(0, 2),
    "train.optimizer": one_of(*OPTIMIZERS), "train.lr": number(0, low_open=True),
    "train.weight_decay": number(0), "train.momentum": number(0, 1, high_open=True),
    "train.batch_size": integer(1), "train.max_epochs": integer(1), "train.patience": integer(1),
    "train.min_delta": number(0), "train.lr_decay": number(0), "train.decay_biases": boolean,
    "train.adagrad_eps": number(0, low_open=True), "train.l2_every_row": one_of(None, True, False),
    "data.lowercase": boolean, "data.min_freq": integer(1), "data.max_vocab": integer(2, optional=True),
    "data.split_seed": integer(0), "data.phrases": boolean, "data.rare_max_count": integer(0),
    "data.vocab_from": one_of("train", "train_valid"),
    "data.pretrained_words": one_of(None, "glove"), "data.marks": one_of("sentences", "paragraphs"),
    "data.tokens_per_epoch": integer(1, optional=True), "data.cross_sentences": boolean,
    "pruner.patience": integer(0), "pruner.min_delta": number(0), "pruner.n_startup_trials": integer(0),
    "pruner.n_warmup_steps": integer(0), "pruner.prune_improving": boolean,
    "sampler.seed": integer(0), "sampler.n_startup_trials": integer(1), "sampler.multivariate": boolean,
    "sampler.shuffle": boolean, "storage.url": url, "tracking.uri": url,
    "storage.url_env": env_name, "storage.heartbeat_interval": integer(1, optional=True),
    "storage.grace_period": integer(1, optional=True), "storage.pool_size": integer(1),
}
NOT_SEARCHABLE = ("seeds", "seed_list", "sweep.", "sampler.", "pruner.", "storage.", "tracking.",
                  "threads", "cache_dir", "device", "train.vectorize_seeds",
                  "train.cuda_graphs")


def model_rules(model: str | None) -> dict[str, Check]:
    """The rules of `model.<key>` that the model registered (models/registry.py)."""
    from models import registry  # imports the registered models: not needed to read a config
    spec = registry.model_specs().get(model or "")
    return dict(spec.checks) if spec is not None else {}


def rule(key: str, model: str | None) -> Check | None:
    if key.startswith("model."):
        return model_rules(model).get(key.removeprefix("model."))
    return RULES.get(key)


def check_value(key: str, value: Any, model: str | None) -> None:
    check = rule(key, model)
    if check is not None and (why := check(value)) is not None:
        raise UserError(f"{key} must be {why}, not {value!r}.")


def check_config(cfg: DictConfig) -> None:
    """Every known value of `cfg` within its rule, and the rules between values."""
    model = OmegaConf.select(cfg, "model.name")
    for key in [*RULES, *(f"model.{k}" for k in model_rules(model))]:
        value = OmegaConf.select(cfg, key, default="<absent>")
        if value != "<absent>":
            check_value(key, value, model)
    if model and cfg.get("train") is None:
        raise UserError(f"model {model} has no training settings: add a train: section to "
                        f"conf/model/{model}.yaml, or a conf/train/{model}.yaml.")
    train = cfg.get("train")
    if train is not None and train.get("momentum") and train.get("optimizer") not in ("sgd", "rmsprop"):
        raise UserError(f"train.momentum={train.momentum} has no effect with {train.optimizer}: it "
                        "applies to sgd and rmsprop only; set train.momentum=0.")


def check_searchable(key: str, values: list[Any], model: str | None) -> None:
    """A search-space entry may name only what a trial may vary, within its rule."""
    if key.startswith(NOT_SEARCHABLE):
        raise UserError(f"search space entry {key!r}: {key.split('.')[0]} is not searched"
                        + (" (seeds are averaged over, never tuned: set SEEDS=K)"
                           if key.startswith("seed") else "") + ".")
    for v in values:
        check = rule(key, model)
        if check is not None and (why := check(v)) is not None:
            raise UserError(f"search space entry {key!r}: {v!r} is not {why}.")
