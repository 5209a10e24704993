#!/usr/bin/env bash
# Installs the Debian packages longseq needs to build, test and run its examples.
# Usage: scripts/install-deps.sh [--bench]
#   --bench also makes the virtual environment of the PyTorch peers (bench/run.sh): the current PyPI
#   torch plus what the reference S4/S4D layers import (einops, scipy, numpy), in $LONGSEQ_BENCH_VENV
#   (default ~/.local/share/longseq/bench-venv); bench/run.sh looks there too.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config libopenblas-dev libfftw3-dev doctest-dev libbenchmark-dev
      nlohmann-json3-dev libcli11-dev libpng-dev zlib1g-dev openmpi-bin libopenmpi-dev dataset-fashion-mnist
      python3 python3-numpy python3-matplotlib)
if [[ "${1:-}" == "--bench" ]]; then pkgs+=(python3-pip python3-venv); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ "${1:-}" == "--bench" ]]; then
  venv="${LONGSEQ_BENCH_VENV:-$HOME/.local/share/longseq/bench-venv}"
  [[ -x "$venv/bin/python" ]] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q torch einops scipy numpy
  "$venv/bin/python" -c "import torch, einops, scipy, numpy; print('bench venv:', '$venv', 'torch', torch.__version__)"
fi
