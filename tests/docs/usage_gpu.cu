// docs/usage.md's nn::Offload snippet (verbatim, checked by tests/docs/check_snippets.py) in a program nvcc
// compiles when LONGSEQ_CUDA is on; it builds the GPU model and stops there (no device needed to compile).
#include <longseq/heads/classification.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/offload.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>

using namespace longseq;

using Mixer = ssm::SSMConv<ssm::S4D<float>, ssm::Bidirectional>;
using Block = nn::PreNormResidual<nn::LayerNorm<float>, Mixer>;

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
  return 0;
}
