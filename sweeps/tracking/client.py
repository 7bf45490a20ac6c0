"""Where MLflow runs are kept: the tracking URI (the local SQLite default under runs/), a
client on it (a new local store made from a template, fast), and the git commit runs are
tagged with."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from sweeps.core.faults import EnvironmentFailure
from sweeps.core.locks import file_lock, sqlite_path
from sweeps.core.paths import ROOT, RUNS_DIR
from sweeps.core.redact import redact

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in our output
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # nor a server's run links


def resolve_uri(uri: str | None = None) -> str:
    """Explicit uri, else $MLFLOW_TRACKING_URI, else SQLite under runs/."""
    if uri:
        return uri
    if env := os.environ.get("MLFLOW_TRACKING_URI"):
        return env
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{RUNS_DIR / 'mlflow.db'}"


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """A tracking server that does not answer is an environment failure said in one sentence
    at once: MLflow itself retries each call for ~4 minutes, silently, before a traceback.
    Any HTTP answer (even 401 or 404) will do; a local store needs no check."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests
    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as e:
        errno_text = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(e))
        why = (errno_text.group(1).strip() if errno_text else f"no answer within {timeout:g} s"
               if isinstance(e, requests.Timeout) else type(e).__name__)
        raise EnvironmentFailure(f"cannot reach the MLflow tracking server {redact(uri)} ({why.lower()}); "
                                 "start it or fix tracking.uri, then rerun the same command.") from None


def open_client(uri: str) -> MlflowClient:
    """A client of the store at `uri`. A local SQLite store is created, or its schema
    migrated, by the first client that touches it: under a file lock here, since processes
    doing it at once corrupt the store (`table _alembic_tmp_... already exists`)."""
    local = local_path(uri)
    if local is None:
        check_reachable(uri)
        return MlflowClient(tracking_uri=uri)
    db = sqlite_path(uri)
    with file_lock(db.with_suffix(".init-lock")):
        template = _empty_store()
        fresh = not db.exists()
        if fresh and template.is_file():
            _copy_store(template, db, default_artifacts=Path.cwd() / "mlruns" / "0")
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # creates or migrates the schema now
        if fresh and not template.is_file():
            _copy_store(db, template)
    return client


def _empty_store() -> Path:
    """Where a new empty SQLite store of this MLflow version is kept, beside the data cache:
    copying it takes milliseconds where MLflow's schema migrations take ~4 s, which every
    new store (each test's, each benchmark's) would pay."""
    import mlflow

    from models.data.cache import default_cache_dir
    return default_cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"


def _copy_store(src: Path, dst: Path, default_artifacts: Path | None = None) -> None:
    """A consistent copy of the SQLite store `src` (SQLite's backup API), written beside
    `dst` and renamed onto it, so no reader ever sees half a store. `default_artifacts`:
    the artifact folder to give the copy's Default experiment, which MLflow sets from the
    working folder of the process that created the store."""
    import sqlite3

    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with sqlite3.connect(src) as a, sqlite3.connect(tmp) as b:
            a.backup(b)
            if default_artifacts is not None:
                now = int(time.time() * 1000)
                b.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                          "last_update_time = ? WHERE experiment_id = 0", (str(default_artifacts), now, now))
        a.close()
        b.close()
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


def local_path(uri: str) -> Path | None:
    """The folder beside a local SQLite store, where artifacts go; None for a server."""
    db = sqlite_path(uri)
    return None if db is None else db.parent


# The MLflow UI (3.x) shows an experiment as a GenAI app (traces, no runs) unless this tag
# says it holds model training; `custom_model_development` is the UI's "Machine learning".
TRAINING_KIND = ("mlflow.experimentKind", "custom_model_development")


def mark_as_training(client: MlflowClient, experiment) -> str:
    """Tag an experiment (made before the tag existed, or by another tool) as model training,
    so the UI opens it on its runs table; its id."""
    key, kind = TRAINING_KIND
    if experiment.tags.get(key) != kind:
        client.set_experiment_tag(experiment.experiment_id, key, kind)
    return experiment.experiment_id


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("-dirty" if dirty.strip() else "")
