"""`make dashboard [PORT=8080] [ARGS='<overrides>']`: optuna-dashboard over the studies of the
storage a sweep with the same overrides uses (runs/optuna/studies.journal by default;
ARGS='storage=postgres' or storage.dir=/ storage.url= for others).

usage: make dashboard [PORT=8080] [ARGS='storage.dir=...']
   or: python -m sweeps.dashboard [overrides]
The address is printed before the server starts; Ctrl-C stops it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from models.errors import UserError
from sweeps.config.compose import compose_config, stop_on_sigterm
from sweeps.core.cli import Args, main_of
from sweeps.store import storage_of


def main(argv: Sequence[str] | None = None) -> int:
    return main_of(argv, __doc__, "python -m sweeps.dashboard", body)


def body(args: Args) -> str:
    port = os.environ.get("PORT", "8080")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"PORT must be a port number, not {port!r}.")
    cfg = compose_config(args.overrides)  # a bad override is refused first, as everywhere
    try:
        import optuna_dashboard
    except ImportError as e:
        raise UserError("optuna-dashboard is not installed: `make dashboard` installs it, or "
                        "`.venv/bin/pip install -e '.[dashboard]'`.") from e
    storage = storage_of(cfg)  # the sweep's own: same lock, same URL rules
    names = [s.study_name for s in storage.get_all_studies()]
    print(f"optuna-dashboard: http://127.0.0.1:{port} (Ctrl-C stops it); studies: "
          f"{', '.join(names) or 'none yet (make sweep)'}", flush=True)
    optuna_dashboard.run_server(storage, host="127.0.0.1", port=int(port))
    return "optuna-dashboard stopped."


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
