"""`make ui`: the MLflow UI on 127.0.0.1 over the same store the runs are tracked in."""

from __future__ import annotations

import os
import sys

from sweeps.paths import RUNS_DIR
from sweeps.tracking import resolve_uri


def main() -> None:
    uri = resolve_uri()
    port = os.environ.get("PORT", "5000")
    print(f"MLflow UI for {uri} on http://127.0.0.1:{port} (Ctrl-C stops it)\n"
          "  experiments: <model>-<data> (make train), <model>-<data>-<sampler> (make sweep: one\n"
          "  parent run per trial, tag trial_state; expand it for the seed runs), lockbox (one run\n"
          "  per test evaluation). Seed runs hold the per-epoch curves and weights/.", flush=True)
    args = ["mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", port]
    if uri.startswith("sqlite:///"):
        args += ["--default-artifact-root", (RUNS_DIR / "artifacts").as_uri()]
    os.execvp(sys.executable, [sys.executable, "-m", *args])


if __name__ == "__main__":
    main()
