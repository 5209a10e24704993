// A downstream translation unit: includes the umbrella header, assembles an SSM layer whose kernel
// parameterization is one template argument, and runs it forward.
#include <longseq/longseq.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace longseq;
  using Layer = ssm::SSMConv<ssm::S4D<float>, ssm::Bidirectional>;
  Layer layer(Layer::Config{.kernel = {.H = 4, .N = 4}});
  ParamStore<float> store;
  store.bind(layer);
  Rng rng(7);
  layer.init(rng);

  HostContext ctx;
  Tensor<float> x(Shape{2, 16, 4}), y(Shape{2, 16, 4});
  for (index_t i = 0; i < x.numel(); ++i) x[i] = float(rng.normal());
  Layer::Saved saved;
  layer.forward(ctx, x.view(), y.view(), saved);
  double s = 0;
  for (index_t i = 0; i < y.numel(); ++i) s += std::abs(y[i]);
  std::printf("consumer ok: %ld parameters, mean |y| = %g\n", long(store.count()), s / double(y.numel()));
  return std::isfinite(s) && s > 0 ? 0 : 1;
}
