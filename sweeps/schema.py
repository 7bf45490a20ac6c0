"""The type, range and allowed values of every config value, checked when a config is
composed (before any study, run or download exists). Unknown keys are already refused by
Hydra's struct mode; this refuses known keys with impossible values, in one sentence."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from models.errors import UserError

OPTIMIZERS = ("adagrad", "sgd", "adam", "rmsprop")  # models.training.OPTIMIZERS, without torch

Check = Callable[[Any], str | None]  # a value -> why it is wrong, or None


def integer(low: int, optional: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            return f"a whole number >= {low}" + (" (or null)" if optional else "")
        return None
    return check


def number(low: float = -math.inf, high: float = math.inf, low_open: bool = False,
           high_open: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
              and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))
        if ok:
            return None
        return (f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
                .replace("-inf", "-∞").replace("inf", "∞"))
    return check


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def one_of(*choices: Any) -> Check:
    return lambda v: None if v in choices else f"one of {', '.join(map(str, choices))}"


def url(v: Any) -> str | None:
    return None if v is None or (isinstance(v, str) and "://" in v) else "a URL such as scheme://..."


def device(v: Any) -> str | None:
    ok = v in ("auto", "cpu", "cuda") or (isinstance(v, str) and v.startswith("cuda:") and v[5:].isdigit())
    return None if ok else "auto, cpu, cuda or cuda:N"


PROBABILITY = number(0.0, 1.0, high_open=True)
RULES: dict[str, Check] = {
    "seeds": integer(1), "threads": integer(1, optional=True), "device": device,
    "train.vectorize_seeds": one_of("auto", True, False),
    "sweep.trials": integer(1), "sweep.workers": integer(1), "sweep.keep_weights": integer(0),
    "sweep.show_top": integer(0), "sweep.new": boolean,
    "train.optimizer": one_of(*OPTIMIZERS), "train.lr": number(0, low_open=True),
    "train.weight_decay": number(0), "train.momentum": number(0, 1, high_open=True),
    "train.batch_size": integer(1), "train.max_epochs": integer(1), "train.patience": integer(1),
    "train.min_delta": number(0), "train.lr_decay": number(0), "train.decay_biases": boolean,
    "data.lowercase": boolean, "data.min_freq": integer(1), "data.max_vocab": integer(2, optional=True),
    "data.split_seed": integer(0), "data.phrases": boolean, "data.rare_max_count": integer(0),
    "data.tokens_per_epoch": integer(1, optional=True), "data.cross_sentences": boolean,
    "pruner.patience": integer(0), "pruner.min_delta": number(0), "pruner.n_startup_trials": integer(0),
    "pruner.n_warmup_steps": integer(0), "pruner.prune_improving": boolean,
    "sampler.seed": integer(0), "sampler.n_startup_trials": integer(1), "sampler.multivariate": boolean,
    "sampler.shuffle": boolean, "storage.url": url, "tracking.uri": url,
}
MODEL_RULES: dict[str, dict[str, Check]] = {
    "dan": {"embed_dim": integer(1), "num_layers": integer(0), "hidden_dim": integer(1),
            "activation": one_of("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu"),
            "word_dropout": PROBABILITY, "dropout": PROBABILITY,
            "embeddings": one_of("random", "glove"), "freeze_embeddings": boolean},
    "nplm": {"n": integer(2), "embed_dim": integer(1), "hidden_dim": integer(0), "direct": boolean,
             "mix": boolean, "mix_weight": number(0, 1), "dropout": PROBABILITY, "modern": boolean},
}
NOT_SEARCHABLE = ("seeds", "seed_list", "sweep.", "sampler.", "pruner.", "storage.", "tracking.",
                  "threads", "cache_dir", "device", "train.vectorize_seeds")


def rule(key: str, model: str | None) -> Check | None:
    if key.startswith("model."):
        return MODEL_RULES.get(model or "", {}).get(key.removeprefix("model."))
    return RULES.get(key)


def check_value(key: str, value: Any, model: str | None) -> None:
    check = rule(key, model)
    if check is not None and (why := check(value)) is not None:
        raise UserError(f"{key} must be {why}, not {value!r}.")


def check_config(cfg: DictConfig) -> None:
    """Every known value of `cfg` within its rule, and the rules between values."""
    model = OmegaConf.select(cfg, "model.name")
    for key in [*RULES, *(f"model.{k}" for k in MODEL_RULES.get(model, {}))]:
        value = OmegaConf.select(cfg, key, default="<absent>")
        if value != "<absent>":
            check_value(key, value, model)
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
