// Fuzz harness: IDX parsing, raw and gzip-compressed.
#include <longseq/data/idx.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)longseq::data::parse_idx(std::string(reinterpret_cast<const char*>(data), size), "fuzz.idx");
  } catch (const longseq::Error&) {
  }
  return 0;
}
