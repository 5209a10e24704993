#!/usr/bin/env python3
"""Aggregates main-job runs over seeds: mean and sample standard deviation of the test accuracies.

Inputs: several results.json files written by scripts/main_table.py, one per seed (`SEEDS="1 2 3" bash
scripts/main.sh` runs the seeds and calls this script). For every (dataset, model) it reports scratch and
SPT + fine-tuning test accuracy as mean +- sample standard deviation over the runs, the per-run gains and
their mean; writes the Markdown table with --table, the numbers with --json (both atomically) and a bar
chart with error bars with --plot. `--self-test` checks the arithmetic on made-up runs.
"""
import argparse
import json
import math
import os
import statistics
import sys
import tempfile

from main_table import write_atomic


def load(path):
    try:
        with open(path) as f:
            return json.load(f)["rows"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        sys.exit(f"{path}: cannot read main_table results ({e})")


def mean_std(values):
    m = statistics.mean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(paths):
    cells = {}  # (dataset, model) -> list of (scratch, finetune) accuracies in percent, one per run
    for p in paths:
        for r in load(p):
            if "scratch" not in r or "finetune" not in r:
                continue
            try:
                pair = (100 * float(r["scratch"]["test_acc"]), 100 * float(r["finetune"]["test_acc"]))
            except (KeyError, TypeError, ValueError) as e:
                sys.exit(f"{p}: row {r.get('dataset')}/{r.get('model')}: expected a numeric test_acc ({e})")
            cells.setdefault((r["dataset"], r["model"]), []).append(pair)
    if not cells:
        sys.exit("no run has both a scratch and a fine-tuning result")
    return cells


def stats(cells):
    """Per cell the runs and mean/std of both accuracies and of the gain: the numbers of the table and the JSON."""
    out = []
    for (ds, model), runs in cells.items():
        sc, ft = mean_std([a for a, _ in runs]), mean_std([b for _, b in runs])
        gains = [b - a for a, b in runs]
        out.append({"dataset": ds, "model": model, "runs": len(runs),
                    "scratch_pct": {"mean": sc[0], "std": sc[1], "values": [a for a, _ in runs]},
                    "finetune_pct": {"mean": ft[0], "std": ft[1], "values": [b for _, b in runs]},
                    "gain_points": {"mean": statistics.mean(gains), "std": mean_std(gains)[1], "values": gains}})
    return out


def summary(cells, paths):
    return {"inputs": list(paths), "cells": stats(cells)}


def table(cells):
    out = ["| dataset | model | runs | scratch | SPT + FT | gain (points), mean | gain per run |",
           "|---|---|---|---|---|---|---|"]
    for c in stats(cells):
        sc, ft, gain = c["scratch_pct"], c["finetune_pct"], c["gain_points"]
        per = ", ".join(f"{g:+.1f}" for g in gain["values"])
        out.append(f"| {c['dataset']} | {c['model']} | {c['runs']} | {sc['mean']:.2f} ± {sc['std']:.2f} | "
                   f"{ft['mean']:.2f} ± {ft['std']:.2f} | {gain['mean']:+.2f} | {per} |")
    return "\n".join(out)


def plot(cells, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(cells)
    x = range(len(keys))
    w = 0.38
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(keys) + 1.5), 4.2))
    for off, idx, label in ((-w / 2, 0, "from scratch"), (w / 2, 1, "SPT + fine-tune")):
        stats = [mean_std([run[idx] for run in cells[k]]) for k in keys]
        bars = ax.bar([i + off for i in x], [m for m, _ in stats], w, yerr=[s for _, s in stats], capsize=4,
                      label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=6)
        for i, k in enumerate(keys):  # every run as a dot
            ax.scatter([i + off] * len(cells[k]), [run[idx] for run in cells[k]], color="black", s=8, zorder=3)
    ax.set_xticks(list(x), [f"{ds}\n{m}" for ds, m in keys])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, max(max(max(r) for r in runs) for runs in cells.values()) * 1.35)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def self_test():
    runs = {1: (0.80, 0.85), 2: (0.70, 0.90), 3: (0.75, 0.80)}  # seed -> (scratch, fine-tuned) accuracy
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for seed, (sc, ft) in runs.items():
            rows = [{"dataset": "listops", "model": "s4d", "scratch": {"test_acc": sc}, "finetune": {"test_acc": ft}},
                    {"dataset": "listops", "model": "transformer", "scratch": {"test_acc": 0.5}}]  # no FT: left out
            paths.append(os.path.join(d, f"seed{seed}.json"))
            write_atomic(paths[-1], json.dumps({"rows": rows}))
        s = summary(aggregate(paths), paths)
        assert len(s["cells"]) == 1, s
        c = s["cells"][0]
        assert c["runs"] == 3 and math.isclose(c["scratch_pct"]["mean"], 75.0), c
        assert math.isclose(c["scratch_pct"]["std"], 5.0), c  # sample std of 80, 70, 75
        assert math.isclose(c["finetune_pct"]["std"], 5.0) and math.isclose(c["gain_points"]["mean"], 10.0), c
        assert [round(g, 9) for g in c["gain_points"]["values"]] == [5.0, 20.0, 5.0], c
        text = table(aggregate(paths))
        assert "| listops | s4d | 3 | 75.00 ± 5.00 | 85.00 ± 5.00 | +10.00 | +5.0, +20.0, +5.0 |" in text, text
        write_atomic(paths[0], json.dumps({"rows": [{"dataset": "x", "model": "m", "scratch": {"test_acc": "high"},
                                                     "finetune": {"test_acc": 0.5}}]}))
        try:
            aggregate(paths[:1])
            raise AssertionError("a non-numeric accuracy was accepted")
        except SystemExit as e:
            assert "numeric test_acc" in str(e), e
    print("seed_table self-test passed")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="*", help="results.json files of scripts/main_table.py, one per seed")
    ap.add_argument("--table", help="write the Markdown table here")
    ap.add_argument("--json", help="write the runs, means and standard deviations here")
    ap.add_argument("--plot", help="write the bar chart (PNG) here")
    ap.add_argument("--title", default="SPT + fine-tune vs. from scratch, mean ± std over seeds")
    ap.add_argument("--self-test", action="store_true", help="check the aggregation on made-up runs and exit")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.results:
        ap.error("give one results.json per seed")
    cells = aggregate(args.results)
    text = ("Test accuracy at the best validation epoch, mean ± sample standard deviation over the seeds; "
            "scratch and fine-tuning have the same budget.\n\n" + table(cells))
    print(text)
    if args.table:
        write_atomic(args.table, text + "\n")
    if args.json:
        write_atomic(args.json, json.dumps(summary(cells, args.results), indent=2) + "\n")
    if args.plot:
        # The table and the JSON are written; a missing matplotlib or a failed plot only costs the PNG.
        try:
            plot(cells, args.plot, args.title)
            print(f"plot: {args.plot}")
        except Exception as e:  # noqa: BLE001 - any plotting failure is reported, never fatal
            print(f"warning: no plot {args.plot} ({type(e).__name__}: {e})", file=sys.stderr)


if __name__ == "__main__":
    main()
