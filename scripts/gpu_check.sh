#!/usr/bin/env bash
# One prepared check of the device path, sized for a short GPU window (about 8 minutes on an H100):
#   1. build for the device's architecture (nvidia-smi --query-gpu=compute_cap) in $BUILD (build-gpu);
#   2. ctest -L gpu, with the core and ops suites run under compute-sanitizer --tool memcheck;
#   3. examples_device_parity (both trainers, --device cuda against --device host);
#   4. bench_cuda (short: ops, encoder layer, S4D and S4 blocks, the main job's training step; fp32 and bf16),
#      the PyTorch peers on the GPU when torch sees one (attention_torch, train_torch; ssm_torch with
#      S4_REFERENCE), and their ratio table (bench/ratio_table.py) in the report;
#   5. a short device main job (DEVICE=cuda, tiny sizes).
# Writes $OUT (results/gpu_check)/report.md: device, driver, date, and each step's result and time; logs
# beside it. Without a device it stops at once with a clear message and exit code 2.
# Environment: BUILD, OUT, JOBS (default nproc), STEP_TIMEOUT (seconds per step, default 300; the build
# BUILD_TIMEOUT, default 480),
# SKIP_MAIN=1 / SKIP_BENCH=1 to leave a step out, DRY_RUN=1 to print the plan without running anything.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/python.sh || exit 1
export PATH="$PATH:/usr/local/cuda/bin"  # nvcc and compute-sanitizer where the toolkit installs them
build=${BUILD:-build-gpu}
out=${OUT:-results/gpu_check}
jobs=${JOBS:-$(nproc)}
step_timeout=${STEP_TIMEOUT:-300}
report=$out/report.md

fail_setup() {
  echo "gpu_check: $*" >&2
  exit 2
}

# A device is needed for every step: find it before building anything (nvidia-smi answers in seconds or
# is killed, so a wedged driver does not hang the check).
if [[ -n "${DRY_RUN:-}" ]] && ! command -v nvidia-smi >/dev/null 2>&1; then
  gpu_info="dry run without a device, -, 9.0, -"  # prints the plan with the H100's architecture
else
  command -v nvidia-smi >/dev/null 2>&1 || fail_setup "nvidia-smi not found: no NVIDIA driver on this machine"
  gpu_info=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader 2>&1) ||
    fail_setup "nvidia-smi found no usable device: $gpu_info"
fi
[[ -n "$gpu_info" ]] || fail_setup "nvidia-smi lists no device"
IFS=',' read -r gpu_name driver cap mem <<<"$(head -n1 <<<"$gpu_info")"
cap=$(tr -d ' .' <<<"$cap")
[[ "$cap" =~ ^[0-9]+$ ]] || fail_setup "cannot read the compute capability from nvidia-smi ('$gpu_info')"
command -v nvcc >/dev/null 2>&1 || fail_setup "nvcc not found: install the CUDA toolkit"

mkdir -p "$out"
{
  echo "# GPU check"
  echo
  echo "- device: $gpu_name (compute capability $cap, $(xargs <<<"$mem"))"
  echo "- driver: $(xargs <<<"$driver")"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- command: scripts/gpu_check.sh (build $build, architecture $cap)"
  echo
  echo "| step | result | seconds | log |"
  echo "|---|---|---|---|"
} >"$report"

failed=0
# step NAME COMMAND...: runs it with a time limit, logs to $out/NAME.log and adds a row to the report.
step() {
  local name=$1 t0=$SECONDS rc result
  shift
  echo "gpu_check: $name ..." >&2
  local limit=$step_timeout
  [[ $name == build ]] && limit=${BUILD_TIMEOUT:-480}
  if [[ -n "${DRY_RUN:-}" ]]; then
    echo "  would run: $*" >&2
    rc=200
  else
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
  fi
  case $rc in
    200) result="dry run"; rc=0 ;;
    0) result=passed ;;
    124 | 137) result="TIMED OUT after ${limit} s"; failed=1 ;;
    77) result=skipped ;;
    *) result="FAILED (exit $rc)"; failed=1 ;;
  esac
  echo "| $name | $result | $((SECONDS - t0)) | $name.log |" >>"$report"
  echo "gpu_check: $name: $result ($((SECONDS - t0)) s)" >&2
  return $rc
}
note() { echo "| $1 | skipped: $2 | 0 | |" >>"$report"; }

