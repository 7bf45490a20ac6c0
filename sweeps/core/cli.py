"""One command-line convention for every command (sweep, train, final, doctor, paper, report,
ui, dashboard, mlflow_server, analysis.paper), through one error path.

Arguments: `--flag`, `--flag=value` or `--flag value` for the flags a command declares;
`key=value` (and Hydra's `+key=value`, `~key`) are Hydra overrides; a bare word is an
argument only where the command takes some (paper's table names), else it is refused.
`-h`/`--help` prints the command's docstring.

Outcomes (`run_cli`): what the body returns is printed, exit 0 (or the exit status it
returns); bad input (a UserError, an unknown flag, a bad override) is one line
`error: ...` on stderr, exit 2, before anything is created; an environment failure (a full
disk, a store or server out of reach: sweeps/core/faults.py) is one sentence ending in
"run the same command to resume.", exit 75; Ctrl-C exits 130 and SIGTERM 143 (the shell's
statuses), each with one line.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from models.errors import UserError
from sweeps.core.faults import EnvironmentFailure, environment_failure
from sweeps.core.redact import redact

RESUME = "run the same command to resume."


@dataclass
class Args:
    """A command line as the convention reads it."""
    flags: dict[str, str | bool] = field(default_factory=dict)  # by name without `--`
    overrides: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def get(self, name: str, default=None):
        return self.flags.get(name, default)


def _listed(names: Sequence[str]) -> str:
    return ", ".join(f"--{n}" for n in names) or "no flags"


def parse(argv: Sequence[str], prog: str, values: Sequence[str] = (), switches: Sequence[str] = (),
          words: bool = False, overrides: bool = True) -> Args:
    """`argv` split into the flags `values` (taking a value) and `switches` (taking none),
    Hydra overrides (where `overrides` is true: a server configured by its environment takes
    none), and words where `words` is true; anything else is a UserError."""
    out, args = Args(), list(argv)
    known = [*values, *switches]
    while args:
        a = args.pop(0)
        if a.startswith("-") and not a.startswith("--") or a.startswith("---"):
            raise UserError(f"unknown flag {a!r}; {prog} takes {_listed(known)} and key=value overrides.")
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if name in switches:
                if eq:
                    raise UserError(f"--{name} takes no value (not {a!r}).")
                out.flags[name] = True
            elif name in values:
                if not eq:
                    if not args or args[0].startswith("--"):
                        raise UserError(f"--{name} needs a value: --{name}=VALUE or --{name} VALUE.")
                    value = args.pop(0)
                out.flags[name] = value
            else:
                raise UserError(f"unknown flag {a.split('=', 1)[0]!r}; {prog} takes {_listed(known)} "
                                "and key=value overrides.")
        elif "=" in a or a.startswith(("+", "~")):
            if not overrides:
                raise UserError(f"{prog} takes no overrides (not {a!r}); its settings are environment "
                                "variables (see --help).")
            out.overrides.append(a)
        elif words:
            out.words.append(a)
        else:
            raise UserError(f"unexpected argument {a!r}: overrides are key=value (e.g. seeds=3), flags "
                            f"start with -- ({prog} takes {_listed(known)}).")
    return out


def whole(args: Args, name: str) -> int | None:
    """The value of flag `name` as a whole number (None when absent)."""
    value = args.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"--{name} must be a whole number, not {value!r}.") from None


def _terminated(signum, frame) -> None:
    # the first SIGTERM stops; later ones (a scheduler signals every process of a job, and a
    # sweep its workers too) would cut short the stopping that puts a trial back in the queue
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt("SIGTERM")


def stop_on_sigterm() -> None:
    """SIGTERM (Slurm's or HTCondor's preemption, `kill`) stops a command like Ctrl-C: a
    sweep's running trial goes back in the queue at once instead of waiting for its
    heartbeat to go stale, and a training run ends as KILLED, keeping its checkpoint."""
    signal.signal(signal.SIGTERM, _terminated)


def wants_help(args: Sequence[str], doc: str) -> bool:
    """Print `doc` (a module docstring) and say so when -h or --help is among `args`."""
    if "-h" in args or "--help" in args:
        print(doc.strip())
        return True
    return False


def answer_help_first(name: str, doc: str | None) -> None:
    """For a command module run as a program (`name` is its __name__): answer -h/--help and
    exit before the module's own imports (torch, MLflow, Optuna: seconds) load. Called at
    the top of the module, after the standard imports."""
    if name == "__main__" and wants_help(sys.argv[1:], doc or ""):
        raise SystemExit(0)


def run_cli(body: Callable[[], str | int | None], intact: str = "nothing is lost",
            stopped: Callable[[bool], str] | None = None, sigterm_status: int = 143) -> int:
    """Run a command's body through the one error path (the module's docstring). `intact`
    says what an environment failure left whole; `stopped(by_sigterm)`, the line Ctrl-C or a
    SIGTERM prints (by default "stopped by Ctrl-C."), once the body has ended its runs."""
    try:
        out = body()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        term = e.args == ("SIGTERM",)
        print(stopped(term) if stopped else f"stopped by {'SIGTERM' if term else 'Ctrl-C'}.", file=sys.stderr)
        return sigterm_status if term else 130
    except Exception as e:  # noqa: BLE001 - only environment failures are answered here
        cause = str(e) if isinstance(e, EnvironmentFailure) else environment_failure(e)
        if cause is None:
            raise
        cause = redact(cause)[:300] if not isinstance(e, EnvironmentFailure) else redact(cause)
        tail = "" if "the same command to resume" in cause else f"; {intact}; {RESUME}"
        print(f"error: {cause.rstrip('.')}{tail}" if tail else f"error: {cause}", file=sys.stderr)
        return 75  # EX_TEMPFAIL
    if isinstance(out, int) and not isinstance(out, bool):
        return out
    if out:
        print(out)
    return 0


def main_of(argv: Sequence[str] | None, doc: str, prog: str, body: Callable[[Args], str | int | None],
            values: Sequence[str] = (), switches: Sequence[str] = (), words: bool = False,
            overrides: bool = True, **outcomes) -> int:
    """A command's `main`: `argv` (sys.argv[1:] when None) parsed by the convention, then
    `body(args)` through `run_cli` (`outcomes`: its `intact`, `stopped`, `sigterm_status`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv, doc):
        return 0
    return run_cli(lambda: body(parse(argv, prog, values, switches, words, overrides)), **outcomes)
