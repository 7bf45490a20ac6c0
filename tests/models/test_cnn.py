"""Kim's CNN, added through the registry alone (models/cnn.py, conf/model/cnn.yaml):
the model itself, then swept, evaluated once on test and reported like DAN."""

from __future__ import annotations

import pytest
import torch

from analysis.report import main as report_main
from models import registry
from models.cnn import KimCNN, parse_widths
from sweeps.final import main as final_main
from sweeps.sweep import main as sweep_main
from sweeps.train import main as train_main


def test_padding_changes_nothing_and_shapes_hold():
    torch.manual_seed(0)
    model = KimCNN(vocab_size=30, num_classes=3, embed_dim=8, filter_widths=(2, 3), num_filters=4).eval()
    tokens = torch.tensor([[5, 6, 7, 0, 0], [9, 0, 0, 0, 0]])  # one sentence shorter than a filter
    out = model(tokens)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    padded = torch.nn.functional.pad(tokens, (0, 4))
    torch.testing.assert_close(model(padded), out)
    torch.testing.assert_close(model(tokens[:1, :3]), out[:1])


def test_registered_from_its_own_file():
    spec = registry.model("cnn")
    assert spec.kind == "classification" and registry.metric(spec) == ("accuracy", "maximize")
    assert not spec.vectorizable  # seeds train one after another
    assert parse_widths("3,4,5") == [3, 4, 5] and parse_widths([2]) == [2]
    with pytest.raises(ValueError, match="filter_widths"):
        parse_widths("3,x")


def tiny(tmp_path, *extra: str) -> list[str]:
    return ["model=cnn", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifacts={tmp_path / 'art'}", f"storage.url=sqlite:///{tmp_path / 'optuna.db'}",
            f"storage.dir={tmp_path / 'locks'}", "model.embed_dim=16", "model.num_filters=8",
            "train.max_epochs=3", "threads=1", "seeds=2", *extra]


@pytest.mark.slow
def test_swept_evaluated_and_reported_like_dan(tmp_path, polarity_csv, monkeypatch, capsys):
    log = tmp_path / "reads.log"
    monkeypatch.setenv("SEEDSWEEP_TEST_READ_LOG", str(log))
    args = tiny(tmp_path, "data=csv", f"data.path={polarity_csv}", "sampler=grid", "sweep.trials=2")
    assert sweep_main(args) == 0
    out = capsys.readouterr().out
    assert "study and MLflow experiment 'cnn-csv-grid'" in out and not log.exists()
    assert final_main(args) == 0
    assert "test evaluations of cnn-csv-grid: 1" in capsys.readouterr().out
    assert len(log.read_text().splitlines()) == 1
    reports = tmp_path / "reports"
    assert report_main([*args, f"--out={reports}"]) == 0
    assert "cnn-csv-grid" in (reports / "report.md").read_text()
    assert (reports / "results.csv").read_text().count("\n") >= 2


@pytest.mark.slow
def test_trains_on_sst(tmp_path, sst_root, capsys):
    assert train_main(tiny(tmp_path, "data=sst2", f"data.root={sst_root}", "seeds=1", "train.max_epochs=2",
                           "model.embed_dim=32", "model.num_filters=16", "train.lr=3e-3")) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("mean ± std")[1].split()[0])
    assert 0.6 < accuracy <= 1.0  # well above the majority class (~0.51) after two epochs
