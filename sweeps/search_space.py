"""Search spaces are data (conf/search_space/*.yaml); this turns them into
`trial.suggest_*` calls and the suggested values into config overrides."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from models.errors import UserError

_FIELDS = {
    "float": {"type", "low", "high", "log", "grid"},
    "int": {"type", "low", "high", "step", "log", "grid"},
    "categorical": {"type", "choices", "grid"},
}


@dataclass(frozen=True)
class Param:
    name: str  # a config key, e.g. "train.lr"
    type: str  # float, int or categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int = 1
    choices: tuple[Any, ...] = ()
    grid: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial, grid: bool) -> Any:
        if grid:  # grid trials are enqueued with fixed values; this records them as such
            return trial.suggest_categorical(self.name, list(self.grid))
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step,
                                     log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))


def _param(name: str, entry: Mapping[str, Any]) -> Param:
    def bad(why: str) -> UserError:
        return UserError(f"search space entry {name!r}: {why}.")

    if not isinstance(entry, Mapping) or entry.get("type") not in _FIELDS:
        raise bad("needs type: float, int or categorical")
    kind = entry["type"]
    unknown = set(entry) - _FIELDS[kind]
    if unknown:
        raise bad(f"unknown field(s) {', '.join(sorted(unknown))} for a {kind}; "
                  f"allowed: {', '.join(sorted(_FIELDS[kind]))}")
    grid = tuple(entry.get("grid") or ())
    if kind == "categorical":
        choices = tuple(entry.get("choices") or ())
        if not choices:
            raise bad("a categorical needs a non-empty list of choices")
        if any(g not in choices for g in grid):
            raise bad(f"grid values {list(grid)} must be among the choices {list(choices)}")
        return Param(name, kind, choices=choices, grid=grid or choices)
    if "low" not in entry or "high" not in entry:
        raise bad(f"a {kind} needs low and high")
    low, high, log = entry["low"], entry["high"], bool(entry.get("log", False))
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float))) or low > high:
        raise bad(f"needs numbers low <= high, got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise bad("log scale needs low > 0")
    step = int(entry.get("step", 1))
    if kind == "int":
        if int(low) != low or int(high) != high or step < 1:
            raise bad("an int needs integer low and high and step >= 1")
        grid = grid or tuple(range(int(low), int(high) + 1, step))
    elif not grid:
        raise bad("a float needs grid values for grid search")
    if any(not low <= g <= high for g in grid):
        raise bad(f"grid values {list(grid)} must lie in [{low}, {high}]")
    return Param(name, kind, low=low, high=high, log=log, step=step, grid=grid)


def parse_space(space: DictConfig | Mapping[str, Any], base: DictConfig | None = None) -> list[Param]:
    """The entries of a search space, checked; with `base`, each key must name a config key."""
    raw = OmegaConf.to_container(space) if isinstance(space, DictConfig) else dict(space)
    if not raw:
        raise UserError("the search space is empty: add entries to conf/search_space/<model>.yaml.")
    params = [_param(str(name), entry) for name, entry in raw.items()]
    if base is not None:
        for p in params:
            if OmegaConf.select(base, p.name, default="<missing>") == "<missing>":
                raise UserError(f"search space entry {p.name!r} is not a config key "
                                "(python -m sweeps.train --cfg lists them).")
    return params


def grid_points(params: list[Param]) -> list[dict[str, Any]]:
    """Every combination of the grid values, in a fixed order."""
    return [dict(zip([p.name for p in params], values))
            for values in itertools.product(*(p.grid for p in params))]


def suggest(trial: optuna.Trial, params: list[Param], grid: bool = False) -> dict[str, Any]:
    return {p.name: p.suggest(trial, grid) for p in params}


def _format(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return value if value.replace("_", "").replace("-", "").isalnum() else f"'{value}'"
    return str(value).lower() if isinstance(value, bool) else str(value)


def to_overrides(values: Mapping[str, Any]) -> list[str]:
    """Hydra overrides for the suggested values: {"train.lr": 0.01} -> ["train.lr=0.01"]."""
    return [f"{k}={_format(v)}" for k, v in values.items()]
