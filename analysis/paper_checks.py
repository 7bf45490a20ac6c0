"""The lines a paper table's section is made of: figures, the commands that reproduce a
cell, the frame for .csv/.tex/.md, whether the paper's ordering of rows holds, and the
gaps to the paper larger than the seed std."""

from __future__ import annotations

import pandas as pd

from analysis.paper_cells import Found
from sweeps.paper_spec import Cell, Table


def fmt(x: tuple[float, float] | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x[0]:.{digits}f} ± {x[1]:.{digits}f}"


def commands(cell: Cell, found: Found | None, seeds: int) -> str:
    paper = f"make paper TABLE={cell.table} ROWS={cell.row} COLUMNS={cell.column}"
    env = "SST_ROOT=<sst folder> " if "sst" in cell.needs else ""
    if found is None:
        return f"`{env}{paper}`"
    if cell.mixes:
        return (f"`{env}{paper}` (after row {cell.mixes}), which mixes the trained networks of row "
                f"{cell.mixes} with the trigram and trains nothing")
    args = " ".join(o for o in cell.overrides if not o.startswith("model=")) + f" seeds={seeds}"
    model = next((o.split("=", 1)[1] for o in cell.overrides if o.startswith("model=")), None)
    m = f" MODEL={model}" if model else ""  # none: conf/config.yaml's default
    return (f"`{env}{paper}`, or by hand "
            f"`{env}make train{m} ARGS='{args} tracking.experiment={cell.experiment}'` then "
            f"`make final{m} RUN={found.run_id}`")


def frame(table: Table, found: dict[Cell, Found | None]) -> pd.DataFrame:
    """Rows × columns, ours (mean, std) and the paper's figure: for the .csv/.tex/.md files."""
    out = []
    for row in table.rows:
        r: dict[str, object] = {"model": table.label(row)}
        for col, c in table.columns.items():
            cell, f = table.cell(row, col), found[table.cell(row, col)]
            r[f"{c['label']} mean"] = f.test[0] if f and f.test else float("nan")
            r[f"{c['label']} std"] = f.test[1] if f and f.test else float("nan")
            r[f"{c['label']} (paper)"] = cell.paper if cell.paper is not None else float("nan")
        out.append(r)
    return pd.DataFrame(out)


def ordering(table: Table, found: dict[Cell, Found | None]) -> list[str]:
    """Whether the paper's ranking of rows holds, column by column, on the test means."""
    if len(table.ordering) < 2:
        return []
    lines = []
    sign = -1 if table.lower_is_better else 1
    for col, c in table.columns.items():
        means = [found[table.cell(r, col)] for r in table.ordering]
        if any(f is None or f.test is None for f in means):
            lines.append(f"- {c['label']}: not all of {', '.join(table.label(r) for r in table.ordering)} "
                         "evaluated yet.")
            continue
        test, dev = chain(table, [f.test for f in means]), chain(table, [f.dev for f in means])
        claimed = (" > " if table.lower_is_better else " < ").join(table.label(r) for r in table.ordering)
        line = (f"- {c['label']}: {test[0]}: the paper's ordering ({claimed} in {table.metric}) "
                f"**{'holds' if test[1] else 'does not hold'}**")
        if not test[1]:
            line += f"; on dev it {'holds' if dev[1] else 'does not either'}: {dev[0]}"
            reversed_ = [(f, g) for f, g in zip(means, means[1:]) if sign * f.test[0] >= sign * g.test[0]]
            if all(abs(f.test[0] - g.test[0]) <= max(f.test[1], g.test[1]) for f, g in reversed_):
                line += "; every reversed pair differs on test by no more than the larger of its seed stds"
        lines.append(line + ".")
    return lines


def chain(table: Table, figures: list[tuple[float, float]]) -> tuple[str, bool]:
    """`row a < row b < ...` with the sign true of `figures` (mean, std), one per row of
    table.ordering, and whether they rank as the paper's ordering says."""
    sign = -1 if table.lower_is_better else 1
    parts = []
    for r, (a, _), (b, _) in zip(table.ordering, figures, figures[1:]):
        parts += [f"{table.label(r)} {a:.1f}", "<" if a < b else ">" if a > b else "="]
    parts.append(f"{table.label(table.ordering[-1])} {figures[-1][0]:.1f}")
    return " ".join(parts), all(sign * a < sign * b for (a, _), (b, _) in zip(figures, figures[1:]))


def gaps(table: Table, found: dict[Cell, Found | None]) -> list[str]:
    """A line for every evaluated cell whose gap to the paper is larger than its seed std."""
    lines = []
    for cell, f in found.items():
        if f is None or f.test is None or cell.paper is None:
            continue
        gap = f.test[0] - cell.paper
        if abs(gap) > f.test[1]:
            better = (gap < 0) if table.lower_is_better else (gap > 0)
            lines.append(f"- {table.label(cell.row)}, {table.columns[cell.column]['label']}: "
                         f"{f.test[0]:.1f} against the paper's {cell.paper:.1f} "
                         f"({'+' if gap > 0 else ''}{gap:.1f}, {'better' if better else 'worse'}; "
                         f"seed std {f.test[1]:.1f}).")
    return lines
