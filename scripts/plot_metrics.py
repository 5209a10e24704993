#!/usr/bin/env python3
"""Draws the curves of a longseq metrics file (JSON lines written by train::fit) to a PNG.

Panels: training loss per update for every run, validation accuracy per epoch of the classifier runs,
validation loss per epoch of every run. Runs are named "<model>/<stage>" (scratch, spt, finetune).
"""
import argparse
import json
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    steps, epochs = defaultdict(list), defaultdict(list)
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not a JSON line ({e})")
            if rec.get("event") == "step":
                steps[rec["run"]].append(rec)
            elif rec.get("event") == "epoch":
                epochs[rec["run"]].append(rec)
    return steps, epochs


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("metrics", help="metrics.jsonl")
    ap.add_argument("-o", "--output", default="curves.png")
    args = ap.parse_args()
    steps, epochs = read(args.metrics)
    if not steps and not epochs:
        sys.exit(f"{args.metrics}: no step or epoch records")

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    ax = axes[0]
    for run, recs in sorted(steps.items()):
        ax.plot([r["step"] for r in recs], [r["loss"] for r in recs], label=run)
    ax.set_xlabel("update")
    ax.set_ylabel("training loss")
    ax.set_title("training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)

    ax = axes[1]
    for run, recs in sorted(epochs.items()):
        if run.endswith("/spt"):
            continue
        ax.plot([r["epoch"] + 1 for r in recs], [100 * r["val"]["accuracy"] for r in recs], marker="o", label=run)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("classification: scratch vs. SPT + fine-tune")
    ax.legend(fontsize=8)

    ax = axes[2]
    for run, recs in sorted(epochs.items()):
        ax.plot([r["epoch"] + 1 for r in recs], [r["val"]["loss"] for r in recs], marker="o", label=run)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss")
    ax.set_title("validation loss (SPT: masked denoising)")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
