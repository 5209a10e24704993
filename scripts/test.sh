#!/usr/bin/env bash
# Installs dependencies, builds everything and runs the whole test suite: the host tests, the GPU
# tests (skipped without a device), the consumer-project checks, then the host tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, and last a short fuzzing run (skipped without clang).
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

# Fuzzing, short run: the harnesses of tests/data/fuzz built with clang's libFuzzer under ASan + UBSan,
# a few seconds each from the committed seeds and every input that once crashed them (docs/fuzzing.md;
# the long runs are `ctest --test-dir build-fuzz -L fuzz-long`). Skipped when no clang can build them.
fuzz_cxx=""
probe=$(mktemp -d)
printf '%s\n' '#include <cstddef>' '#include <cstdint>' '#include <source_location>' \
  'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t n) {' \
  '  return int(std::source_location::current().line() + n) == 0;' '}' > "$probe/probe.cpp"
for cxx in clang++-19 clang++-18 clang++-17 clang++-16 clang++; do
  if command -v "$cxx" >/dev/null &&
     "$cxx" -std=c++20 -fsanitize=fuzzer "$probe/probe.cpp" -o "$probe/probe" >/dev/null 2>&1; then
    fuzz_cxx=$cxx
    break
  fi
done
rm -rf "$probe"
if [[ -z "$fuzz_cxx" ]]; then
  echo "fuzz step skipped: no clang++ (16 or newer) with libFuzzer found (Debian: apt-get install clang-19 libclang-rt-19-dev)"
else
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER="$fuzz_cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DLONGSEQ_FUZZ=ON -DLONGSEQ_CUDA=OFF -DLONGSEQ_BUILD_TESTS=ON -DLONGSEQ_BUILD_EXAMPLES=OFF
  cmake --build build-fuzz --target fuzz_harnesses -j "$jobs"
  ctest --test-dir build-fuzz --output-on-failure -j "$jobs" -L '^fuzz$'
fi
