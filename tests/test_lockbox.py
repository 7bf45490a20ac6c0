"""The test split is read only by the final evaluation."""

import subprocess
import sys

import pytest

from models.data.csv_text import load_csv_test
from models.data.lockbox import TestSplitLocked
from models.data.rt import load_rt_test
from models.data.sst import load_sst_test
from tests.conftest import REPO


def test_loaders_refuse_the_test_split_to_anyone_else(polarity_csv, tmp_path):
    with pytest.raises(TestSplitLocked, match="final evaluation"):
        load_csv_test(("neg", "pos"), path=str(polarity_csv))
    with pytest.raises(TestSplitLocked):
        load_sst_test(tmp_path, binary=True)
    with pytest.raises(TestSplitLocked):
        load_rt_test(tmp_path)


def test_analysis_never_imports_torch():
    code = "import sys, analysis.report, analysis.paper; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_models_never_import_the_platform():
    code = ("import sys, models.training\nfrom models import registry\n"
            "registry.load_all()  # every module of models/ and models/data/\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in\n"
            "       ('optuna', 'mlflow', 'hydra', 'omegaconf', 'sweeps')]\n"
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
