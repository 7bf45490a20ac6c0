"""DataFrames to Markdown, LaTeX (booktabs) and CSV, without extra dependencies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


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
    """A booktabs table (needs \\usepackage{booktabs})."""
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{" + "l" * len(df.columns) + "}",
             r"\toprule", " & ".join(_tex(str(c)) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(_cell(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + _tex(caption) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_all(df: pd.DataFrame, folder: Path, stem: str, caption: str = "") -> list[Path]:
    """`stem`.md, `stem`.tex and `stem`.csv in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{ext}" for ext in ("md", "tex", "csv")]
    paths[0].write_text(to_markdown(df))
    paths[1].write_text(to_latex(df, caption))
    df.to_csv(paths[2], index=False)
    return paths
