"""`make ui [PORT=5000]`: the MLflow UI on 127.0.0.1 over the same store the runs are tracked in.

usage: make ui [PORT=5000]
The address is printed once the server answers, with a link to each experiment's runs
table; Ctrl-C stops it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from models.errors import UserError
from sweeps.core.cli import Args, main_of, stop_on_sigterm
from sweeps.core.locks import sqlite_path
from sweeps.core.paths import RUNS_DIR
from sweeps.core.redact import redact
from sweeps.tracking.tracker import resolve_uri

# MLflow 3's UI opens an experiment in its GenAI view (traces, no runs) unless the page asks
# for the other workflow, as its "Model training" switch does: our links ask for it.
RUNS_TABLE = "{url}/#/experiments/{id}/runs?workflowType=machine_learning"
GUIDE = ("  experiments: <model>-<data> (make train), <study name> (make sweep: one parent run per\n"
         "  trial, tag trial_state; expand it for the seed runs), lockbox (one run per test\n"
         "  evaluation). Seed runs hold the per-epoch curves and weights/.")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status < 500
    except (urllib.error.URLError, OSError):
        return False


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on host:port (whose /health would answer for us)."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)) == 0


def wait_until_up(server: subprocess.Popen, url: str, what: str, retry: str,
                  stop: Callable[[], None], seconds: float = 120) -> bool:
    """Whether the `server` process answers on `url`/health within `seconds`; if it
    exits or times out first, one line on stderr (`retry`: what to try) and False."""
    deadline = time.time() + seconds
    while not answers(f"{url}/health"):
        if server.poll() is not None:
            print(f"error: {what} exited (code {server.returncode}); is the port taken? {retry}",
                  file=sys.stderr)
            return False
        if time.time() > deadline:
            print(f"error: {what} did not answer on {url} within {seconds:.0f} s.", file=sys.stderr)
            stop()
            return False
        time.sleep(0.5)
    return True


def experiment_links(url: str, limit: int = 20) -> list[str]:
    """`name  link` of the server's experiments, most recently updated first, each link
    opening the experiment on its runs table (the REST API: the server may be remote)."""
    body = json.dumps({"max_results": limit, "order_by": ["last_update_time DESC"]}).encode()
    req = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            found = json.load(r).get("experiments", [])
    except (urllib.error.URLError, OSError, ValueError):
        return []
    found = [e for e in found if e["name"] != "Default"]
    width = max((len(e["name"]) for e in found), default=0)
    return [f"    {e['name']:<{width}}  {RUNS_TABLE.format(url=url, id=e['experiment_id'])}" for e in found]


def main(argv: list[str] | None = None) -> int:
    return main_of(argv, __doc__, "python -m sweeps.ui", serve, overrides=False)


def serve(_args: Args) -> int:
    uri = resolve_uri()
    port = os.environ.get("PORT", "5000")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"PORT must be a port number, not {port!r}.")
    if port_taken("127.0.0.1", int(port)):
        print(f"error: port {port} is taken (another MLflow UI?); try make ui PORT=<another port>.",
              file=sys.stderr)
        return 1
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", "127.0.0.1", "--port", port]
    if sqlite_path(uri) is not None:
        args += ["--default-artifact-root", (RUNS_DIR / "artifacts").as_uri()]
    print(f"starting the MLflow UI over {redact(uri)} ...", flush=True)
    server = subprocess.Popen(args)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_up(server, url, "the MLflow UI", "Try make ui PORT=<another port>.",
                             server.terminate):
            return 1
        links = experiment_links(url) or ["    (no experiments yet: make train or make sweep)"]
        print(f"MLflow UI: {url} (Ctrl-C stops it)\n{GUIDE}\n  Runs tables (MLflow opens an experiment "
              "in its GenAI view unless asked; its switch, top left, says \"Model training\"):"
              + "".join(f"\n{line}" for line in links),
              flush=True)
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait()
        return 0


if __name__ == "__main__":
    stop_on_sigterm()  # a SIGTERM stops the server too, as Ctrl-C does
    sys.exit(main())
