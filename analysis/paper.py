"""docs/results.md: the papers' tables as this platform reproduced them, beside the papers'.

    python -m analysis.paper [TABLE ...] [--out docs/results.md] [tracking.uri=...]

Reads every cell of conf/paper/<table>.yaml from MLflow (the experiment
`paper-<table>-<row>-<column>` that `make paper` trains into) and writes, for each table:
the table itself (test mean ± std over seeds, the paper's figure beside it), a line per
cell with its dev and test figures, seeds, best epochs, wall time, hardware and the
commands that reproduce it, whether the paper's ordering of rows holds, and a note on
every gap to the paper larger than the seed std. Also <table>.md/.tex/.csv under
docs/results/, and <table>.json: the record of every cell shown (figures, seeds, run,
settings). A cell this MLflow store lacks (a fresh clone, another machine, a lost
runs/ folder) is shown from that record, so rewriting the page after training one
cell keeps the others; a newer run in the store replaces it. Reads only; trains nothing.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.paper_cells import NO_REASON, Found, choose, in_training, load_record, read_cell, save_record
from analysis.paper_checks import commands, fmt, frame, gaps, ordering
from analysis.tables import write_all
from sweeps.config.compose import compose_config
from sweeps.core.cli import Args, main_of
from sweeps.core.paths import ROOT
from sweeps.paper_spec import Table, load_table, tables

__all__ = ["NO_REASON", "Found", "main", "ordering", "write"]

DOCS = ROOT / "docs"


def section(table: Table, uri: str | None, files: Path) -> str:
    record = files / f"{table.name}.json"
    kept = load_record(record)
    found = {c: choose(c, table, read_cell(c, table, uri), kept.get(f"{c.row}/{c.column}"))
             for c in table.cells}
    head = "| model | " + " | ".join(c["label"] for c in table.columns.values()) + " |"
    again = [c for c, f in found.items() if f is not None and f.repeats]
    once = ("each cell's test split evaluated once" if not again else
            f"each cell's test split evaluated once, except {len(again)} read again (each says why below)")
    stale = [c for c, f in found.items() if f is not None and f.changed]
    dagger = ("" if not stale else f" †: trained with settings other than this table's now ({len(stale)} "
              "cell(s); each says which below), so not the table's current recipe.")
    lines = [f"## {table.title}", "",
             f"Ours: test mean ± std over {table.seeds} seeds, {once}; "
             f"the paper's figure in brackets. – : not run yet.{dagger}", "", head,
             "|---|" + "---|" * len(table.columns)]
    for row in table.rows:
        cells = []
        for col in table.columns:
            cell = table.cell(row, col)
            f = found[cell]
            paper = "" if cell.paper is None else f" ({cell.paper:.1f})"
            cells.append(f"{fmt(f.test if f else None)}{' †' if f and f.changed else ''}{paper}")
        label = table.label(row)
        if table.label(row, paper=True) != label:
            label += f" [paper: {table.label(row, paper=True)}]"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "**Ordering of the rows**", "", *(ordering(table, found) or ["- (none given)"]), ""]
    lines += ["**Gaps larger than the seed std**", "",
              *(gaps(table, found) or ["- none among the cells evaluated."]), ""]
    if table.notes:
        lines += ["**Notes**", "", table.notes.strip(), ""]
    lines += ["**Each cell**", ""]
    for cell, f in found.items():
        name = f"{table.label(cell.row)}, {table.columns[cell.column]['label']}"
        if f is None:
            why = cell.missing() or in_training(cell, table, uri) or "not run yet"
            lines.append(f"- {name}: {why}: {commands(cell, f, table.seeds)}.")
            continue
        trained = (f"test {fmt(f.test, 2)} (per seed: {', '.join(f'{v:.2f}' for v in f.values)}), "
                   f"dev {fmt(f.dev, 2)}" + (f", train {f.train:.2f}" if f.train is not None else "")
                   + f"; seeds {f.seeds}; best epochs {f.best_epochs}; training {f.wall_s / 60:.1f} min"
                   if f.seeds else f"test {f.test[0] if f.test else float('nan'):.2f}, dev {f.dev[0]:.2f} "
                   f"(counted, no seeds; {f.wall_s / 60:.1f} min)")
        held = f"MLflow run `{f.run_id}`" + (
            f" (not in the store this page was written from: shown from its record, "
            f"{record.relative_to(files.parent)})" if f.recorded else "")
        lines.append(
            f"- {name}: {trained} on {f.hardware}; {held}. "
            + "".join(f"**Test split read again** (lockbox ledger): {r or NO_REASON}. " for r in f.repeats)
            + (f"**† Trained with other settings than the table's now** ({f.changed}): `make paper` with "
               "REASON= trains it anew. " if f.changed else "")
            + f"{commands(cell, f, table.seeds)}.")
    paths = write_all(frame(table, found), files, table.name, table.title)
    save_record(record, table, found)
    paths.append(record)
    links = ", ".join(f"[{p.name}]({p.relative_to(files.parent)})" for p in paths)
    lines += ["", f"Also as {links}.", ""]
    return "\n".join(lines)


def write(names: Sequence[str], out: Path, uri: str | None) -> Path:
    parts = ["# Results: the papers' tables on this platform", "",
             f"Generated by `make paper` (`python -m analysis.paper`) on "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from the MLflow store; "
             "do not edit by hand: edit conf/paper/<table>.yaml and rerun.", ""]
    ordered = sorted((load_table(n) for n in names), key=lambda t: (t.position, t.name))
    parts += [section(t, uri, out.parent / out.stem) for t in ordered]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return main_of(argv, __doc__, "python -m analysis.paper", body, values=("out",), words=True)


def body(args: Args) -> str:
    """The tables named (all when none), written to --out (docs/results.md); of the
    overrides, tracking.uri= says which MLflow store to read."""
    if args.overrides:
        compose_config(args.overrides)  # a mistyped key is refused, as every command refuses it
    uri = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("tracking.uri=")), None)
    return f"wrote {write(args.words or tables(), Path(args.get('out') or DOCS / 'results.md'), uri)}"


if __name__ == "__main__":
    sys.exit(main())