build_step() {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSEQ_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$cap" \
    -DLONGSEQ_BUILD_TESTS=ON -DLONGSEQ_BUILD_EXAMPLES=ON -DLONGSEQ_BUILD_BENCH="${bench_on:-OFF}" \
    -DLONGSEQ_PYTHON="$LONGSEQ_PYTHON" &&
    cmake --build "$build" -j "$jobs" --target $(gpu_targets)
}
gpu_targets() {  # only what the steps run: the CUDA test suites, the trainers and the CUDA benchmark
  local t
  t=$(cmake --build "$build" --target help 2>/dev/null | grep -oE '^test_[a-z]+_cuda' | sort -u | xargs)
  echo "$t spt_vs_scratch train_lra lra_data"
  [[ "${bench_on:-OFF}" == ON ]] && echo bench_cuda
}
memcheck_step() {  # the core, ops and train suites under memcheck (out-of-bounds and misaligned accesses)
  local t rc=0
  for t in test_core_cuda test_ops_cuda test_train_cuda; do
    [[ -x "$build/tests/$t" ]] || continue
    echo "== $t" && compute-sanitizer --tool memcheck --error-exitcode 1 "$build/tests/$t" || rc=1
  done
  return $rc
}
# The PyTorch peers of bench_cuda's layer and training-step rows, fp32 and bf16, as JSON beside bench_cuda's
# (the ssm peer needs S4_REFERENCE, a checkout of state-spaces/s4); then the ratio table (bench/ratio_table.py).
peers_step() {
  local rc=0 s dtype
  local scripts=(bench/peers/attention_torch.py bench/peers/train_torch.py)
  for dtype in fp32 bf16; do
    for s in "${scripts[@]}"; do
      echo "== $s --dtype $dtype"
      "$LONGSEQ_PYTHON" "$s" --device cuda --dtype "$dtype" --min-time 0.2 >"$out/bench/1.torch.$(basename "$s" .py).$dtype.json" || rc=1
    done
    if [[ -n "${S4_REFERENCE:-}" ]]; then
      echo "== bench/peers/ssm_torch.py --dtype $dtype"
      "$LONGSEQ_PYTHON" bench/peers/ssm_torch.py --reference "$S4_REFERENCE" --device cuda --dtype "$dtype" \
        --min-time 0.2 >"$out/bench/1.torch.ssm_torch.$dtype.json" || rc=1
    else
      echo "== bench/peers/ssm_torch.py: S4_REFERENCE is not set, not run"
    fi
  done
  return $rc
}
main_step() {
  BUILD_DIR="$build" OUT_DIR="$out/main" DEVICE=cuda SKIP_LISTOPS=1 \
    FASHION_ARGS="--train-subset 512 --val-subset 128 --test-subset 128 --pretrain-epochs 1 --finetune-epochs 1 --d-model 32 --layers 2" \
    bash scripts/main.sh
}

bench_on=ON
[[ -n "${SKIP_BENCH:-}" ]] && bench_on=OFF
step build build_step || { echo "gpu_check: the build failed; see $out/build.log" >&2; exit 1; }
step ctest_gpu ctest --test-dir "$build" -L gpu -E "^(core|ops|train)_cuda$|examples_device_parity" --output-on-failure
if command -v compute-sanitizer >/dev/null 2>&1; then
  step memcheck memcheck_step
else
  step core_ops_train ctest --test-dir "$build" -R "^(core|ops|train)_cuda$" --output-on-failure
  note memcheck "compute-sanitizer not found (the suites ran without it)"
fi
step device_parity ctest --test-dir "$build" -R examples_device_parity --output-on-failure
if [[ -z "${SKIP_BENCH:-}" ]]; then
  mkdir -p "$out/bench"
  step bench_cuda "$build/bench/bench_cuda" --benchmark_min_time=0.05 --benchmark_out="$out/bench/1.bench_cuda.json" \
    --benchmark_out_format=json
  if [[ -n "${DRY_RUN:-}" ]] || "$LONGSEQ_PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    step torch_peers peers_step
  else
    note torch_peers "torch is not importable or sees no GPU"
  fi
else
  note bench_cuda "SKIP_BENCH=1"
fi
if [[ -z "${SKIP_MAIN:-}" ]]; then step main_job main_step; else note main_job "SKIP_MAIN=1"; fi

# bench_cuda's times, with the peers' and their ratios where the peers ran.
if [[ -z "${DRY_RUN:-}" && -s "$out/bench/1.bench_cuda.json" ]]; then
  { echo; echo "## bench_cuda and the PyTorch peers (one round; PyTorch time / longseq time)"; echo
    "$LONGSEQ_PYTHON" bench/ratio_table.py "$out/bench" 1 || echo "(the ratio table failed)"; } >>"$report"
fi
echo >>"$report"
[[ $failed == 0 ]] && echo "All steps passed." >>"$report" || echo "Some steps FAILED: see the logs." >>"$report"
echo "gpu_check: report in $report" >&2
exit $failed
