#!/usr/bin/env python3
# Experiment runner over the compiled trainer (examples/spt_vs_scratch): runs a grid of
# {model} x {scratch, SPT -> fine-tune} x {seeds} x {data fraction or SPT share of an epoch budget},
# one trainer process per (model, init, seed, fraction, split), one results JSON per cell, and
# aggregates mean +- std over seeds into Markdown, CSV and a PNG bar chart.
#
# Presets follow the paper's studies:
#   explicit-priors  S4 vs DLR, structured vs random initialization, scratch vs SPT (Sec. 3.3)
#   data-scale       nested training subsets, fractions 0.005 .. 1.0 (Fig. 3)
#   compute-matched  a fixed total epoch budget split between SPT and fine-tuning (Appendix D)
#
# Resumable: a cell whose JSON exists with status "ok" or "unsupported" is not run again.
# Python only drives the trainer and draws; the library does not depend on it.
import argparse
import csv
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

FULL_TRAIN = 54000  # Fashion-MNIST training images after the 6000-image validation split

PRESETS = {
    "explicit-priors": {
        "about": "S4 vs DLR, structured vs random initialization, scratch vs SPT -> fine-tune",
        "models": ["s4:structured", "s4:random", "dlr:structured", "dlr:random"],
        "fractions": [None],
        "shares": None,
    },
    "data-scale": {
        "about": "scratch vs SPT -> fine-tune on nested training subsets (the first n images)",
        "models": ["s4d:structured"],
        "fractions": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
        "shares": None,
    },
    "compute-matched": {
        "about": "a fixed total epoch budget split between SPT and fine-tuning (share 0 = scratch)",
        "models": ["s4d:structured"],
        "fractions": [None],
        "shares": [0.0, 0.2, 0.4, 0.6, 0.8],
    },
}

# Tiny sizes for --smoke: every preset end to end in seconds.
SMOKE_ARGS = {"d-model": 8, "layers": 1, "state": 4, "heads": 2, "batch": 4, "log-every": 1000}


def trainer_flags(trainer):
    """The long options the trainer accepts, read from its --help."""
    out = subprocess.run([trainer, "--help"], capture_output=True, text=True, check=False)
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", out.stdout + out.stderr))


def parse_model(spec):
    name, _, init = spec.partition(":")
    init = init or "structured"
    if init not in ("structured", "random", "random-mixer"):
        raise SystemExit(f"model '{spec}': init must be 'structured', 'random' (every parameter redrawn, "
                         "the paper's ablation) or 'random-mixer' (only the SSM mixer)")
    return name, init


def fmt_fraction(f):
    return "all" if f is None else f"{f:g}"


class Cell:
    """One measured number: a model/init/mode/seed/fraction/epochs combination."""

    def __init__(self, model, init, mode, seed, fraction, train_n, pre_ep, ft_ep, share):
        self.model, self.init, self.mode, self.seed = model, init, mode, seed
        self.fraction, self.train_n, self.pre_ep, self.ft_ep, self.share = fraction, train_n, pre_ep, ft_ep, share

    def key(self):
        parts = [self.model, self.init, self.mode, f"f{fmt_fraction(self.fraction)}", f"pe{self.pre_ep}",
                 f"fe{self.ft_ep}", f"s{self.seed}"]
        return "_".join(parts)

    def meta(self):
        return {"model": self.model, "init": self.init, "mode": self.mode, "seed": self.seed,
                "fraction": self.fraction, "train_images": self.train_n, "pretrain_epochs": self.pre_ep,
                "finetune_epochs": self.ft_ep, "spt_share": self.share}


class Run:
    """One trainer process; it produces one or two cells (scratch and/or SPT -> fine-tune)."""

    def __init__(self, model, init, seed, fraction, train_n, pre_ep, ft_ep, share, want):
        self.model, self.init, self.seed, self.fraction = model, init, seed, fraction
        self.train_n, self.pre_ep, self.ft_ep, self.share = train_n, pre_ep, ft_ep, share
        self.cells = {m: Cell(model, init, m, seed, fraction, train_n, pre_ep if m == "spt" else 0, ft_ep, share)
                      for m in want}

    def key(self):
        return (f"{self.model}_{self.init}_f{fmt_fraction(self.fraction)}_pe{self.pre_ep}_fe{self.ft_ep}"
                f"_s{self.seed}")


