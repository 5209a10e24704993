#!/usr/bin/env bash
# The main job: installs the dependencies, builds the examples in Release and compares self-pretraining
# (SPT) then fine-tuning with training from scratch, for an S4D and a Transformer model, on
#   1. sequential Fashion-MNIST (examples/spt_vs_scratch, images from the Debian package), and
#   2. a generated ListOps set (examples/lra_data generate: 5000 / 500 / 1000 expressions of nesting
#      depth <= 4, at most 5 arguments per operator, 32-160 tokens; then examples/train_lra: 24 epochs of
#      masked SPT with p = 0.1, 8 of fine-tuning from its checkpoint, and 8 of scratch training; with 8
#      SPT epochs SPT did not beat scratch over three seeds, with 24 it did for S4D, docs/results.md).
# It prints one table of test accuracies (both numbers per model and data set) and writes
# $OUT_DIR/{table.md,results.json,results.png}, the Fashion-MNIST curves (fashion-mnist/curves.png) and
# $OUT_DIR/timings.txt (wall and CPU seconds of every process). The README says how long the defaults
# take and on which machines that was measured.
#
# Every part runs even when an earlier one failed (a plot that fails is only a warning); the wall time of
# each part is printed at the end, and the exit code is non-zero when a part failed.
#
# Usage: scripts/main.sh [spt_vs_scratch flags...]
#   Flags go to spt_vs_scratch (the Fashion-MNIST part), e.g. --train-subset 5000 --finetune-epochs 10,
#   --models s4d,transformer,s4, or larger runs (--train-subset 0 --d-model 128 --layers 4 ...).
# Environment:
#   OUT_DIR               output folder (default results/main)
#   SKIP_FASHION=1, SKIP_LISTOPS=1   leave out one of the two data sets
#   FASHION_ARGS          spt_vs_scratch flags put before the command-line ones (used by CI's smoke run)
#   LISTOPS_MODELS        models of the ListOps part (default "s4d transformer")
#   LISTOPS_N, LISTOPS_N_VAL, LISTOPS_N_TEST   sizes of the generated ListOps set (5000/500/1000)
#   LISTOPS_MIN_LENGTH, LISTOPS_MAX_LENGTH   its expressions' lengths in tokens (32/160)
#   LISTOPS_MAX_DEPTH, LISTOPS_MAX_ARGS      nesting depth and arguments per operator (4/5)
#   LISTOPS_PRETRAIN_EPOCHS, LISTOPS_EPOCHS   SPT epochs; fine-tuning = scratch epochs (default 24 / 8)
#   LISTOPS_BATCH, LISTOPS_LR                 batch size and learning rate of all stages (32, 5e-3)
#   LISTOPS_SEED          seed of initialization, data order and masks (default 1)
#   SEEDS                 several seeds, e.g. "1 2 3": both parts run once per seed (Fashion-MNIST with
#                         --seed, ListOps with that seed) into $OUT_DIR/seed-<s>/, each with its own table,
#                         and $OUT_DIR/{table.md,results.json,results.png} give mean and standard deviation
#                         per cell (scripts/seed_table.py). Unset: one run, the trainers' default seeds.
#   LISTOPS_ARGS          extra train_lra flags for all three stages (other than those set here: --batch,
#                         --lr, --epochs, --seed, --model, --stage), e.g. "--d-model 128 --layers 4"
#   DEVICE                host (default) or cuda: both parts run their whole models on the GPU
#                         (needs nvcc at build time, so the trainers are compiled with CUDA, and a device)
#   PRECISION             with DEVICE=cuda: fp32 (default), bf16 (every model; SSM kernels and FFTs in float32)
#                         or fp16 (Transformers only: with it, set LISTOPS_MODELS and --models to transformer)
#   JOINT=1, JOINT_WEIGHT=w   the optional joint-objective rows: the Fashion-MNIST part adds a joint arm per
#                         model (spt_vs_scratch --joint-weight w: scratch's budget, supervised + w x masked
#                         denoising of the same batch) and the ListOps part a joint stage per model
#                         (train_lra --stage joint, LISTOPS_EPOCHS epochs); the tables gain joint columns.
#                         JOINT_WEIGHT alone turns it on; JOINT=1 alone uses w = 1. Unset: no joint rows and
#                         the outputs are as without this option.
#   BUILD_DIR             CMake build folder (default build)
#   LONGSEQ_PYTHON        the Python used for the table and plots (default Debian's /usr/bin/python3,
#                         where install-deps.sh puts numpy and matplotlib; scripts/python.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
bin=$build/examples
root=${OUT_DIR:-results/main}
out=$root
fashion_seed=()
listops_seed=${LISTOPS_SEED:-1}

