"""Where a command will write (the MLflow store and its artifacts, the Optuna storage and
its lock files), checked when the config is composed, before anything is written: a path
that cannot be made is one sentence, not a traceback after a study was created."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from models.errors import UserError
from sweeps.core.locks import sqlite_path


def unmakeable(path: Path) -> str | None:
    """Why the folder `path` cannot be made or written in, or None if it can."""
    p = path.expanduser().absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        return f"{p} is a file, not a folder"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} is not writable"
    return None


def sqlite_file(key: str, uri: str) -> Path | None:
    """The file of a `sqlite:///` URL (None for another scheme); a URL naming no file is an error."""
    if not uri.startswith("sqlite:"):
        return None
    if (path := sqlite_path(uri)) is None:
        raise UserError(f"{key}={uri} names no database file; give one, e.g. "
                        f"{key}=sqlite:///runs/mlflow.db (a relative path) or sqlite:////abs/path.db.")
    return path


def check_places(cfg: DictConfig) -> None:
    """The tracking store, artifact folder, storage URL and storage folder `cfg` names."""
    folders: list[tuple[str, str, Path]] = []
    for key in ("tracking.uri", "storage.url"):
        value = OmegaConf.select(cfg, key)
        if key == "tracking.uri" and not value:
            value = os.environ.get("MLFLOW_TRACKING_URI")
            key = "MLFLOW_TRACKING_URI" if value else key
        if value and (db := sqlite_file(key, str(value))) is not None:
            if db.is_dir():
                raise UserError(f"{key}={value}: {db} is a folder; name a database file in it.")
            folders.append((key, str(value), db.parent))
    for key in ("tracking.artifacts", "storage.dir"):
        if value := OmegaConf.select(cfg, key):
            folders.append((key, str(value), Path(str(value))))
    for key, value, folder in folders:
        if why := unmakeable(folder):
            raise UserError(f"{key}={value} cannot be used: {why}; choose a folder you can write to.")
