// Fuzz harness: train::load_checkpoint into a fixed two-parameter model with AdamW state, then a use
// of what it restored (the RNG draws, the parameters are read), so a state that loads but is unusable
// shows up here rather than in a resumed run.
#include <longseq/train/checkpoint.hpp>

#include "checkpoint_model.hpp"
#include "mem_file.hpp"
#include "safetensors_mutator.hpp"

namespace ls = longseq;

namespace {
// Built once: the model, its bound parameters and the optimizer whose moments the checkpoint fills.
struct Fixture {
  ls::fuzz::CheckpointModel model;
  ls::ParamStore<float> store;
  ls::train::AdamW<float> opt;
  Fixture() : opt((store.bind(model), store), {}) {}
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ls::fuzz::MemFile input;
  static Fixture fx;
  auto& store = fx.store;
  ls::train::TrainState state;
  try {
    (void)ls::train::load_checkpoint<float>(input.write(data, size), store, &fx.opt, &state);
  } catch (const ls::Error&) {
    return 0;
  }
  volatile float sink = 0;
  for (int k = 0; k < 8; ++k) sink = sink + float(state.rng.next_u32());
  for (const auto& e : store.entries())
    for (ls::index_t i = 0; i < e.param->value.numel(); ++i) sink = sink + e.param->value.data[i];
  return 0;
}
