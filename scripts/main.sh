#!/usr/bin/env bash
# The main job: installs the dependencies, builds the example in Release, compares self-pretraining
# then fine-tuning with training from scratch on sequential Fashion-MNIST, and plots the curves to PNG.
# Usage: scripts/main.sh [spt_vs_scratch flags...]   (e.g. --models s4d,transformer --train-subset 5000)
# The output folder is results/spt_vs_scratch unless OUT_DIR is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSEQ_BUILD_EXAMPLES=ON
cmake --build build --target spt_vs_scratch -j "$(nproc)"

data_dir=/usr/share/datasets/fashion-mnist
if [[ ! -d "$data_dir" ]]; then
  # Wherever the Debian package put its IDX files.
  data_dir=$(dirname "$(dpkg -L dataset-fashion-mnist | grep -m1 'train-images-idx3-ubyte')")
fi
out=${OUT_DIR:-results/spt_vs_scratch}
mkdir -p "$out"
./build/examples/spt_vs_scratch --data-dir "$data_dir" --out-dir "$out" "$@" | tee "$out/table.md"
python3 scripts/plot_metrics.py "$out/metrics.jsonl" -o "$out/curves.png"
echo "plot: $out/curves.png"
