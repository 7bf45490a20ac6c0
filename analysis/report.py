"""`make report MODEL=dan [STUDY=…]`: tables, significance, plots and a one-page report
of a study under reports/<study>/, read from Optuna and MLflow. Trains nothing.

usage: python -m analysis.report model=dan [--study NAME] [--top 3] [overrides]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd
from omegaconf import DictConfig

from analysis import plots
from analysis.results import (
    RUN_ID,
    SEED_IDS,
    require_study,
    seed_curves,
    short_name,
    test_summary,
    train_perplexity,
    trials_frame,
)
from analysis.tables import to_markdown, with_pm, write_all
from analysis.verdict import markdown as verdict_markdown
from analysis.verdict import verdict
from models.errors import UserError
from sweeps import store
from sweeps.config.compose import compose_config
from sweeps.core.cli import Args, main_of, whole
from sweeps.core.paths import ROOT
from sweeps.core.records import (
    BUDGET,
    COMMAND,
    FINGERPRINT,
    IDENTITY,
    INTERRUPTED,
    MLFLOW_EXPERIMENT,
    MONITOR,
    PARAMS,
    SEED_EPOCHS,
    SEED_VALUES,
)
from sweeps.search import racing
from sweeps.tracking.tracker import Tracker

SAMPLERS = ("grid", "random", "tpe")


def trials_table(trials: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    out = trials[["trial", "state", *[p for p in params if p in trials]]].copy()
    out["dev mean"], out["dev std"] = trials["dev_mean"], trials["dev_std"]
    out["K"], out["epochs"], out["seed-epochs"] = trials["seeds"], trials["epochs"], trials[SEED_EPOCHS]
    return out


def results_table(trials: pd.DataFrame, data: str, tracker: Tracker, monitor: str,
                  variant: str | None) -> pd.DataFrame:
    """DAN-style: one row per model variant (its best completed trial), dev and test columns
    for the data set; the test column only once the final evaluation has run."""
    done = trials[trials["state"] == "COMPLETE"]
    if variant in done.columns:
        best = done.groupby(variant, sort=True).head(1)  # frame is sorted best first
        names = [f"{variant}={v}" for v in best[variant]]
    else:
        best, names = done.head(1), ["best"]
    rows = []
    for name, (_, t) in zip(names, best.iterrows()):
        row = {"model": name, "trial": t["trial"], f"{data} dev mean": t["dev_mean"],
               f"{data} dev std": t["dev_std"]}
        test = test_summary(tracker, t[RUN_ID], monitor)
        row[f"{data} test† mean"], row[f"{data} test† std"] = test if test else (float("nan"),) * 2
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty or df[f"{data} test† mean"].isna().all():
        df = df.drop(columns=[f"{data} test† mean", f"{data} test† std"], errors="ignore")
    return df


BENGIO_COLUMNS = {"n": "n", "hidden_dim": "h", "embed_dim": "m", "direct": "direct", "mix": "mix"}


def bengio_table(trials: pd.DataFrame, tracker: Tracker, rows: int = 10) -> pd.DataFrame:
    """Bengio et al. (2003) Table 1 layout: n, h, m, direct, mix, train / valid / test
    perplexity (test only after the final evaluation, marked †)."""
    out = []
    for _, t in trials[trials["state"] == "COMPLETE"].head(rows).iterrows():
        row = {"trial": t["trial"]}
        row |= {label: t[col] for col, label in BENGIO_COLUMNS.items() if col in t}
        # the network's own training perplexity; blank for mixtures, as in Bengio's Table 1
        row["train"] = float("nan") if row.get("mix") else train_perplexity(tracker, t[RUN_ID])
        row["valid mean"], row["valid std"] = t["dev_mean"], t["dev_std"]
        test = test_summary(tracker, t[RUN_ID], "perplexity")
        row["test† mean"], row["test† std"] = test if test else (float("nan"),) * 2
        out.append(row)
    df = pd.DataFrame(out)
    if df.empty or df["test† mean"].isna().all():
        df = df.drop(columns=["test† mean", "test† std"], errors="ignore")
    return df


def settings_section(study: optuna.Study) -> list[str]:
    """The study's fingerprint, its keys fixed on the command line and its fixed settings."""
    identity = study.user_attrs.get(IDENTITY)
    if identity is None:
        return ["## Study settings", "",
                "This study predates fingerprints: its settings were not recorded.", ""]
    fixed = {k: e["fixed"] for k, e in identity["space"].items() if "fixed" in e}
    searched = [k for k, e in identity["space"].items() if "fixed" not in e]
    settings = pd.DataFrame(sorted(identity["settings"].items()), columns=["setting", "value"])
    return [
        "## Study settings", "",
        f"- fingerprint `{study.user_attrs.get(FINGERPRINT, '?')}` (resuming with other "
        "settings is refused); metric: " + identity.get("metric", "?"),
        f"- searched: {', '.join(f'`{k}`' for k in searched) or 'nothing'}",
        f"- fixed on the command line: {', '.join(f'`{k}={v}`' for k, v in fixed.items()) or 'nothing'}",
        "", "<details><summary>Every fixed setting</summary>", "", to_markdown(settings), "</details>", "",
    ]


