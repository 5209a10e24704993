#!/usr/bin/env python3
"""The ratio table of a benchmark run: longseq's Google Benchmark JSON files (<out>/<round>.bench_*.json) next
to the PyTorch peers' (<out>/<round>.torch.*.json), by benchmark name; per name the medians over the rounds
and the median of the per-round throughput ratios (PyTorch time / longseq time: above 1, longseq is faster).
Used by bench/run.sh (CPU) and scripts/gpu_check.sh (GPU). Usage: ratio_table.py OUT ROUNDS"""
import glob, json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
ours, torch = {}, {}  # name -> [seconds per round]
for r in range(1, rounds + 1):
    for path in glob.glob(os.path.join(out, f"{r}.bench_*.json")):
        try:
            data = json.load(open(path))
        except ValueError:
            continue
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate":
                continue
            name = b["run_name"].split("/min_time")[0].split("/real_time")[0].split("/manual_time")[0]
            ours.setdefault(name, {})[r] = b["real_time"] * scale[b["time_unit"]]
    for path in glob.glob(os.path.join(out, f"{r}.torch.*.json")):
        try:
            data = json.load(open(path))
        except ValueError:
            continue
        for name, secs in data.get("results", {}).items():
            torch.setdefault(name, {})[r] = secs
print("| benchmark | longseq ms (median) | PyTorch ms (median) | throughput vs PyTorch (median) | per round |")
print("|---|---|---|---|---|")
for name in sorted(set(ours) | set(torch)):
    a, t = ours.get(name, {}), torch.get(name, {})
    ma = f"{statistics.median(a.values()) * 1e3:.1f}" if a else "-"
    mt = f"{statistics.median(t.values()) * 1e3:.1f}" if t else "-"
    per = [t[r] / a[r] for r in sorted(a) if r in t]
    ratio = f"{statistics.median(per):.2f}x" if per else "-"
    rounds_txt = " ".join(f"{x:.2f}" for x in per) if per else "-"
    print(f"| {name} | {ma} | {mt} | {ratio} | {rounds_txt} |")
