"""DataFrames to Markdown, LaTeX (booktabs) and CSV, without extra dependencies.

Frames hold numbers: a `<x> mean` column with its `<x> std` beside it. The CSV keeps them
as two numeric columns; Markdown and LaTeX show them as one `<x> mean ± std` text column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _cell(v) -> str:
    if isinstance(v, float):
        return "–" if v != v else f"{v:.4g}"  # NaN: not applicable (an inactive conditional entry)
    return "" if v is None else str(v)


def pm(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}" if pd.notna(std) else f"{mean:.4f}"


def with_pm(df: pd.DataFrame, missing: str = "not evaluated") -> pd.DataFrame:
    """Each `<x> mean` / `<x> std` pair as one `<x> mean ± std` text column."""
    out = df.copy()
    for col in df.columns:
        std = col[:-len(" mean")] + " std" if col.endswith(" mean") else None
        if std in df.columns:
            text = [pm(m, s) if pd.notna(m) else missing for m, s in zip(df[col], df[std])]
            out.insert(out.columns.get_loc(col), col + " ± std", text)
            out = out.drop(columns=[col, std])
    return out


def to_markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("±", r"$\pm$"), ("†", r"$^\dagger$")):
        s = s.replace(a, b)
    return s


def to_latex(df: pd.DataFrame, caption: str = "") -> str:
    """A booktabs table scaled to the text width (needs \\usepackage{booktabs,graphicx})."""
    lines = [r"\begin{table}[t]", r"\centering", r"\resizebox{\linewidth}{!}{%",
             r"\begin{tabular}{" + "l" * len(df.columns) + "}",
             r"\toprule", " & ".join(_tex(str(c)) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(_cell(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}}"]
    if caption:
        lines.append(r"\caption{" + _tex(caption) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_all(df: pd.DataFrame, folder: Path, stem: str, caption: str = "") -> list[Path]:
    """`stem`.md, `stem`.tex (mean ± std as text) and `stem`.csv (numbers) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{ext}" for ext in ("md", "tex", "csv")]
    paths[0].write_text(to_markdown(with_pm(df)))
    paths[1].write_text(to_latex(with_pm(df), caption))
    df.to_csv(paths[2], index=False)
    return paths
