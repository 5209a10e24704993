// Fuzz harness: ListOps TSV parsing, tokenization and expression evaluation.
#include <longseq/data/generate_listops.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& r : longseq::data::parse_listops_tsv(text, "fuzz.tsv")) {
      try {
        (void)longseq::data::evaluate_listops(r.source);
      } catch (const longseq::Error&) {
      }
    }
  } catch (const longseq::Error&) {
  }
  return 0;
}
