// Fuzz harness: the safetensors reader (length prefix, JSON header, offsets, dtype conversion), then a
// round trip: whatever the reader accepts must serialize, and reading that back must give the same
// tensors and metadata (an abort otherwise, which the fuzzer reports).
#include <cstdlib>
#include <cstring>

#include <longseq/interop/safetensors.hpp>

#include "mem_file.hpp"
#include "safetensors_mutator.hpp"

namespace {

bool same(const longseq::interop::Safetensors& a, const longseq::interop::Safetensors& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || !(x.shape == y.shape) || x.bytes != y.bytes) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using longseq::interop::Safetensors;
  static longseq::fuzz::MemFile input, copy;
  Safetensors st;
  try {
    st = Safetensors::load(input.write(data, size));
    for (const auto& t : st.tensors) {
      (void)st.get<float>(t.name);
      (void)st.get<std::int64_t>(t.name);
    }
  } catch (const longseq::Error&) {
    return 0;  // refused with a message: the expected outcome for most inputs
  }
  const std::string bytes = st.serialize();  // no catch: an accepted file must be writable
  if (!same(st, Safetensors::load(copy.write(bytes.data(), bytes.size())))) std::abort();
  return 0;
}
