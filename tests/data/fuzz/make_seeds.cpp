// Writes the seed inputs of the safetensors and checkpoint harnesses (committed in corpus/; rerun
// after a format change): make_seeds <corpus folder>.
#include <cstdio>
#include <filesystem>
#include <string>

#include <longseq/train/checkpoint.hpp>

#include "checkpoint_model.hpp"

namespace ls = longseq;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <corpus folder>\n");
    return 2;
  }
  const std::filesystem::path root = argv[1];
  std::filesystem::create_directories(root / "safetensors");
  std::filesystem::create_directories(root / "checkpoint");

  // safetensors: every dtype, a scalar, an empty tensor, metadata; and the smallest valid file.
  ls::interop::Safetensors st;
  ls::Tensor<float> a(ls::Shape{2, 3});
  for (ls::index_t i = 0; i < 6; ++i) a[i] = float(i) - 2.5f;
  ls::Tensor<double> b(ls::Shape{2});
  b[0] = 1e-300;
  b[1] = -3.0;
  ls::Tensor<ls::half> h(ls::Shape{2});
  h[0] = ls::half(0.5f);
  h[1] = ls::half(-65504.0f);
  ls::Tensor<ls::bf16> bf(ls::Shape{1, 1});
  bf[0] = ls::bf16(7.0f);
  ls::Tensor<std::int32_t> i32(ls::Shape{});
  i32[0] = -5;
  ls::Tensor<std::int64_t> i64(ls::Shape{0, 4});
  ls::Tensor<std::uint8_t> u8(ls::Shape{3});
  u8[0] = 0;
  u8[1] = 200;
  u8[2] = 255;
  st.put<float>("layer.weight", a.view());
  st.put<double>("layer.bias", b.view());
  st.put<ls::half>("h", h.view());
  st.put<ls::bf16>("bf", bf.view());
  st.put<std::int32_t>("scalar", i32.view());
  st.put<std::int64_t>("empty", i64.view());
  st.put<std::uint8_t>("bytes", u8.view());
  st.metadata["format"] = "pt";
  st.metadata["note"] = "tab\there, quote \" and \xc3\xa9";
  st.save((root / "safetensors" / "all_dtypes.safetensors").string());
  ls::interop::Safetensors{}.save((root / "safetensors" / "empty.safetensors").string());

  // checkpoints of the harness's model: with optimizer state and loss scaling, and parameters only.
  ls::fuzz::CheckpointModel model;
  ls::ParamStore<float> store;
  store.bind(model);
  for (ls::index_t i = 0; i < 6; ++i) model.weight.value.data[i] = 0.25f * float(i);
  for (ls::index_t i = 0; i < 3; ++i) model.bias.value.data[i] = -float(i);
  ls::train::AdamW<float> opt(store, {});
  ls::train::TrainState state;
  state.step = 12;
  state.epoch = 2;
  state.batch = 3;
  state.best_metric = 0.75;
  state.best_epoch = 1;
  state.rng = ls::Rng(7);
  (void)state.rng.next_u32();
  state.loss_scale.scale = 65536;
  state.loss_scale.good_steps = 5;
  ls::train::save_checkpoint<float>((root / "checkpoint" / "adamw_loss_scale.safetensors").string(), store, &opt,
                                    state, {{"config", "{\"d_model\": 3}"}});
  state.loss_scale = {};
  ls::train::save_checkpoint<float>((root / "checkpoint" / "params_only.safetensors").string(), store, nullptr,
                                    state);
  std::printf("seeds written under %s\n", root.c_str());
  return 0;
}
