"""K seeds of one configuration, trained epoch by epoch with early stopping per seed.

`make_trainers(...).step()` trains and evaluates one epoch of every unfinished seed, so a
caller can look at their mean after every epoch. The seeds train either stacked as one
model (`Stacked`, models/seed_stack.py) or one after another (`SeedTrainer` each). A seed's
weights, batch order and noise come from its own seed and generators, so it gives the same
metrics alone, beside others or stacked with them (within float tolerance when stacked).
No module-level state: a worker process may hold many trainers, one after another.

The rooms (issue 35; until then one module, models/training.py, whose pickled classes
models/relocate.py's MOVED still finds):
    settings.py    TrainSettings, OPTIMIZERS and the Task a data set offers the loop
    optimizers.py  the optimizer of the settings, lazy L2, fused SGD, the lr schedule
    devices.py     the device named in the config, hardware names, seeding
    record.py      one seed's epochs, early stopping and best weights (SeedRecord)
    seed.py        one seed alone (SeedTrainer), K one after another, CUDA-graph epochs
    stacked.py     K seeds as one stacked model (Stacked)
    make.py        which of the two trains K seeds (make_trainers)
    checkpoint.py  save_trainers / load_trainers
"""

from models.training.checkpoint import load_trainers, save_trainers
from models.training.devices import (
    build_seeded,
    check_builds,
    cpu_name,
    device_name,
    flush_denormals,
    resolve_device,
    seed_everything,
)
from models.training.make import VECTORIZE, make_trainers
from models.training.optimizers import build_optimizer, decayed_lr, fuse, make_optimizer
from models.training.record import EpochMetrics, SeedRecord, SeedResult, add_loss, check_loss
from models.training.seed import OneAfterAnother, SeedTrainer, SeedTrainers, StaticEpochs
from models.training.settings import OPTIMIZERS, StackFn, Task, TrainSettings
from models.training.stacked import Stacked

__all__ = [
    "OPTIMIZERS", "VECTORIZE", "EpochMetrics", "OneAfterAnother", "SeedRecord", "SeedResult",
    "SeedTrainer", "SeedTrainers", "StackFn", "Stacked", "StaticEpochs", "Task", "TrainSettings",
    "add_loss", "build_optimizer", "build_seeded", "check_builds", "check_loss", "cpu_name", "decayed_lr",
    "device_name", "flush_denormals", "fuse", "load_trainers", "make_optimizer", "make_trainers",
    "resolve_device", "save_trainers", "seed_everything",
]
