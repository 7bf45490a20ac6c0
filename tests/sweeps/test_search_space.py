import optuna
import pytest

from models.errors import UserError
from sweeps.config import compose_config
from sweeps.search_space import grid_points, parse_space, suggest, to_overrides


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
    ({"type": "float", "low": 0.0, "high": 1.0, "grid": [2.0]}, "must lie in"),
])
def test_malformed_entries_name_the_key(entry, fragment):
    with pytest.raises(UserError) as err:
        parse_space({"train.lr": entry})
    assert "'train.lr'" in str(err.value) and fragment in str(err.value)


def test_unknown_config_key_in_space():
    cfg = compose_config()
    with pytest.raises(UserError, match="'model.embdim' is not a config key"):
        parse_space({"model.embdim": {"type": "categorical", "choices": [1]}}, cfg)
