// A libFuzzer custom mutator for safetensors inputs: half of the mutations change only the JSON header
// and then rewrite the 8-byte length prefix, so that edits inside the header (a "-" inserted into a
// number, a longer name) reach the checks behind the length test instead of all failing there.
// Only in libFuzzer builds (LONGSEQ_LIBFUZZER); the deterministic driver mutates whole inputs.
#pragma once
#ifdef LONGSEQ_LIBFUZZER
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
  std::uint64_t n = 0;
  if (size >= 8)
    for (int k = 7; k >= 0; --k) n = (n << 8) | data[k];
  if ((seed & 1) == 0 || size < 8 || n > size - 8) return LLVMFuzzerMutate(data, size, max_size);
  // Mutate the header in a buffer with room to grow, then lay out prefix, header and data again.
  const std::string tail(reinterpret_cast<const char*>(data) + 8 + n, size - 8 - n);
  if (8 + tail.size() >= max_size) return LLVMFuzzerMutate(data, size, max_size);
  const std::size_t room = max_size - 8 - tail.size();
  std::string header(reinterpret_cast<const char*>(data) + 8, std::size_t(n));
  header.resize(std::max<std::size_t>(room, header.size()));
  const std::size_t m = LLVMFuzzerMutate(reinterpret_cast<std::uint8_t*>(header.data()), std::size_t(n), room);
  for (int k = 0; k < 8; ++k) data[k] = std::uint8_t((std::uint64_t(m) >> (8 * k)) & 0xff);
  std::memcpy(data + 8, header.data(), m);
  std::memcpy(data + 8 + m, tail.data(), tail.size());
  return 8 + m + tail.size();
}
#endif
