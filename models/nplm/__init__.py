"""Neural Probabilistic Language Model (Bengio et al. 2003):
the model (model.py), its stacked form for K seeds at once (stacked.py), and
their registration, here, where both are known."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.checks import PROBABILITY, boolean, integer, number
from models.nplm.model import *  # noqa: F403  (the model's public names: `from models.nplm import NPLM`)
from models.nplm.model import NPLM, build
from models.nplm.stacked import StackedNPLM
from models.registry import ModelSpec, register_model, register_stacked


def stacked_form(models: Sequence[nn.Module]) -> StackedNPLM | None:
    """K NPLMs as one stacked model; the modern variant (dropout, ...) has none."""
    return None if any(getattr(mm, "modern", False) for mm in models) else StackedNPLM(models)


register_model(ModelSpec(
    name="nplm", kind="lm", build=build, stack=stacked_form,
    doc="Neural Probabilistic Language Model (Bengio et al. 2003)",
    checks={"n": integer(2), "embed_dim": integer(1), "hidden_dim": integer(0), "direct": boolean,
            "mix": boolean, "mix_weight": number(0, 1), "dropout": PROBABILITY, "modern": boolean},
))
register_stacked(NPLM, stacked_form)
