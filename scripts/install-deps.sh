#!/usr/bin/env bash
# Installs the Debian packages longseq needs to build, test and run its examples.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds what the PyTorch peer scripts need)
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
