#!/usr/bin/env python3
# Draws K_max(l) = max over channels of |K[c,l]| against the shift l for chosen layers of a checkpoint,
# next to a freshly HiPPO-initialized layer of the same size (the paper's kernel figure), from the CSV
# files written by the kernel_analysis example. The dotted verticals mark the effective decay lengths.
import argparse
import csv
import sys
from pathlib import Path


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    ap = argparse.ArgumentParser(description="plot K_max(l) of learned SSM kernels vs a HiPPO-initialized layer")
    ap.add_argument("--in", dest="inp", required=True, help="folder with kmax.csv and layers.csv")
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--layers", type=int, nargs="+", help="layer indices to draw (default: every layer)")
    ap.add_argument("--odd", action="store_true", help="draw only odd layer indices (as in the paper's figure)")
    ap.add_argument("--normalize", action="store_true", help="divide each curve by its maximum")
    ap.add_argument("--linear", action="store_true", help="linear y axis (default: logarithmic)")
    ap.add_argument("--title", default="", help="figure title")
    a = ap.parse_args()

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_kernels.py needs matplotlib (apt-get install python3-matplotlib)", file=sys.stderr)
        return 2

    inp = Path(a.inp)
    layers = read_csv(inp / "layers.csv")
    rows = read_csv(inp / "kmax.csv")
    if not layers:
        print(f"{inp / 'layers.csv'} lists no layer", file=sys.stderr)
        return 1
    chosen = [r for r in layers
              if (a.layers is None or int(r["layer"]) in a.layers) and (not a.odd or int(r["layer"]) % 2 == 1)]
    if not chosen:
        print(f"none of the layers {a.layers} (odd only: {a.odd}) is in {inp / 'layers.csv'}", file=sys.stderr)
        return 1
    curves = {}
    for r in rows:
        curves.setdefault((r["id"], r["source"]), []).append((int(r["l"]), float(r["kmax"])))

    n = len(chosen)
    cols = min(n, 3)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for k, lay in enumerate(chosen):
        ax = axes[k // cols][k % cols]
        for source, style, name in (("hippo", "--", "HiPPO init"), ("trained", "-", "trained")):
            pts = sorted(curves.get((lay["id"], source), []))
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            if a.normalize:
                m = max(ys) or 1.0
                ys = [y / m for y in ys]
            if not a.linear:
                ys = [max(y, 1e-12) for y in ys]
            line, = ax.plot(xs, ys, style, lw=1.0, label=name)
            d = int(lay["decay_trained" if source == "trained" else "decay_hippo"])
            ax.axvline(d, ls=":", lw=0.8, color=line.get_color())
        if not a.linear:
            ax.set_yscale("log")
        ax.set_title(f"layer {lay['layer']} ({lay['kind']}, H={lay['H']}, N={lay['N']})", fontsize=9)
        ax.set_xlabel("shift l")
        ax.set_ylabel("K_max(l)" + (" / max" if a.normalize else ""))
        ax.legend(fontsize=7)
    for k in range(n, nrows * cols):
        axes[k // cols][k % cols].axis("off")
    if a.title:
        fig.suptitle(a.title, fontsize=10)
    fig.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out} ({n} layer{'s' if n > 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
