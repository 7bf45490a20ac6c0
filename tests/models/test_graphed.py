"""train.cuda_graphs: the static step (models/graphed.py) trains as the ordinary loop does.

On the CPU the static step runs its steps eagerly, so these tests check its arithmetic
(batches gathered at a device-side cursor, the learning rate annealed on the device, SGD
reading it from a tensor, the loss summed in place, the last smaller batch) against the
ordinary loop, bit for bit. What only a GPU runs (capture and replay) is timed and checked
for parity by `make gpu-check`.
"""

from dataclasses import replace

import pytest
import torch

from models import graphed
from models.dan import DAN
from models.errors import UserError
from models.graphed import StaticStep, use_graphs
from models.nplm import NPLM
from models.training import SeedTrainer, Stacked, TrainSettings, load_trainers, make_trainers, save_trainers
from tests.models.test_stack import lm_task, ragged_task

SGD = TrainSettings(optimizer="sgd", lr=1.0, batch_size=32, max_epochs=6, patience=1, lr_decay=1e-2,
                    decay_biases=False, weight_decay=1e-3)


def build_for(task):
    return lambda: NPLM(len(task.vocab), 3, 8, 12)


def history(record):
    return [(m.epoch, m.train_loss, m.dev, m.improved) for m in record.history]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("steps_per_graph", [1, 3])
@pytest.mark.parametrize("settings, tokens", [
    (SGD, 600),  # 18 batches of 32 and one of 24; lr decay, no L2 on biases
    (replace(SGD, lr_decay=0.0, decay_biases=True, batch_size=25), 600),  # 24 batches of 25, none smaller
    (replace(SGD, lr=0.3, weight_decay=0.0, batch_size=64), None),  # every position, 15 batches and one of 21
])
def test_one_seed_trains_as_in_the_ordinary_loop(settings, tokens, steps_per_graph, monkeypatch):
    """Per-epoch train loss, dev perplexity, best epoch, best and last weights, the update
    count and the optimizer's learning rate: the same, bit for bit."""
    torch.set_num_threads(1)
    monkeypatch.setattr(graphed, "STEPS_PER_GRAPH", steps_per_graph)
    task = replace(lm_task(), tokens_per_epoch=tokens)
    eager = SeedTrainer(build_for(task), task, settings, 5, cuda_graphs="false")
    static = SeedTrainer(build_for(task), task, settings, 5, cuda_graphs="true")
    assert not eager.cuda_graphs and static.cuda_graphs
    for _ in range(3):
        eager.step()
        static.step()
        assert_same_weights(static.model.state_dict(), eager.model.state_dict())
    assert static._static is not None and static._static.steps_per_graph == steps_per_graph
    eager.fit()
    static.fit()
    assert history(static) == history(eager) and static.best_epoch == eager.best_epoch
    assert_same_weights(static.best_state_dict(), eager.best_state_dict())
    assert static.updates == eager.updates
    assert [g["lr"] for g in static.optimizer.param_groups] == [g["lr"] for g in eager.optimizer.param_groups]


def test_stacked_seeds_train_as_in_the_ordinary_loop_and_a_leaving_seed_rebuilds_the_step():
    """Three seeds stacked, one of which stops early: the static step is built again for
    the smaller stack, and every seed's history and best weights are those of the
    ordinary stacked loop."""
    torch.set_num_threads(1)
    task = lm_task()
    runs = {}
    for mode in ("false", "true"):
        trainers = make_trainers(build_for(task), task, SGD, [1, 2, 3], vectorize="true", cuda_graphs=mode)
        assert isinstance(trainers, Stacked) and trainers.cuda_graphs == (mode == "true")
        steps = set()
        while any(not r.done for r in trainers.seeds):
            trainers.step()
            steps.add(id(trainers._static))
        runs[mode] = trainers, steps
    (eager, _), (static, steps) = runs["false"], runs["true"]
    assert len({r.epoch for r in eager.seeds}) > 1  # a seed left the stack before the others
    assert len(steps) == 2  # ...and the static step was built again for the smaller stack
    for a, b in zip(static.seeds, eager.seeds):
        assert history(a) == history(b)
        assert_same_weights(a.best_state_dict(), b.best_state_dict())


def test_a_checkpoint_of_graphed_training_goes_on_as_if_it_never_stopped(tmp_path):
    """The static step is not pickled (a CUDA graph cannot be): it is built again on load."""
    torch.set_num_threads(1)
    task = lm_task()
    straight = make_trainers(build_for(task), task, SGD, [1, 2], vectorize="true", cuda_graphs="true")
    for _ in range(3):
        straight.step()
    first = make_trainers(build_for(task), task, SGD, [1, 2], vectorize="true", cuda_graphs="true")
    first.step()
    assert first._static is not None
    save_trainers(first, tmp_path / "ck.pt")
    again, _ = load_trainers(tmp_path / "ck.pt", task)
    assert again._static is None and again.cuda_graphs
    again.step()
    again.step()
    for a, b in zip(again.seeds, straight.seeds):
        assert history(a) == history(b)


