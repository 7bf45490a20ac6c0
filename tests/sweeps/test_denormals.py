"""Denormal floats are flushed to zero in the processes that train on the CPU
(models/training/devices.py's flush_denormals): weights that only weight decay moves shrink
into that range within an epoch, and a matrix product over them runs 20-100x slower."""

import subprocess
import sys

from tests.conftest import REPO

# A trial as a sweep's process trains it: the workload of the config, its trainers, one epoch.
TRIAL = """
import sys, torch
from sweeps.config.compose import compose_config
from sweeps.config.workloads import build_workload
workload = build_workload(compose_config(sys.argv[1:]))
trainers = workload.trainers([1])
trainers.step()
tiny = torch.finfo(torch.float32).tiny
denormal = sum(int(((w != 0) & (w.abs() < tiny)).sum())
               for t in trainers.seeds for w in t.best_state_dict().values() if w.is_floating_point())
probe = torch.full((1 << 22,), 1e-30) * 1e-9  # denormal wherever an intra-op thread does not flush
print(denormal, int(probe.count_nonzero()))
"""


def test_a_default_dan_trial_on_rt_keeps_no_denormal_weights():
    # the default DAN (3 x 300) on the default data, at a learning rate and weight decay of
    # the default search space: 2.5-15% of each hidden layer's weights were denormal after
    # one epoch, which then took 1.7-3.3 s instead of 0.5 s
    args = ["model=dan", "seed_list=[1]", "train.lr=0.01", "train.weight_decay=1e-5", "train.max_epochs=1",
            "threads=2", "device=cpu"]
    out = subprocess.run([sys.executable, "-c", TRIAL, *args], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    denormal, probe = map(int, out.stdout.split()[-2:])
    assert (denormal, probe) == (0, 0)
