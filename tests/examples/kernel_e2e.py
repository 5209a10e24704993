#!/usr/bin/env python3
# End-to-end test of the kernel analysis: a tiny real training run of spt_vs_scratch (S4D, 2 layers, a few
# updates on the Fashion-MNIST fixture) writes a checkpoint; kernel_analysis rebuilds its kernels and
# plot_kernels.py draws them. Checks the CSVs against the model's sizes. Exits 77 when a tool is not built.
import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path


def run(cmd):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    trainer, analysis = Path(a.bin) / "spt_vs_scratch", Path(a.bin) / "kernel_analysis"
    for exe in (trainer, analysis):
        if not os.access(exe, os.X_OK):
            print(f"skipped: {exe} is not built")
            return 77
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("skipped: matplotlib missing")
        return 77
    work = Path(a.work)
    H, N, layers = 8, 6, 2
    run([trainer, "--models", "s4d", "--data-dir", a.data_dir, "--out-dir", work / "train", "--train-subset", 0,
         "--val-subset", 0, "--test-subset", 0, "--d-model", H, "--layers", layers, "--state", N, "--batch", 2,
         "--pretrain-epochs", 2, "--finetune-epochs", 1, "--log-every", 1000])
    ckpt = work / "train" / "s4d" / "spt" / "best.safetensors"
    out = work / "analysis"
    run([analysis, "--checkpoint", ckpt, "--length", 784, "--out-dir", out, "--dump-kernels"])
    rows = list(csv.DictReader(open(out / "layers.csv")))
    assert [int(r["layer"]) for r in rows] == list(range(layers)), rows
    for r in rows:
        assert (r["kind"], int(r["H"]), int(r["N"]), int(r["channels"])) == ("s4d", H, N, 2), r
        assert 1 <= int(r["decay_trained"]) <= 784 and 1 <= int(r["decay_hippo"]) <= 784, r
    kmax = list(csv.DictReader(open(out / "kmax.csv")))
    assert len(kmax) == layers * 2 * 784, len(kmax)
    assert all(float(k["kmax"]) >= max(float(k["kmax_dir0"]), float(k["kmax_dir1"])) - 1e-12 for k in kmax)
    assert (out / "kernels.safetensors").stat().st_size > layers * 2 * 2 * H * 784 * 8
    png = out / "kmax.png"
    if png.exists():
        png.unlink()
    run([sys.executable, Path(a.src) / "scripts" / "plot_kernels.py", "--in", out, "--out", png])
    assert png.exists() and png.stat().st_size > 1000
    # A checkpoint without kernels is an error that names the file.
    bad = subprocess.run([str(analysis), "--checkpoint", str(work / "train" / "metrics.jsonl"), "--length", "8"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "metrics.jsonl" in bad.stderr, bad.stderr
    print("kernel analysis end to end: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
