// docs/usage.md's snippets as one program: each ```cpp block of the doc that names this file appears here
// verbatim (tests/docs/check_snippets.py checks it), so the doc's code compiles; main runs it on a small
// generated ListOps set, so it also works.
#include <longseq/data/tasks.hpp>
#include <longseq/heads/classification.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/tasks.hpp>

using namespace longseq;

// One residual block: x + SSMConv(LayerNorm(x)), the SSM kernel parameterized like S4D, bidirectional.
using Mixer = ssm::SSMConv<ssm::S4D<float>, ssm::Bidirectional>;
using Block = nn::PreNormResidual<nn::LayerNorm<float>, Mixer>;
using Net = models::Model<models::TokenEncoder<float>, nn::Stack<Block>, nn::LayerNorm<float>,
                          heads::ClassificationHead<float>>;

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <type_traits>
#include <longseq/data/generate_listops.hpp>
#include <longseq/models/family.hpp>
#if LONGSEQ_WITH_MPI
#include <longseq/train/distributed_mpi.hpp>
#endif

namespace family_snippet {
using F = models::Family<float, device::cuda>;   // device::host for the same model on the CPU
using Block = nn::PreNormResidual<F::LayerNorm, F::FeedForward>;
using Net = F::Model<F::LinearEncoder, nn::Stack<Block>, F::ClassificationHead>;  // final norm: F::LayerNorm
static_assert(std::is_same_v<Net::device_type, device::cuda>, "the family names the device once");
}  // namespace family_snippet

#if LONGSEQ_WITH_MPI
// Compiled only: running it needs mpirun.
[[maybe_unused]] void mpi_snippet(Net& net, ParamStore<float>& store, train::AdamW<float>& opt,
                                  const train::Schedule& sched, train::DatasetTask<float>& task,
                                  const train::FitConfig& cfg) {
  train::MpiCommunicator comm;
  auto result = train::fit(net, store, opt, sched, task, cfg, comm);  // same result on every rank
  (void)result;
}
#endif

int main() {
  // A small ListOps set in the release's file layout, generated where ctest runs this.
  const std::filesystem::path listops_dir = "usage_listops";
  data::generate_listops_files(listops_dir, 64, 16, 16, {.max_depth = 3, .max_args = 3, .min_length = 10, .max_length = 40}, 1);

  const data::Splits splits = data::load_task("listops", listops_dir);  // the folder the release unpacks to
  const data::TaskInfo& info = splits.train.info();
  train::DatasetTask<float> task(splits, {.objective = train::Objective::classify, .batch = 32, .seed = 0});

  Block::Config block;
  block.norm = {.dim = 128};
  block.mixer.kernel = {.H = 128, .N = 64};   // kernels per channel follow the direction
  block.dropout = 0.1;

  Net net({{.vocab = info.vocab_size, .dim = 128, .padding_idx = data::Vocab::pad_id},  // encoder
           {.depth = 4, .block = block},                      // backbone: depth is a runtime size
           {.dim = 128},                                      // final norm
           {.dim = 128, .classes = info.num_classes, .pool = nn::PoolMode::mean}});  // head

  ParamStore<float> store;
  store.bind(net);                 // all parameters in one flat buffer, named encoder.*, backbone.*, norm.*, head.*
  Rng rng(/*seed*/ 0, 1);
  net.init(rng);
  train::AdamW<float> opt(store, {.lr = 1e-3, .weight_decay = 0.05, .ssm_lr = 1e-3});  // SSM dynamics: own lr, no decay
  train::Schedule sched{train::Schedule::Kind::cosine, /*warmup*/ 100, /*total*/ 10000, 0.0};
  train::FitConfig cfg;            // epochs, max_steps, accum, clip, checkpoint_dir, resume, patience, ...
  cfg.checkpoint_dir = "runs/mine";
  auto result = train::fit(net, store, opt, sched, task, cfg);

  if (result.steps != 2 || !std::isfinite(result.best_val_loss)) {
    std::fprintf(stderr, "usage_fit: expected 2 finite updates, got %lld\n", (long long)result.steps);
    return 1;
  }

  train::LossScaler scaler;   // off; {.initial = 65536} for dynamic loss scaling
  HostContext ctx;
  Net::Saved saved;
  for (index_t i = 0; i < task.num_batches(train::Split::train, 0); ++i) {
    task.load(train::Split::train, 0, i);
    ctx.seed = std::uint64_t(i);  // dropout key of this update
    auto r = train::step(net, ctx, saved, opt, scaler, task.inputs(), task.targets(),
                         {.clip = 1.0, .lr_factor = sched.factor(i)});
    // r.stats: the batch's loss and accuracy; r.update: taken or skipped, the gradient norm
  }

  std::printf("usage_fit: %lld updates by fit, %lld in all\n", (long long)result.steps, (long long)opt.steps());
  return opt.steps() == 4 ? 0 : 1;
}
