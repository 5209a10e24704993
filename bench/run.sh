#!/usr/bin/env bash
# Times longseq against PyTorch on the CPU in one run and prints one Markdown table: the ops (GEMM, FFT
# convolution), the SSM layers (S4D, S4), the Transformer encoder layer and one whole training step of the
# main job's S4D and Transformer classifiers, each next to its PyTorch peer with the same thread count.
# Rounds are interleaved (round r runs every longseq group and its peer before round r + 1 starts), so a
# change in the machine's load touches both sides alike; the table gives medians over the rounds.
#
#   bench/run.sh [build-dir]                 (default build-bench; configured Release with LONGSEQ_NATIVE)
# Environment:
#   THREADS        threads on both sides (default 2): OMP_NUM_THREADS for longseq, torch.set_num_threads
#   ROUNDS         interleaved rounds (default 3)
#   BENCH_GROUPS   which groups, space-separated (default "ops ssm encoder train")
#   FILTER         substring of the benchmark names to run
#   MIN_TIME       PyTorch: seconds of calls per shape after the warm-up (default 0.5)
#   S4_REFERENCE   checkout of state-spaces/s4 for the reference S4/S4D layers; without it the ssm
#                  group times longseq only
#   LONGSEQ_BENCH_PYTHON   Python with torch, einops, scipy (default: the virtual environment made by
#                  scripts/install-deps.sh --bench)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="${1:-$root/build-bench}"
threads="${THREADS:-2}"
rounds="${ROUNDS:-3}"
groups="${BENCH_GROUPS:-ops ssm encoder train}"
filter="${FILTER:-}"
min_time="${MIN_TIME:-0.5}"
py="${LONGSEQ_BENCH_PYTHON:-${LONGSEQ_BENCH_VENV:-$HOME/.local/share/longseq/bench-venv}/bin/python}"
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "no PyTorch in '$py': run scripts/install-deps.sh --bench, or set LONGSEQ_BENCH_PYTHON" >&2
  exit 1
fi
# OpenBLAS runs single-threaded inside longseq's OpenMP loops (as the trainers run it).
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS="$threads"

if [[ -f "$build/CMakeCache.txt" ]]; then  # an existing build keeps its settings; only the benchmarks are added
  cmake -S "$root" -B "$build" -DLONGSEQ_BUILD_BENCH=ON >/dev/null
else
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSEQ_BUILD_BENCH=ON -DLONGSEQ_NATIVE=ON \
    -DLONGSEQ_BUILD_TESTS=OFF -DLONGSEQ_BUILD_EXAMPLES=OFF >/dev/null
fi
declare -A ours=([ops]="bench_gemm bench_fft_conv" [ssm]="bench_ssm" [encoder]="bench_attention" [train]="bench_train")
# A CUDA build also times the cuBLAS/cuFFT ops (rows cuda_*, without a PyTorch column; nothing without a device).
if [[ -f "$build/build.ninja" ]] && grep -q "bench_cuda" "$build/build.ninja"; then ours[ops]+=" bench_cuda"; fi
targets=()
for g in $groups; do targets+=(${ours[$g]}); done
cmake --build "$build" --target "${targets[@]}" -j"$threads" >/dev/null

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
peer() {  # peer GROUP: the PyTorch side of one group, JSON on stdout
  local common=(--threads "$threads" --min-time "$min_time" --filter "$filter")
  case "$1" in
    ops) "$py" "$here/peer_torch.py" "${common[@]}" ;;
    ssm) if [[ -n "${S4_REFERENCE:-}" ]]; then
           "$py" "$here/peers/ssm_torch.py" --reference "$S4_REFERENCE" "${common[@]}"
         else echo '{"results": {}}'; fi ;;
    encoder) "$py" "$here/peers/attention_torch.py" "${common[@]}" ;;
    train) "$py" "$here/peers/train_torch.py" "${common[@]}" ;;
  esac
}
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= rounds; ++r)); do
  for g in $groups; do
    for b in ${ours[$g]}; do
      "$build/bench/$b" --benchmark_filter="${filter:-.}" --benchmark_out="$out/$r.$b.json" \
        --benchmark_out_format=json >/dev/null || [[ "$b" == bench_cuda ]]
    done
    peer "$g" 2>/dev/null >"$out/$r.torch.$g.json"
  done
  echo "round $r of $rounds done (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
done
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
flags="$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx|avx2|fma|avx512f|avx512bw|avx512vl|avx512_bf16|avx512_fp16|amx_tile' | tr '\n' ' ')"
cxx_flags="$(sed -n 's/^CMAKE_CXX_FLAGS:STRING=//p' "$build/CMakeCache.txt")"
native="$(sed -n 's/^LONGSEQ_NATIVE:BOOL=//p' "$build/CMakeCache.txt")"
btype="$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit; CPU: $cpu, $(nproc) CPUs; vector extensions: $flags"
echo "longseq: $btype, LONGSEQ_NATIVE=$native, CMAKE_CXX_FLAGS='$cxx_flags', OMP_NUM_THREADS=$threads;" \
  "PyTorch $("$py" -c 'import torch; print(torch.__version__)'), $threads threads; $rounds interleaved rounds;" \
  "load average $load_start at the start, $load_end at the end"
echo
"$py" "$here/ratio_table.py" "$out" "$rounds"
