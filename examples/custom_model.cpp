// A model of your own, assembled from the headers: bidirectional S4D blocks over pixel sequences,
// self-pretrained by masked denoising for a few updates of train::step on small generated Pathfinder images,
// with the library's task adapter (train::DatasetTask). Each of these is a one-line change:
//   S4 or DSS instead of S4D:  ssm::S4<float> or ssm::DSS<float> for ssm::S4D<float> in Mixer
//   a rotary Transformer:      the commented `using Block` line below instead of the one above it
//   host to GPU:               using D = device::cuda; (and build this file as CUDA: a .cu file)
#include <cstdio>
#include <longseq/data/generate_pathfinder.hpp>
#include <longseq/longseq.hpp>  // the whole library; or the headers of the parts named below
#include <longseq/nn/offload.hpp>
#include <longseq/train/tasks.hpp>

using namespace longseq;
using D = device::host;  // device::cuda: the model, its update and the batches live on the GPU

template <class Dev> using Mixer = ssm::SSMConv<ssm::S4D<float>, ssm::Bidirectional, Dev>;
template <class Dev> using Block = nn::PreNormResidual<nn::LayerNorm<float, Dev>, Mixer<Dev>>;
// template <class Dev> using Block = attention::TransformerEncoderLayer<float, true, attention::Rotary, Dev>;
template <class Dev> using F = models::Family<float, Dev>;
template <class Dev>  // Net<D> trains; Net<device::host> initializes it (init is host-only)
using Net = F<Dev>::template Model<typename F<Dev>::LinearEncoder, nn::Stack<Block<Dev>>,
                                   typename F<Dev>::MaskedDenoisingHead>;

template <class Dev>
typename Net<Dev>::Config config(index_t H, index_t L) {
  typename Block<Dev>::Config b{};
  if constexpr (requires { b.heads; }) {  // a Transformer layer
    b = {.dim = H, .heads = 2, .ff_hidden = 2 * H};
  } else {  // a residual SSM block: S4 also needs the longest length
    b.norm = {.dim = H};
    b.mixer.kernel.H = H, b.mixer.kernel.N = 16;
    if constexpr (requires { b.mixer.kernel.l_max; }) b.mixer.kernel.l_max = L;
  }
  return {{.channels = 1, .dim = H, .mask_channel = true}, {.depth = 2, .block = b}, {.dim = H},
          {.dim = H, .classes = 0, .loss = heads::DenoiseLoss::l1}};
}

int main() {
  const index_t res = 16, H = 16;
  data::Splits d;  // 16 generated 16x16 Pathfinder images per split; data::load_task reads the real ones
  Rng gen(1, 0);
  for (auto* s : {&d.train, &d.val, &d.test}) {
    *s = data::Dataset(data::pathfinder_info(res));
    for (int i = 0; i < 16; ++i)
      s->add_pixels(i % 2, data::generate_pathfinder_sample(gen, {.resolution = res}, i % 2).image.pixels);
  }
  train::DatasetTask<float> task(d, {.objective = train::Objective::masked, .batch = 4, .seed = 7});
  Context<D> ctx;
  Net<device::host> init_net(config<device::host>(H, res * res));
  ParamStore<float> init_store;
  init_store.bind(init_net);
  Rng rng(0, 1);
  init_net.init(rng);
  Net<D> net(config<D>(H, res * res));
  ParamStore<float, D> store;
  store.bind(net);
  nn::Transfer<D>::upload(ctx, init_store.values().data, store.values().data, store.values().numel());
  train::AdamW<float, D> opt(store, {.lr = 1e-2, .weight_decay = 0.0});
  train::scaler_for_t<D> scaler;      // no loss scaling; {.initial = 65536} turns it on
  typename Net<D>::Saved saved;
  train::BatchStage<float, D> stage;  // the task's host batch on D (on the host: its own views)
  double first = 0, last = 0;
  for (index_t epoch = 0, step = 0; epoch < 3; ++epoch)
    for (index_t i = 0; i < task.num_batches(train::Split::train, epoch); ++i, ++step) {
      const auto& b = stage.get(ctx, task, {train::Split::train, epoch, i});
      ctx.seed = std::uint64_t(step);  // dropout key of this update
      const auto r = train::step(net, ctx, saved, opt, scaler, b.inputs, b.targets, {.clip = 1.0});
      (step == 0 ? first : last) = r.stats.loss;
      std::printf("epoch %lld step %lld  masked L1 %.4f\n", (long long)epoch, (long long)step, r.stats.loss);
    }
  // A few updates on a tiny set must already lower the denoising loss.
  return last < first ? 0 : 1;
}