def build(cfg: DictConfig, name: str, out: Path, top: int = 3,
          compare: Sequence[str] = ()) -> tuple[Path, list[str]]:
    """Write every file of the report of study `name` into `out`; returns report.md and the
    verdict's sentences (how sure the winner is), for the terminal."""
    study = require_study(cfg, name)
    monitor = study.user_attrs.get(MONITOR, "accuracy")
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    tracker = Tracker(study.user_attrs.get(MLFLOW_EXPERIMENT, name), cfg.tracking.uri)
    trials = trials_frame(study)
    if trials.empty:
        raise UserError(f"study {name!r} has no finished trial yet.")
    params = [short_name(p) for p in study.user_attrs.get(PARAMS, [])] or \
        [c for c in trials.columns if c not in ("trial", "state", "dev_mean", "dev_std", "seeds",
                                                "epochs", SEED_EPOCHS, SEED_VALUES, SEED_IDS, RUN_ID)]
    ledger = tracker.ledger(name)
    data = cfg.data.name
    out.mkdir(parents=True, exist_ok=True)
    write_all(trials_table(trials, params), out, "trials", f"Trials of {name}: dev {monitor} over seeds")
    distributions = {short_name(k): d for t in study.get_trials(deepcopy=False)
                     for k, d in t.distributions.items()}
    log_params = {k for k, d in distributions.items() if getattr(d, "log", False)}
    int_params = {k for k, d in distributions.items() if isinstance(d, optuna.distributions.IntDistribution)}
    categorical = {k for k, d in distributions.items()
                   if isinstance(d, optuna.distributions.CategoricalDistribution)}
    if monitor == "perplexity":
        results = bengio_table(trials, tracker)
    else:
        results = results_table(trials, data, tracker, monitor,
                                "num_layers" if "num_layers" in params else None)
    write_all(results, out, "results", f"{name}: dev and test {monitor}, mean ± std over seeds")
    comparisons = verdict(trials, maximize, top=max(top, 5))
    sig = verdict_markdown(comparisons, int((trials["state"] == "COMPLETE").sum()))
    (out / "significance.md").write_text(sig)

    done = trials[trials["state"] == "COMPLETE"]
    curves = {f"trial {t['trial']}": seed_curves(tracker, t[RUN_ID], monitor)
              for _, t in done.head(top).iterrows()}
    figures = {
        "Dev curves of the top trials": plots.dev_curves(curves, monitor, maximize, out / "curves.png")
        if curves else None,
        "Hyper-parameter importance (fANOVA)": plots.importance(study, out / "importance.png"),
        "Hyper-parameters against the dev mean": plots.params_vs_dev(
            trials, params, monitor, out / "params.png", log_params, int_params, categorical),
    }
    # Studies of the same model and data with other samplers, and any asked for by name:
    # their expected-max curves side by side (grid against random, Dodge et al. 2019).
    base = name.rsplit("-", 1)[0] if name.rsplit("-", 1)[-1] in SAMPLERS else None
    names = [f"{base}-{s}" for s in SAMPLERS] if base else [name]
    curves_of = {}
    for other_name in dict.fromkeys([*names, *compare]):
        other = study if other_name == name else (
            require_study(cfg, other_name) if other_name in compare else store.load_study(cfg, other_name))
        if other is not None:
            curves_of[other_name] = [t.value for t in other.get_trials(deepcopy=False)
                                     if t.state.name == "COMPLETE"]
    figures["Expected best dev score against the number of trials"] = plots.expected_max_plot(
        curves_of, maximize, monitor, out / "expected_max.png")

    counts = trials["state"].value_counts().to_dict()
    frozen = study.get_trials(deepcopy=False)  # read once for the counts, pruning and race lines
    cut = sum(bool(t.user_attrs.get(INTERRUPTED)) for t in frozen if t.state.name == "FAIL")
    # a Ctrl-C or a killed worker fails its trial and queues its configuration again
    note = f" ({cut} interrupted, queued again)" if cut else ""
    state_counts = [f"{v} {k.lower()}" + (note if k == "FAIL" else "") for k, v in counts.items()]
    saved = store.pruning_savings(frozen)
    lines = [
        f"# Study `{name}`", "",
        f"- trials: {', '.join(state_counts)}; "
        f"metric: dev {monitor} ({'higher' if maximize else 'lower'} is better), mean ± std over seeds "
        "(a trial's seed mean: each seed's best dev value, averaged)",
        *([f"- pruning: {saved}"] if saved else []),
        *([f"- {raced}"] if (raced := racing.savings_text(
            frozen, len(racing.study_seeds(study.user_attrs)))) else []),
        f"- test-set evaluations of this study: **{len(ledger)}**"
        + (f" (last {ledger[-1].get('time')}, trial {ledger[-1].get('trial')})" if ledger else
           " (run `make final` once, when the search is over)"),
        f"- reproduce: `{reproduce_command(study.user_attrs)}`",
        f"- MLflow experiment `{tracker.experiment}` (`make ui`)", "",
        "## Results", "", to_markdown(with_pm(results)),
        "† test columns come from the final evaluation (`make final`), the only reader of the test split.\n"
        if ledger else "No test column: the final evaluation has not run.\n",
        "## How sure is the winner?", "", sig,
        "## Top trials", "", to_markdown(with_pm(trials_table(trials, params).head(10))),
        "All trials: [trials.md](trials.md), [trials.csv](trials.csv), [trials.tex](trials.tex).", "",
        "## Plots", "",
    ]
    for title, path in figures.items():
        if path is not None:
            lines += [f"### {title}", "", f"![{title}]({path.name})", ""]
    lines += settings_section(study)
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report, [c.sentence() for c in comparisons] or [sig.splitlines()[0]]  # or "Fewer than two..."


def reproduce_command(attrs: dict) -> str:
    """The command that runs the study's trials: the latest budget's (a resume with a larger
    TRIALS records it), else the command that made the study (studies from before budgets)."""
    return (attrs.get(BUDGET) or {}).get("command") or attrs.get(COMMAND, "?")


def main(argv: Sequence[str] | None = None) -> int:
    # --out: a folder (default reports/<study>); --compare: other studies for the expected-max
    # plot, comma-separated
    return main_of(argv, __doc__, "python -m analysis.report", body,
                   values=("study", "top", "out", "compare"))


def body(args: Args) -> str:
    top = whole(args, "top") or 3
    cfg = compose_config(args.overrides)
    name = args.get("study") or store.study_name(cfg)
    out = Path(args.get("out")) if args.get("out") else ROOT / "reports" / name
    # the verdict's sentences on the terminal too: how sure the winner is, without opening a file
    report, said = build(cfg, name, out, top, [c for c in args.get('compare', '').split(',') if c])
    return "\n".join([f"report: {report}", *(f"  {line}" for line in said)])


if __name__ == "__main__":
    sys.exit(main())
