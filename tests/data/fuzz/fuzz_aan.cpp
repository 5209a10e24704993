// Fuzz harness: AAN TSV parsing, character tokenization, vocabulary building and encoding.
#include <longseq/data/aan.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace ld = longseq::data;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto rows = ld::parse_aan_tsv(text, "fuzz.tsv");
    ld::TokenCounter c;
    for (const auto& r : rows) c.add(ld::tokenize_chars(r.text1));
    auto v = ld::Vocab::build(c, 1);
    for (const auto& r : rows) (void)ld::encode(ld::tokenize_chars(r.text2), v, 16);
    (void)ld::Vocab::deserialize(v.serialize());
  } catch (const longseq::Error&) {
  }
  return 0;
}
