#!/usr/bin/env python3
# Draws where Transformer checkpoints attend, from the attention.json files the attention_analysis example
# writes: per layer, one bar per head of the mean attention distance (one colour per checkpoint, the dashed
# line is uniform attention), and a comparison of the checkpoints per layer (head-averaged distance and the
# share of mass within a window). Prints the comparison as a Markdown table; without matplotlib it warns
# and still prints the table. Run it with the interpreter in $LONGSEQ_PYTHON (scripts/python.sh).
import argparse
import json
import sys
from pathlib import Path


def load(spec):
    """'label=path' or 'path'; path is an attention_analysis output folder or its attention.json."""
    label, sep, path = spec.partition("=")
    if not sep:
        label, path = "", spec
    p = Path(path)
    if p.is_dir():
        p = p / "attention.json"
    if not p.is_file():
        raise SystemExit(f"--in {spec}: {p} does not exist (expected attention_analysis's attention.json or its folder)")
    with open(p) as f:
        r = json.load(f)
    for key in ("layers", "windows", "uniform_distance"):
        if key not in r:
            raise SystemExit(f"--in {spec}: {p} has no '{key}' entry; is it attention_analysis output?")
    r["label"] = label or r.get("label") or p.parent.name
    return r


def window_key(r, w):
    keys = [str(x) for x in r["windows"]]
    if w is None:
        return keys[len(keys) // 2] if keys else None
    if str(w) not in keys:
        raise SystemExit(f"--window {w}: {r['label']} was analyzed with windows {r['windows']}")
    return str(w)


def layer_share(layer, key):
    heads = layer["heads"]
    return sum(h["within"][key] for h in heads) / len(heads)


def table(runs, w):
    lines = []
    key = window_key(runs[0], w)
    within = f"within {key}" if key is not None else "within -"
    lines.append(f"| checkpoint | layer | mean distance (heads avg) | min head | max head | uniform | {within} |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in runs:
        k = window_key(r, int(key)) if key is not None else None
        for layer in r["layers"]:
            d = [h["mean_distance"] for h in layer["heads"]]
            share = f"{layer_share(layer, k):.3f}" if k is not None else "-"
            lines.append(f"| {r['label']} | {layer['layer']} | {layer['mean_distance']:.2f} | {min(d):.2f} | "
                         f"{max(d):.2f} | {r['uniform_distance']:.2f} | {share} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="plot mean attention distance per layer and head of one or more checkpoints")
    ap.add_argument("--in", dest="inp", action="append", required=True, metavar="LABEL=PATH",
                    help="attention_analysis output (folder or attention.json), optionally labelled; repeat to compare "
                         "(e.g. --in scratch=a --in spt=b --in spt+ft=c)")
    ap.add_argument("--out", required=True, help="PNG: per layer, bars per head of the mean attention distance")
    ap.add_argument("--compare-out", help="PNG: per layer, head-averaged distance and share within --window, per checkpoint")
    ap.add_argument("--window", type=int, help="window of the share in the comparison (default: the middle one analyzed)")
    ap.add_argument("--table", help="also write the comparison table (Markdown) to this file")
    ap.add_argument("--title", default="", help="figure title")
    a = ap.parse_args()

    runs = [load(s) for s in a.inp]
    depth = {len(r["layers"]) for r in runs}
    if len(depth) != 1:
        raise SystemExit("--in: the checkpoints have different numbers of layers: " +
                         ", ".join(f"{r['label']}: {len(r['layers'])}" for r in runs))
    text = table(runs, a.window)
    print(text)
    if a.table:
        Path(a.table).write_text(text + "\n")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("warning: matplotlib is missing (apt-get install python3-matplotlib): no figures drawn", file=sys.stderr)
        return 0

    n_layers = depth.pop()
    cols = min(n_layers, 3)
    rows = (n_layers + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    width = 0.8 / len(runs)
    for li in range(n_layers):
        ax = axes[li // cols][li % cols]
        for k, r in enumerate(runs):
            heads = r["layers"][li]["heads"]
            xs = [h["head"] + (k - (len(runs) - 1) / 2) * width for h in heads]
            ax.bar(xs, [h["mean_distance"] for h in heads], width=width, label=r["label"], color=f"C{k}")
            ax.axhline(r["uniform_distance"], color=f"C{k}", linestyle="--", linewidth=0.8)
        ax.set_title(f"layer {li}")
        ax.set_xlabel("head")
        ax.set_ylabel("mean attention distance")
        ax.set_xticks(range(len(runs[0]["layers"][li]["heads"])))
    for k in range(n_layers, rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=8, title="dashed: uniform", title_fontsize=7)
    if a.title:
        fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")

    if a.compare_out:
        key = window_key(runs[0], a.window)
        fig, axes = plt.subplots(1, 2 if key is not None else 1, figsize=(9 if key is not None else 4.5, 3.4),
                                 squeeze=False)
        layers = list(range(n_layers))
        for k, r in enumerate(runs):
            axes[0][0].plot(layers, [l["mean_distance"] for l in r["layers"]], marker="o", color=f"C{k}",
                            label=r["label"])
            if key is not None:
                kk = window_key(r, int(key))
                axes[0][1].plot(layers, [layer_share(l, kk) for l in r["layers"]], marker="o", color=f"C{k}",
                                label=r["label"])
        axes[0][0].axhline(runs[0]["uniform_distance"], color="grey", linestyle="--", linewidth=0.8, label="uniform")
        axes[0][0].set_xlabel("layer")
        axes[0][0].set_ylabel("mean attention distance (heads avg)")
        axes[0][0].set_xticks(layers)
        axes[0][0].legend(fontsize=8)
        if key is not None:
            axes[0][1].set_xlabel("layer")
            axes[0][1].set_ylabel(f"share of attention within |i - j| <= {key}")
            axes[0][1].set_ylim(0, 1)
            axes[0][1].set_xticks(layers)
        if a.title:
            fig.suptitle(a.title)
        fig.tight_layout()
        fig.savefig(a.compare_out, dpi=120)
        print(f"wrote {a.compare_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
