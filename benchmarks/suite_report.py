"""`make bench`'s report: the machine it ran on, and the Markdown of its rows."""

from __future__ import annotations

import datetime as dt
import os
import platform


def header() -> dict:
    import torch

    from models.training import cpu_name
    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"when": dt.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
            "cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "gpu": gpu,
            "python": platform.python_version()}


def _table(caption: str, header: str, align: str, lines: list[str]) -> list[str]:
    return [caption, "", header, align, *lines, ""]


def markdown(report: dict) -> str:
    h = report["header"]
    out = [f"# make bench, {h['when']}", "",
           f"torch {h['torch']}, {h['cpu']}, {h['cores']} cores, {h['threads']} torch threads, "
           f"GPU: {h['gpu'] or 'none'}", ""]
    for device, rows in report["devices"].items():
        out.append(f"## device={device}")
        out.append("")
        if "dan_epoch" in rows:
            r = rows["dan_epoch"]
            out += [f"**DAN 3x300 epoch, one thread** ({r['data']}, {r['examples']} examples, "
                    f"vocab {r['vocab']}; "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB)", "",
                    "| trainer | s / epoch | vs plain loop |", "|---|---:|---:|",
                    f"| platform ({r.get('platform_trainer', 'SeedTrainer')}) | {r['platform_s']:.3f} | "
                    f"{r['speedup']:.2f}x |",
                    f"| plain PyTorch loop | {r['plain_s']:.3f} | 1.00x |", ""]
        for key, title in (("dan_seeds", "DAN"), ("nplm_seeds", "NPLM")):
            if key in rows:
                r = rows[key]
                out += [f"**{title}: one epoch (train + dev) of K seeds** ({r['model']}; {r['data']}; "
                        f"{r['threads']} threads; peak RSS {r['peak_rss_mb']:.0f} MB)", "",
                        "| K | stacked s | one after another s | stacked / 1 seed "
                        "| one after another / 1 seed |",
                        "|---:|---:|---:|---:|---:|"]
                for x in r["rows"]:
                    st = f"{x['stacked_s']:.2f}" if "stacked_s" in x else "-"
                    out.append(f"| {x['k']} | {st} | {x['one_after_another_s']:.2f} | "
                               f"{x['stacked_over_one_seed']:.2f}x | "
                               f"{x['one_after_another_over_one_seed']:.2f}x |")
                out.append("")
        if "nplm_flops" in rows:
            r = rows["nplm_flops"]
            out += _table(f"**NPLM training throughput** ({r['model']}; {r['threads']} threads; "
                          f"peak RSS {r['peak_rss_mb']:.0f} MB)",
                          "| V | batch | tokens/s | GFLOP/s | matmul GFLOP/s (same shape) | share |",
                          "|---:|---:|---:|---:|---:|---:|",
                          [f"| {x['V']} | {x['batch']} | {x['tokens_per_s']:,.0f} | {x['gflops']:.1f} | "
                           f"{x['matmul_gflops']:.1f} | {x['share_of_matmul']:.0%} |" for x in r["rows"]])
        if "nplm_ptb" in rows:
            r = rows["nplm_ptb"]
            out += _table(f"**NPLM at PTB size, {r['seeds']} seeds** ({r['model']}; {r['steps']} steps; "
                          f"{r['threads']} threads; peak RSS {r['peak_rss_mb']:.0f} MB)",
                          "| trainer | ms / step (all seeds) | PTB epoch, min (projected) | vs stacked |",
                          "|---|---:|---:|---:|",
                          [f"| {x['trainer']} | {x['ms_per_step']:.1f} | {x['min_per_epoch']:.1f} | "
                           f"{x['vs_stacked']:.2f}x |" for x in r["rows"]])
        if "sweep" in rows:
            r = rows["sweep"]
            out += [f"**DAN sweep, {r['trials']} trials** ({r['states']}; sweep peak RSS "
                    f"{r['sweep_peak_rss_mb']:.0f} MB)", "",
                    "| wall s | training + dev s | building models s | sweep's own overhead s | "
                    "overhead share | of it: in trials s | around trials s |",
                    "|---:|---:|---:|---:|---:|---:|---:|",
                    f"| {r['wall_s']:.1f} | {r['training_s']:.1f} | {r.get('build_s', 0.0):.1f} | "
                    f"{r['overhead_s']:.1f} | {r['overhead_share']:.1%} | "
                    f"{r.get('in_trials_overhead_s', float('nan')):.1f} | "
                    f"{r.get('outside_trials_s', float('nan')):.1f} |", ""]
            if "projected_100_trial_share" in r:
                out += [f"Paid once a sweep {r['once_s']:.1f} s (the first trial's warm-up included: "
                        f"{r.get('first_trial_overhead_s', float('nan')):.2f} s of overhead); every later "
                        f"trial {r['per_trial_overhead_s']:.2f} s of overhead beside "
                        f"{r['per_trial_training_s']:.2f} s of training and "
                        f"{r.get('per_trial_build_s', 0.0):.2f} s building its models: a 100-trial sweep "
                        f"(the default budget) projects to {r['projected_100_trial_share']:.1%}.", ""]
        for name, err in rows.get("errors", {}).items():
            out.append(f"- {name} failed: {err}")
    return "\n".join(out).rstrip() + "\n"
