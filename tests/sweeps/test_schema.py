"""Every config value and search-space entry is checked: fuzzed inputs are accepted, or end
in one clear sentence (a UserError); never another exception, never a traceback."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.errors import UserError
from models.training import OPTIMIZERS
from sweeps.config import schema
from sweeps.config.compose import check_sweep_settings, compose_config
from sweeps.config.search_space import _format, parse_space


@pytest.fixture(autouse=True)
def ieee_floats():
    """A command reads its config before it trains, so before flush_denormals (see
    models/training/devices.py) sets the thread to read subnormal floats as zero; a trainer
    that ran earlier in this pytest process has set it here, and hypothesis then refuses to
    draw floats at all. Check the config as the command does, then put the setting back."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(True)


KEYS = sorted([*schema.RULES, *(f"model.{k}" for k in schema.model_rules("dan")), "seed_list",
               "data.fractions", "cache_dir"])
VALUES = st.one_of(
    st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(alphabet="abcxyz019.-_ :/@", max_size=12), st.lists(st.integers(-3, 5), max_size=4),
    st.lists(st.floats(-2, 2), max_size=4), st.sampled_from(["maybe", "nan", "1e-3", "[1,2", "null"]))


def hydra_value(v) -> str:
    if isinstance(v, list):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    return _format(v)


FEW = 5  # examples of each outcome a fuzz test must see


def one_sentence_or_fine(call) -> str:
    try:
        call()
    except UserError as e:
        assert str(e) and "\n" not in str(e), str(e)
        return "error"
    return "fine"


def test_fuzzed_config_values_compose_or_fail_in_one_sentence():
    outcomes = Counter()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(model=st.sampled_from(["dan", "nplm"]), key=st.sampled_from(KEYS), value=VALUES)
    def one(model, key, value):
        override = f"{key}={hydra_value(value)}"

        def compose():
            cfg = compose_config([f"model={model}", override])
            check_sweep_settings(cfg, [])
            parse_space(cfg.search_space, cfg)

        outcomes[one_sentence_or_fine(compose)] += 1

    one()
    # Both ways were taken, many times: a config that refused everything (or accepted
    # everything) would otherwise pass unseen.
    assert outcomes["fine"] >= FEW and outcomes["error"] >= FEW, outcomes


ENTRY = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["float", "int", "categorical", "gaussian", 3]),
    "low": VALUES, "high": VALUES, "log": VALUES, "step": VALUES, "grid": VALUES,
    "choices": VALUES, "when": st.one_of(VALUES, st.dictionaries(st.sampled_from(
        ["model.num_layers", "train.optimizer", "nope"]), VALUES, max_size=2)),
    "otherwise": VALUES})
# Entries of the right shape, as written by hand, and such entries with one value fuzzed: the
# random dictionaries above are almost never valid, and a fuzz that never parses proves little.
SHAPED = st.one_of(
    st.builds(lambda low, span, log: {"type": "float", "low": low, "high": low + span, "log": log},
              st.floats(1e-4, 1.0), st.floats(1e-3, 1.0), st.booleans()),
    st.builds(lambda low, span: {"type": "int", "low": low, "high": low + span},
              st.integers(0, 3), st.integers(0, 3)),
    st.builds(lambda choices: {"type": "categorical", "choices": choices},
              st.lists(st.sampled_from([0, 1, 2, 3, "relu", "tanh"]), min_size=1, max_size=3, unique=True)))
FUZZED_ENTRY = st.one_of(ENTRY, SHAPED, st.tuples(SHAPED, st.sampled_from(
    ["low", "high", "log", "step", "grid", "choices", "when", "otherwise"]), VALUES).map(
    lambda t: {**t[0], t[1]: t[2]}))


def test_fuzzed_search_space_entries_parse_or_fail_in_one_sentence():
    outcomes = Counter()

    @settings(max_examples=300, deadline=None)
    @given(key=st.sampled_from(["train.lr", "model.num_layers", "model.activation", "seeds",
                                "model.word_dropout", "sweep.trials"]), entry=FUZZED_ENTRY)
    def one(key, entry):
        outcomes[one_sentence_or_fine(lambda: parse_space({key: entry}, BASE()))] += 1

    one()
    assert outcomes["fine"] >= FEW and outcomes["error"] >= FEW, outcomes


def BASE(cache=[]):  # noqa: B006 - the default config, composed once for many examples
    if not cache:
        cache.append(compose_config())
    return cache[0]


def test_known_bad_values_are_refused():
    for override, fragment in [
        ("data.min_freq=0", "data.min_freq must be a whole number >= 1"),
        ("train.batch_size=2.5", "train.batch_size must be a whole number >= 1"),
        ("model.num_layers=-1", "model.num_layers must be a whole number >= 0"),
        ("data.lowercase=maybe", "data.lowercase must be true or false"),
        ("train.momentum=0.9", "has no effect with adagrad"),
        ("storage.url=notaurl", "storage.url must be a URL"),
        ("train.lr=nan", "train.lr must be a number in (0, ∞]"),
    ]:
        with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace("]", r"\]")):
            compose_config([override])


def test_the_schema_knows_the_models_optimizers():
    assert schema.OPTIMIZERS == OPTIMIZERS