def build_grid(a, preset):
    p = PRESETS[preset]
    models = [parse_model(m) for m in (a.models or p["models"])]
    # Overrides apply only to the axis a preset has (fractions for data-scale, shares for compute-matched).
    fractions = a.fractions if (a.fractions and p["fractions"] != [None]) else p["fractions"]
    shares = a.shares if (a.shares is not None and p["shares"] is not None) else p["shares"]
    if a.smoke and preset == "explicit-priors" and not a.models:
        models.append(("s4d", "structured"))  # a model the trainer has, so the smoke run trains something
    runs = []
    for name, init in models:
        for seed in a.seeds:
            for frac in fractions:
                n = a.train_subset if frac is None else max(a.batch_floor, int(round(frac * a.full_train)))
                if frac == 1.0:
                    n = 0  # the trainer's "all"
                if shares is None:
                    runs.append(Run(name, init, seed, frac, n, a.pretrain_epochs, a.finetune_epochs, None,
                                    ["scratch", "spt"]))
                    continue
                for s in shares:
                    pe = int(round(s * a.budget))
                    fe = a.budget - pe
                    if fe < 1:
                        raise SystemExit(f"share {s} of a {a.budget}-epoch budget leaves no fine-tuning epoch")
                    want = ["scratch"] if pe == 0 else ["spt"]
                    runs.append(Run(name, init, seed, frac, n, pe, fe, s, want))
    return runs


def cell_path(out, preset, cell):
    return out / preset / "cells" / (cell.key() + ".json")


