#!/usr/bin/env bash
# Installs the Debian packages longseq needs to build, test and run its examples (and, where the
# distribution has it, the clang that builds the fuzz harnesses).
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

# The fuzzing step of scripts/test.sh needs clang 16 or newer with its libFuzzer runtime. Best effort:
# where the distribution has neither, that step says so and is skipped.
have_fuzz_clang=0
for v in 20 19 18 17 16; do
  if dpkg-query -W -f='${Status}\n' "clang-$v" "libclang-rt-$v-dev" 2>/dev/null | grep -c "install ok installed" |
     grep -q '^2$'; then
    have_fuzz_clang=1
    break
  fi
done
if ((!have_fuzz_clang)); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  for v in 19 18 17 16; do
    if apt-cache show "clang-$v" "libclang-rt-$v-dev" >/dev/null 2>&1; then
      echo "installing: clang-$v libclang-rt-$v-dev (for the fuzz harnesses)"
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "clang-$v" "libclang-rt-$v-dev" || echo "warning: clang-$v could not be installed; fuzzing will be skipped"
      break
    fi
  done
fi

if [[ "${1:-}" == "--bench" ]]; then
  venv="${LONGSEQ_BENCH_VENV:-$HOME/.local/share/longseq/bench-venv}"
  [[ -x "$venv/bin/python" ]] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q torch einops scipy numpy
  "$venv/bin/python" -c "import torch, einops, scipy, numpy; print('bench venv:', '$venv', 'torch', torch.__version__)"
fi
