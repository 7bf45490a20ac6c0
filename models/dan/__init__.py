"""Deep Averaging Network (Iyyer et al. 2015):
the model (model.py), its stacked form for K seeds at once (stacked.py), its fused form for
T configurations x K seeds (fused.py), and their registration, here, where all are known."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.checks import PROBABILITY, boolean, integer, number, one_of
from models.dan.fused import fused_form
from models.dan.model import *  # noqa: F403  (the model's public names: `from models.dan import DAN`)
from models.dan.model import ACTIVATIONS, DAN, build
from models.dan.stacked import StackedDAN
from models.registry import ModelSpec, register_fused, register_model, register_stacked


def stacked_form(models: Sequence[nn.Module]) -> StackedDAN | None:
    """K DANs as one stacked model."""
    return StackedDAN(models)


register_model(ModelSpec(
    name="dan", kind="classification", build=build, stack=stacked_form,
    doc="Deep Averaging Network (Iyyer et al. 2015); num_layers=0 gives NBOW",
    checks={"embed_dim": integer(1), "num_layers": integer(0), "hidden_dim": integer(1),
            "activation": one_of(*ACTIVATIONS), "word_dropout": PROBABILITY, "dropout": PROBABILITY,
            "embeddings": one_of("random", "glove"), "freeze_embeddings": boolean,
            "init_range": number(0.0, low_open=True),
            "hidden_init_range": number(0.0, low_open=True, optional=True)},
))
register_stacked(DAN, stacked_form)
register_fused(DAN, fused_form)
