// Per-call scratch of the host ops comes from the context's arena: it grows to the largest call and is
// reused afterwards, and a scope hands its bytes back when it ends.
#include <doctest/doctest.h>

#include <thread>

#include <longseq/attention/flash.hpp>
#include <longseq/ops/fft_conv.hpp>

#include "ops/op_testing.hpp"

using namespace longseq;
using optest::random_tensor;

TEST_CASE("an arena scope carves aligned slices, gives them back, and refuses to grow under live slices") {
  Arena<device::host> arena;
  {
    auto s = arena.scope(1000);
    float* a = s.take<float>(10);
    double* b = s.take<double>(3);
    CHECK(reinterpret_cast<std::uintptr_t>(a) % Arena<>::alignment == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(b) % Arena<>::alignment == 0);
    CHECK(arena.mark() == 2 * Arena<>::alignment);
    CHECK_THROWS_WITH_AS(s.take<float>(1000), doctest::Contains("workspace scope exhausted"), Error);
  }
  CHECK(arena.mark() == 0);
  const auto cap = arena.capacity();
  CHECK(cap >= 1000);
  {
    auto s = arena.scope(cap);  // fits: no growth
    CHECK(arena.capacity() == cap);
    (void)s.take<std::byte>(1);
    CHECK_THROWS_WITH_AS(arena.scope(2 * cap), doctest::Contains("grow"), Error);
  }
  CHECK(arena.mark() == 0);
}

TEST_CASE("a scope opened by a second thread while another thread owns the arena gets memory of its own") {
  Arena<device::host> arena;
  auto outer = arena.scope(512);
  float* mine = outer.take<float>(16);
  float* theirs = nullptr;
  std::size_t mark_seen = 0;
  std::thread other([&] {
    auto s = arena.scope(512);
    theirs = s.take<float>(16);
    theirs[0] = 1.0f;  // writable, and nowhere in the owner's buffer
    mark_seen = arena.mark();
  });
  other.join();
  CHECK(theirs != nullptr);
  CHECK((theirs < mine || theirs >= mine + 512 / sizeof(float)));
  CHECK(mark_seen == Arena<>::alignment);  // the owner's offset was not moved by the other thread
  {
    auto nested = arena.scope(256);  // the owning thread nests on the shared buffer
    CHECK(nested.take<float>(1) == mine + Arena<>::alignment / sizeof(float));
  }
  CHECK(arena.mark() == Arena<>::alignment);
}

TEST_CASE("fft_conv, rfft and flash attention reuse the arena: no growth after the largest call, same results") {
  HostContext ctx;
  auto u = random_tensor<float>(Shape{3, 5, 64}, 1), k = random_tensor<float>(Shape{5, 64}, 2),
       dy = random_tensor<float>(Shape{3, 5, 64}, 3);
  Tensor<float> y1(u.shape()), y2(u.shape()), du(u.shape()), dk(k.shape(), 0.0f);
  ops::fft_conv_forward<float>(ctx, u.view(), k.view(), y1.view());
  ops::fft_conv_backward<float>(ctx, u.view(), k.view(), dy.view(), du.view(), dk.view());
  const auto cap = ctx.arena.capacity();
  CHECK(cap > 0);
  ops::fft_conv_forward<float>(ctx, u.view(), k.view(), y2.view());
  ops::fft_conv_backward<float>(ctx, u.view(), k.view(), dy.view(), du.view(), dk.view());
  CHECK(ctx.arena.capacity() == cap);
  CHECK(ctx.arena.mark() == 0);
  for (index_t i = 0; i < y1.numel(); ++i) CHECK(y1[i] == y2[i]);

  // rfft / irfft rows: same arena, no growth for a call no larger than the first.
  auto x = random_tensor<float>(Shape{6, 64}, 5);
  Tensor<std::complex<float>> X(Shape{6, ops::rfft_bins(64)});
  Tensor<float> back(x.shape());
  ops::rfft_forward<float>(ctx, x.view(), X.view());
  ops::irfft_forward<float>(ctx, X.view(), back.view());
  CHECK(ctx.arena.capacity() == cap);
  CHECK(ctx.arena.mark() == 0);
  for (index_t i = 0; i < x.numel(); ++i) CHECK(back[i] == doctest::Approx(x[i]).epsilon(1e-5));

  const index_t B = 2, H = 2, L = 40, dh = 16;
  auto q = random_tensor<float>(Shape{B, L, H * dh}, 4);
  Tensor<float> o1(q.shape()), o2(q.shape()), lse(Shape{B, H, L}), dq(q.shape()), dkk(q.shape()), dv(q.shape());
  attention::FlashArgs<float> a;
  a.batch = B;
  a.heads = H;
  a.len_q = a.len_k = L;
  a.head_dim = dh;
  a.q = a.k = a.v = q.data();
  a.q_batch = a.k_batch = a.v_batch = L * H * dh;
  a.q_row = a.k_row = a.v_row = H * dh;
  a.scale = 0.25;
  attention::flash_forward(ctx, a, o1.data(), L * H * dh, H * dh, lse.data());
  attention::flash_backward(ctx, a, o1.data(), L * H * dh, H * dh, lse.data(), q.data(), dq.data(), dkk.data(),
                            dv.data());
  const auto cap2 = ctx.arena.capacity();
  attention::flash_forward(ctx, a, o2.data(), L * H * dh, H * dh, lse.data());
  CHECK(ctx.arena.capacity() == cap2);
  CHECK(ctx.arena.mark() == 0);
  for (index_t i = 0; i < o1.numel(); ++i) CHECK(o1[i] == o2[i]);
}
