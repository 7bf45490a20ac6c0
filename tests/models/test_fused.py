"""T configurations x K seeds fused as one model give each (configuration, seed) the metrics
it gets trained alone (the parity test), stop each slice on its own patience, and refuse
configurations that cannot share one model."""

from dataclasses import replace

import pytest
import torch

from models.dan import DAN
from models.dan.fused import FusedDAN
from models.errors import UserError
from models.fused import Config, FusedTrials, SlicedOptimizer
from models.registry import fuse_models
from models.training import SeedTrainer, TrainSettings
from tests.models.test_stack import per_epoch, ragged_task

SEEDS = [11, 3]


def dan(task, dropout=0.2, word_dropout=0.3, layers=(16, 16), sparse=True):
    return lambda: DAN(len(task.vocab), 2, embed_dim=12, hidden_dims=layers, word_dropout=word_dropout,
                       dropout=dropout, sparse=sparse)


def grid(task, optimizer, sparse):
    """Four configurations differing in lr, weight decay, dropout, word dropout and patience."""
    lr = {"adagrad": 0.05, "adam": 0.01, "sgd": 0.5}[optimizer]
    base = TrainSettings(optimizer=optimizer, lr=lr, batch_size=16, max_epochs=3, patience=2, min_delta=0.01,
                         decay_biases=optimizer != "adam", lr_decay=1e-3 if optimizer == "sgd" else 0.0)
    return [Config(dan(task, 0.2, 0.3, sparse=sparse), replace(base, weight_decay=1e-3)),
            Config(dan(task, 0.0, 0.3, sparse=sparse), replace(base, lr=lr * 3, patience=1)),
            Config(dan(task, 0.5, 0.0, sparse=sparse), replace(base, lr=lr / 2, weight_decay=1e-2)),
            Config(dan(task, 0.0, 0.0, sparse=sparse), replace(base, patience=1, max_epochs=2))]


def assert_slice_equals_alone(record, config, task):
    alone = SeedTrainer(config.build_model, task, config.settings, record.seed)
    alone.fit()
    assert record.epoch == alone.epoch and record.best_epoch == alone.best_epoch, record.seed
    for (e1, loss1, dev1), (e2, loss2, dev2) in zip(per_epoch(record), per_epoch(alone)):
        assert e1 == e2 and loss1 == pytest.approx(loss2, rel=1e-5, abs=1e-6), (record.seed, e1)
        assert dev1 == pytest.approx(dev2, rel=1e-5, abs=1e-6), (record.seed, e1)
    assert_same_weights(record, alone)


def assert_same_weights(record, alone):
    best, want = record.best_state_dict(), alone.best_state_dict()
    assert best.keys() == want.keys()
    for k in best:  # float32 sums in another order (bmm, not mm) for three epochs: on an AVX-512
        # CPU a weight of 0.036 ends 1.5e-6 apart (4e-5 relative); a slice given another's
        # settings ends orders of magnitude further (test_a_slice_with_another_lr_is_caught)
        torch.testing.assert_close(best[k], want[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimizer, sparse", [("adagrad", True), ("adam", False), ("sgd", True),
                                               ("adagrad", False)])
def test_every_fused_slice_equals_its_configuration_trained_alone(optimizer, sparse):
    torch.set_num_threads(1)
    task = ragged_task()
    configs = grid(task, optimizer, sparse)
    fused = FusedTrials(configs, task, SEEDS)
    assert isinstance(fused.stack, FusedDAN) and fused.stack.k == len(configs) * len(SEEDS)
    fused.fit()
    for config, records in zip(configs, fused.records):
        for record in records:
            assert_slice_equals_alone(record, config, task)


def test_a_slice_with_another_lr_is_caught():
    """The parity check's tolerance is far below what a slice trained with a setting 1% off
    ends with, so it cannot pass a slice that got another configuration's values."""
    torch.set_num_threads(1)
    task = ragged_task()
    configs = grid(task, "adagrad", True)
    fused = FusedTrials(configs, task, SEEDS)
    fused.fit()
    off = replace(configs[1], settings=replace(configs[1].settings, lr=configs[1].settings.lr * 1.01))
    with pytest.raises(AssertionError):
        assert_slice_equals_alone(fused.records[1][0], off, task)
    # the weights' tolerance alone catches it too (the metrics above fail first)
    record = fused.records[1][0]
    alone = SeedTrainer(off.build_model, task, off.settings, record.seed)
    alone.fit()
    with pytest.raises(AssertionError):
        assert_same_weights(record, alone)


