"""What was written before the reshape of issue 35 still loads: trainer checkpoints pickled
when the stacked models lived in models/stack.py resume exactly, and a sweep's Optuna and
MLflow stores are evaluated by `make final` and reported by `make report`. The fixture was
written by the old code (tests/fixtures/make_old_layout.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from analysis.report import main as report_main
from models.training import load_trainers
from sweeps.final import main as final_main
from tests.fixtures.make_old_layout import TOKEN, problem, run
from tests.models.test_stack import per_epoch

OLD = Path(__file__).resolve().parent / "fixtures" / "old_layout"


@pytest.mark.parametrize("model", ["dan", "nplm"])
def test_an_old_checkpoint_resumes_to_the_metrics_the_old_code_reached(model):
    torch.set_num_threads(1)
    task, _build, _settings = problem(model)
    trainers, extra = load_trainers(OLD / f"checkpoint-{model}.pt", task)
    assert extra == {"epoch": 2}
    # the pickle names models.stack; the class is the one beside the model now (an old copy
    # of models/stack.py elsewhere on sys.path must not be what loads)
    assert type(trainers.stack).__module__ == f"models.{model}.stacked"
    run(trainers)
    expected = json.loads((OLD / f"expected-{model}.json").read_text())
    got = {str(r.seed): per_epoch(r) for r in trainers.seeds}
    assert json.loads(json.dumps(got)) == expected


def copy_store(tmp_path: Path) -> list[str]:
    """The old sweep's stores under tmp_path, their `@ROOT@` paths pointed there; its args."""
    root = tmp_path / "store"
    shutil.copytree(OLD / "store", root)
    for name in ("mlflow.db", "optuna.db"):
        with sqlite3.connect(root / name) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                for _cid, col, *_ in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                    db.execute(f'UPDATE "{table}" SET "{col}" = replace("{col}", ?, ?) '
                               f"WHERE typeof(\"{col}\") = 'text'", (TOKEN, str(root)))
        db.close()
    for path in root.rglob("*.yaml"):
        path.write_text(path.read_text().replace(TOKEN, str(root)))
    return [a.replace(TOKEN, str(root)) for a in json.loads((root / "args.json").read_text())]


@pytest.mark.slow
def test_an_old_sweep_is_evaluated_and_reported(tmp_path, capsys):
    args = copy_store(tmp_path)
    assert final_main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "dan-csv-grid" in out and "test accuracy" in out, out
    assert report_main([*args, f"--out={tmp_path / 'report'}"]) == 0, capsys.readouterr().err
    assert "0.5000" in (tmp_path / "report" / "report.md").read_text()
