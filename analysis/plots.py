"""PNG plots of a study. Every axis labelled, every series in a legend."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

from analysis.stats import expected_max  # noqa: E402


def dev_curves(curves: dict[str, pd.DataFrame], metric: str, maximize: bool, path: Path) -> Path:
    """The seed mean per epoch, one line per trial, with a band of ± one std over seeds. The
    seed mean is the one the sweep uses: each seed's best dev value so far (a seed that
    stopped keeps its best), averaged; so each line ends at its trial's value."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, df in curves.items():
        wide = df.pivot_table(index="epoch", columns="seed", values="value").sort_index()
        best = (wide.cummax() if maximize else wide.cummin()).ffill()  # (epochs, seeds)
        mean, std = best.mean(axis=1), best.std(axis=1, ddof=1).fillna(0.0)
        ax.plot(mean.index, mean.values, marker="o", ms=3,
                label=f"{label} (K={wide.shape[1]}, ends at {mean.iloc[-1]:.4f})")
        ax.fill_between(mean.index, mean - std, mean + std, alpha=0.2)
    ax.set(xlabel="epoch", ylabel=f"dev {metric}: seed mean of best so far ± std",
           title="Dev curves of the top trials")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def importance(study: optuna.Study, path: Path) -> Path | None:
    """fANOVA hyper-parameter importance (Hutter et al. 2014) over the completed trials."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None  # too few completed trials, or nothing varies
    if not imp:
        return None
    names, values = list(imp)[::-1], list(imp.values())[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.5))
    ax.barh([n.split(".")[-1] for n in names], values, color="tab:blue", label="fANOVA importance")
    ax.set(xlabel="share of the variance of the dev mean", ylabel="hyper-parameter",
           title="Hyper-parameter importance (fANOVA)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def params_vs_dev(trials: pd.DataFrame, params: list[str], metric: str, path: Path,
                  log_params: set[str] = frozenset(), int_params: set[str] = frozenset(),
                  categorical: set[str] = frozenset()) -> Path | None:
    """Each hyper-parameter against the dev mean: log axes for log-sampled ones, integer
    ticks for integer ones, categories in sorted order ("–": the entry was inactive)."""
    done = trials[trials["state"] == "COMPLETE"]
    params = [p for p in params if p in done and done[p].nunique() > 1]  # constants say nothing
    if done.empty or not params:
        return None
    cols = min(3, len(params))
    rows = int(np.ceil(len(params) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, p in zip(axes.flat, params):
        x = done[p]
        numeric = (pd.api.types.is_numeric_dtype(x) and x.nunique() > 2 and p not in categorical
                   and x.notna().all())
        if numeric:
            xs = x
        else:  # categories in sorted order, at positions 0..n-1
            labels = x.map(_label)
            levels = sorted(labels.unique(), key=lambda v: (v == "–", _sort_key(v)))
            xs = labels.map({v: i for i, v in enumerate(levels)})
            ax.set_xticks(range(len(levels)), levels)
            ax.set_xlim(-0.5, len(levels) - 0.5)
        ax.errorbar(xs, done["dev_mean"], yerr=done["dev_std"].fillna(0), fmt="o", ms=4,
                    alpha=0.7, label="trial (seed mean ± std)")
        if numeric and p in log_params:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        elif numeric and p in int_params:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel=p, ylabel=f"dev {metric}")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(params):]:
        ax.axis("off")
    fig.suptitle("Each hyper-parameter against the dev mean (completed trials)")
    return _save(fig, path)


def _label(v) -> str:
    if isinstance(v, float):
        return "–" if v != v else (str(int(v)) if v.is_integer() else f"{v:.3g}")
    return str(v)


def _sort_key(label: str):
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def expected_max_plot(values: dict[str, list[float]], maximize: bool, metric: str,
                      path: Path) -> Path | None:
    """Expected best dev score against the number of trials (Dodge et al. 2019), per sampler."""
    values = {k: v for k, v in values.items() if v}
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, v in values.items():
        curve = expected_max(v, maximize)
        ax.plot(np.arange(1, len(curve) + 1), curve, marker="o", ms=3, label=f"{label} ({len(v)} trials)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="number of trials (hyper-parameter assignments)",
           ylabel=f"expected best dev {metric}", title="Expected validation performance")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
