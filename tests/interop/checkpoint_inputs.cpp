// Checkpoint files with out-of-range training state are refused by name, and every input that once
// crashed the checkpoint fuzz harness (tests/data/fuzz/regressions/checkpoint) is read the way the
// harness reads it: into the harness's model, refused with longseq::Error or used safely.
#include <doctest/doctest.h>

#include <longseq/train/checkpoint.hpp>

#include <filesystem>
#include <string>

#include "data/fuzz/checkpoint_model.hpp"
#include "temp_root.hpp"

using namespace longseq;

namespace {

std::string temp_file(const std::string& name) {
  auto dir = testtmp::dir("ckpt_inputs");
  return (dir / name).string();
}

struct Fixture {
  fuzz::CheckpointModel model;
  ParamStore<float> store;
  train::AdamW<float> opt;
  Fixture() : opt((store.bind(model), store), {}) {}
};

}  // namespace

TEST_CASE("checkpoint loading refuses training state out of range, naming the entry") {
  Fixture fx;
  train::TrainState state;
  state.step = 3;
  state.loss_scale.scale = 1024;
  state.rng = Rng(5);
  (void)state.rng.next_u32();
  (void)state.rng.next_u32();  // inside the first block: index 2, counter 1
  const std::string p = temp_file("state.safetensors");
  train::save_checkpoint<float>(p, fx.store, &fx.opt, state);
  train::TrainState back;
  REQUIRE_NOTHROW(train::load_checkpoint<float>(p, fx.store, &fx.opt, &back));
  CHECK(back.step == 3);

  struct Case { const char* key; const char* value; const char* message; };
  const Case cases[] = {
      {"rng.index", "-1", "metadata entry 'rng.index' = -1 is out of range (expected 0..4)"},
      {"rng.index", "5", "metadata entry 'rng.index' = 5 is out of range (expected 0..4)"},
      {"step", "-2", "metadata entry 'step' = -2 is out of range"},
      {"batch", "-1", "metadata entry 'batch' = -1 is out of range"},
      {"best_epoch", "-2", "metadata entry 'best_epoch' = -2 is out of range (expected -1.."},
      {"optim.steps", "-7", "metadata entry 'optim.steps' = -7 is out of range"},
      {"rng.counter", "0", "metadata entry 'rng.index' = 2 needs 'rng.counter' of at least 1"},
      {"loss_scale.scale", "-1", "metadata entry 'loss_scale.scale' = -1 is not a positive finite number"},
      {"loss_scale.scale", "nan", "metadata entry 'loss_scale.scale' = nan is not a positive finite number"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.key);
    CAPTURE(c.value);
    auto f = interop::Safetensors::load(p);
    f.metadata[c.key] = c.value;
    const std::string q = temp_file("bad.safetensors");
    f.save(q);
    CHECK_THROWS_WITH_AS(train::load_checkpoint<float>(q, fx.store, &fx.opt, &back), doctest::Contains(c.message),
                         Error);
  }
}

TEST_CASE("checkpoint fuzz regression inputs are refused cleanly") {
  const std::filesystem::path dir = std::filesystem::path(LONGSEQ_TEST_DATA_DIR) / "fuzz/regressions/checkpoint";
  REQUIRE(std::filesystem::is_directory(dir));
  Fixture fx;
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    CAPTURE(e.path().filename().string());
    ++n;
    train::TrainState state;
    try {
      (void)train::load_checkpoint<float>(e.path().string(), fx.store, &fx.opt, &state);
      for (int k = 0; k < 8; ++k) (void)state.rng.next_u32();
    } catch (const Error& err) {
      const std::string what = err.what();
      CHECK((what.find("checkpoint") != std::string::npos || what.find("safetensors") != std::string::npos));
    }
  }
  CHECK(n > 0);
}
