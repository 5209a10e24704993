#!/usr/bin/env python3
# The trainers with --device cuda against --device host (ctest label "gpu"): the same tiny runs on both
# devices must give the same validation losses up to float rounding; covers whole device-resident models
# (encoder, SSM blocks with diagonal and generic kernels, BatchNorm post-norm blocks, Transformer blocks,
# heads, AdamW on the GPU), SPT then fine-tuning from the SPT checkpoint, a run saved on the GPU and resumed
# on the host, bf16 and fp16 storage (loosely, against float32) and the refusal of fp16 SSM blocks. Exits 77
# (skipped) when the trainers were built without CUDA or no device is visible.
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

# Saved on the GPU after the first epoch, resumed on the host for the second: the same run as on the host.
i = small.index("--epochs")
two = small[:i] + small[i + 2:] + ["--model", "transformer", "--stage", "scratch", "--epochs", 2,
                                   "--schedule-steps", 8]
res = {}
for name, device, extra in (("ref", "host", []), ("resume", "cuda", ["--max-steps", 4])):  # 64 / 16: one epoch
    res[name] = os.path.join(a.work, f"resume-{name}")
    run(exe["train_lra"], *two, "--device", device, "--out", res[name], *extra)
run(exe["train_lra"], *two, "--device", "host", "--out", res["resume"], "--resume", "--allow-changed",
    "device,max_steps")
with open(os.path.join(res["ref"], "result.json")) as f, open(os.path.join(res["resume"], "result.json")) as g:
    close("listops transformer resumed across devices val loss", json.load(f)["val_loss"], json.load(g)["val_loss"],
          2e-3)

# Narrow storage on the device: bf16 for both families, fp16 for the Transformer, against the host float runs
# above. The tolerance is loose (bf16 keeps 8 significant bits, and two epochs of updates compound them); it
# catches a model that does not learn, a wrong scale or a NaN, not rounding.
for precision, models in (("bf16", "s4d,transformer"), ("fp16", "transformer")):
    out = os.path.join(a.work, "fashion-cuda-" + precision)
    run(exe["spt_vs_scratch"], "--device", "cuda", "--precision", precision, "--data-dir", a.data_dir,
        "--out-dir", out, "--models", models, "--train-subset", 0, "--val-subset", 0, "--test-subset", 0,
        "--pretrain-epochs", 2, "--finetune-epochs", 2, "--d-model", 32, "--layers", 2, "--state", 16,
        "--heads", 2, "--batch", 2, "--warmup", 1, "--log-every", 0, "--save-every", 0)
    with open(os.path.join(out, "results.json")) as f:
        narrow = json.load(f)
    for model in models.split(","):
        for stage in ("scratch", "spt", "finetune"):
            host = results["host"]["models"][model][stage]["val_loss"]
            close(f"fashion {model} {stage} val loss in {precision}", host,
                  narrow["models"][model][stage]["val_loss"], 0.15)

# A bf16 run saved on the GPU resumes on the host in float32 (the checkpoint converts), and fp16 SSM blocks are
# refused by name.
name = os.path.join(a.work, "resume-bf16")
run(exe["train_lra"], *two, "--device", "cuda", "--precision", "bf16", "--out", name, "--max-steps", 4)
run(exe["train_lra"], *two, "--device", "host", "--out", name, "--resume", "--allow-changed",
    "device,precision,max_steps")
with open(os.path.join(res["ref"], "result.json")) as f, open(os.path.join(name, "result.json")) as g:
    close("listops transformer saved in bf16, resumed on the host, val loss", json.load(f)["val_loss"],
          json.load(g)["val_loss"], 0.15)
r = subprocess.run([str(c) for c in [exe["train_lra"], *small, "--model", "s4d", "--stage", "scratch",
                                      "--device", "cuda", "--precision", "fp16",
                                      "--out", os.path.join(a.work, "narrow")]],
                   capture_output=True, text=True)
if r.returncode == 0 or "no fp16 device path" not in r.stdout + r.stderr:
    failures.append("--precision fp16 with --model s4d was not refused by name")

if failures:
    sys.exit("device and host differ: " + "; ".join(failures))
print("host and cuda agree")
