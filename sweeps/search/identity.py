"""What a study's trials mean: its fingerprint, its fixed settings, its make command.

A study records the fingerprint of everything that defines its trials: the settings
that are not searched (model, data, training, K seeds), the search space (with the
keys fixed on the command line) and the metric. Resuming with another fingerprint is
refused with the keys that differ; the budget, the workers and where things are stored
may change.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from models.errors import UserError
from sweeps.config.search_space import Param, config_lookup, fix
from sweeps.core.redact import redact, redact_value

# Config sections that say how and where a sweep runs, not what its trials mean.
NOT_IDENTITY = ("search_space", "sampler", "pruner", "storage", "tracking", "sweep", "threads",
                "cache_dir", "device")
# Keys that say how trials are computed (stacked or not, CUDA graphs or not), not what they compute.
NOT_IDENTITY_KEYS = ("train.vectorize_seeds", "train.cuda_graphs")
# Overrides the Makefile spells as variables, for the reproduce line.
MAKE_VARIABLES = {"model": "MODEL", "data": "DATA", "sampler": "SAMPLER", "sweep.trials": "TRIALS",
                  "seeds": "SEEDS", "sweep.workers": "WORKERS"}


def override_key(override: str) -> str | None:
    """The config key an override sets (`train.lr=0.1` -> `train.lr`); None for a deletion."""
    if "=" not in override or override.startswith("~"):
        return None
    return override.split("=", 1)[0].lstrip("+")


def joined_overrides(recorded: Sequence[str], local: Sequence[str]) -> list[str]:
    """A worker's overrides (`make worker`): those the study was made with, then this
    worker's own (storage, tracking, threads, device...), each replacing a recorded one
    with the same key. The study's name comes from the worker, so `sweep.new` and
    `sweep.study_name` are dropped."""
    keys = {override_key(o) or o for o in local}
    kept = [o for o in recorded if (override_key(o) or o) not in keys
            and override_key(o) not in ("sweep.new", "sweep.study_name")]
    return [*kept, *local]


def fixed_values(overrides: Sequence[str], params: list[Param], cfg: DictConfig) -> dict[str, Any]:
    """Searched keys given on the command line, with their composed values."""
    names = {p.name for p in params}
    lookup = config_lookup(cfg)
    fixed = {}
    for o in overrides:
        key = override_key(o)
        if key in names:
            value = lookup(key)
            if isinstance(value, (list, dict)):
                raise UserError(f"{key}={value} fixes a searched key to a list; give one value.")
            fixed[key] = value
    return fixed


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass(frozen=True)
class StudyIdentity:
    settings: dict[str, Any]  # flat config keys -> values, searched keys left out
    space: dict[str, Any]  # search-space key -> canonical entry (fixed keys: {"fixed": v})
    metric: str  # e.g. "dev_accuracy (maximize)"

    @property
    def fixed(self) -> dict[str, Any]:
        return {k: e["fixed"] for k, e in self.space.items() if "fixed" in e}

    def as_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "space": self.space, "metric": self.metric}

    @property
    def fingerprint(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def study_identity(cfg: DictConfig, params: list[Param], metric: str) -> StudyIdentity:
    """The identity of a sweep over `params` (fixed keys already pinned) on `cfg`."""
    training = {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in NOT_IDENTITY}
    # The config's value of a searched key never reaches a trial, unless the entry is
    # conditional with no `otherwise` (then the config's value applies when inactive).
    searched = {p.name for p in params if not p.fixed and (not p.when or p.otherwise)}
    # redacted: a password is no part of what trials mean, and this is stored and reported
    settings = {k: redact_value(v) for k, v in flatten(training).items()
                if k not in searched and k not in NOT_IDENTITY_KEYS}
    return StudyIdentity(settings, {p.name: p.describe() for p in params}, metric)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two identities: 'key: old -> new' for settings, the search-space
    entries added, removed or changed, and the metric."""
    out = []
    space_old, space_new = old.get("space", {}), new.get("space", {})
    moved = set(space_old) ^ set(space_new)  # searched in one, a plain setting in the other
    a, b = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key, _UNSET), b.get(key, _UNSET)
        # compared as values, never hashed: a setting may be a list (RT's data.fractions)
        if (before is None and after == _UNSET) or (before == _UNSET and after is None):
            continue  # a key added since with a null default: what it did before
        if before != after and not (key in moved and (key not in a or key not in b)):
            out.append(f"{key}: {_show(before)} -> {_show(after)}")
    for key in sorted(set(space_old) | set(space_new)):
        if key not in space_new:
            out.append(f"search space: {key} no longer searched")
        elif key not in space_old:
            out.append(f"search space: {key} now searched")
        elif space_old[key] != space_new[key]:
            out.append(f"search space: {key} {_show(space_old[key])} -> {_show(space_new[key])}")
    if old.get("metric") != new.get("metric"):
        out.append(f"metric: {old.get('metric')} -> {new.get('metric')}")
    return out


_UNSET = "<unset>"


def _show(v: Any) -> str:
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else str(v)


def check_resume(name: str, recorded: Mapping[str, Any], current: StudyIdentity) -> None:
    """Refuse to resume study `name` with another identity, naming what differs."""
    diffs = differences(recorded, current.as_dict())
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise UserError(
            f"study {name!r} was created with other settings ({shown}): rerun with its settings "
            f"to resume it, or start a new study with sweep.study_name=<name> or sweep.new=true.")


def pin(params: list[Param], overrides: Sequence[str], cfg: DictConfig) -> list[Param]:
    """`params` with every searched key given on the command line fixed to its value."""
    return fix(params, fixed_values(overrides, params, cfg))


def make_command(overrides: Sequence[str], model: str, study_name: str | None = None) -> str:
    """The `make sweep ...` command that reruns (and so resumes) the study."""
    variables, args = {"MODEL": model}, []
    for o in overrides:
        key = override_key(o)
        if key == "sweep.new" or (key == "sweep.study_name" and study_name):
            continue
        if key in MAKE_VARIABLES and "=" in o and o.split("=", 1)[0] == key:
            variables[MAKE_VARIABLES[key]] = o.split("=", 1)[1]
        else:
            args.append(o)
    if study_name:  # a name derived by sweep.new=true, spelled out so the command resumes it
        args.append(f"sweep.study_name={study_name}")
    order = list(MAKE_VARIABLES.values())
    words = ["make", "sweep", *(f"{k}={shlex.quote(variables[k])}" for k in order if k in variables)]
    if args:
        words.append("ARGS=" + shlex.quote(" ".join(args)))
    return redact(" ".join(words))
