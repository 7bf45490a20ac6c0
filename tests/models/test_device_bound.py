"""No batch of a training epoch waits for the device (issue 37): counted on the CPU.

On a GPU, reading a value back (`.item()`, `bool(t)`, `int(t)`), `torch.unique`, `nonzero`
and the like make the host wait for the device; inside the batch loop that leaves the GPU
idle between batches. A dispatch mode counts the operations that would wait, over one
epoch: their count must not grow with the number of batches. `make gpu-check` proves the
same on a GPU with torch.cuda.set_sync_debug_mode("error").
"""

import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from models.dan import DAN
from models.dan.stacked import distinct_rows
from models.nplm import NPLM
from models.training import SeedTrainer, Stacked, TrainSettings, make_trainers
from tests.models.test_stack import SEEDS, assert_parity, lm_task, ragged_task

# operations whose output the host must wait for on a GPU
WAITING = {"_local_scalar_dense", "nonzero", "_unique2", "unique_dim", "unique_consecutive",
           "masked_select", "repeat_interleave"}


class Waits(TorchDispatchMode):
    """Counts WAITING operations, outside optimizer steps: torch keeps Adagrad's and Adam's
    step counts on the CPU (capturable=False), so reading them waits for no device."""

    def __init__(self) -> None:
        super().__init__()
        self.count, self.in_step = 0, False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.in_step and func.overloadpacket.__name__ in WAITING:
            self.count += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def counting(monkeypatch):
    """Waits counted, `tolist()` too (it reads the values back without dispatching)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
    mode = Waits()
    tolist = torch.Tensor.tolist

    def counted(t):
        mode.count += 1
        return tolist(t)
    pre = register_optimizer_step_pre_hook(lambda *_: setattr(mode, "in_step", True))
    post = register_optimizer_step_post_hook(lambda *_: setattr(mode, "in_step", False))
    try:
        with monkeypatch.context() as m, mode:
            m.setattr(torch.Tensor, "tolist", counted)
            yield mode
    finally:
        pre.remove()
        post.remove()


def waits_per_epoch(monkeypatch, make, batch_sizes=(32, 8)) -> list[int]:
    """Waiting operations in one training epoch (not dev evaluation) at each batch size."""
    torch.set_num_threads(1)
    counts = []
    for b in batch_sizes:
        trainers = make(b)
        if isinstance(trainers, Stacked) and trainers.by_hand:
            trainers.stack.force_fixed_rows = True  # the GPU's way of finding a batch's rows
        epoch = trainers._train_epoch if hasattr(trainers, "_train_epoch") else trainers.seeds[0]._train_epoch
        with counting(monkeypatch) as mode:
            epoch()
        counts.append(mode.count)
    return counts


@pytest.mark.parametrize("optimizer, every_row", [("adagrad", True), ("sgd", False)])
def test_a_stacked_dan_epoch_waits_a_fixed_number_of_times(monkeypatch, optimizer, every_row):
    task = ragged_task()

    def make(batch):
        settings = TrainSettings(optimizer=optimizer, lr=0.05, batch_size=batch, weight_decay=1e-3,
                                 l2_every_row=every_row, lr_decay=1e-3)
        build = lambda: DAN(len(task.vocab), 2, embed_dim=8, hidden_dims=(8,), word_dropout=0.3,  # noqa: E731
                            dropout=0.2, sparse=True)
        return make_trainers(build, task, settings, [1, 2, 3], vectorize="true")
    few, many = waits_per_epoch(monkeypatch, make)  # 8 batches, then 30
    # once a seed to read its batches' widths, once to read the losses
    assert few == many and many <= 4, (few, many)


@pytest.mark.parametrize("stacked", [True, False])
def test_an_nplm_epoch_waits_a_fixed_number_of_times(monkeypatch, stacked):
    task = lm_task()

    def make(batch):
        settings = TrainSettings(optimizer="sgd", lr=0.5, batch_size=batch, weight_decay=1e-4,
                                 decay_biases=False, lr_decay=1e-3)
        build = lambda: NPLM(len(task.vocab), 3, embed_dim=6, hidden_dim=10, dropout=0.1)  # noqa: E731
        if stacked:
            return make_trainers(build, task, settings, [1, 2], vectorize="true")
        return SeedTrainer(build, task, settings, 1)
    few, many = waits_per_epoch(monkeypatch, make)  # 19 batches, then 75
    assert few == many and many <= 1, (few, many)


def test_distinct_rows_is_unique_in_fixed_sizes():
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 7, 300):
        flat = torch.cat([torch.zeros(1, dtype=torch.long), torch.randint(0, 40, (n,), generator=g)])
        used, inverse = distinct_rows(flat)
        want, want_inverse = torch.unique(flat, return_inverse=True)
        assert used.shape == flat.shape and inverse.shape == flat.shape
        assert torch.equal(used[:len(want)], want) and torch.equal(inverse, want_inverse)
        assert (used[len(want):] == flat.min()).all()  # the rest: the pad row again


def test_the_gpus_way_of_finding_rows_trains_as_the_cpus(monkeypatch):
    """Stacked seeds whose embedding rows are found in fixed sizes (as on a GPU) against each
    seed alone (torch's sparse Adagrad): the parity test, on the GPU's code path."""
    monkeypatch.setattr("models.dan.stacked.StackedDAN.fixed_size_rows", lambda self, flat: True)
    task = ragged_task()
    settings = TrainSettings(optimizer="adagrad", lr=0.05, batch_size=16, max_epochs=3, patience=1,
                             weight_decay=1e-3)
    assert_parity(lambda: DAN(len(task.vocab), 2, embed_dim=12, hidden_dims=(16,), word_dropout=0.3,
                              sparse=True), task, settings, seeds=SEEDS[:3])
