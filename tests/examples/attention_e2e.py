#!/usr/bin/env python3
# End-to-end test of the attention analysis: a tiny real training run of spt_vs_scratch (Transformer, 2 layers,
# 2 heads, one epoch of each stage on the Fashion-MNIST fixture) writes scratch, SPT and fine-tuned checkpoints;
# attention_analysis rebuilds each and measures its attention on a few test images; plot_attention.py draws and
# tabulates them. Checks the outputs' structure and value ranges, and the refusals (no attention layers, bad
# options). A classifier trained with learned positions is rebuilt with its table. When lra_data and train_lra
# are built, the token path runs too (a generated ListOps set, padded batches; learned positions and inputs
# longer than their table). Exits 77 when a tool is not built.
import argparse
import csv
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

L = 784
LAYERS, HEADS, WIDTH = 2, 2, 8
WINDOWS = [0, 1, 8, 64]


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def refused(cmd, *needles):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"not refused: {cmd}\n{out}"
    for n in needles:
        assert n in out, f"'{n}' missing from the message of {cmd}:\n{out}"


def check_result(out, label, layers, heads, windows, longest=None):
    """Structure and value ranges of one attention_analysis output folder; returns the JSON."""
    res = json.load(open(out / "attention.json"))
    assert res["label"] == label and res["windows"] == windows, res
    assert res["model"]["layers"] == layers and res["model"]["heads"] == heads, res["model"]
    n = res["longest"]
    if longest is not None:
        assert n == longest, (n, longest)
    assert 0 < res["uniform_distance"] < n, res["uniform_distance"]
    assert [l["layer"] for l in res["layers"]] == list(range(layers))
    rows = list(csv.DictReader(open(out / "heads.csv")))
    assert len(rows) == layers * heads, len(rows)
    for r in rows:
        assert r["label"] == label
        d = float(r["mean_distance"])
        assert 0 <= d <= n - 1, r
        shares = [float(r[f"within_{w}"]) for w in windows]
        assert all(-1e-9 <= s <= 1 + 1e-9 for s in shares), r
        # Wider windows hold at least as much mass.
        assert all(a <= b + 1e-12 for a, b in zip(shares, shares[1:])), r
        # Mass beyond distance w costs at least w + 1 each: a lower bound on the distance.
        for w, s in zip(windows, shares):
            assert d >= (w + 1) * (1 - s) - 1e-6, (w, s, d)
        p = float(r["padding_share"])
        assert 0 <= p <= 1, r
        js = res["layers"][int(r["layer"])]["heads"][int(r["head"])]
        assert abs(js["mean_distance"] - d) <= 1e-4 * max(1.0, d), (js, r)
    for lay in res["layers"]:
        mean = sum(h["mean_distance"] for h in lay["heads"]) / heads
        assert abs(lay["mean_distance"] - mean) <= 1e-9 * max(1.0, mean)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    bin_dir = Path(a.bin)
    trainer, analysis = bin_dir / "spt_vs_scratch", bin_dir / "attention_analysis"
    for exe in (trainer, analysis):
        if not os.access(exe, os.X_OK):
            print(f"skipped: {exe} is not built")
            return 77
    work = Path(a.work)
    plot = Path(a.src) / "scripts" / "plot_attention.py"

    run([trainer, "--models", "transformer", "--data-dir", a.data_dir, "--out-dir", work / "train", "--train-subset", 0,
         "--val-subset", 0, "--test-subset", 0, "--d-model", WIDTH, "--layers", LAYERS, "--heads", HEADS,
         "--batch", 2, "--pretrain-epochs", 1, "--finetune-epochs", 1, "--log-every", 1000])
    ckpt = {s: work / "train" / "transformer" / s / "best.safetensors" for s in ("scratch", "spt", "finetune")}
    windows = ",".join(str(w) for w in WINDOWS)
    results = {}
    for stage, path in ckpt.items():
        out = work / f"attention_{stage}"
        p = run([analysis, "--checkpoint", path, "--data", a.data_dir, "--samples", 3, "--batch", 2,
                 "--windows", windows, "--label", stage, "--out-dir", out], capture_output=True, text=True)
        print(p.stdout)
        assert "| layer | head | distance |" in p.stdout, p.stdout
        results[stage] = check_result(out, stage, LAYERS, HEADS, WINDOWS, longest=L)
        assert results[stage]["inputs"] == 3
        assert abs(results[stage]["uniform_distance"] - (L * L - 1) / (3 * L)) < 1e-9
        for lay in results[stage]["layers"]:
            for h in lay["heads"]:
                assert h["padding_share"] == 0.0  # images have no padding
    assert results["spt"]["model"]["mask_channel"] and not results["scratch"]["model"]["mask_channel"]
    # Fine-tuning moved the weights (a little), so its attention differs from the SPT checkpoint's.
    assert results["spt"]["layers"] != results["finetune"]["layers"]
    # The SPT model on masked inputs (its training distribution), and with --heads matching the config.
    run([analysis, "--checkpoint", ckpt["spt"], "--data", a.data_dir, "--samples", 2, "--mask-p", 0.5,
         "--heads", HEADS, "--windows", windows, "--label", "spt-masked", "--out-dir", work / "attention_spt_masked"])
    masked = check_result(work / "attention_spt_masked", "spt-masked", LAYERS, HEADS, WINDOWS, longest=L)
    assert masked["mask_p"] == 0.5 and masked["layers"] != results["spt"]["layers"]

    # Refusals: a checkpoint without attention layers, a classifier asked for masked inputs, out-of-range
    # options, a head count that contradicts the stored configuration.
    plain = work / "no_attention.safetensors"
    header = json.dumps({"model.encoder.linear.weight": {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]}})
    header += " " * (-len(header) % 8)
    plain.write_bytes(struct.pack("<Q", len(header)) + header.encode() + struct.pack("<2f", 0.5, -0.5))
    refused([analysis, "--checkpoint", plain, "--data", a.data_dir], "no_attention.safetensors",
            "holds no attention layers")
    refused([analysis, "--checkpoint", ckpt["scratch"], "--data", a.data_dir, "--mask-p", 0.5], "no mask-indicator")
    refused([analysis, "--checkpoint", ckpt["scratch"], "--data", a.data_dir, "--samples", -1], "--samples")
    refused([analysis, "--checkpoint", ckpt["scratch"], "--data", a.data_dir, "--windows", "4,-2"], "--windows")
    refused([analysis, "--checkpoint", ckpt["scratch"], "--data", a.data_dir, "--mask-p", 1.5], "--mask-p")
    refused([analysis, "--checkpoint", ckpt["scratch"], "--data", a.data_dir, "--batch", 0], "--batch")
    refused([analysis, "--checkpoint", ckpt["scratch"], "--data", a.data_dir, "--heads", 4], "--heads 4",
            "heads = 2")
    refused([analysis, "--checkpoint", ckpt["scratch"], "--data", a.data_dir, "--task", "listops"], "--task listops")

    # Learned positions: the table (as long as the images) comes back from the checkpoint.
    run([trainer, "--models", "transformer", "--data-dir", a.data_dir, "--out-dir", work / "learned", "--mode",
         "scratch", "--position", "learned", "--train-subset", 8, "--val-subset", 4, "--test-subset", 4,
         "--d-model", WIDTH, "--layers", 1, "--heads", HEADS, "--batch", 4, "--finetune-epochs", 1,
         "--log-every", 1000])
    learned_ckpt = work / "learned" / "transformer" / "scratch" / "best.safetensors"
    run([analysis, "--checkpoint", learned_ckpt, "--data", a.data_dir, "--samples", 2, "--windows", windows,
         "--label", "learned", "--out-dir", work / "attention_learned"])
    learned = check_result(work / "attention_learned", "learned", 1, HEADS, WINDOWS, longest=L)
    assert learned["model"]["position"] == "learned" and learned["model"]["learned_positions"] == L, learned["model"]
    assert results["scratch"]["model"]["position"] == "sinusoidal" and results["scratch"]["model"]["learned_positions"] == 0

    # The plot and the comparison table of the three checkpoints.
    png, cmp_png, table = work / "attention.png", work / "attention_compare.png", work / "attention.md"
    for f in (png, cmp_png, table):
        if f.exists():
            f.unlink()
    p = run([sys.executable, plot, "--in", f"scratch={work / 'attention_scratch'}",
             "--in", f"spt={work / 'attention_spt' / 'attention.json'}", "--in", str(work / "attention_finetune"),
             "--out", png, "--compare-out", cmp_png, "--window", 8, "--table", table],
            capture_output=True, text=True)
    print(p.stdout, p.stderr)
    lines = table.read_text().splitlines()
    assert len(lines) == 2 + 3 * LAYERS, lines
    assert [l.split("|")[1].strip() for l in lines[2:]] == ["scratch"] * 2 + ["spt"] * 2 + ["finetune"] * 2, lines
    try:
        import matplotlib  # noqa: F401
        assert png.stat().st_size > 1000 and cmp_png.stat().st_size > 1000
    except ImportError:
        assert "matplotlib is missing" in p.stderr, p.stderr
    bad = subprocess.run([sys.executable, str(plot), "--in", str(work / "nowhere"), "--out", str(png)],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "nowhere" in bad.stderr, bad.stderr

    # The token path: a generated ListOps set (sequences of different lengths, so padded batches) and a
    # tiny Transformer self-pretrained by train_lra.
    lra_data, train_lra = bin_dir / "lra_data", bin_dir / "train_lra"
    if os.access(lra_data, os.X_OK) and os.access(train_lra, os.X_OK):
        lo = work / "listops"
        run([lra_data, "generate", "--task", "listops", "--out", lo, "--n", 24, "--n-val", 8, "--n-test", 8,
             "--min-length", 16, "--max-length", 48, "--max-depth", 3, "--seed", 3])
        run([train_lra, "--task", "listops", "--data", lo, "--model", "transformer", "--stage", "pretrain",
             "--d-model", 8, "--layers", 1, "--heads", 2, "--batch", 4, "--max-steps", 2, "--log-every", 1,
             "--warmup", 1, "--out", work / "listops-spt"])
        for extra, name in (([], "listops"), (["--key-padding"], "listops-kp")):
            out = work / f"attention_{name}"
            run([analysis, "--checkpoint", work / "listops-spt" / "best.safetensors", "--task", "listops", "--data", lo,
                 "--samples", 8, "--batch", 4, "--windows", "1,4", "--label", name, "--out-dir", out] + extra)
            res = check_result(out, name, 1, 2, [1, 4])
            assert res["model"]["encoder"] == "tokens" and res["inputs"] == 8
            assert 0 < res["mean_length"] < res["longest"], res
            pad = [h["padding_share"] for h in res["layers"][0]["heads"]]
            # Without key padding the trained layer spreads some mass over the padding of shorter inputs.
            assert all(p == 0.0 for p in pad) if extra else all(p > 0.0 for p in pad), pad
        refused([analysis, "--checkpoint", work / "listops-spt" / "best.safetensors", "--data", a.data_dir],
                "--task fashion-mnist", "token embedding")
        # Learned positions on tokens: the table is --l-max long (the task's longest otherwise); a set of longer
        # sequences is refused with the checkpoint, the table length and the input length named.
        run([train_lra, "--task", "listops", "--data", lo, "--model", "transformer", "--stage", "pretrain",
             "--position", "learned", "--l-max", 48, "--d-model", 8, "--layers", 1, "--heads", 2, "--batch", 4, "--max-steps", 2,
             "--log-every", 1, "--warmup", 1, "--out", work / "listops-learned"])
        learned_lo = work / "listops-learned" / "best.safetensors"
        out = work / "attention_listops_learned"
        run([analysis, "--checkpoint", learned_lo, "--task", "listops", "--data", lo, "--samples", 8, "--batch", 4,
             "--windows", "1,4", "--label", "listops-learned", "--out-dir", out])
        res = check_result(out, "listops-learned", 1, 2, [1, 4])
        table = res["model"]["learned_positions"]
        assert res["model"]["position"] == "learned" and table == 48 and res["longest"] <= table, res["model"]
        lo_long = work / "listops-long"
        run([lra_data, "generate", "--task", "listops", "--out", lo_long, "--n", 8, "--n-val", 4, "--n-test", 4,
             "--min-length", 2 * table, "--max-length", 3 * table, "--max-depth", 6, "--seed", 4])
        refused([analysis, "--checkpoint", learned_lo, "--task", "listops", "--data", lo_long, "--samples", 4],
                "listops-learned", f"({table} positions)", "has length", "longer than the learned position table")
    else:
        print("ListOps part skipped: lra_data or train_lra is not built")
    print("attention analysis end to end: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