def test_the_gpus_schedule_covers_every_batch_once_in_order(monkeypatch):
    """On a GPU the step runs WARMUP_STEPS times eagerly, then as replays of graphs of S
    steps and of 1 (the epoch's rest), then the last smaller batch eagerly. The same
    bookkeeping, its graphs replaced by the eager steps they capture, trains as the CPU's."""
    torch.set_num_threads(1)
    task = lm_task()  # 600 positions: 18 batches of 32 and one of 24
    log = []

    class Replays:  # stands in for torch.cuda.CUDAGraph: replay() runs the captured steps
        def __init__(self, step, n):
            self.step, self.n = step, n

        def replay(self):
            log.append(("replay", self.n))
            for _ in range(self.n):
                self.step._step(self.step.span)

    def gpu_like(trainer):
        step = StaticStep(trainer.model, graphed_optimizer(trainer), task, False, SGD.lr, SGD.lr_decay,
                          SGD.batch_size, steps_per_graph=4)
        step.side = object()  # not None: the GPU's branch
        monkeypatch.setattr(step, "_on_side_stream", lambda fn: (log.append(("warm", 1)), fn()))
        monkeypatch.setattr(step, "_capture", lambda n: Replays(step, n))
        return step

    def graphed_optimizer(trainer):
        from models.training import make_optimizer
        return make_optimizer(trainer.model, SGD)

    eager = SeedTrainer(build_for(task), task, SGD, 5, cuda_graphs="false")
    static = SeedTrainer(build_for(task), task, SGD, 5, cuda_graphs="true")
    static._static = gpu_like(static)
    for _ in range(2):
        eager.step()
        static.step()
        assert history(static) == history(eager)
    assert_same_weights(static.model.state_dict(), eager.model.state_dict())
    first = [("warm", 1)] * 3 + [("replay", 4)] * 3 + [("replay", 1)] * 3  # 3 + 12 + 3 = 18
    assert log == first + [("replay", 4)] * 4 + [("replay", 1)] * 2  # 16 + 2 = 18


def test_cuda_graphs_setting():
    """auto: on for a capturable step on a GPU, never on the CPU; true: an error where the
    step cannot be captured; unknown values are errors."""
    lm = lm_task()
    nplm, dropped = NPLM(len(lm.vocab), 3, 8, 12), NPLM(len(lm.vocab), 3, 8, 12, dropout=0.1)
    assert use_graphs("auto", nplm, lm, "sgd", 0.0, "cuda") is True
    assert use_graphs("auto", nplm, lm, "sgd", 0.0, "cpu") is False
    assert use_graphs("true", nplm, lm, "sgd", 0.0, "cpu") is True
    assert use_graphs("false", nplm, lm, "sgd", 0.0, "cuda") is False
    assert use_graphs(True, nplm, lm, "sgd", 0.0, "cpu") is True  # YAML's true
    for model, task, optimizer, momentum, why in [
            (dropped, lm, "sgd", 0.0, "dropout"), (nplm, lm, "adam", 0.0, "SGD without momentum"),
            (nplm, lm, "sgd", 0.9, "SGD without momentum"), (DAN(50, 2), ragged_task(), "sgd", 0.0, "shape")]:
        assert use_graphs("auto", model, task, optimizer, momentum, "cuda") is False
        with pytest.raises(UserError, match=why):
            use_graphs("true", model, task, optimizer, momentum, "cuda")
    with pytest.raises(UserError, match="auto, true or false"):
        use_graphs("maybe", nplm, lm, "sgd", 0.0, "cpu")
    with pytest.raises(UserError, match="dropout"):
        make_trainers(lambda: NPLM(len(lm.vocab), 3, 8, 12, dropout=0.1), lm, SGD, [1, 2], cuda_graphs="true")


def test_gpu_check_runs_only_the_graph_rows(tmp_path, capsys):
    """`make gpu-check ARGS='--only graphs'` (the short check on a lent GPU) on the CPU: the
    graphed rows beside their eager baselines, parity exact, and nothing else."""
    import json

    from benchmarks.gpu_check import main
    torch.set_num_threads(1)
    assert main(["--device", "cpu", "--small", "--only", "graphs", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert "dan" not in report and "parity" not in report
    assert [r["max_rel_diff"] for r in report["graphs_parity"]] == [0.0, 0.0]
    assert [r["batch"] for r in report["nplm"]] == [64, 1024]
    assert all(r["graphs_tokens_per_s"] > 0 for r in report["nplm"])
    assert [r["cuda_graphs"] for r in report["brown_mlp9"]] == [True, False]
    assert "Brown's size, CUDA graphs" in capsys.readouterr().out
