// Host SSM layer benchmark: forward + backward of SSMConv with an S4D (ZOH, diagonal) and an S4 (DPLR)
// kernel, causal, float32, on the reference comparison shapes (bench/peers/ssm_torch.py times the
// reference PyTorch layers on the same shapes and names).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>

#include "layer_timing.hpp"

using namespace longseq;

namespace {

struct SSMShape {
  index_t B, H, N, L;
};
// Keep in step with bench/peers/ssm_torch.py.
const std::vector<SSMShape> shapes = {{16, 128, 64, 1024}, {8, 128, 64, 4096}};

std::string name(const char* layer, const SSMShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s_fwd_bwd/B=%lld/H=%lld/N=%lld/L=%lld", layer, (long long)s.B, (long long)s.H,
                (long long)s.N, (long long)s.L);
  return buf;
}

template <class Kernel>
void run_layer(benchmark::State& state, typename Kernel::Config kc, SSMShape s) {
  using Layer = ssm::SSMConv<Kernel, ssm::Causal>;
  typename Layer::Config cfg;
  cfg.kernel = kc;
  Layer layer(cfg);
  bench::time_forward_backward(state, layer, s.B, s.L, s.H);
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& s : shapes) {
    typename ssm::S4D<float>::Config d;
    d.H = s.H;
    d.N = s.N;
    benchmark::RegisterBenchmark(name("s4d", s).c_str(), run_layer<ssm::S4D<float>>, d, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
    typename ssm::S4<float>::Config f;
    f.H = s.H;
    f.N = s.N;
    f.l_max = s.L;
    benchmark::RegisterBenchmark(name("s4", s).c_str(), run_layer<ssm::S4<float>>, f, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
