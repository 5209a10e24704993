// A downstream translation unit: includes the umbrella header and runs a tiny computation.
#include <longseq/longseq.hpp>

#include <cstdio>

int main() {
  longseq::Tensor<float> t(longseq::Shape{2, 3}, 1.5f);
  longseq::Rng rng(7);
  float s = 0;
  for (longseq::index_t i = 0; i < t.numel(); ++i) s += t[i];
  std::printf("consumer ok: sum=%g first=%u\n", s, rng.next_u32());
  return s == 9.0f ? 0 : 1;
}
