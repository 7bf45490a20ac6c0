import optuna
import pytest

from models.errors import UserError
from sweeps.config.compose import compose_config
from sweeps.config.search_space import grid_points, parse_space, suggest, to_overrides


def test_dan_space_parses_and_names_real_config_keys():
    cfg = compose_config()
    params = parse_space(cfg.search_space, cfg)
    names = {p.name for p in params}
    assert {"model.embed_dim", "model.num_layers", "model.hidden_dim", "model.activation",
            "model.word_dropout", "model.dropout", "train.lr",
            "train.weight_decay", "train.batch_size"} <= names


def test_suggestions_become_overrides_that_compose():
    cfg = compose_config()
    params = parse_space(cfg.search_space, cfg)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    values, _ = suggest(study.ask(), params)
    composed = compose_config(to_overrides(values))
    for name, value in values.items():
        section, key = name.split(".")
        assert composed[section][key] == value
    assert 3e-3 <= values["train.lr"] <= 0.1


def test_grid_is_the_product_of_grid_values():
    params = parse_space({
        "a": {"type": "categorical", "choices": ["x", "y", "z"]},
        "b": {"type": "int", "low": 1, "high": 5, "step": 2},
        "c": {"type": "float", "low": 0.0, "high": 1.0, "grid": [0.1, 0.9]},
    })
    points = grid_points(params)
    assert len(points) == 3 * 3 * 2
    assert {p["b"] for p in points} == {1, 3, 5}


@pytest.mark.parametrize("entry, fragment", [
    ({"type": "gaussian"}, "needs type"),
    ({"type": "float", "low": 1, "high": 0, "grid": [0.5]}, "low <= high"),
    ({"type": "float", "low": 0.0, "high": 1.0}, "needs grid values"),
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True, "grid": [0.5]}, "log scale"),
    ({"type": "categorical", "choices": []}, "non-empty"),
    ({"type": "categorical", "choices": [1, 2], "grid": [3]}, "among the choices"),
    ({"type": "int", "low": 0, "high": 3, "choices": [1]}, "unknown field(s) choices"),
    ({"type": "float", "low": 0.0, "high": 1.0, "grid": [2.0]}, "must be numbers in"),
    # every value of a huge int range became its grid: MemoryError or OverflowError, no sentence
    ({"type": "int", "low": -17_000_000_000, "high": 0}, "too large to grid"),
])
def test_malformed_entries_name_the_key(entry, fragment):
    with pytest.raises(UserError) as err:
        parse_space({"train.lr": entry})
    assert "'train.lr'" in str(err.value) and fragment in str(err.value)


def test_unknown_config_key_in_space():
    cfg = compose_config()
    with pytest.raises(UserError, match="'model.embdim' is not a config key"):
        parse_space({"model.embdim": {"type": "categorical", "choices": [1]}}, cfg)


# --- conditional entries ------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sweeps.config.search_space import config_lookup, fix  # noqa: E402


def nplm_space():
    cfg = compose_config(["model=nplm"])
    return parse_space(cfg.search_space, cfg), config_lookup(cfg)


def dan_space():
    cfg = compose_config()
    return parse_space(cfg.search_space, cfg), config_lookup(cfg)


def valid_nplm(values: dict, inactive: dict) -> bool:
    merged = {**values, **inactive}
    return merged["model.hidden_dim"] > 0 or merged.get("model.direct", True) is True


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sampler=st.sampled_from(["random", "tpe"]))
def test_conditional_spaces_never_yield_an_invalid_combination(seed, sampler):
    """Many define-by-run samples of the default spaces, with results fed back so TPE
    models them too: never h=0 without direct connections, never a DAN width without layers."""
    for space, check in ((nplm_space, "nplm"), (dan_space, "dan")):
        params, lookup = space()
        make = {"random": optuna.samplers.RandomSampler,
                "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=3)}[sampler]
        study = optuna.create_study(sampler=make(seed))
        for _ in range(12):
            trial = study.ask()
            values, inactive = suggest(trial, params, lookup=lookup)
            if check == "nplm":
                assert valid_nplm(values, inactive), (values, inactive)
                assert ("model.direct" in values) == (values["model.hidden_dim"] > 0)
            else:
                layered = values["model.num_layers"] > 0
                assert ("model.hidden_dim" in values) == layered
                assert ("model.activation" in values) == layered
            study.tell(trial, float(len(str(values))))


def test_grid_points_are_only_valid_combinations():
    params, lookup = nplm_space()
    points = grid_points(params, lookup)
    # n in {3,5} x h in {0,50}: direct is sampled (grid [true]) only where h=50
    assert len(points) == 4
    assert all(("model.direct" in p) == (p["model.hidden_dim"] > 0) for p in points)
    params, lookup = dan_space()
    for p in grid_points(params, lookup):
        assert ("model.hidden_dim" in p) == (p["model.num_layers"] > 0)


def test_an_inactive_entry_takes_its_otherwise_value_and_a_fixed_one_is_always_active():
    params, lookup = nplm_space()
    trial = optuna.create_study().ask({"model.hidden_dim": optuna.distributions.CategoricalDistribution([0])})
    pinned = fix(params, {"model.hidden_dim": 0})
    values, inactive = suggest(trial, pinned, lookup=lookup)
    assert values["model.hidden_dim"] == 0 and inactive == {"model.direct": True}
    assert compose_config(["model=nplm", *to_overrides({**values, **inactive})]).model.direct is True


@pytest.mark.parametrize("space, fragment", [
    ({"b": {"type": "int", "low": 0, "high": 2, "when": {"a": 1}},
      "a": {"type": "int", "low": 0, "high": 2}}, "must come before it"),
    ({"a": {"type": "int", "low": 0, "high": 2, "otherwise": 1}}, "otherwise: needs a when"),
    ({"a": {"type": "int", "low": 0, "high": 2, "when": []}}, "when: must map"),
    ({"a": {"type": "float", "low": 0.1, "high": 2.0, "log": "false", "grid": [1.0]}},
     "log must be true or false"),
])
def test_malformed_conditions_name_the_entry(space, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_space(space)
