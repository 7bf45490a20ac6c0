"""K seeds saved after an epoch and loaded again train on exactly as if never stopped."""

import pytest
import torch

from models.dan import DAN
from models.nplm import NPLM
from models.training import TrainSettings, load_trainers, make_trainers, save_trainers
from tests.models.test_stack import lm_task, per_epoch, ragged_task

SEEDS = [5, 17, 2]


def run(trainers, epochs=None):
    n = 0
    while any(not r.done for r in trainers.seeds) and (epochs is None or n < epochs):
        trainers.step()
        n += 1
    return trainers


@pytest.mark.parametrize("vectorize", ["true", "false"])
@pytest.mark.parametrize("model", ["dan", "nplm"])
def test_resumed_trainers_match_uninterrupted_ones(tmp_path, vectorize, model):
    torch.set_num_threads(1)
    if model == "dan":
        task = ragged_task()
        build = lambda: DAN(len(task.vocab), 2, embed_dim=8, hidden_dims=[8], word_dropout=0.3,  # noqa: E731
                            dropout=0.2, sparse=True)
        settings = TrainSettings(optimizer="adagrad", lr=0.1, weight_decay=1e-4, batch_size=16,
                                 max_epochs=5, patience=1)
    else:
        task = lm_task()
        build = lambda: NPLM(len(task.vocab), 3, embed_dim=6, hidden_dim=5, direct=True)  # noqa: E731
        settings = TrainSettings(optimizer="sgd", lr=0.5, lr_decay=1e-3, weight_decay=1e-4,
                                 batch_size=16, max_epochs=4, patience=2, decay_biases=False)
    straight = run(make_trainers(build, task, settings, SEEDS, vectorize=vectorize))

    first = run(make_trainers(build, task, settings, SEEDS, vectorize=vectorize), epochs=2)
    path = tmp_path / "ck.pt"
    save_trainers(first, path, {"epoch": 2})
    assert all(getattr(h, "task", task) is task for h in first.seeds)  # given back after saving
    resumed, extra = load_trainers(path, task)
    assert extra == {"epoch": 2} and resumed is not first
    run(resumed)
    for a, b in zip(straight.seeds, resumed.seeds):
        assert per_epoch(a) == per_epoch(b), a.seed
        assert a.best_epoch == b.best_epoch
        for k, v in a.best_state_dict().items():
            assert torch.equal(v, b.best_state_dict()[k]), k


@pytest.mark.parametrize("vectorize", ["true", "false"])
def test_a_checkpoint_from_before_fused_sgd_goes_on_fused_and_identically(tmp_path, vectorize):
    """Optimizers pickled unfused (checkpoints written before `fuse`) step on torch's fused
    SGD after loading, and training still ends exactly where it would have unfused."""
    torch.set_num_threads(1)
    task = lm_task()
    build = lambda: NPLM(len(task.vocab), 3, embed_dim=6, hidden_dim=5, direct=True)  # noqa: E731
    settings = TrainSettings(optimizer="sgd", lr=0.5, lr_decay=1e-3, weight_decay=1e-4,
                             batch_size=16, max_epochs=4, patience=2, decay_biases=False)

    def optimizers(trainers):
        return [h.optimizer for h in [*trainers.seeds, trainers] if hasattr(h, "optimizer")]

    def unfuse(trainers):
        for o in optimizers(trainers):
            for g in o.param_groups:
                g["fused"], g["foreach"] = None, None
        return trainers

    straight = run(unfuse(make_trainers(build, task, settings, SEEDS, vectorize=vectorize)))
    first = run(unfuse(make_trainers(build, task, settings, SEEDS, vectorize=vectorize)), epochs=2)
    save_trainers(first, tmp_path / "ck.pt")
    resumed, _ = load_trainers(tmp_path / "ck.pt", task)
    assert optimizers(resumed) and all(g["fused"] for o in optimizers(resumed) for g in o.param_groups)
    run(resumed)
    for a, b in zip(straight.seeds, resumed.seeds):
        assert per_epoch(a) == per_epoch(b), a.seed
        for k, v in a.best_state_dict().items():
            assert torch.equal(v, b.best_state_dict()[k]), k


def save_as_on_a_gpu(trainers, path, monkeypatch, noise):
    """`save_trainers` as a GPU host writes it: every tensor storage tagged `cuda:0` and
    the models' noise generators CUDA ones (their state a CUDA generator's 16 bytes); the
    batch orders' generators stay CPU ones, as they are on a GPU host."""
    import copyreg

    import torch.serialization

    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        cuda_state = lambda g: (g.initial_seed(), 0, torch.zeros(16, dtype=torch.uint8))  # noqa: E731
        on_gpu = {id(g) for g in noise}
        m.setitem(copyreg.dispatch_table, torch._C.Generator,
                  lambda g: (torch._C.Generator, (torch.device("cuda", 0),), cuda_state(g))
                  if id(g) in on_gpu else g.__reduce__())
        save_trainers(trainers, path, {"epoch": 2})


@pytest.mark.parametrize("vectorize", ["true", "false"])
def test_a_checkpoint_written_on_a_gpu_goes_on_on_the_cpu(tmp_path, monkeypatch, vectorize):
    """A CPU-only host resumes a GPU host's checkpoint (before: torch's 'Attempting to
    deserialize object on a CUDA device'): tensors on the CPU, noise reseeded there."""
    torch.set_num_threads(1)
    task = ragged_task()
    build = lambda: DAN(len(task.vocab), 2, embed_dim=8, hidden_dims=[8], word_dropout=0.3,  # noqa: E731
                        dropout=0.2, sparse=True)
    settings = TrainSettings(optimizer="adagrad", lr=0.1, weight_decay=1e-4, batch_size=16,
                             max_epochs=4, patience=5)
    def noise(trainers):
        return [t.model.noise for t in trainers.seeds] if vectorize == "false" else trainers.noise

    def orders(trainers):
        return [t.generator for t in trainers.seeds] if vectorize == "false" else trainers.order

    first = run(make_trainers(build, task, settings, SEEDS, vectorize=vectorize), epochs=2)
    path = tmp_path / "ck.pt"
    save_as_on_a_gpu(first, path, monkeypatch, noise(first))
    resumed, extra = load_trainers(path, task, torch.device("cpu"))
    assert extra == {"epoch": 2}
    for a, b in zip(first.seeds, resumed.seeds):
        assert per_epoch(a) == per_epoch(b)
        for k, v in a.best_state_dict().items():
            assert b.best_state_dict()[k].device.type == "cpu" and torch.equal(v, b.best_state_dict()[k])
    assert [g.device.type for g in noise(resumed)] == ["cpu"] * len(SEEDS)
    assert [g.initial_seed() for g in noise(resumed)] == [g.initial_seed() for g in noise(first)]
    # the batch orders go on where they were (before: reseeded, or on the GPU device)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(orders(first), orders(resumed)))
    run(resumed)
    assert all(r.done and r.epoch == 4 for r in resumed.seeds)


def test_a_cpu_generator_stays_on_the_cpu_when_a_run_goes_on_on_a_gpu():
    """Batch orders are drawn on the CPU on every device: a GPU resume keeps their state on
    the CPU (before: remade on the GPU, where `randperm(n, generator=g)` refuses them)."""
    from models.relocate import _generator_on
    g = _generator_on(torch.device("cuda", 0))("cpu")
    assert g.device.type == "cpu" and type(g) is torch.Generator
