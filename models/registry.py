"""What the platform can train: task kinds, data sources and models, each registered once.

A *task kind* ("classification", "lm") says how a source's raw splits become a training
task, how a test split is encoded with the training vocabulary, and which dev metric a
model of that kind is judged by. A *data source* (rt, sst, ptb, ...) returns raw train
and dev splits from plain config values, and a test split that only the final evaluation
may read: the registry puts every source's `test` behind the lockbox when it is
registered, so no source can forget it. A *model* says which kind it fits, how it is built from plain
values, its metric and direction, the rules of its config values and, if it has one,
its stacked form (K seeds as one model, beside the model: models/dan/stacked.py).

Adding a model or a data set is one Python file that calls `register_model` or
`register_data` at import, plus one YAML file under conf/. Every module of the `models`
and `models.data` packages is imported the first time the registry is asked, and so is
every module named in $SEEDSWEEP_PLUGINS (comma-separated, e.g. `mylab.cnn`), for code
kept outside this repository.

Plain values only: nothing here reads Hydra, Optuna or MLflow.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from models.checks import Check
from models.data.lockbox import unlock
from models.errors import UserError

PLUGINS_ENV = "SEEDSWEEP_PLUGINS"
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class TaskKind:
    name: str
    metric: str  # the dev metric models of this kind are judged by, e.g. "accuracy"
    direction: str  # "maximize" or "minimize"
    # (data values, raw train/dev of a source) -> the task the training loop sees
    prepare: Callable[[Mapping[str, Any], Any], Any]
    # (task, raw test of a source, data values) -> a split `task.evaluate` accepts
    encode_test: Callable[[Any, Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class DataSource:
    name: str
    kind: str
    # (data values, cache folder) -> raw train and dev splits
    load: Callable[[Mapping[str, Any], Path], Any]
    # (data values, cache folder, prepared task) -> raw test split; reached only via `test_split`
    test: Callable[[Mapping[str, Any], Path, Any], Any]
    checks: Mapping[str, Check] = field(default_factory=dict)  # rules of data.<key>
    doc: str = ""


@dataclass
class Built:
    """A model ready to train K seeds of: what `ModelSpec.build` returns."""

    model: Callable[[], Any]  # a fresh nn.Module on the CPU; seeded by the caller
    task: Any  # the task it trains on: the prepared one, or a view of it (the NPLM's context)
    info: dict[str, Any] = field(default_factory=dict)  # derived values worth recording
    # split -> extra keyword arguments of task.evaluate on the test split (the NPLM's mixture)
    test_extras: Callable[[Any], dict[str, Any]] | None = None


@dataclass(frozen=True)
class BuildContext:
    device: Any  # torch.device the seeds train on
    settings: Any  # models.training.TrainSettings


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # the task kind it fits
    # (model values, prepared task, context) -> Built; raise ValueError for bad values
    build: Callable[[Mapping[str, Any], Any, BuildContext], Built]
    metric: str | None = None  # None: the kind's
    direction: str | None = None  # None: the kind's
    # K models of one configuration -> one stacked model (beside the model), or None
    stack: Callable[[list[Any]], Any] | None = None
    checks: Mapping[str, Check] = field(default_factory=dict)  # rules of model.<key>
    doc: str = ""

    @property
    def vectorizable(self) -> bool:
        return self.stack is not None


_KINDS: dict[str, TaskKind] = {}
_SOURCES: dict[str, DataSource] = {}
_MODELS: dict[str, ModelSpec] = {}
# a model class -> its stacked form (K seeds as one model), registered beside the model
_STACKED: dict[type, Callable[[list[Any]], Any]] = {}
# a model class -> its fused form (T configurations x K seeds as one model: models/fused/)
_FUSED: dict[type, Callable[[list[Any]], Any]] = {}
_loaded = False


def _add(table: dict, entry: Any, what: str) -> Any:
    if entry.name in table:
        raise ValueError(f"{what} {entry.name!r} is registered twice")
    table[entry.name] = entry
    return entry


def _locked(name: str, read: Callable) -> Callable:
    """`read` behind the lockbox: whoever calls it, directly or through `test_split`, must
    be the final evaluation."""
    @functools.wraps(read)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        unlock(name, log=False)
        return read(*args, **kwargs)
    return guarded


def register_kind(kind: TaskKind) -> TaskKind:
    if kind.direction not in DIRECTIONS:
        raise ValueError(f"task kind {kind.name!r}: direction must be one of {DIRECTIONS}")
    return _add(_KINDS, kind, "task kind")


def register_data(source: DataSource) -> DataSource:
    if not callable(source.test) or not callable(source.load):
        raise ValueError(f"data source {source.name!r} needs a train/dev loader and a test split reader")
    return _add(_SOURCES, replace(source, test=_locked(source.name, source.test)), "data source")


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.direction is not None and spec.direction not in DIRECTIONS:
        raise ValueError(f"model {spec.name!r}: direction must be one of {DIRECTIONS}")
    return _add(_MODELS, spec, "model")


def register_stacked(model_class: type, stack: Callable[[list[Any]], Any]) -> None:
    """`stack(models)` makes K models of `model_class` one stacked model (or None where
    those K have none); `stack_models` finds it by the models' class."""
    _STACKED[model_class] = stack


