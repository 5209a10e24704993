#!/usr/bin/env python3
"""Aggregates main-job runs over seeds: mean and sample standard deviation of the test accuracies.

Inputs: several results.json files written by scripts/main_table.py, one per seed (`SEEDS="1 2 3" bash
scripts/main.sh` runs the seeds and calls this script). For every (dataset, model) it reports scratch and
SPT + fine-tuning test accuracy as mean +- sample standard deviation over the runs, the per-run gains and
their mean; writes the Markdown table with --table, the numbers with --json (both atomically) and a bar
chart with error bars with --plot. Rows with a joint-objective arm (JOINT=1 in scripts/main.sh) in every run
add its accuracy and its gain over scratch (joint columns, a third bar); without one the outputs are as
before. `--self-test` checks the arithmetic on made-up runs.
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
    # (dataset, model) -> list of (scratch, finetune, joint or None) accuracies in percent, one per run
    cells = {}
    for p in paths:
        for r in load(p):
            if "scratch" not in r or "finetune" not in r:
                continue
            try:
                pair = (100 * float(r["scratch"]["test_acc"]), 100 * float(r["finetune"]["test_acc"]),
                        100 * float(r["joint"]["test_acc"]) if "joint" in r else None)
            except (KeyError, TypeError, ValueError) as e:
                sys.exit(f"{p}: row {r.get('dataset')}/{r.get('model')}: expected a numeric test_acc ({e})")
            cells.setdefault((r["dataset"], r["model"]), []).append(pair)
    if not cells:
        sys.exit("no run has both a scratch and a fine-tuning result")
    return cells


def with_joint(runs):
    """Whether every run of a cell has a joint-objective result."""
    return all(j is not None for _, _, j in runs)


def stats(cells):
    """Per cell the runs and mean/std of both accuracies and of the gain: the numbers of the table and the JSON
    (and of the joint arm and its gain over scratch when every run of the cell has one)."""
    out = []
    for (ds, model), runs in cells.items():
        sc, ft = mean_std([a for a, _, _ in runs]), mean_std([b for _, b, _ in runs])
        gains = [b - a for a, b, _ in runs]
        c = {"dataset": ds, "model": model, "runs": len(runs),
             "scratch_pct": {"mean": sc[0], "std": sc[1], "values": [a for a, _, _ in runs]},
             "finetune_pct": {"mean": ft[0], "std": ft[1], "values": [b for _, b, _ in runs]},
             "gain_points": {"mean": statistics.mean(gains), "std": mean_std(gains)[1], "values": gains}}
        if with_joint(runs):
            jt = mean_std([j for _, _, j in runs])
            jg = [j - a for a, _, j in runs]
            c["joint_pct"] = {"mean": jt[0], "std": jt[1], "values": [j for _, _, j in runs]}
            c["joint_gain_points"] = {"mean": statistics.mean(jg), "std": mean_std(jg)[1], "values": jg}
        out.append(c)
    return out


def summary(cells, paths):
    return {"inputs": list(paths), "cells": stats(cells)}


def table(cells):
    cs = stats(cells)
    joint = any("joint_pct" in c for c in cs)
    out = ["| dataset | model | runs | scratch | SPT + FT | gain (points), mean | gain per run |"
           + (" joint | joint gain (points), mean |" if joint else ""),
           "|---|---|---|---|---|---|---|" + ("---|---|" if joint else "")]
    for c in cs:
        sc, ft, gain = c["scratch_pct"], c["finetune_pct"], c["gain_points"]
        per = ", ".join(f"{g:+.1f}" for g in gain["values"])
        line = (f"| {c['dataset']} | {c['model']} | {c['runs']} | {sc['mean']:.2f} ± {sc['std']:.2f} | "
                f"{ft['mean']:.2f} ± {ft['std']:.2f} | {gain['mean']:+.2f} | {per} |")
        if joint:
            jt, jg = c.get("joint_pct"), c.get("joint_gain_points")
            line += (f" {jt['mean']:.2f} ± {jt['std']:.2f} | {jg['mean']:+.2f} |" if jt else " - | - |")
        out.append(line)
    return "\n".join(out)


def plot(cells, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(cells)
    x = range(len(keys))
    arms = [(0, "from scratch"), (1, "SPT + fine-tune")]
    if any(with_joint(cells[k]) for k in keys):
        arms.append((2, "joint objective"))
    w = 0.76 / len(arms)
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(keys) + 1.5), 4.2))
    for n, (idx, label) in enumerate(arms):
        off = (n - (len(arms) - 1) / 2) * w
        # A cell without this arm in every run draws no bar for it.
        stats = [mean_std([run[idx] for run in cells[k]]) if idx < 2 or with_joint(cells[k]) else (0.0, 0.0)
                 for k in keys]
        bars = ax.bar([i + off for i in x], [m for m, _ in stats], w, yerr=[s for _, s in stats], capsize=4,
                      label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=6)
        for i, k in enumerate(keys):  # every run as a dot
            if idx < 2 or with_joint(cells[k]):
                ax.scatter([i + off] * len(cells[k]), [run[idx] for run in cells[k]], color="black", s=8, zorder=3)
    ax.set_xticks(list(x), [f"{ds}\n{m}" for ds, m in keys])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, max(max(max(v for v in r if v is not None) for r in runs) for runs in cells.values()) * 1.35)
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
        assert "joint" not in text and "joint_pct" not in c, text  # no joint arm: the table is as before
        # A joint arm in every run adds its mean, std and gain over scratch; a cell without it prints "-".
        for seed, (sc, ft) in runs.items():
            rows = [{"dataset": "listops", "model": "s4d", "scratch": {"test_acc": sc}, "finetune": {"test_acc": ft},
                     "joint": {"test_acc": sc + 0.01 * seed}},
                    {"dataset": "fashion-mnist", "model": "s4d", "scratch": {"test_acc": 0.5},
                     "finetune": {"test_acc": 0.6}}]
            write_atomic(paths[seed - 1], json.dumps({"rows": rows}))
        s = summary(aggregate(paths), paths)
        c = next(c for c in s["cells"] if c["dataset"] == "listops")
        assert math.isclose(c["joint_pct"]["mean"], 77.0) and math.isclose(c["joint_pct"]["std"], math.sqrt(21.0)), c  # 81, 72, 78
        assert [round(g, 9) for g in c["joint_gain_points"]["values"]] == [1.0, 2.0, 3.0], c
        assert math.isclose(c["joint_gain_points"]["mean"], 2.0), c
        text = table(aggregate(paths))
        assert text.splitlines()[0].endswith("| joint | joint gain (points), mean |"), text
        assert "| +10.00 | +5.0, +20.0, +5.0 | 77.00 ± 4.58 | +2.00 |" in text, text
        assert "| fashion-mnist | s4d | 3 | 50.00 ± 0.00 | 60.00 ± 0.00 | +10.00 | +10.0, +10.0, +10.0 | - | - |" in text, text
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
