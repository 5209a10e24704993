#!/usr/bin/env python3
# The trainers with --device cuda against --device host (ctest label "gpu"): the same tiny runs on both
# devices must give the same validation losses up to float rounding; covers the SSM (diagonal and generic
# kernels, BatchNorm post-norm blocks) and Transformer stacks inside nn::Offload, SPT then fine-tuning from
# the SPT checkpoint, and a bf16 / fp16 (loss-scaled) Transformer. Exits 77 (skipped) when the trainers were
# built without CUDA or no device is visible.
import argparse
import json
import os
import subprocess
import sys

p = argparse.ArgumentParser()
p.add_argument("--bin", required=True)
p.add_argument("--data-dir", required=True, help="Fashion-MNIST IDX files")
p.add_argument("--work", required=True)
a = p.parse_args()
os.makedirs(a.work, exist_ok=True)
exe = {n: os.path.join(a.bin, n) for n in ("spt_vs_scratch", "train_lra", "lra_data")}
if not all(os.access(e, os.X_OK) for e in exe.values()):
    print("skipped: the trainers were not built")
    sys.exit(77)


def run(*cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        if "built without CUDA" in out or "no CUDA device is visible" in out:
            print("skipped:", out.strip().splitlines()[-1])
            sys.exit(77)
        print(out)
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}")
    return out


failures = []


def close(what, host, dev, rel):
    err = abs(host - dev) / max(abs(host), 1e-6)
    print(f"{what}: host {host:.6f} cuda {dev:.6f} (relative difference {err:.2e}, allowed {rel:g})")
    if not err <= rel:
        failures.append(what)


# Sequential Fashion-MNIST, S4D and Transformer, scratch and SPT + fine-tuning.
results = {}
for device in ("cuda", "host"):  # cuda first: a build or machine without it skips at once
    out = os.path.join(a.work, "fashion-" + device)
    run(exe["spt_vs_scratch"], "--device", device, "--data-dir", a.data_dir, "--out-dir", out,
        "--models", "s4d,transformer", "--train-subset", 0, "--val-subset", 0, "--test-subset", 0,
        "--pretrain-epochs", 2, "--finetune-epochs", 2, "--d-model", 32, "--layers", 2, "--state", 16,
        "--heads", 2, "--batch", 2, "--warmup", 1, "--log-every", 0, "--save-every", 0)
    with open(os.path.join(out, "results.json")) as f:
        results[device] = json.load(f)
for model in ("s4d", "transformer"):
    for stage in ("scratch", "spt", "finetune"):
        h, d = results["host"]["models"][model][stage], results["cuda"]["models"][model][stage]
        close(f"fashion {model} {stage} val loss", h["val_loss"], d["val_loss"], 2e-3)

# Generated ListOps through train_lra: BatchNorm post-norm S4D (diagonal kernel) and S4 (generic kernel).
listops = os.path.join(a.work, "listops")
run(exe["lra_data"], "generate", "--task", "listops", "--out", listops, "--n", 64, "--n-val", 32, "--n-test", 32,
    "--min-length", 16, "--max-length", 48, "--max-depth", 3, "--seed", 5)
small = ["--task", "listops", "--data", listops, "--d-model", 16, "--layers", 2, "--state", 8, "--heads", 2,
         "--batch", 16, "--epochs", 1, "--log-every", 0, "--warmup", 1]


def lra(device, name, *extra):
    out = os.path.join(a.work, f"{name}-{device}")
    run(exe["train_lra"], *small, "--device", device, "--out", out, *extra)
    with open(os.path.join(out, "result.json")) as f:
        return json.load(f)


for model in ("s4d", "s4"):
    res = {}
    for device in ("cuda", "host"):
        common = ["--model", model, "--norm", "batch", "--residual", "post"]
        lra(device, f"{model}-spt", *common, "--stage", "pretrain")
        ckpt = os.path.join(a.work, f"{model}-spt-{device}", "best.safetensors")
        res[device] = lra(device, f"{model}-ft", *common, "--stage", "finetune", "--pretrained", ckpt)
    close(f"listops {model} (BatchNorm, post-norm) fine-tuning val loss", res["host"]["val_loss"],
          res["cuda"]["val_loss"], 2e-3)

# Narrow storage on the device: the float master weights on the host keep the run close to the fp32 one.
ref = lra("host", "transformer-fp32", "--model", "transformer", "--stage", "scratch")
for precision, extra in (("bf16", []), ("fp16", ["--loss-scale", "1024"])):
    got = lra("cuda", f"transformer-{precision}", "--model", "transformer", "--stage", "scratch",
              "--precision", precision, *extra)
    close(f"listops transformer {precision} val loss", ref["val_loss"], got["val_loss"], 5e-2)

if failures:
    sys.exit("device and host differ: " + "; ".join(failures))
print("host and cuda agree")
