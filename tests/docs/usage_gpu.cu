// docs/usage.md's GPU snippets (verbatim, checked by tests/docs/check_snippets.py) in a program nvcc compiles
// when LONGSEQ_CUDA is on: nn::Offload, and fit with a device model. Without an argument it stops before
// anything needs a device.
#include <longseq/heads/classification.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/offload.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/models/family.hpp>
#include <longseq/train/checkpoint.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/tasks.hpp>

using namespace longseq;

using Mixer = ssm::SSMConv<ssm::S4D<float>, ssm::Bidirectional>;
using Block = nn::PreNormResidual<nn::LayerNorm<float>, Mixer>;
using Net = models::Model<models::TokenEncoder<float>, nn::Stack<Block>, nn::LayerNorm<float>,
                          heads::ClassificationHead<float>>;

int main(int argc, char**) {
  const models::TokenEncoder<float>::Config encoder{.vocab = 20, .dim = 128, .padding_idx = 1};
  const nn::LayerNorm<float>::Config norm{.dim = 128};
  const heads::ClassificationHead<float>::Config head{.dim = 128, .classes = 10, .pool = nn::PoolMode::mean};
  Block::Config block;
  block.norm = {.dim = 128};
  block.mixer.kernel = {.H = 128, .N = 64};
  block.dropout = 0.1;
  if (argc < 2) return 0;  // constructing the model needs a device: only with an argument

  using DevBlock = nn::PreNormResidual<nn::LayerNorm<float, device::cuda>,
                                       ssm::SSMConv<ssm::S4D<float>, ssm::Bidirectional, device::cuda>>;
  using Backbone = nn::Offload<nn::Stack<Block>, nn::Stack<DevBlock>>;   // parameters: those of Stack<Block>
  using GpuNet = models::Model<models::TokenEncoder<float>, Backbone, nn::LayerNorm<float>,
                               heads::ClassificationHead<float>>;
  DevBlock::Config dev_block;           // the same fields as `block` (a distinct type per policy)
  dev_block.norm = {.dim = 128};
  dev_block.mixer.kernel = {.H = 128, .N = 64};
  dev_block.dropout = 0.1;
  GpuNet gpu_net({encoder, {{.depth = 4, .block = block}, {.depth = 4, .block = dev_block}, /*gpu*/ 0}, norm, head});

  // fit with a device model: the host twin's config, the device one's, and a task of token sequences.
  const Net::Config config{encoder, {.depth = 4, .block = block}, norm, head};
  using DevConfig = models::Model<models::TokenEncoder<float, device::cuda>, nn::Stack<DevBlock>,
                                  nn::LayerNorm<float, device::cuda>, heads::ClassificationHead<float, device::cuda>>::Config;
  const DevConfig dev_config{{.vocab = 20, .dim = 128, .padding_idx = 1}, {.depth = 4, .block = dev_block}, {.dim = 128},
                             {.dim = 128, .classes = 10, .pool = nn::PoolMode::mean}};
  data::TaskInfo info;
  info.name = "tokens";
  info.num_classes = 10;
  info.vocab_size = 20;
  info.max_length = 8;
  data::Dataset d(info);
  for (int i = 0; i < 8; ++i) d.add_tokens(i % 10, std::vector<std::int32_t>{4, 5, 6, std::int32_t(7 + i)});
  train::DatasetTask<float> task(d, d, d, {.batch = 4});
  const train::Schedule sched{};
  train::FitConfig cfg;
  cfg.progress = false;

  using F = models::Family<float, device::cuda>;    // or models::Family<bf16, device::cuda>
  using DevNet = F::Model<F::TokenEncoder, nn::Stack<DevBlock>, F::ClassificationHead>;  // final norm: F::LayerNorm
  DevNet net(dev_config);                           // the same sizes as the host Net's config
  ParamStore<float, device::cuda> store;
  store.bind(net);
  {
    Net host(config);
    ParamStore<float> host_store;
    host_store.bind(host);
    Rng rng(42);
    host.init(rng);
    train::copy_parameters(host_store, store);
  }
  train::AdamW<float, device::cuda> opt(store, {.lr = 1e-3, .weight_decay = 0.01});
  auto result = train::fit(net, store, opt, sched, task, cfg);   // same FitConfig, same checkpoints
  return result.steps == 2 ? 0 : 1;
}