def test_a_slice_that_stops_leaves_the_stack_with_its_best_weights():
    torch.set_num_threads(1)
    task = ragged_task()
    configs = grid(task, "adagrad", True)
    fused = FusedTrials(configs, task, SEEDS)
    fused.step()
    assert fused.stack.k == 8
    fused.step()  # configuration 3 (max_epochs 2) ends here, whatever its dev metric did
    assert all(r.done for r in fused.records[3]) and fused.stack.k <= 6
    kept = {i: {k: v.clone() for k, v in fused.slices[i].best_state_dict().items()} for i in (6, 7)}
    while fused.active:
        fused.step()
    for i, state in kept.items():  # a stopped slice no longer changes
        assert all(torch.equal(state[k], v) for k, v in fused.slices[i].best_state_dict().items())
    assert [r.epoch for r in fused.records[3]] == [2, 2]


def test_configurations_of_another_architecture_are_refused_in_one_sentence():
    task = ragged_task()
    settings = TrainSettings(batch_size=16, max_epochs=2)
    wide = [Config(dan(task), settings), Config(dan(task, layers=(32, 16)), settings)]
    with pytest.raises(UserError, match=r"^configuration 1 differs from the first in its architecture.*\.$"):
        FusedTrials(wide, task, SEEDS)
    apart = [Config(dan(task), settings), Config(dan(task), replace(settings, batch_size=32))]
    with pytest.raises(UserError, match=r"^configuration 1 has train.batch_size=32 .*share"):
        FusedTrials(apart, task, SEEDS)
    rms = [Config(dan(task, sparse=False), replace(settings, optimizer="rmsprop"))]
    with pytest.raises(UserError, match="cannot be fused"):
        FusedTrials(rms, task, SEEDS)
    with pytest.raises(UserError, match="at least one configuration"):
        FusedTrials([], task, SEEDS)


def test_the_fused_form_is_found_through_the_registry():
    task = ragged_task()
    models = [dan(task, p)() for p in (0.0, 0.5)]
    fused = fuse_models(models)
    assert isinstance(fused, FusedDAN) and fused.p[0] == (0.0, 0.5)
    assert fuse_models([torch.nn.Linear(2, 2)]) is None
    with pytest.raises(UserError, match="DAN 1 differs from the first in its architecture"):
        fuse_models([dan(task)(), dan(task, sparse=False)()])


def test_sliced_adagrad_equals_torch_adagrad_slice_by_slice():
    """Each slice of one sliced step with its own lr and weight decay against torch's Adagrad."""
    torch.manual_seed(0)
    w = torch.randn(3, 5, 4)
    grads = [torch.randn(3, 5, 4) for _ in range(3)]
    lrs, wds = [0.1, 0.01, 0.5], [0.0, 1e-3, 1e-1]
    p = torch.nn.Parameter(w.clone())
    sliced = SlicedOptimizer([p], [], 3, "adagrad")
    sliced.set_rates(lrs, wds, wds, torch.device("cpu"))
    alone = [torch.nn.Parameter(w[s].clone()) for s in range(3)]
    torch_opts = [torch.optim.Adagrad([a], lr=lr, weight_decay=wd) for a, lr, wd in zip(alone, lrs, wds)]
    for g in grads:
        p.grad = g.clone()
        sliced.step()
        for s, (a, opt) in enumerate(zip(alone, torch_opts)):
            a.grad = g[s].clone()
            opt.step()
    for s in range(3):
        torch.testing.assert_close(p.detach()[s], alone[s].detach(), rtol=1e-6, atol=1e-7)


def test_gpu_check_runs_its_fused_rows_on_the_cpu(tmp_path):
    """`make gpu-check ARGS='--only fused'` runs only on a lent GPU: its code must not rot meanwhile."""
    import json

    from benchmarks.gpu_check import main
    assert main(["--device", "cpu", "--small", "--only", "fused", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "gpu-check.json").read_text())["fused"]
    assert rows[0]["ok"] and rows[0]["max_rel_diff"] < 1e-5 and rows[0]["slices"] == 8
    assert rows[1]["slices"] == 4 and rows[1]["epoch_s"] > 0 and rows[1]["plain_epoch_s"] > 0
