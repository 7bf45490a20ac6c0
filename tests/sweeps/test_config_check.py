"""A configuration's model is checked before any run starts, without building its weights:
the check runs every trial of a sweep, so it must not cost a model's initialisation."""

import pytest
import torch

from models.dan import model as dan_model
from models.errors import UserError
from models.training import check_builds
from sweeps.config.compose import compose_config
from sweeps.config.workloads import build_workload
from tests.conftest import tiny_overrides


def test_the_check_of_a_trials_model_allocates_no_weights(polarity_csv, tracking_uri, tmp_path,
                                                          monkeypatch):
    devices = []
    real = dan_model.DAN.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        devices.append(self.embed.weight.device.type)
    monkeypatch.setattr(dan_model.DAN, "__init__", spy)
    state = torch.random.get_rng_state()
    build_workload(compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path)))
    assert devices == ["meta"]  # the one build of build_workload: shapes only
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_model_the_meta_device_cannot_build_is_checked_on_the_cpu():
    built = []

    def needs_values():
        w = torch.ones(3)
        total = w.sum().item()  # raises on the meta device
        built.append(w.device.type)
        return torch.nn.Linear(int(total), 2)
    check_builds(needs_values)
    assert built == ["cpu"]


def test_impossible_settings_still_fail_the_check(polarity_csv, tracking_uri, tmp_path, monkeypatch):
    real = dan_model.DAN.__init__

    def refuses(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise ValueError("no such network")
    monkeypatch.setattr(dan_model.DAN, "__init__", refuses)
    with pytest.raises(UserError, match="bad dan settings: no such network"):
        build_workload(compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path)))
    with pytest.raises(ValueError):
        check_builds(lambda: dan_model.DAN(10, 1))  # num_classes < 2, on meta and on the CPU
