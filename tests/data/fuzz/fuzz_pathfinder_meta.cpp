// Fuzz harness: Pathfinder metadata parsing.
#include <longseq/data/pathfinder.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)longseq::data::parse_pathfinder_metadata(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.npy");
  } catch (const longseq::Error&) {
  }
  return 0;
}
