#include <doctest/doctest.h>
#include <sys/resource.h>

#include <longseq/attention/mha.hpp>

#include "../nn/grad_check.hpp"

using namespace longseq;

namespace {
long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}
}  // namespace

// Skipped in the default run (tens of seconds); run with `test_attention --no-skip -tc="*16384*"`.
TEST_CASE("L = 16384 bidirectional attention runs forward and backward in linear memory" * doctest::skip()) {
  const index_t B = 1, L = 16384, Dm = 32;
  attention::MultiHeadAttention<float> m({.dim = Dm, .heads = 2, .block = 128});
  ParamStore<float> store;
  store.bind(m);
  Rng rng(1);
  m.init(rng);
  Tensor<float> x(Shape{B, L, Dm}), y(x.shape()), dy(x.shape()), dx(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) {
    x[i] = float(rng.normal());
    dy[i] = float(rng.normal());
  }
  HostContext ctx;
  attention::MultiHeadAttention<float>::Saved s;
  const long before = peak_rss_kib();
  m.forward(ctx, x.view(), y.view(), s);
  m.backward(ctx, s, dy.view(), dx.view());
  const long grown_mib = (peak_rss_kib() - before) / 1024;
  // An L x L float matrix alone would be 1 GiB; everything here is O(L * dim).
  MESSAGE("peak RSS growth ", grown_mib, " MiB");
#if !defined(__SANITIZE_ADDRESS__)  // ASan's shadow memory and quarantine inflate the RSS
  CHECK(grown_mib < 256);
#endif
  double sy = 0, sdx = 0;
  for (index_t i = 0; i < y.numel(); ++i) {
    sy += std::abs(y[i]);
    sdx += std::abs(dx[i]);
  }
  CHECK(std::isfinite(sy));
  CHECK(std::isfinite(sdx));
  CHECK(sdx > 0);
}
