import pytest

from models.errors import UserError
from sweeps.config.compose import choices, compose_config


def test_defaults_compose():
    cfg = compose_config()
    assert (cfg.model.name, cfg.data.name, cfg.seeds) == ("dan", "rt", 3)
    assert cfg.train.optimizer == "adagrad"
    assert cfg.tracking.experiment == "dan-rt"


def test_paper_experiment_sets_dan_rand():
    cfg = compose_config(["experiment=dan_paper"])
    assert cfg.data.name == "sst2" and cfg.data.phrases
    assert (cfg.model.num_layers, cfg.model.hidden_dim, cfg.model.activation) == (3, 300, "relu")
    assert cfg.model.word_dropout == 0.3 and cfg.model.embeddings == "random"
    assert cfg.train.optimizer == "adagrad" and cfg.train.weight_decay == 1e-5


@pytest.mark.parametrize("override, fragment", [
    ("model=nope", "unknown model 'nope'; choose one of: {model}"),  # whatever conf/ holds
    ("data=nope", "unknown data 'nope'; choose one of: {data}"),
    ("train.lrr=0.1", "the config has no key 'train.lrr'; did you mean 'train.lr'?"),
])
def test_bad_overrides_are_one_clear_sentence(override, fragment):
    with pytest.raises(UserError) as err:
        compose_config([override])
    assert {"dan", "nplm"} <= set(choices("model")) and {"rt", "ptb", "csv"} <= set(choices("data"))
    listed = {group: ", ".join(choices(group)) for group in ("model", "data")}
    assert fragment.format(**listed) in str(err.value)
    assert "\n" not in str(err.value)


def test_choices_lists_config_groups():
    assert "sst2" in choices("data") and "dan" in choices("model")


def test_gpu_per_worker():
    from sweeps.sweep import gpu_for_worker
    assert [gpu_for_worker(i, "auto", 2, None) for i in range(5)] == ["0", "1", "0", "1", "0"]
    assert [gpu_for_worker(i, "cuda", 4, "2,3") for i in range(3)] == ["2", "3", "2"]
    assert gpu_for_worker(1, "cpu", 2, None) is None  # CPU work never pinned
    assert gpu_for_worker(1, "cuda:1", 2, None) is None  # the user chose the GPU
    assert gpu_for_worker(1, "auto", 0, None) is None  # no GPU


@pytest.mark.parametrize("bad", ["device=tpu", "device=cuda:x", "train.vectorize_seeds=maybe",
                                 "train.l2_every_row=maybe", "train.cuda_graphs=maybe"])
def test_execution_settings_are_checked(bad):
    with pytest.raises(UserError, match=bad.split("=")[0]):
        compose_config([bad])


def test_a_trial_config_equals_the_composed_one():
    """Objective.config sets the trial's values on the sweep's config composed once; the
    result must be what Hydra composes from the overrides."""
    from omegaconf import OmegaConf

    from sweeps.config.search_space import to_overrides
    from sweeps.search.objective import Objective
    base = ["model=dan", "data=rt", "seeds=2"]
    objective = Objective(base, [], False, tracker=None, command="")
    for values in ({"train.lr": 0.0123, "model.num_layers": 0, "model.activation": "tanh"},
                   {"model.word_dropout": 0.25, "train.batch_size": 32, "model.hidden_dim": 100},
                   {"model.name": "dan"}):  # recomposed: other values interpolate it
        fast = objective.config(values)
        composed = compose_config([*base, *to_overrides(values)])
        assert OmegaConf.to_container(fast) == OmegaConf.to_container(composed)
        assert OmegaConf.is_readonly(fast)
    with pytest.raises(UserError, match="train.lr"):
        objective.config({"train.lr": -1.0})


def test_sigterm_stops_a_command_like_ctrl_c():
    """`kill` (a scheduler's preemption) raises KeyboardInterrupt, so make train, make paper
    and make sweep end their runs as KILLED (a paper cell keeping its checkpoint)."""
    import os
    import signal

    from sweeps.config.compose import stop_on_sigterm
    before = signal.getsignal(signal.SIGTERM)
    try:
        stop_on_sigterm()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.5)  # let the handler run before leaving the block
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_second_sigterm_does_not_cut_short_the_stopping_the_first_began():
    """A scheduler signals every process of a job, and a sweep its workers too: a worker's
    second SIGTERM, raised inside the handler that puts its trial back in the queue, once
    left the trial RUNNING until the next start."""
    import os
    import signal

    from sweeps.config.compose import stop_on_sigterm
    before = signal.getsignal(signal.SIGTERM)
    try:
        stop_on_sigterm()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.5)
        os.kill(os.getpid(), signal.SIGTERM)  # while stopping: no second KeyboardInterrupt
        signal.sigtimedwait([], 0.5)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_stopped_command_says_so_in_one_line(capsys):
    """A SIGTERM reaching `make paper` used to print KeyboardInterrupt's traceback."""
    from sweeps.config.compose import run_cli

    def killed():
        raise KeyboardInterrupt("SIGTERM")
    assert run_cli(killed) == 143
    assert capsys.readouterr().err == "stopped by SIGTERM.\n"

    def interrupted():
        raise KeyboardInterrupt
    assert run_cli(interrupted) == 130


def test_cuda_graphs_reach_the_trainers_and_not_the_fingerprint():
    """train.cuda_graphs (models/graphed.py) says how steps run, not what they compute: it is
    no training setting, no part of a study's identity, and the workload hands it on."""
    from models.nplm import NPLM
    from models.training import TrainSettings
    from sweeps.config.workloads import Workload, train_settings
    from sweeps.search.identity import study_identity
    from tests.models.test_stack import lm_task
    plain, graphed = compose_config(["model=nplm"]), compose_config(["model=nplm", "train.cuda_graphs=true"])
    assert plain.train.cuda_graphs == "auto" and graphed.train.cuda_graphs is True
    assert train_settings(graphed) == train_settings(plain)
    assert study_identity(graphed, [], "m").fingerprint == study_identity(plain, [], "m").fingerprint
    task = lm_task()
    settings = TrainSettings(optimizer="sgd", lr=0.5, batch_size=32)
    for mode, on in (("true", True), ("auto", False)):  # auto: never on the CPU
        work = Workload(task, lambda: NPLM(len(task.vocab), 3, 8, 12), settings, {}, cuda_graphs=mode)
        assert all(t.cuda_graphs is on for t in work.trainers([1, 2]).seeds)  # no spec: one after another
