// The benchmark shapes, shared by the host and CUDA programs (bench/peer_torch.py lists the same ones).
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include <longseq/core/shape.hpp>

namespace longseq::bench {

// A linear layer's product on a (B, L, H) batch: (B*L, H) x (H, 2H), the weight stored (2H, H).
struct GemmShape {
  index_t B, L, H;
};
inline std::vector<GemmShape> gemm_shapes() {
  return {{16, 1024, 128}, {16, 1024, 256}, {16, 1024, 512}, {50, 1024, 128}};
}
inline std::string gemm_name(const GemmShape& s) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "gemm/B=%lld/L=%lld/H=%lld", (long long)s.B, (long long)s.L, (long long)s.H);
  return buf;
}

// An SSM layer's long convolution: u (B, H, L) with one kernel of length L per channel.
struct ConvShape {
  index_t B, H, L;
};
inline std::vector<ConvShape> conv_shapes() {
  return {{16, 128, 1024}, {16, 256, 1024}, {50, 128, 1024}, {16, 128, 4096}, {16, 128, 16384}};
}
inline std::string conv_name(const char* op, const ConvShape& s) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s/B=%lld/H=%lld/L=%lld", op, (long long)s.B, (long long)s.H, (long long)s.L);
  return buf;
}

}  // namespace longseq::bench
