#!/usr/bin/env python3
"""Combines the main job's runs into one table of test accuracies, a results JSON and a bar chart.

Inputs: the results.json of examples/spt_vs_scratch (sequential Fashion-MNIST) and a folder of
examples/train_lra runs laid out as <folder>/<model>/{scratch,spt,finetune[,joint]}/result.json (ListOps).
A joint-objective arm (spt_vs_scratch --joint-weight, train_lra --stage joint) adds joint columns to the
table and a third bar to the chart; without one they are exactly as before.
Optionally a timings file of lines "<dataset> <model> <stage> <wall s> <user s> <sys s>" adds the
measured wall and CPU time of each process.
Prints a Markdown table (scratch vs. SPT + fine-tuning, per dataset and model), writes it with --table,
the combined numbers with --json and a grouped bar chart with --plot.
"""
import argparse
import json
import os
import sys

STAGES = ("scratch", "spt", "finetune", "joint")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"{path}: cannot read results ({e})")


def write_atomic(path, text):
    """Writes the whole file or nothing: a temporary file beside it, then a rename."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        sys.exit(f"{path}: cannot write ({e})")


def fashion_rows(path):
    res = load_json(path)
    rows = []
    for model, stages in res.get("models", {}).items():
        rows.append({"dataset": "fashion-mnist", "model": model,
                     **{s: stages[s] for s in STAGES if s in stages}})
    return rows, {"fashion-mnist": {"dataset": res.get("dataset"), "options": res.get("options")}}


def listops_rows(folder):
    rows = []
    for model in sorted(os.listdir(folder)):
        mdir = os.path.join(folder, model)
        if not os.path.isdir(mdir):
            continue
        row = {"dataset": "listops", "model": model}
        for s in STAGES:
            p = os.path.join(mdir, s, "result.json")
            if os.path.exists(p):
                row[s] = load_json(p)
        if len(row) > 2:
            rows.append(row)
    return rows


def add_timings(rows, path):
    """Attaches each process's times to the rows it produced; returns the list of all processes."""
    procs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                sys.exit(f"{path}:{n}: expected '<dataset> <model> <stage> <wall> <user> <sys>', got {line!r}")
            ds, model, stage = parts[:3]
            wall, user, sys_ = map(float, parts[3:])
            t = {"dataset": ds, "model": model, "stage": stage, "wall_s": wall, "cpu_s": user + sys_}
            procs.append(t)
            # "all": one process ran every model of the data set (spt_vs_scratch).
            for r in rows:
                if r["dataset"] == ds and model in ("all", r["model"]):
                    r.setdefault("process_times", {})[stage] = t
    return procs


def pct(stage):
    return f"{100 * stage['test_acc']:.2f}%" if stage else "-"


def has_joint(rows):
    return any("joint" in r for r in rows)


def table(rows):
    joint = has_joint(rows)
    out = ["| dataset | model | scratch test acc | SPT + FT test acc | gain (points) | "
           + ("joint test acc | joint gain (points) | " if joint else "")
           + "scratch time | SPT time | FT time |" + (" joint time |" if joint else ""),
           "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if joint else "")]
    for r in rows:
        sc, spt, ft, jt = r.get("scratch"), r.get("spt"), r.get("finetune"), r.get("joint")
        gain = f"{100 * (ft['test_acc'] - sc['test_acc']):+.2f}" if sc and ft else "-"
        stages = (sc, spt, ft, jt) if joint else (sc, spt, ft)
        secs = [f"{s['seconds']:.0f}s" if s and "seconds" in s else "-" for s in stages]
        cells = [pct(sc), pct(ft), gain]
        if joint:
            cells += [pct(jt), f"{100 * (jt['test_acc'] - sc['test_acc']):+.2f}" if sc and jt else "-"]
        out.append(f"| {r['dataset']} | {r['model']} | " + " | ".join(cells + secs) + " |")
    return "\n".join(out)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['dataset']}\n{r['model']}" for r in rows]
    arms = [("scratch", "from scratch"), ("finetune", "SPT + fine-tune")]
    if has_joint(rows):
        arms.append(("joint", "joint objective"))
    x = range(len(rows))
    w = 0.76 / len(arms)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(rows) + 1), 4.5))
    for k, (stage, label) in enumerate(arms):
        acc = [100 * r[stage]["test_acc"] if stage in r else 0 for r in rows]
        bars = ax.bar([i + (k - (len(arms) - 1) / 2) * w for i in x], acc, w, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("SPT + fine-tune vs. from scratch\n(same fine-tuning budget)", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fashion", help="results.json of spt_vs_scratch")
    ap.add_argument("--listops", help="folder of train_lra runs: <model>/{scratch,spt,finetune}/result.json")
    ap.add_argument("--timings", help="file of '<dataset> <model> <stage> <wall> <user> <sys>' lines")
    ap.add_argument("--table", help="write the Markdown table here")
    ap.add_argument("--json", help="write the combined results here")
    ap.add_argument("--plot", help="write the bar chart (PNG) here")
    args = ap.parse_args()

    rows, meta = [], {}
    if args.fashion:
        r, meta = fashion_rows(args.fashion)
        rows += r
    if args.listops:
        rows += listops_rows(args.listops)
    if not rows:
        sys.exit("no results found (give --fashion and/or --listops)")
    procs = add_timings(rows, args.timings) if args.timings and os.path.exists(args.timings) else []

    text = ("Test accuracy at the best validation epoch; scratch and fine-tuning have the same budget.\n\n"
            + table(rows))
    if procs:
        text += ("\n\nTraining processes: %.0f s wall, %.0f s CPU (all threads)."
                 % (sum(p["wall_s"] for p in procs), sum(p["cpu_s"] for p in procs)))
    print(text)
    if args.table:
        write_atomic(args.table, text + "\n")
    if args.json:
        write_atomic(args.json, json.dumps({"rows": rows, "runs": meta, "processes": procs}, indent=2) + "\n")
    if args.plot:
        # The table and the JSON are written; a missing matplotlib or a failed plot only costs the PNG.
        try:
            plot(rows, args.plot)
            print(f"plot: {args.plot}")
        except Exception as e:  # noqa: BLE001 - any plotting failure is reported, never fatal
            print(f"warning: no plot {args.plot} ({type(e).__name__}: {e})", file=sys.stderr)


if __name__ == "__main__":
    main()
