#!/usr/bin/env bash
# Builds the benchmarks, runs them and the PyTorch peer with the same thread count, and prints a Markdown
# table of times and ratios (longseq time / torch time; below 1 means longseq is faster).
#   bench/run.sh [build-dir]      environment: THREADS (default 2), FILTER (substring of names),
#                                 MIN_TIME (PyTorch, seconds per shape), REPS (longseq repetitions, default 3)
# Both sides report a median: of REPS repetitions (each a mean over >= 0.5 s of calls) for longseq, of the
# single calls for PyTorch.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="${1:-$root/build-bench}"
threads="${THREADS:-2}"
filter="${FILTER:-}"
min_time="${MIN_TIME:-0.5}"
reps="${REPS:-3}"
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"

if [[ -f "$build/CMakeCache.txt" ]]; then  # an existing build keeps its settings; only the benchmarks are added
  cmake -S "$root" -B "$build" -DLONGSEQ_BUILD_BENCH=ON >/dev/null
else
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSEQ_BUILD_BENCH=ON \
    -DLONGSEQ_BUILD_TESTS=OFF -DLONGSEQ_BUILD_EXAMPLES=OFF >/dev/null
fi
targets=(bench_gemm bench_fft_conv)
if [[ -f "$build/build.ninja" ]] && grep -q "bench_cuda" "$build/build.ninja"; then targets+=(bench_cuda); fi
cmake --build "$build" --target "${targets[@]}" -j"$threads" >/dev/null

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for b in "${targets[@]}"; do
  "$build/bench/$b" --benchmark_filter="${filter:-.}" --benchmark_repetitions="$reps" \
    --benchmark_report_aggregates_only=true --benchmark_out="$out/$b.json" --benchmark_out_format=json >/dev/null
done
if ! python3 -c "import torch" 2>/dev/null; then
  echo "PyTorch is not importable: pip install torch (PyPI) or apt-get install python3-torch (Debian)" >&2
  exit 1
fi
python3 "$here/peer_torch.py" --threads "$threads" --min-time "$min_time" --filter "$filter" >"$out/torch.json"

python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
ours, cuda = {}, {}
for path in glob.glob(os.path.join(out, "bench_*.json")):
    try:
        data = json.load(open(path))
    except ValueError:
        continue  # bench_cuda without a device writes nothing
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].split("/min_time")[0].split("/real_time")[0].split("/manual_time")[0]
        secs = b["real_time"] * scale[b["time_unit"]]
        (cuda if name.startswith("cuda_") else ours)[name.removeprefix("cuda_")] = secs
peer = json.load(open(os.path.join(out, "torch.json")))
print(f"PyTorch {peer['torch']} ({peer.get('source', '?')}) on the CPU, {peer['threads']} threads\n")
header = "| op | longseq host (ms) | torch CPU (ms) | longseq / torch |"
if cuda:
    header += " longseq CUDA (ms) |"
print(header)
print("|" + "---|" * (header.count("|") - 1))
for name in sorted(set(ours) | set(peer["results"])):
    a, t = ours.get(name), peer["results"].get(name)
    ratio = f"{a / t:.2f}" if a and t else "-"
    row = f"| {name} | {a * 1e3:.2f} |" if a else f"| {name} | - |"
    row += f" {t * 1e3:.2f} | {ratio} |" if t else f" - | {ratio} |"
    if cuda:
        c = cuda.get(name)
        row += f" {c * 1e3:.3f} |" if c else " - |"
    print(row)
PY
