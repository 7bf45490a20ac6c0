"""Whole trials fused: T configurations of one architecture that differ only in scalar
hyper-parameters (lr, weight decay, dropout rates, patience) x K seeds each, trained as one
stacked model with per-slice values (trainer.py) and a per-slice optimizer (optim.py).
A model fuses where it registers a fused form (`registry.register_fused`: models/dan/fused.py)."""

from models.fused.optim import SlicedOptimizer
from models.fused.trainer import Config, FusedTrials

__all__ = ["Config", "FusedTrials", "SlicedOptimizer"]
