#!/usr/bin/env python3
"""Aggregates main-job runs over seeds: mean and sample standard deviation of the test accuracies.

Inputs: several results.json files written by scripts/main_table.py (one per seed, e.g. from
`LISTOPS_SEED=<s> OUT_DIR=results/listops-seed<s> bash scripts/main.sh`). For every (dataset, model) it
reports scratch and SPT + fine-tuning test accuracy as mean +- std over the runs, the per-run gains, and
their mean; writes the Markdown table with --table and a bar chart with error bars with --plot.
"""
import argparse
import json
import statistics
import sys


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
            key = (r["dataset"], r["model"])
            cells.setdefault(key, []).append((100 * r["scratch"]["test_acc"], 100 * r["finetune"]["test_acc"]))
    if not cells:
        sys.exit("no run has both a scratch and a fine-tuning result")
    return cells


def table(cells):
    out = ["| dataset | model | runs | scratch | SPT + FT | gain (points), mean | gain per run |",
           "|---|---|---|---|---|---|---|"]
    for (ds, model), runs in cells.items():
        sc = mean_std([a for a, _ in runs])
        ft = mean_std([b for _, b in runs])
        gains = [b - a for a, b in runs]
        per = ", ".join(f"{g:+.1f}" for g in gains)
        out.append(f"| {ds} | {model} | {len(runs)} | {sc[0]:.2f} ± {sc[1]:.2f} | {ft[0]:.2f} ± {ft[1]:.2f} | "
                   f"{statistics.mean(gains):+.2f} | {per} |")
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="results.json files of scripts/main_table.py, one per seed")
    ap.add_argument("--table", help="write the Markdown table here")
    ap.add_argument("--plot", help="write the bar chart (PNG) here")
    ap.add_argument("--title", default="SPT + fine-tune vs. from scratch, mean ± std over seeds")
    args = ap.parse_args()
    cells = aggregate(args.results)
    text = table(cells)
    print(text)
    if args.table:
        with open(args.table, "w") as f:
            f.write(text + "\n")
    if args.plot:
        plot(cells, args.plot, args.title)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
