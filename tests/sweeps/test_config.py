import pytest

from models.errors import UserError
from sweeps.config import choices, compose_config


def test_defaults_compose():
    cfg = compose_config()
    assert (cfg.model.name, cfg.data.name, cfg.seeds) == ("dan", "rt", 3)
    assert cfg.train.optimizer == "adagrad"
    assert cfg.tracking.experiment == "dan-rt"


def test_paper_experiment_sets_dan_rand():
    cfg = compose_config(["experiment=dan_paper"])
    assert cfg.data.name == "sst2" and cfg.data.phrases
    assert (cfg.model.num_layers, cfg.model.hidden_dim, cfg.model.activation) == (3, 300, "relu")
    assert cfg.model.word_dropout == 0.3 and cfg.model.embeddings == "random"
    assert cfg.train.optimizer == "adagrad" and cfg.train.weight_decay == 1e-5


@pytest.mark.parametrize("override, fragment", [
    ("model=nope", "unknown model 'nope'; choose one of: dan"),
    ("data=nope", "unknown data 'nope'; choose one of: brown, csv, ptb, ptb_cpu, rt, sst, sst2, text"),
    ("train.lrr=0.1", "bad override 'train.lrr'"),
])
def test_bad_overrides_are_one_clear_sentence(override, fragment):
    with pytest.raises(UserError) as err:
        compose_config([override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_choices_lists_config_groups():
    assert "sst2" in choices("data") and "dan" in choices("model")
