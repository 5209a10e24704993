#!/usr/bin/env bash
# Installs dependencies, builds everything and runs the whole test suite: the host tests, the GPU
# tests (skipped without a device), the consumer-project checks, then the host tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/python.sh  # LONGSEQ_PYTHON: the interpreter the script tests and fixtures run
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGSEQ_BUILD_TESTS=ON -DLONGSEQ_BUILD_EXAMPLES=ON \
      -DLONGSEQ_PYTHON="$LONGSEQ_PYTHON"
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs" -LE long

# -O1 keeps the sanitized run fast; -g1 (line tables only) keeps the build fast and reports readable.
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLONGSEQ_SANITIZE=ON -DLONGSEQ_CUDA=OFF \
      -DLONGSEQ_BUILD_TESTS=ON -DLONGSEQ_BUILD_EXAMPLES=OFF -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
      -DLONGSEQ_PYTHON="$LONGSEQ_PYTHON"
cmake --build build-sanitize -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-sanitize --output-on-failure -j "$jobs" -L host -LE "long|sanitize-skip"
