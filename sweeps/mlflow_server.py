"""`make mlflow-server`: an MLflow tracking server that workers on many hosts log to, with
a database backend store (PostgreSQL) and an artifact root it serves itself.

usage: SEEDSWEEP_MLFLOW_DB_URL=postgresql://USER:PASSWORD@HOST:5432/mlflow \\
         make mlflow-server [HOST=127.0.0.1] [PORT=5000] [ARTIFACTS=runs/mlflow-artifacts]
then, on every worker:  export MLFLOW_TRACKING_URI=http://<this host>:<port>

The backend store's schema is created (or migrated) once, here, before the server and
its workers start: processes that first use an empty database at once race on it. The
database URL travels in the environment (MLFLOW_BACKEND_STORE_URI), never on a command
line that `ps` shows, and is printed with its password masked. The server listens on
127.0.0.1 unless HOST says otherwise (HOST=0.0.0.0 for workers on other hosts: MLflow
then accepts the Host names localhost and private addresses; others need
MLFLOW_SERVER_ALLOWED_HOSTS). Ctrl-C (or SIGTERM) stops it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from models.errors import UserError
from sweeps.core.cli import Args, main_of
from sweeps.core.faults import EnvironmentFailure
from sweeps.core.paths import RUNS_DIR
from sweeps.core.redact import redact
from sweeps.ui import port_taken, wait_until_up

DB_ENV = "SEEDSWEEP_MLFLOW_DB_URL"


def init_schema(uri: str, artifacts: Path) -> None:
    """Create or migrate the tracking schema of the store at `uri`, once."""
    for name in ("alembic", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    SqlAlchemyStore(uri, default_artifact_root=artifacts.as_uri()).engine.dispose()


def main(argv: list[str] | None = None) -> int:
    return main_of(argv, __doc__, "python -m sweeps.mlflow_server", serve, overrides=False)


def serve(_args: Args) -> int:
    uri = os.environ.get(DB_ENV)
    if uri:
        from sweeps.store import psycopg2_url
        uri = psycopg2_url(uri)
    else:
        raise UserError(f"set {DB_ENV} to the backend store's URL, e.g. "
                        f"{DB_ENV}=postgresql://USER:PASSWORD@HOST:5432/mlflow (cluster/postgres.sh "
                        "start DIR makes a server with an `mlflow` database).")
    host, port = os.environ.get("HOST") or "127.0.0.1", os.environ.get("PORT") or "5000"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"PORT must be a port number, not {port!r}.")
    if port_taken(host, int(port)):
        print(f"error: port {port} on {host} is taken (another server?); try PORT=<another port>.",
              file=sys.stderr)
        return 1
    artifacts = Path(os.environ.get("ARTIFACTS") or RUNS_DIR / "mlflow-artifacts").resolve()
    print(f"mlflow-server: preparing the backend store {redact(uri)}", flush=True)
    try:
        init_schema(uri, artifacts)
    except Exception as e:  # noqa: BLE001 - one line, the password masked: an environment failure
        raise EnvironmentFailure(f"cannot prepare the backend store {redact(uri)}: "
                                 f"{redact(str(e)).strip().splitlines()[0][:300]}") from e
    artifacts.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MLFLOW_BACKEND_STORE_URI=uri)
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", port,
           "--artifacts-destination", str(artifacts),
           "--workers", os.environ.get("MLFLOW_WORKERS", "2")]
    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"

    def stop(*_) -> None:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        if not wait_until_up(server, url, "mlflow server", "Try PORT=<another port>.", stop):
            return 1
        shown = url if host not in ("0.0.0.0", "::") else f"http://<this host>:{port}"
        print(f"MLflow tracking server on {host}:{port}, artifacts in {artifacts}\n"
              f"workers: export MLFLOW_TRACKING_URI={shown}\n(Ctrl-C stops it)", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