# SEEDS is checked here, before anything is built: a value that makes no sense is refused, not skipped.
# JOINT / JOINT_WEIGHT: the joint-objective rows (a weight > 0).
joint_weight=""
if [[ -n "${JOINT_WEIGHT:-}" ]]; then
  joint_weight=$JOINT_WEIGHT
elif [[ "${JOINT:-0}" == 1 ]]; then
  joint_weight=1
elif [[ "${JOINT:-0}" != 0 ]]; then
  echo "main job: JOINT must be 1 (or unset/0), got '$JOINT'" >&2; exit 2
fi
if [[ -n "$joint_weight" ]] && ! [[ "$joint_weight" =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]]; then
  echo "main job: JOINT_WEIGHT: '$joint_weight' is not a positive number" >&2; exit 2
fi
if [[ -n "$joint_weight" ]] && awk -v w="$joint_weight" 'BEGIN { exit !(w <= 0) }'; then
  echo "main job: JOINT_WEIGHT: '$joint_weight' is not a positive number" >&2; exit 2
fi
joint_args=()
if [[ -n "$joint_weight" ]]; then joint_args=(--joint-weight "$joint_weight"); fi

read -r -a seeds <<<"${SEEDS:-}"
if [[ -n "${SEEDS+x}" ]]; then
  ((${#seeds[@]})) || { echo "main job: SEEDS is set but empty; give seeds such as SEEDS=\"1 2 3\"" >&2; exit 2; }
  for s in "${seeds[@]}"; do
    [[ "$s" =~ ^[0-9]{1,18}$ ]] || { echo "main job: SEEDS: '$s' is not a non-negative integer" >&2; exit 2; }
  done
  if [[ "$(printf '%s\n' "${seeds[@]}" | sort | uniq -d)" != "" ]]; then
    echo "main job: SEEDS: a seed is repeated in '$SEEDS'; each seed runs once" >&2; exit 2
  fi
  [[ -z "${LISTOPS_SEED:-}" ]] || { echo "main job: give either SEEDS or LISTOPS_SEED, not both" >&2; exit 2; }
  for a in "$@" ${FASHION_ARGS:-}; do
    [[ "$a" != --seed* ]] || { echo "main job: give either SEEDS or spt_vs_scratch's --seed, not both" >&2; exit 2; }
  done
fi
bash scripts/install-deps.sh
source scripts/python.sh
mkdir -p "$root"

# The trainers parallelize with OpenMP; a threaded BLAS inside those loops would oversubscribe the cores.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

# timed DATASET MODEL STAGE command...: runs the command and appends "DATASET MODEL STAGE wall user sys".
timed() {
  local label="$1 $2 $3"
  shift 3
  local TIMEFORMAT="$label %R %U %S"
  { time "$@" 2>&3; } 3>&2 2>>"$timings"
}

# Parts are functions whose every step ends in `|| return 1`: `set -e` does not apply inside a function
# called as an `if` condition, and a failed part must not stop the next one.
failed=()
part_times=()
run_part() {  # run_part NAME function: runs it, records its wall time and whether it failed
  local name=$1 t0=$SECONDS
  if ! "$2"; then
    failed+=("$name")
    echo "main job: part '$name' FAILED (the remaining parts still run)" >&2
  fi
  part_times+=("$name $((SECONDS - t0)) s")
}
plot() {  # a plot that fails is a warning; the numbers it would draw are already written
  "$LONGSEQ_PYTHON" "$@" || echo "main job: warning: plot failed: $*" >&2
}

part_build() {
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSEQ_BUILD_EXAMPLES=ON \
    -DLONGSEQ_PYTHON="$LONGSEQ_PYTHON" || return 1
  cmake --build "$build" --target spt_vs_scratch train_lra lra_data -j "$(nproc)" || return 1
}

device_args=(--device "${DEVICE:-host}")
if [[ -n "${PRECISION:-}" ]]; then device_args+=(--precision "$PRECISION"); fi
fashion_cli=("$@")

part_fashion() {
  local data_dir=/usr/share/datasets/fashion-mnist
  if [[ ! -d "$data_dir" ]]; then
    # Wherever the Debian package put its IDX files.
    data_dir=$(dirname "$(dpkg -L dataset-fashion-mnist | grep -m1 'train-images-idx3-ubyte')") || return 1
  fi
  local fm=$out/fashion-mnist extra
  read -r -a extra <<<"${FASHION_ARGS:-}"
  mkdir -p "$fm" || return 1
  timed fashion-mnist all spt_vs_scratch "$bin/spt_vs_scratch" --data-dir "$data_dir" --out-dir "$fm" \
    "${device_args[@]}" "${joint_args[@]}" "${extra[@]}" "${fashion_seed[@]}" "${fashion_cli[@]}" \
    | tee "$fm/table.md" || return 1
  table_args+=(--fashion "$fm/results.json")
  plot scripts/plot_metrics.py "$fm/metrics.jsonl" -o "$fm/curves.png"
}

part_listops() {
  local lo=$out/listops
  local data=$lo/data extra
  "$bin/lra_data" generate --task listops --out "$data" --n "${LISTOPS_N:-5000}" --n-val "${LISTOPS_N_VAL:-500}" \
    --n-test "${LISTOPS_N_TEST:-1000}" --min-length "${LISTOPS_MIN_LENGTH:-32}" \
    --max-length "${LISTOPS_MAX_LENGTH:-160}" --max-depth "${LISTOPS_MAX_DEPTH:-4}" \
    --max-args "${LISTOPS_MAX_ARGS:-5}" --seed 1 || return 1
  read -r -a extra <<<"${LISTOPS_ARGS:-}"
  local common=(--task listops --data "$data" --seed "$listops_seed" --batch "${LISTOPS_BATCH:-32}"
                --lr "${LISTOPS_LR:-5e-3}" --log-every 50 "${device_args[@]}" "${extra[@]}")
  local model ok=0
  for model in ${LISTOPS_MODELS:-s4d transformer}; do
    timed listops "$model" spt "$bin/train_lra" "${common[@]}" --model "$model" --stage pretrain \
      --epochs "${LISTOPS_PRETRAIN_EPOCHS:-24}" --out "$lo/$model/spt" &&
    timed listops "$model" finetune "$bin/train_lra" "${common[@]}" --model "$model" --stage finetune \
      --pretrained "$lo/$model/spt/best.safetensors" --epochs "${LISTOPS_EPOCHS:-8}" \
      --out "$lo/$model/finetune" &&
    timed listops "$model" scratch "$bin/train_lra" "${common[@]}" --model "$model" --stage scratch \
      --epochs "${LISTOPS_EPOCHS:-8}" --out "$lo/$model/scratch" || ok=1
    if [[ -n "$joint_weight" ]]; then
      timed listops "$model" joint "$bin/train_lra" "${common[@]}" --model "$model" --stage joint \
        --joint-weight "$joint_weight" --epochs "${LISTOPS_EPOCHS:-8}" --out "$lo/$model/joint" || ok=1
    fi
  done
  table_args+=(--listops "$lo")
  return $ok
}

part_table() {
  ((${#table_args[@]})) || { echo "main job: no part produced results to tabulate" >&2; return 1; }
  echo
  # main_table.py writes the table and results.json first; a plot it cannot draw is only a warning.
  "$LONGSEQ_PYTHON" scripts/main_table.py "${table_args[@]}" --timings "$timings" --table "$out/table.md" \
    --json "$out/results.json" --plot "$out/results.png" || return 1
}

start=$SECONDS
run_part build part_build
if ((${#failed[@]})); then
  echo "main job: the build failed; nothing to run" >&2
  exit 1
fi
train_start=$SECONDS
run_parts() {  # the data sets and their table, written under $out
  table_args=()
  timings=$out/timings.txt
  mkdir -p "$out" && : >"$timings" || { failed+=("output folder $out"); return; }
  [[ "${SKIP_FASHION:-0}" == 1 ]] || run_part "fashion-mnist$1" part_fashion
  [[ "${SKIP_LISTOPS:-0}" == 1 ]] || run_part "listops$1" part_listops
  run_part "table$1" part_table
}
part_seed_table() {
  local r=() s
  for s in "${seeds[@]}"; do
    [[ -s "$root/seed-$s/results.json" ]] && r+=("$root/seed-$s/results.json")
  done
  ((${#r[@]})) || { echo "main job: no seed produced results to aggregate" >&2; return 1; }
  echo
  "$LONGSEQ_PYTHON" scripts/seed_table.py "${r[@]}" --table "$root/table.md" --json "$root/results.json" \
    --plot "$root/results.png" || return 1
}
if ((${#seeds[@]})); then
  for s in "${seeds[@]}"; do
    out=$root/seed-$s
    fashion_seed=(--seed "$s")
    listops_seed=$s
    echo "main job: seed $s (results in $out)"
    run_parts " (seed $s)"
  done
  run_part "mean over seeds" part_seed_table
else
  run_parts ""
fi

echo "main job: wall time per part: $(IFS=,; echo "${part_times[*]}" | sed 's/,/, /g')"
echo "main job: $((SECONDS - train_start)) s after the build, $((SECONDS - start)) s in all; results in $root"
if ((${#failed[@]})); then
  echo "main job: failed parts: ${failed[*]}" >&2
  exit 1
fi
