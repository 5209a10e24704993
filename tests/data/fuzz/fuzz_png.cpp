// Fuzz harness: PNG decoding to gray through libpng.
#include <longseq/data/png.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)longseq::data::decode_png_gray(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.png");
  } catch (const longseq::Error&) {
  }
  return 0;
}
