import math

import pytest
import torch
from torch import nn

from models.dan import DAN
from models.data.classification import prepare_classification
from models.data.csv_text import load_csv
from models.errors import NonFiniteLossError
from models.training import SeedTrainer, TrainSettings, make_optimizer


@pytest.fixture
def task(polarity_csv):
    return prepare_classification(load_csv(path=str(polarity_csv)))


def dan_builder(task, sparse=True):
    return lambda: DAN(len(task.vocab), task.num_classes, embed_dim=16, hidden_dims=(16,),
                       word_dropout=0.3, dropout=0.1, sparse=sparse)


SETTINGS = TrainSettings(lr=0.1, batch_size=32, max_epochs=4, patience=2, weight_decay=1e-4)


def histories(trainer):
    return [(m.train_loss, m.dev) for m in trainer.history]


def test_same_seed_same_metrics_different_seed_different(task):
    torch.set_num_threads(1)
    a = SeedTrainer(dan_builder(task), task, SETTINGS, seed=7)
    b = SeedTrainer(dan_builder(task), task, SETTINGS, seed=7)
    c = SeedTrainer(dan_builder(task), task, SETTINGS, seed=8)
    a.fit()
    torch.manual_seed(12345)  # the global RNG must not matter
    b.fit()
    c.fit()
    assert histories(a) == histories(b)
    assert histories(a) != histories(c)


def test_lockstep_equals_alone(task):
    torch.set_num_threads(1)
    alone = SeedTrainer(dan_builder(task), task, SETTINGS, seed=3)
    alone.fit()
    x = SeedTrainer(dan_builder(task), task, SETTINGS, seed=3)
    y = SeedTrainer(dan_builder(task), task, SETTINGS, seed=4)
    while not (x.done and y.done):
        for t in (x, y):
            if not t.done:
                t.step()
    assert histories(x) == histories(alone)


def test_it_learns_the_synthetic_task(task):
    t = SeedTrainer(dan_builder(task), task, TrainSettings(lr=0.1, max_epochs=8, patience=8), 1)
    result = t.fit()
    assert result.best_value > 0.9


class ScriptedTask:
    """Dev accuracy follows a script; training does nothing useful."""

    monitor, mode = "accuracy", "max"

    def __init__(self, script, losses=None):
        self.script, self.calls = script, 0
        self.losses = losses

    def train_batches(self, batch_size, generator):
        yield torch.ones(2, 1)

    def loss(self, model, batch):
        value = model(batch).pow(2).mean()
        if self.losses is not None:
            value = value * 0 + self.losses[self.calls]
        return value

    def evaluate(self, model):
        value = self.script[self.calls]
        self.calls += 1
        return {"accuracy": value}


def test_early_stopping_patience_and_best_weights_restored():
    task = ScriptedTask([0.5, 0.7, 0.69, 0.7, 0.6, 0.9])
    trainer = SeedTrainer(lambda: nn.Linear(1, 1), task, TrainSettings(
        optimizer="sgd", lr=0.1, max_epochs=10, patience=3), seed=0)
    snapshots = []
    result = trainer.fit(on_epoch=lambda m: snapshots.append(
        {k: v.clone() for k, v in trainer.model.state_dict().items()}))
    assert result.epochs_run == 5  # epochs 3, 4, 5 brought no improvement over 0.7
    assert (result.best_epoch, result.best_value) == (2, 0.7)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])  # epoch 2's weights are back


def test_min_delta_counts_small_gains_as_none():
    task = ScriptedTask([0.5, 0.505, 0.509, 0.6])
    trainer = SeedTrainer(lambda: nn.Linear(1, 1), task, TrainSettings(
        optimizer="sgd", lr=0.1, max_epochs=10, patience=2, min_delta=0.01), seed=0)
    assert trainer.fit().epochs_run == 3


def test_nan_loss_is_an_error():
    task = ScriptedTask([0.5, 0.6], losses=[math.nan])
    trainer = SeedTrainer(lambda: nn.Linear(1, 1), task, TrainSettings(optimizer="sgd"), seed=0)
    with pytest.raises(NonFiniteLossError, match="nan"):
        trainer.step()


def test_lazy_l2_on_sparse_rows_matches_dense_l2_there():
    torch.manual_seed(0)
    dense = nn.EmbeddingBag(10, 4, mode="mean")
    sparse = nn.EmbeddingBag(10, 4, mode="mean", sparse=True)
    sparse.load_state_dict(dense.state_dict())
    s = TrainSettings(optimizer="sgd", lr=1.0, weight_decay=0.1)
    x = torch.tensor([[1, 2, 3]])
    for model in (dense, sparse):
        opt = make_optimizer(model, s)
        model(x).sum().backward()
        opt.step()
    rows = [1, 2, 3]
    assert torch.allclose(dense.weight[rows], sparse.weight[rows], atol=1e-6)
    assert torch.allclose(sparse.weight[5], dense.weight[5] / (1 - 0.1))  # untouched row: no decay


