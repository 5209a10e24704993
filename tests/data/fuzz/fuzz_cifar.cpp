// Fuzz harness: CIFAR-10 binary batch parsing.
#include <longseq/data/cifar.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace ld = longseq::data;
  try {
    ld::Dataset d(ld::cifar_info());
    ld::parse_cifar_batch(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.bin", d);
  } catch (const longseq::Error&) {
  }
  return 0;
}