def stack_models(models: list[Any]) -> Any:
    """The stacked form of `models` (one architecture, K seeds), or None where there is none."""
    kind = type(models[0])
    stack = _STACKED.get(kind) if all(type(m) is kind for m in models) else None
    return stack(models) if stack is not None else None


def register_fused(model_class: type, fuse: Callable[[list[Any]], Any]) -> None:
    """`fuse(models)` makes models of `model_class` that share an architecture but not their
    scalar hyper-parameters (dropout rates) one stacked model with per-slice values."""
    _FUSED[model_class] = fuse


def fuse_models(models: list[Any]) -> Any:
    """The fused form of `models` (T configurations x K seeds), or None where there is none."""
    kind = type(models[0])
    fuse = _FUSED.get(kind) if all(type(m) is kind for m in models) else None
    return fuse(models) if fuse is not None else None


def load_all() -> None:
    """Import every registering module once: the `models` and `models.data` packages and
    the modules named in $SEEDSWEEP_PLUGINS."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import models
    import models.data
    names = [f"{pkg.__name__}.{m.name}" for pkg in (models, models.data)
             for m in pkgutil.iter_modules(pkg.__path__)
             if not m.name.startswith("_") and f"{pkg.__name__}.{m.name}" != "models.data"]
    names += [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            if name.startswith("models."):
                raise
            raise UserError(f"cannot import {name!r} named in ${PLUGINS_ENV}: {e}.") from e


def kinds() -> dict[str, TaskKind]:
    load_all()
    return dict(_KINDS)


def sources() -> dict[str, DataSource]:
    load_all()
    return dict(_SOURCES)


def model_specs() -> dict[str, ModelSpec]:
    load_all()
    return dict(_MODELS)


def model(name: str) -> ModelSpec:
    specs = model_specs()
    if name not in specs:
        raise UserError(f"unknown model {name!r}; registered models: {', '.join(sorted(specs))} "
                        "(models/registry.py says how to add one).")
    return specs[name]


def source(name: str) -> DataSource:
    found = sources()
    if name not in found:
        raise UserError(f"unknown data source {name!r}; registered sources: {', '.join(sorted(found))} "
                        "(models/registry.py says how to add one).")
    return found[name]


def kind(name: str) -> TaskKind:
    return kinds()[name]


def metric(spec: ModelSpec) -> tuple[str, str]:
    """The dev metric a model is judged by and its direction ("maximize"/"minimize")."""
    k = kind(spec.kind)
    return spec.metric or k.metric, spec.direction or k.direction


def fits(spec: ModelSpec, src: DataSource, data_name: str) -> None:
    """Refuse a model on a data source of another kind, naming the sources that fit."""
    if spec.kind != src.kind:
        fitting = sorted(n for n, s in sources().items() if s.kind == spec.kind)
        raise UserError(f"model {spec.name} needs {spec.kind} data, but data={data_name} is "
                        f"{src.kind} data; choose one of the {spec.kind} sources: {', '.join(fitting)}.")


def prepare(src: DataSource, data: Mapping[str, Any], cache: Path) -> Any:
    """The training task of a source: its train and dev splits, prepared by its kind."""
    return kind(src.kind).prepare(data, src.load(data, cache))


def test_split(src: DataSource, data: Mapping[str, Any], cache: Path, task: Any) -> Any:
    """The test split of `src`, encoded with `task`'s vocabulary. The lockbox is checked
    here, before the source's reader runs: only the final evaluation gets past it."""
    unlock(src.name)
    return kind(src.kind).encode_test(task, src.test(data, cache, task), data)