def test_adam_refuses_sparse_embeddings():
    with pytest.raises(ValueError, match="sparse"):
        make_optimizer(nn.EmbeddingBag(5, 2, sparse=True), TrainSettings(optimizer="adam"))


def five_steps(*runs, x, y) -> None:
    """Five steps of each (model, optimizer) on the batch (x, y)."""
    for model, optimizer in runs:
        for _ in range(5):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()


def test_adagrad_runs_fused_on_the_cpu_where_no_gradient_is_sparse(task):
    """Torch's fused Adagrad where it can run (dense gradients on the CPU: a stacked DAN,
    whose embedding rows are updated by hand); the same arithmetic within float rounding;
    sparse gradients keep the unfused loop."""
    from models.training import make_trainers
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 30), nn.ReLU(), nn.Linear(30, 5))
    twin = nn.Sequential(nn.Linear(24, 30), nn.ReLU(), nn.Linear(30, 5))
    twin.load_state_dict(model.state_dict())
    s = TrainSettings(optimizer="adagrad", lr=0.1, weight_decay=1e-3)
    fused, plain = make_optimizer(model, s), make_optimizer(twin, s)
    assert all(g["fused"] for g in fused.param_groups)
    for g in plain.param_groups:
        g["fused"] = None
    x, y = torch.randn(16, 24), torch.randint(0, 5, (16,))
    five_steps((model, fused), (twin, plain), x=x, y=y)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert not any(g["fused"] for g in make_optimizer(nn.EmbeddingBag(10, 4, sparse=True), s).param_groups)
    # the default DAN's optimizer, K seeds stacked, is the fused one
    settings = TrainSettings(optimizer="adagrad", lr=0.05, batch_size=32, max_epochs=3, patience=3)
    stacked = make_trainers(dan_builder(task), task, settings, [1, 2, 3])
    assert all(g["fused"] for g in stacked.optimizer.param_groups)


@pytest.mark.parametrize("fused", [True, None])
def test_an_optimizer_rebuilt_when_seeds_leave_the_stack_keeps_its_kernel(task, fused):
    """A run resumed from a checkpoint written before fused Adagrad (its param groups say
    fused=None) goes on unfused after a seed stops early, and a fused one fused."""
    from models.training import make_trainers
    settings = TrainSettings(optimizer="adagrad", lr=0.05, batch_size=32, max_epochs=3, patience=3)
    stacked = make_trainers(dan_builder(task), task, settings, [1, 2, 3])
    for g in stacked.optimizer.param_groups:
        g["fused"] = fused
    stacked.step()
    stacked._keep([0, 2])  # the second seed stopped, as `step` drops it
    stacked.active = [stacked.active[pos] for pos in (0, 2)]
    assert {g["fused"] for g in stacked.optimizer.param_groups} == {fused}
    stacked.step()


def test_a_cpu_checkpoints_fused_adagrad_moved_off_the_cpu_takes_torchs_default_there():
    """A checkpoint written on the CPU (fused Adagrad) and loaded where the parameters live on
    another device (a GPU: models/relocate.py) goes on with torch's default there, never a
    fused kernel this project has not measured (and older torch lacks)."""
    from models.training.optimizers import cpu_only_fused
    on_cpu = torch.optim.Adagrad([nn.Parameter(torch.zeros(3))], lr=0.1, fused=True)
    elsewhere = torch.optim.Adagrad([nn.Parameter(torch.zeros(3, device="meta"))], lr=0.1, fused=True)
    assert cpu_only_fused(on_cpu).param_groups[0]["fused"] is True
    assert cpu_only_fused(elsewhere).param_groups[0]["fused"] is None


@pytest.mark.parametrize("kw", [dict(optimizer="lbfgs"), dict(lr=0), dict(patience=0)])
def test_bad_settings(kw):
    with pytest.raises(ValueError):
        TrainSettings(**kw)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_is_fused_where_it_can_be_and_steps_bit_for_bit_as_unfused(momentum):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(24, 50))
    twin = nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(24, 50))
    twin.load_state_dict(model.state_dict())
    s = TrainSettings(optimizer="sgd", lr=0.5, weight_decay=1e-3, decay_biases=False, momentum=momentum)
    fused = make_optimizer(model, s)
    plain = make_optimizer(twin, s)
    for g in plain.param_groups:
        g["fused"] = None
    assert all(bool(g["fused"]) == (momentum == 0) for g in fused.param_groups)  # momentum: not bit for bit
    x, y = torch.randint(0, 50, (16, 3)), torch.randint(0, 50, (16,))
    five_steps((model, fused), (twin, plain), x=x, y=y)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    # sparse gradients have no fused kernel: those optimizers stay as they were
    if s.sparse_ok:
        sparse = make_optimizer(nn.EmbeddingBag(10, 4, sparse=True), s)
        assert not any(g["fused"] for g in sparse.param_groups)
