"""Configs become plain values here: a data task, a model builder and training settings.

Which model and which data source a config names is looked up in the registry
(models/registry.py); this module only turns the config's sections into the plain values
the registered builders take. It knows no model and no data set by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from models import registry
from models.data.cache import default_cache_dir
from models.errors import UserError
from models.registry import BuildContext, Built, DataSource, ModelSpec
from models.training import (
    SeedTrainers,
    Task,
    TrainSettings,
    check_builds,
    device_name,
    flush_denormals,
    make_trainers,
    resolve_device,
)

# train settings that say how seeds are computed, not what is computed
EXECUTION = ("vectorize_seeds", "cuda_graphs")
# models that `make train` evaluates but nothing trains over seeds
COUNTED = {"ngram": "n-gram baselines are counted, not trained over seeds: use make train MODEL=ngram."}


@dataclass
class Workload:
    task: Task  # on `device`
    build_model: Callable[[], nn.Module]  # builds on the CPU; the trainer moves it to `device`
    settings: TrainSettings
    info: dict[str, Any]  # derived values worth recording: vocabulary size, split sizes, device
    device: torch.device = torch.device("cpu")
    vectorize: str = "auto"  # train.vectorize_seeds: K seeds stacked as one model
    prepared: Any = None  # the data as prepared on the CPU, reusable by the next configuration
    spec: ModelSpec | None = None
    built: Built | None = None  # on the CPU: what the final evaluation needs of the model
    cuda_graphs: str = "auto"  # train.cuda_graphs: training steps replayed as CUDA graphs

    def trainers(self, seeds: list[int]) -> SeedTrainers:
        stack = self.spec.stack if self.spec is not None else None
        return make_trainers(self.build_model, self.task, self.settings, seeds, self.device, self.vectorize,
                             stack or _no_stacked_form, self.cuda_graphs)


def _no_stacked_form(models: list[nn.Module]) -> None:
    return None


def cache_dir(cfg: DictConfig) -> Path:
    return Path(cfg.cache_dir).expanduser() if cfg.get("cache_dir") else default_cache_dir()


def values(section: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(section, resolve=True)


def source_name(data: DictConfig) -> str:
    """The registered source a data config reads: `data.source`, else `data.corpus` (the
    language-model configs), else its name."""
    return str(data.get("source") or data.get("corpus") or data.name)


def data_source(data: DictConfig) -> DataSource:
    return registry.source(source_name(data))


def model_spec(cfg: DictConfig) -> ModelSpec:
    if cfg.model.name in COUNTED:
        raise UserError(COUNTED[cfg.model.name])
    return registry.model(str(cfg.model.name))


def metric(cfg: DictConfig) -> tuple[str, str]:
    """The dev metric of `cfg`'s model and its direction, from the registry (no data read):
    the model's, or for a counted model (not registered) its data source's task kind's."""
    if cfg.model.name in COUNTED:
        kind = registry.kind(data_source(cfg.data).kind)
        return kind.metric, kind.direction
    return registry.metric(model_spec(cfg))


def prepare_task(cfg: DictConfig) -> Any:
    """The training task (train and dev splits) of `cfg.data`, on the CPU."""
    return registry.prepare(data_source(cfg.data), values(cfg.data), cache_dir(cfg))


def train_settings(cfg: DictConfig) -> TrainSettings:
    # a null setting is the default (a key added later with a null default: what it did before)
    settings = {k: v for k, v in values(cfg.train).items() if k not in EXECUTION and v is not None}
    try:
        return TrainSettings(**settings)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad train settings: {e}.") from e


def build_workload(cfg: DictConfig, task: Any | None = None, device: str | None = None) -> Workload:
    """The workload of `cfg`; pass `task` to reuse data already prepared for the same data
    config, `device` to override `cfg.device`."""
    flush_denormals()  # before the data's first tensors (its docstring says why)
    spec = model_spec(cfg)
    registry.fits(spec, data_source(cfg.data), str(cfg.data.name))
    device = resolve_device(device or str(cfg.get("device", "cpu")))
    settings = train_settings(cfg)
    task = task if task is not None else prepare_task(cfg)
    try:  # fail before any run starts
        built = spec.build(values(cfg.model), task, BuildContext(device, settings))
        check_builds(built.model)
    except ValueError as e:
        raise UserError(f"bad {spec.name} settings: {e}.") from e
    info = {**built.info, "device": device_name(device)}
    return Workload(built.task.to(device), built.model, settings, info, device,
                    str(cfg.train.get("vectorize_seeds", "auto")).lower(), task, spec, built,
                    str(cfg.train.get("cuda_graphs", "auto")).lower())


def test_split(cfg: DictConfig, task: Any, built: Built | None = None) -> tuple[Any, dict[str, Any]]:
    """The test split of `cfg.data` encoded with the vocabulary of `task` (a workload's
    `built.task`, or a counted model's prepared task), and the extra arguments its model's
    evaluation takes. Locked to all but the final evaluation."""
    split = registry.test_split(data_source(cfg.data), values(cfg.data), cache_dir(cfg), task)
    return split, (built.test_extras(split) if built is not None and built.test_extras else {})
