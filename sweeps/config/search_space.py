"""Search spaces are data (conf/search_space/*.yaml); this turns them into
`trial.suggest_*` calls and the suggested values into config overrides.

An entry may be conditional: `when: {train.optimizer: sgd}` samples it only when every
named key has one of the listed values (a key sampled earlier in the space, or else the
config's value); otherwise the entry takes its `otherwise:` value, or the config's
value when it has none. Sampling walks the entries in file order (Optuna's
define-by-run API), so a condition may only name keys that come before it. Grid points
are generated the same way, so only valid combinations are ever enqueued.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from models.errors import UserError
from sweeps.config.schema import check_searchable

_COMMON = {"type", "grid", "when", "otherwise"}
_FIELDS = {
    "float": _COMMON | {"low", "high", "log"},
    "int": _COMMON | {"low", "high", "step", "log"},
    "categorical": _COMMON | {"choices"},
}
_MISSING = "<missing>"
_SCALARS = (bool, int, float, str)
Lookup = Callable[[str], Any]  # a config key -> its value in the base config


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
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (key, allowed values), all must hold
    otherwise: tuple[Any, ...] = ()  # () or (value,): the value when `when` does not hold
    fixed: bool = False  # fixed by a command-line override: one value, always active

    def active(self, value_of: Lookup) -> bool:
        return all(value_of(key) in allowed for key, allowed in self.when)

    def suggest(self, trial: optuna.Trial, grid: bool) -> Any:
        if grid or self.fixed:  # grid trials are enqueued with fixed values; this records them
            return trial.suggest_categorical(self.name, list(self.grid))
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step,
                                     log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def describe(self) -> dict[str, Any]:
        """A canonical, JSON-able form of the entry (what a study's fingerprint hashes)."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out |= {"low": self.low, "high": self.high, "log": self.log}
            if self.type == "int":
                out["step"] = self.step
        out["grid"] = list(self.grid)
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when}
        if self.otherwise:
            out["otherwise"] = self.otherwise[0]
        if self.fixed:
            out = {"fixed": self.grid[0]}
        return out


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


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
    when = _when(entry.get("when"), bad)
    otherwise = (entry["otherwise"],) if "otherwise" in entry else ()
    if otherwise and not when:
        raise bad("otherwise: needs a when: condition")
    for field in ("grid", "choices"):
        values = entry.get(field)
        if values is not None and (not isinstance(values, (list, tuple))
                                   or not all(v is None or isinstance(v, _SCALARS) for v in values)):
            raise bad(f"{field} must be a list of plain values (numbers, strings, true/false), "
                      f"not {values!r}")
    grid = tuple(entry.get("grid") or ())
    if kind == "categorical":
        choices = tuple(entry.get("choices") or ())
        if not choices:
            raise bad("a categorical needs a non-empty list of choices")
        if any(g not in choices for g in grid):
            raise bad(f"grid values {list(grid)} must be among the choices {list(choices)}")
        return Param(name, kind, choices=choices, grid=grid or choices, when=when, otherwise=otherwise)
    if "low" not in entry or "high" not in entry:
        raise bad(f"a {kind} needs low and high")
    low, high, log = entry["low"], entry["high"], entry.get("log", False)
    if not _is_bool(log):
        raise bad(f"log must be true or false, not {log!r}")
    numbers = all(isinstance(v, (int, float)) and not _is_bool(v) and math.isfinite(v) for v in (low, high))
    if not numbers or low > high:
        raise bad(f"needs numbers low <= high, got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise bad("log scale needs low > 0")
    step = entry.get("step", 1)
    if kind == "int":
        if int(low) != low or int(high) != high or not isinstance(step, int) or _is_bool(step) or step < 1:
            raise bad("an int needs integer low and high and an integer step >= 1")
        if not grid and (int(high) - int(low)) // step + 1 > MAX_INT_GRID:
            raise bad(f"an int range of {(int(high) - int(low)) // step + 1:,} values is too large to "
                      f"grid; give `grid: [...]` values (at most {MAX_INT_GRID:,} from the range)")
        grid = grid or tuple(range(int(low), int(high) + 1, step))
    elif not grid:
        raise bad("a float needs grid values for grid search")
    if any(_is_bool(g) or not isinstance(g, (int, float)) or not low <= g <= high for g in grid):
        raise bad(f"grid values {list(grid)} must be numbers in [{low}, {high}]")
    return Param(name, kind, low=low, high=high, log=log, step=step, grid=grid, when=when,
                 otherwise=otherwise)


MAX_INT_GRID = 10_000  # an int entry's implied grid (every value of its range) beyond this is refused


def _when(raw: Any, bad: Callable[[str], UserError]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise bad("when: must map config keys to a value or a list of values, "
                  "e.g. when: {train.optimizer: sgd}")
    return tuple((str(k), tuple(v) if isinstance(v, (list, tuple)) else (v,)) for k, v in raw.items())


def parse_space(space: DictConfig | Mapping[str, Any], base: DictConfig | None = None) -> list[Param]:
    """The entries of a search space, checked; with `base`, each key (and each key a
    condition names) must be a config key."""
    raw = OmegaConf.to_container(space) if isinstance(space, DictConfig) else dict(space)
    if not raw:
        raise UserError("the search space is empty: add entries to conf/search_space/<model>.yaml.")
    params = [_param(str(name), entry) for name, entry in raw.items()]
    seen: set[str] = set()
    names = {p.name for p in params}
    for p in params:
        for key, _ in p.when:
            if key in names and key not in seen:
                raise UserError(f"search space entry {p.name!r}: its condition names {key!r}, "
                                "which must come before it in the file.")
        seen.add(p.name)
    if base is not None:
        model = OmegaConf.select(base, "model.name")
        for p in params:
            check_searchable(p.name, [v for v in (p.low, p.high, *p.grid, *p.choices) if v is not None],
                             model)
        for key in [*(p.name for p in params), *(k for p in params for k, _ in p.when)]:
            if OmegaConf.select(base, key, default=_MISSING) == _MISSING:
                raise UserError(f"search space entry {key!r} is not a config key "
                                "(python -m sweeps.train --cfg lists them).")
    return params


def fix(params: list[Param], fixed: Mapping[str, Any]) -> list[Param]:
    """`params` with the keys of `fixed` pinned to one value each: always active, one choice."""
    return [replace(p, type="categorical", choices=(fixed[p.name],), grid=(fixed[p.name],), when=(),
                    otherwise=(), low=None, high=None, log=False, step=1, fixed=True)
            if p.name in fixed else p for p in params]


def assign(params: list[Param], choose: Callable[[Param], Any], lookup: Lookup
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Walk the entries in order: (values chosen for the active ones, values the inactive
    ones take from `otherwise`). Conditions see earlier entries, else the base config."""
    chosen: dict[str, Any] = {}
    inactive: dict[str, Any] = {}
    for p in params:
        if p.active(lambda key: chosen[key] if key in chosen else inactive.get(key, lookup(key))):
            chosen[p.name] = choose(p)
        elif p.otherwise:
            inactive[p.name] = p.otherwise[0]
    return chosen, inactive


def grid_points(params: list[Param], lookup: Lookup = lambda key: None) -> list[dict[str, Any]]:
    """Every valid combination of the active entries' grid values, in a fixed order."""
    def expand(i: int, point: dict[str, Any], seen: dict[str, Any]):
        if i == len(params):
            yield point
            return
        p = params[i]
        if p.active(lambda key: seen[key] if key in seen else lookup(key)):
            for g in p.grid:
                yield from expand(i + 1, {**point, p.name: g}, {**seen, p.name: g})
        else:
            yield from expand(i + 1, point, {**seen, p.name: p.otherwise[0]} if p.otherwise else seen)

    unique = {tuple(pt.items()): pt for pt in expand(0, {}, {})}  # order kept, no duplicates
    return list(unique.values())


def check_point(params: list[Param], point: Mapping[str, Any], lookup: Lookup) -> None:
    """An explicit grid point must set exactly the keys that are active under its own values."""
    def choose(p: Param) -> Any:
        if p.name not in point:
            raise UserError(f"sweep.grid_points entry {dict(point)} must set {p.name!r}.")
        return point[p.name]

    chosen, _ = assign(params, choose, lookup)
    extra = set(point) - set(chosen)
    if extra:
        raise UserError(f"sweep.grid_points entry {dict(point)} sets {sorted(extra)}, which are "
                        "not search-space keys active for that point.")


def suggest(trial: optuna.Trial, params: list[Param], grid: bool = False,
            lookup: Lookup = lambda key: None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Define-by-run sampling: (suggested values, values of inactive entries)."""
    return assign(params, lambda p: p.suggest(trial, grid), lookup)


def product_size(params: list[Param]) -> int:
    return math.prod(len(p.grid) for p in params)


def _format(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return value if value.replace("_", "").replace("-", "").isalnum() else f"'{value}'"
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def to_overrides(values: Mapping[str, Any]) -> list[str]:
    """Hydra overrides for the suggested values: {"train.lr": 0.01} -> ["train.lr=0.01"]."""
    return [f"{k}={_format(v)}" for k, v in values.items()]


def config_lookup(cfg: DictConfig) -> Lookup:
    def lookup(key: str) -> Any:
        value = OmegaConf.select(cfg, key, default=None)
        return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return lookup