def load_cell(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def write_json_atomic(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def trainer_command(a, flags, run, run_dir):
    cmd = [a.trainer, "--models", run.model, "--seed", str(run.seed), "--out-dir", str(run_dir),
           "--train-subset", str(run.train_n), "--val-subset", str(a.val_subset),
           "--test-subset", str(a.test_subset), "--pretrain-epochs", str(max(run.pre_ep, 1)),
           "--finetune-epochs", str(run.ft_ep)]
    if a.data_dir:
        cmd += ["--data-dir", a.data_dir]
    if "--mode" in flags and len(run.cells) == 1:
        cmd += ["--mode", next(iter(run.cells))]
    if run.init != "structured":
        cmd += ["--init", run.init]
    if "--resume" in flags:
        cmd += ["--resume"]  # a run killed half-way continues its stages from their last checkpoint
    extra = dict(SMOKE_ARGS) if a.smoke else {}
    for k, v in extra.items():
        if not isinstance(v, bool):
            cmd += [f"--{k}", str(v)]
    cmd += shlex.split(a.trainer_args)
    return cmd


def unsupported_reason(flags, run, log_text):
    if run.init != "structured" and "--init" not in flags:
        return "the trainer has no --init flag (random initialization ablation)"
    m = re.search(r"unknown model[^\n]*", log_text)
    if m:
        return m.group(0)
    m = re.search(rf"{re.escape(run.model)}: skipped[^\n]*", log_text)
    if m:
        return m.group(0)
    return None


def execute(a, flags, preset, run):
    out = Path(a.out)
    paths = {m: cell_path(out, preset, c) for m, c in run.cells.items()}
    done = {m: load_cell(p) for m, p in paths.items()}
    run_dir = out / preset / "runs" / run.key()
    cmd = trainer_command(a, flags, run, run_dir)
    command = " ".join(shlex.quote(c) for c in cmd)
    if all(d is not None and d.get("status") in ("ok", "unsupported") for d in done.values()):
        if all(d.get("command") == command for d in done.values()):
            return "skipped"
        # Same cell, other settings (e.g. --trainer-args): its checkpoints must not be resumed from.
        print(f"{run.key()}: settings changed since the recorded cell, running it again", file=sys.stderr)
        import shutil
        shutil.rmtree(run_dir, ignore_errors=True)
    pre = unsupported_reason(flags, run, "")
    log_text, rc, secs = "", None, 0.0
    if pre is None:
        if a.dry_run:
            print(" ".join(shlex.quote(c) for c in cmd))
            return "dry-run"
        run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        with open(run_dir / "trainer.log", "w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
        secs = time.time() - t0
        rc = proc.returncode
        log_text = (run_dir / "trainer.log").read_text(errors="replace")
    reason = pre or unsupported_reason(flags, run, log_text)
    results = load_cell(run_dir / "results.json") if rc == 0 else None
    model_res = (results or {}).get("models", {}).get(run.model) if results else None
    status = "ok"
    for mode, cell in run.cells.items():
        rec = {"preset": preset, **cell.meta(), "command": command,
               "wall_seconds": round(secs, 2)}
        if reason:
            rec.update(status="unsupported", reason=reason)
            status = "unsupported"
        elif model_res is None:
            tail = "\n".join(log_text.strip().splitlines()[-5:])
            rec.update(status="failed", reason=f"trainer exit code {rc}: {tail}")
            status = "failed"
        else:
            stage = model_res["scratch"] if mode == "scratch" else model_res["finetune"]
            rec.update(status="ok", test_acc=stage["test_acc"], val_acc=stage["val_acc"],
                       test_loss=stage["test_loss"], steps=stage["steps"],
                       train_seconds=stage["seconds"] + (model_res["spt"]["seconds"] if mode == "spt" else 0.0))
            if mode == "spt":
                rec["spt_val_loss"] = model_res["spt"]["val_loss"]
            ds = results.get("dataset", {})
            rec["dataset"] = ds
            if ds.get("train") is not None:
                rec["train_images"] = ds["train"]
        write_json_atomic(paths[mode], rec)
    return status


def mean_std(xs):
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


GROUP_KEYS = ["model", "init", "mode", "fraction", "train_images", "pretrain_epochs", "finetune_epochs", "spt_share"]


def aggregate(cells):
    """Groups cells that differ only by seed; returns one row per group (mean +- std of test accuracy)."""
    groups = {}
    for c in cells:
        k = tuple(c.get(g) for g in GROUP_KEYS)
        groups.setdefault(k, []).append(c)
    rows = []
    for k, cs in groups.items():
        ok = [c for c in cs if c.get("status") == "ok"]
        row = dict(zip(GROUP_KEYS, k))
        tm, ts = mean_std([100.0 * c["test_acc"] for c in ok])
        vm, vs = mean_std([100.0 * c["val_acc"] for c in ok])
        row.update(test_acc_mean=tm, test_acc_std=ts, val_acc_mean=vm, val_acc_std=vs, n_seeds=len(ok),
                   seeds=" ".join(str(c["seed"]) for c in sorted(ok, key=lambda c: c["seed"])),
                   train_seconds_mean=mean_std([c["train_seconds"] for c in ok])[0],
                   status="ok" if ok else cs[0].get("status", "missing"),
                   reason="" if ok else cs[0].get("reason", ""))
        rows.append(row)

    def order(r):
        return (r["model"], r["init"], -1 if r["fraction"] is None else r["fraction"],
                -1 if r["spt_share"] is None else r["spt_share"], r["mode"] != "scratch")
    rows.sort(key=order)
    return rows


def pm(m, s, digits=2):
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "n/a"
    if s is None or math.isnan(s):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def label(r, preset):
    parts = [r["model"]]
    if preset == "explicit-priors" or r["init"] != "structured":
        parts.append(r["init"])
    if preset == "data-scale":
        parts.append(f"{r['train_images']} img")
    if preset == "compute-matched":
        parts.append(f"SPT {r['pretrain_epochs']} + FT {r['finetune_epochs']} ep")
    return " ".join(parts)


def write_outputs(out, preset, rows, a):
    d = out / preset
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else GROUP_KEYS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    lines = [f"# {preset}: {PRESETS[preset]['about']}", "",
             "Test accuracy (%) at the best validation epoch, mean ± sample std over seeds.", "",
             "| model | init | mode | train images | SPT epochs | FT epochs | test acc | val acc | seeds | "
             "train s/seed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['init']} | {r['mode']} | {r['train_images']} | {r['pretrain_epochs']} "
                         f"| {r['finetune_epochs']} | not run: {r['status']} ({r['reason']}) | | 0 | |")
            continue
        lines.append(f"| {r['model']} | {r['init']} | {r['mode']} | {r['train_images']} | {r['pretrain_epochs']} | "
                     f"{r['finetune_epochs']} | {pm(r['test_acc_mean'], r['test_acc_std'])} | "
                     f"{pm(r['val_acc_mean'], r['val_acc_std'])} | {r['n_seeds']} ({r['seeds']}) | "
                     f"{r['train_seconds_mean']:.0f} |")
    # Paired view: SPT gain over scratch for the same model, init and data.
    pairs = []
    by = {}
    for r in rows:
        by.setdefault((r["model"], r["init"], r["fraction"], r["train_images"]), {}).setdefault(r["mode"], []).append(r)
    for (model, init, frac, n), modes in by.items():
        for s in modes.get("scratch", []):
            for t in modes.get("spt", []):
                if s["status"] == "ok" and t["status"] == "ok":
                    gain = t["test_acc_mean"] - s["test_acc_mean"]
                    rel = 100.0 * gain / s["test_acc_mean"] if s["test_acc_mean"] > 0 else float("nan")
                    pairs.append(f"| {model} | {init} | {n} | {s['finetune_epochs']} | {t['pretrain_epochs']}+"
                                 f"{t['finetune_epochs']} | {pm(s['test_acc_mean'], s['test_acc_std'])} | "
                                 f"{pm(t['test_acc_mean'], t['test_acc_std'])} | {gain:+.2f} | {rel:+.1f}% |")
    if pairs:
        lines += ["", "SPT -> fine-tune vs scratch (absolute and relative gain of the mean):", "",
                  "| model | init | train images | scratch epochs | SPT+FT epochs | scratch | SPT -> FT | gain | "
                  "relative |", "|---|---|---|---|---|---|---|---|---|"] + pairs
    (d / "summary.md").write_text("\n".join(lines) + "\n")
    plot(rows, preset, d / "summary.png")
    return d / "summary.md"


def plot(rows, preset, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no PNG (apt-get install python3-matplotlib)", file=sys.stderr)
        return
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return
    groups = []
    for r in ok:
        g = label(r, preset)
        if g not in groups:
            groups.append(g)
    modes = [m for m in ("scratch", "spt") if any(r["mode"] == m for r in ok)]
    width = 0.8 / max(1, len(modes))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) + 2), 3.6))
    colors = {"scratch": "#8c8c8c", "spt": "#1f77b4"}
    names = {"scratch": "scratch", "spt": "SPT -> fine-tune"}
    present = {g: [m for m in modes if any(r["mode"] == m and label(r, preset) == g for r in ok)] for g in groups}
    for m in modes:
        xs, ys, es = [], [], []
        for j, g in enumerate(groups):
            here = present[g]
            for r in ok:
                if r["mode"] == m and label(r, preset) == g:
                    # Bars of one group sit side by side, centred on the group's tick.
                    xs.append(j + (here.index(m) - (len(here) - 1) / 2) * width)
                    ys.append(r["test_acc_mean"])
                    es.append(0.0 if math.isnan(r["test_acc_std"]) else r["test_acc_std"])
        ax.bar(xs, ys, width, yerr=es, capsize=3, color=colors[m], label=names[m])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{preset} (mean ± std over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def self_test():
    """Checks of the aggregation arithmetic and grid construction (no trainer needed)."""
    cells = [{"model": "s4d", "init": "structured", "mode": m, "fraction": 0.1, "train_images": 10,
              "pretrain_epochs": pe, "finetune_epochs": 2, "spt_share": None, "seed": s, "status": "ok",
              "test_acc": acc, "val_acc": acc, "train_seconds": 1.0}
             for m, pe, s, acc in [("scratch", 0, 1, 0.5), ("scratch", 0, 2, 0.7), ("spt", 1, 1, 0.8),
                                   ("spt", 1, 2, 0.6), ("spt", 1, 3, 0.7)]]
    rows = aggregate(cells)
    assert len(rows) == 2, rows
    sc = [r for r in rows if r["mode"] == "scratch"][0]
    sp = [r for r in rows if r["mode"] == "spt"][0]
    assert abs(sc["test_acc_mean"] - 60.0) < 1e-9 and abs(sc["test_acc_std"] - math.sqrt(200.0)) < 1e-9, sc
    assert sp["n_seeds"] == 3 and abs(sp["test_acc_mean"] - 70.0) < 1e-9 and abs(sp["test_acc_std"] - 10.0) < 1e-9
    ns = argparse.Namespace(smoke=False, models=None, fractions=None, shares=None, seeds=[1, 2], train_subset=100, batch_floor=8,
                            full_train=FULL_TRAIN, pretrain_epochs=1, finetune_epochs=1, budget=5)
    g = build_grid(ns, "compute-matched")
    assert [(r.pre_ep, r.ft_ep) for r in g[:5]] == [(0, 5), (1, 4), (2, 3), (3, 2), (4, 1)], g
    assert list(g[0].cells) == ["scratch"] and list(g[1].cells) == ["spt"]
    g = build_grid(ns, "data-scale")
    assert [r.train_n for r in g[:3]] == [270, 540, 1080] and g[7].train_n == 0
    g = build_grid(ns, "explicit-priors")
    assert len(g) == 8 and {r.init for r in g} == {"structured", "random"}
    print("compare.py self-test: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__ or "experiment runner", formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", action="append", choices=list(PRESETS), help="preset(s) to run (repeatable)")
    ap.add_argument("--trainer", help="path of the spt_vs_scratch executable")
    ap.add_argument("--out", default="compare_out", help="results folder (cells, runs, summaries)")
    ap.add_argument("--data-dir", default="", help="Fashion-MNIST IDX folder passed to the trainer")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--models", nargs="+", help="override the preset's models, e.g. s4d:structured s4:random")
    ap.add_argument("--fractions", type=float, nargs="+", help="override the data fractions (data-scale)")
    ap.add_argument("--shares", type=float, nargs="+", help="override the SPT shares of the budget (compute-matched)")
    ap.add_argument("--full-train", type=int, default=FULL_TRAIN, help="training-set size the fractions refer to")
    ap.add_argument("--batch-floor", type=int, default=32, help="smallest training subset a fraction maps to")
    ap.add_argument("--train-subset", type=int, default=1000, help="training images when the preset has no fractions")
    ap.add_argument("--val-subset", type=int, default=500)
    ap.add_argument("--test-subset", type=int, default=1000)
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--budget", type=int, default=5, help="total epochs (SPT + fine-tuning) for compute-matched")
    ap.add_argument("--trainer-args", default="", help="extra trainer options, e.g. \"--d-model 32 --layers 2\"")
    ap.add_argument("--smoke", action="store_true", help="tiny models, 2 seeds, 1 epoch: every step end to end")
    ap.add_argument("--fresh", action="store_true", help="delete the presets' earlier cells and runs first")
    ap.add_argument("--dry-run", action="store_true", help="print the trainer commands only")
    ap.add_argument("--aggregate-only", action="store_true", help="only rebuild the tables from finished cells")
    ap.add_argument("--self-test", action="store_true", help="check the aggregation and grid code, then exit")
    a = ap.parse_args()
    if a.self_test:
        self_test()
        return 0
    if not a.preset:
        ap.error("give at least one --preset")
    if a.smoke:
        a.seeds = a.seeds[:2] if len(a.seeds) >= 2 else a.seeds
        a.val_subset, a.test_subset, a.train_subset = 4, 4, 4
        a.pretrain_epochs = a.finetune_epochs = 1
        a.budget = 2
        a.batch_floor = 4
        a.fractions = a.fractions or [4 / a.full_train, 1.0]
        a.shares = a.shares if a.shares is not None else [0.0, 0.5]
    flags = set()
    if not a.aggregate_only:
        if not a.trainer or not os.access(a.trainer, os.X_OK):
            ap.error(f"--trainer '{a.trainer}' is not an executable")
        flags = trainer_flags(a.trainer)
        missing = [f for f in ("--seed", "--train-subset", "--models", "--out-dir") if f not in flags]
        if missing:
            ap.error(f"the trainer lacks required options {missing}")
    out = Path(a.out)
    failed = 0
    for preset in a.preset:
        if a.fresh and not a.aggregate_only and (out / preset).exists():
            import shutil
            shutil.rmtree(out / preset)
        runs = build_grid(a, preset)
        if not a.aggregate_only:
            for i, run in enumerate(runs):
                t0 = time.time()
                st = execute(a, flags, preset, run)
                print(f"[{preset} {i + 1}/{len(runs)}] {run.key()}: {st} ({time.time() - t0:.0f}s)", flush=True)
                failed += st == "failed"
        if a.dry_run:
            continue
        cells = [load_cell(cell_path(out, preset, c)) for r in runs for c in r.cells.values()]
        missing = sum(c is None for c in cells)
        rows = aggregate([c for c in cells if c is not None])
        md = write_outputs(out, preset, rows, a)
        print(f"{preset}: {len(cells) - missing}/{len(cells)} cells present -> {md}")
        print(md.read_text())
        if a.smoke:
            # The smoke run must have trained and tabulated something in every preset.
            produced = [out / preset / f for f in ("summary.md", "summary.csv", "summary.png")]
            if missing or not any(r["status"] == "ok" for r in rows) or not all(p.exists() for p in produced):
                print(f"smoke {preset}: FAILED ({missing} cells missing, outputs {[p.exists() for p in produced]})")
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
