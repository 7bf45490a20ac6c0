"""Where the project lives: the conf/ folder and the local runs/ store."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # sweeps/core/paths.py
CONF_DIR = ROOT / "conf"
RUNS_DIR = ROOT / "runs"
