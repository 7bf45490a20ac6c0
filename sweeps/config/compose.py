"""Hydra composition of conf/ with command-line overrides, and its errors made readable."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from models.errors import UserError
from sweeps.config.places import check_places
from sweeps.config.schema import check_config
from sweeps.core.cli import run_cli, stop_on_sigterm, wants_help  # noqa: F401 - the commands' names
from sweeps.core.paths import CONF_DIR


def choices(group: str) -> list[str]:
    """The configs available in one config group, e.g. `choices("model") == ["dan"]`."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def config_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every dotted key of `cfg`, sections and values (`train`, `train.lr`, ...)."""
    keys = []
    for k, v in cfg.items():
        keys.append(f"{prefix}{k}")
        if isinstance(v, DictConfig):
            keys += config_keys(v, f"{prefix}{k}.")
    return keys


def did_you_mean(key: str, overrides: Sequence[str]) -> str:
    """"; did you mean 'train.lr'?" for a mistyped `key`, from the keys of the config the
    other `overrides` compose (a model's keys depend on model=); "" when none is close."""
    rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=rest)
    except Exception:  # noqa: BLE001 - a suggestion is a courtesy; the error is reported anyway
        return ""
    close = difflib.get_close_matches(key, config_keys(cfg), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def refuse_unknown_additions(overrides: Sequence[str]) -> None:
    """Hydra's `+key=value` (and `++`) adds a key the config does not have: a typo that would
    be silently ignored, yet part of a study's fingerprint. Unknown keys are errors, added
    or not; `+` may only name a config group (`+experiment=...`) or an existing key (`++`)."""
    adds = [o for o in overrides if o.startswith("+") and "=" in o
            and o.lstrip("+").split("=", 1)[0] not in choices_of_groups()]
    if not adds:
        return
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        base = compose(config_name="config", overrides=[o for o in overrides if o not in adds])
    for o in adds:
        key = o.lstrip("+").split("=", 1)[0]
        if OmegaConf.select(base, key, default=_ABSENT) is _ABSENT:
            raise UserError(f"bad override {o!r}: the config has no key {key!r} and keys cannot be "
                            f"added with +{did_you_mean(key, overrides)} (python -m sweeps.train --cfg "
                            "prints the config).")


_ABSENT = object()


def choices_of_groups() -> set[str]:
    return {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def _explain(err: Exception, overrides: Sequence[str] = ()) -> str:
    text = str(err)
    m = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if m:
        group, name = m.groups()
        group = group.split("/")[-1]
        return (f"unknown {group} {name!r}; choose one of: {', '.join(choices(group))} "
                f"(e.g. {group}={choices(group)[0]}).")
    m = re.search(r"Could not override '([^']+)'", text)
    cause = err.__cause__ or err
    if m or "not in struct" in text or "Key '" in text:
        key = m.group(1) if m else ""
        first = str(cause).splitlines()[0]
        if "not in struct" in first and key:
            return (f"bad override {key!r}: the config has no key {key!r}{did_you_mean(key, overrides)} "
                    "(python -m sweeps.train --cfg prints the config).")
        return (f"bad override {key!r}: {first}. Check the key's spelling against the config "
                "(python -m sweeps.train --cfg prints it).")
    return text.splitlines()[0] if text else type(err).__name__


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/config.yaml with `overrides` applied, resolved and read-only."""
    try:
        refuse_unknown_additions(overrides)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except (HydraException, MissingConfigException, OmegaConfBaseException) as e:
        raise UserError(_explain(e, overrides)) from e
    except yaml.YAMLError as e:  # a hand-edited config file that is not YAML
        mark = getattr(e, "problem_mark", None)
        where = f" ({mark.name}, line {mark.line + 1})" if mark else ""
        raise UserError(f"a config file is not valid YAML{where}: {getattr(e, 'problem', e)}.") from e
    OmegaConf.set_readonly(cfg, True)
    check_config(cfg)
    check_places(cfg)  # where it will write, before anything is written
    return cfg


def whole_number(cfg: DictConfig, key: str, low: int) -> int:
    """The integer at `key`, at least `low`; anything else is a UserError naming the key."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{key} must be a whole number >= {low}, not {value!r}.")
    return value


def check_sweep_settings(cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """The search space, budget, workers and seeds of a sweep, checked before anything is
    created."""
    if cfg.get("search_space") is None:  # an optional default: Hydra skips a missing file
        asked = [o.split("=", 1)[1] for o in overrides if o.startswith("search_space=")]
        name = asked[-1] if asked else cfg.model.name
        raise UserError(f"unknown search_space {name!r}; choose one of: "
                        f"{', '.join(choices('search_space'))} (e.g. search_space={cfg.model.name}).")
    check_seeds(cfg)  # the rest of the values: sweeps/config/schema.py, when the config was composed


def check_seeds(cfg: DictConfig) -> None:
    if cfg.seed_list is None:
        whole_number(cfg, "seeds", 1)
        return
    seeds = OmegaConf.to_container(cfg.seed_list) if OmegaConf.is_config(cfg.seed_list) else cfg.seed_list
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise UserError(f"seed_list must be a list of whole numbers >= 0, e.g. [1,2,3], not {seeds!r}.")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seed_list must hold distinct seeds, got {seeds}.")


NPLM_DEFAULT_NOTE = (
    "note: the NPLM's default training (8 epochs, no learning-rate decay) is sized for a quick CPU "
    "search, not for the paper's numbers: on data=ptb it stops near valid perplexity 188, above the "
    "interpolated trigram (184.4); experiment=bengio_ptb is the recipe that reproduces Bengio et al. "
    "(2003) (valid 152.3).")


def default_recipe_note(cfg: DictConfig, overrides: Sequence[str]) -> str | None:
    """The note above for the NPLM on its default training (no experiment=, no train.*)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    if cfg.model.name != "nplm" or any(k == "experiment" or k.startswith("train.") for k in keys):
        return None
    return NPLM_DEFAULT_NOTE
