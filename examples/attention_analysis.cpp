// Attention analysis (why self-pretraining helps Transformers: it teaches local attention): loads a Transformer
// checkpoint written by spt_vs_scratch or train_lra, rebuilds its encoder and encoder layers with the library's
// classes, runs them on a sample of a task's inputs and writes, per layer and head, the mean attention distance
// and the share of attention mass within windows |i - j| <= w (attention::AttentionLocality), next to the
// distance uniform attention would have. scripts/plot_attention.py draws one or several such results.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <longseq/attention/diagnostics.hpp>
#include <longseq/attention/encoder_layer.hpp>
#include <longseq/attention/rotary.hpp>
#include <longseq/data/batching.hpp>
#include <longseq/data/masking.hpp>
#include <longseq/data/tasks.hpp>
#include <longseq/interop/safetensors.hpp>
#include <longseq/models/encoders.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/train/transfer.hpp>

#include "device_option.hpp"
#include "options.hpp"
#include "run_dir.hpp"

using namespace longseq;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string checkpoint, task = "fashion-mnist", data, split = "test", out_dir = "attention_analysis_out";
  std::string label;
  index_t samples = 64, batch = 8, heads = 0;
  std::vector<index_t> windows{1, 4, 16, 64};
  double mask_p = 0;
  std::uint64_t seed = 0;
  bool key_padding = false;
};

// The Transformer a checkpoint holds: sizes from its tensor shapes, the rest from its stored config.
struct Architecture {
  bool tokens = false;  // TokenEncoder (ids) or LinearEncoder (pixel values)
  index_t dim = 0, in_features = 0, vocab = 0, layers = 0, heads = 0, ff_hidden = 0;
  bool causal = false, sinusoidal = true, rotary = false;
  index_t learned_positions = 0;  // > 0: the encoder's learned table, this many positions long
  index_t window = 0, look_back = 1, look_forward = 1;
  nlohmann::json config;  // as stored (null when the file has none)
};

const char* const prefix = "model.";

Architecture read_architecture(const interop::Safetensors& st, const Options& o) {
  Architecture a;
  static const std::regex layer_pat(R"(^model\.backbone\.layers\.([0-9]+)\.attn\.mixer\.q_proj\.weight$)");
  std::set<index_t> found;
  bool ssm = false;
  for (const auto& rec : st.tensors) {
    std::smatch m;
    if (std::regex_match(rec.name, m, layer_pat)) found.insert(std::stol(m[1].str()));
    ssm = ssm || (rec.name.rfind("model.", 0) == 0 && rec.name.find(".kernel.") != std::string::npos);
  }
  LONGSEQ_CHECK(!found.empty(), "checkpoint '", o.checkpoint, "' holds no attention layers (no tensor named '",
                prefix, "backbone.layers.<i>.attn.mixer.q_proj.weight')",
                ssm ? "; it holds SSM layers, which kernel_analysis reads" : "",
                "; attention_analysis reads Transformer checkpoints of spt_vs_scratch and train_lra");
  a.layers = index_t(found.size());
  LONGSEQ_CHECK(*found.rbegin() == a.layers - 1, "checkpoint '", o.checkpoint, "': attention layers ",
                *found.rbegin(), " and others are present but not all of 0 .. ", *found.rbegin());
  auto shape_of = [&](const std::string& name) -> Shape {
    LONGSEQ_CHECK(st.contains(prefix + name), "checkpoint '", o.checkpoint, "' lacks tensor '", prefix, name, "'");
    return st.record(prefix + name).shape;
  };
  const Shape q = shape_of("backbone.layers.0.attn.mixer.q_proj.weight");
  a.dim = q[0];
  a.ff_hidden = shape_of("backbone.layers.0.ff.mixer.linear1.weight")[0];
  if (st.contains(std::string(prefix) + "encoder.embedding.weight")) {
    const Shape e = shape_of("encoder.embedding.weight");
    a.tokens = true;
    a.vocab = e[0];
    LONGSEQ_CHECK(e[1] == a.dim, "checkpoint '", o.checkpoint, "': tensor '", prefix, "encoder.embedding.weight' has "
                  "shape ", e, ", expected (vocab, ", a.dim, ")");
  } else {
    const Shape w = shape_of("encoder.linear.weight");
    a.in_features = w[1];
    LONGSEQ_CHECK(w[0] == a.dim && (a.in_features == 1 || a.in_features == 2), "checkpoint '", o.checkpoint,
                  "': tensor '", prefix, "encoder.linear.weight' has shape ", w, ", expected (", a.dim,
                  ", 1) or (", a.dim, ", 2) (one pixel channel, plus the mask indicator of self-pretraining)");
  }

  if (st.metadata.count("config")) a.config = nlohmann::json::parse(st.metadata.at("config"), nullptr, false);
  const bool has_config = a.config.is_object();
  auto get = [&](const char* key, auto fallback) {
    using V = decltype(fallback);
    return has_config && a.config.contains(key) && !a.config[key].is_null() ? a.config[key].get<V>() : fallback;
  };
  const index_t stored_heads = get("heads", index_t(0));
  LONGSEQ_CHECK(stored_heads > 0 || o.heads > 0, "checkpoint '", o.checkpoint, "' stores no configuration with the "
                "number of heads; give it with --heads");
  LONGSEQ_CHECK(o.heads == 0 || stored_heads == 0 || o.heads == stored_heads, "--heads ", o.heads,
                " differs from the checkpoint's configuration (heads = ", stored_heads, ")");
  a.heads = o.heads > 0 ? o.heads : stored_heads;
  LONGSEQ_CHECK(a.dim % a.heads == 0, "--heads / stored heads ", a.heads, " does not divide the model width ", a.dim);
  // train_lra's causal objective trains causal attention; block-local attention comes from --attn-window.
  a.causal = get("objective", std::string("masked")) == "causal";
  a.window = get("attn_window", index_t(0));
  a.look_back = get("look_back", index_t(1));
  a.look_forward = get("look_forward", index_t(1));
  // Both trainers add sinusoidal positions to Transformer inputs unless a stored "position" names another
  // scheme ("default" is the trainers' name for exactly that: sinusoidal for a Transformer). A learned table
  // is a tensor of the checkpoint, so without a stored configuration its presence decides.
  const std::string table = std::string(prefix) + "encoder.position.weight";
  const bool has_table = st.contains(table);
  std::string position = get("position", std::string(has_table ? "learned" : "sinusoidal"));
  if (position == "default") position = "sinusoidal";
  LONGSEQ_CHECK(position == "sinusoidal" || position == "none" || position == "rotary" || position == "learned",
                "checkpoint '", o.checkpoint, "': position scheme '", position, "' is not rebuilt by "
                "attention_analysis (it rebuilds sinusoidal, rotary, learned and none)");
  LONGSEQ_CHECK(has_table == (position == "learned"), "checkpoint '", o.checkpoint, "': its configuration names ",
                "position scheme '", position, "' but it ", has_table ? "holds" : "lacks", " the learned table '",
                table, "'");
  a.sinusoidal = position == "sinusoidal";
  a.rotary = position == "rotary";
  if (has_table) {
    // The table's length is the longest input the trained encoder has positions for.
    const Shape t = shape_of("encoder.position.weight");
    LONGSEQ_CHECK(t.rank == 2 && t[0] > 0 && t[1] == a.dim, "checkpoint '", o.checkpoint, "': tensor '", table,
                  "' has shape ", t, ", expected (length, ", a.dim, ")");
    a.learned_positions = t[0];
  }
  return a;
}

// The trained encoders, their position scheme read from the checkpoint.
using TokenEnc = models::TokenEncoder<float, device::host, attention::AnyPosition>;
using LinearEnc = models::LinearEncoder<float, device::host, attention::AnyPosition>;

// The part of the trained model that attention depends on: the encoder and the encoder layers (parameter
// names as in the checkpoint: encoder.*, backbone.layers.<i>.*).
template <class Enc, class Pos>
struct Trunk {
  using Layer = attention::TransformerEncoderLayer<float, true, Pos>;
  using Backbone = nn::Stack<Layer>;
  Enc encoder;
  Backbone backbone;
  template <class F>
  void parameters(F&& f) {
    encoder.parameters(prefixed("encoder", f));
    backbone.parameters(prefixed("backbone", f));
  }
};

// Mean |i - j| of uniform attention over the keys each real query of one input may see, averaged over
// those queries: the reference the measured distances are read against.
double uniform_reference(const attention::MaskSpec& mask, index_t length, index_t padded_length, bool key_padding) {
  const index_t keys = key_padding ? length : padded_length;
  double total = 0;
  for (index_t i = 0; i < length; ++i) {
    double s = 0;
    index_t n = 0;
    for (index_t j = 0; j < keys; ++j)
      if (mask.allowed(i, j)) {
        s += double(j > i ? j - i : i - j);
        ++n;
      }
    total += n > 0 ? s / double(n) : 0.0;
  }
  return length > 0 ? total / double(length) : 0.0;
}

struct Sample {
  std::vector<attention::AttentionLocality> layers;
  double uniform = 0;  // sum over inputs of uniform_reference
  index_t inputs = 0, longest = 0;
  double length_sum = 0;
};

template <class Enc, class Pos>
Sample analyze(const Options& o, const Architecture& a, const data::Dataset& set, const std::vector<index_t>& idx) {
  // The encoder's positions as trained; the sinusoidal code has no table, so it takes any length the data has.
  attention::AnyPositionConfig position = attention::NoPositionConfig{};
  if (a.learned_positions > 0) position = attention::LearnedPositionConfig{.max_len = a.learned_positions};
  if (a.sinusoidal)
    position = attention::SinusoidalPositionConfig{
        .max_len = std::max(set.info().max_length, attention::SinusoidalPositionConfig{}.max_len)};
  typename Enc::Config ec;
  if constexpr (std::is_same_v<Enc, TokenEnc>)
    ec = {.vocab = a.vocab, .dim = a.dim, .padding_idx = data::Vocab::pad_id, .position = position};
  else
    ec = {.channels = 1, .dim = a.dim, .mask_channel = a.in_features == 2, .position = position};
  using T = Trunk<Enc, Pos>;
  typename T::Layer::Config lc;
  lc.dim = a.dim;
  lc.heads = a.heads;
  lc.ff_hidden = a.ff_hidden;
  lc.activation = nn::Activation::gelu;  // both trainers' Transformer blocks
  lc.causal = a.causal;
  lc.window = a.window;
  lc.look_back = a.look_back;
  lc.look_forward = a.look_forward;
  T trunk{Enc(ec), typename T::Backbone({a.layers, lc})};
  ParamStore<float> store;
  store.bind(trunk);
  // Every encoder and encoder-layer tensor by name and shape; the final norm and the head are not needed.
  const auto rep = train::transfer<float>(o.checkpoint, store, {.prefix = prefix, .fresh_prefixes = {},
                                                                 .drop_last_column = {}});
  std::fprintf(stderr, "[attention_analysis] %zu tensors loaded from %s (%zu not used: final norm, head)\n",
               rep.loaded.size(), o.checkpoint.c_str(), rep.dropped.size());

  Sample out;
  for (index_t l = 0; l < a.layers; ++l) out.layers.emplace_back(a.heads, o.windows);
  HostContext ctx;
  ctx.training = false;  // no dropout: the probabilities the trained model uses at test time
  data::MaskOptions mo;
  mo.p = o.mask_p;
  mo.seed = o.seed;
  const auto mask_spec = trunk.backbone.layers[0].attn.mixer.mask_spec();
  typename T::Backbone::Saved saved;
  typename Enc::Saved enc_saved;
  Tensor<float> h0, h1, values;
  Tensor<std::uint8_t> pad;
  for (std::size_t b0 = 0; b0 < idx.size(); b0 += std::size_t(o.batch)) {
    const std::size_t n = std::min(idx.size() - b0, std::size_t(o.batch));
    const data::Batch batch = data::make_batch(set, std::span<const index_t>(idx).subspan(b0, n));
    const index_t R = batch.rows, L = batch.length;
    if (a.learned_positions > 0)
      for (index_t r = 0; r < R; ++r)
        LONGSEQ_CHECK(batch.lengths[std::size_t(r)] <= a.learned_positions, "input ", idx[b0 + std::size_t(r)],
                      " of the ", o.split, " split of --task ", o.task, " has length ", batch.lengths[std::size_t(r)],
                      ", longer than the learned position table of checkpoint '", o.checkpoint, "' (",
                      a.learned_positions, " positions): the model has no position for the rest");
    const bool masked = o.mask_p > 0;
    data::MaskedBatch mb;
    if (masked) mb = data::mask_batch(batch, mo, 0);
    models::Inputs<float> in;
    in.lengths = TensorView<const std::int32_t>(batch.lengths.data(), Shape{R});
    if constexpr (std::is_same_v<Enc, TokenEnc>) {
      in.ids = TensorView<const std::int32_t>(masked ? mb.ids.data() : batch.ids.data(), Shape{R, L});
    } else {
      const index_t C = a.in_features;
      values.resize(Shape{R, L, C});
      for (index_t k = 0; k < R * L; ++k) {
        // With the mask channel: [value * (1 - m), m] as in self-pretraining (m = 0 without --mask-p).
        const bool m = masked && mb.masked[std::size_t(k)];
        values[k * C] = m ? 0.0f : batch.values[std::size_t(k)];
        if (C == 2) values[k * C + 1] = m ? 1.0f : 0.0f;
      }
      in.values = values.view();
    }
    if (o.key_padding) {
      pad.resize(Shape{R, L});
      for (index_t k = 0; k < R * L; ++k) pad[k] = batch.mask[std::size_t(k)] ? 0 : 1;
      trunk.backbone.set_key_padding(TensorView<const std::uint8_t>(pad.view()));
    }
    h0.resize(Shape{R, L, a.dim});
    h1.resize(Shape{R, L, a.dim});
    trunk.encoder.forward(ctx, in, h0.view(), enc_saved);
    trunk.backbone.forward(ctx, h0.view(), h1.view(), saved);
    for (index_t l = 0; l < a.layers; ++l)
      out.layers[std::size_t(l)].add(ctx, trunk.backbone.layers[std::size_t(l)], saved.blocks[std::size_t(l)],
                                     in.lengths);
    for (index_t r = 0; r < R; ++r) {
      const index_t len = batch.lengths[std::size_t(r)];
      if (len == 0) continue;
      out.uniform += uniform_reference(mask_spec, len, L, o.key_padding);
      out.length_sum += double(len);
      out.longest = std::max(out.longest, len);
      ++out.inputs;
    }
    std::fprintf(stderr, "[attention_analysis] %zu / %zu inputs\n", b0 + n, idx.size());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Where a Transformer checkpoint attends: mean attention distance and mass within windows, per "
               "layer and head, over a sample of inputs"};
  using examples::at_least;
  app.add_option("--checkpoint", o.checkpoint,
                 "safetensors file written by spt_vs_scratch (--models transformer) or train_lra (--model transformer)")
      ->required();
  app.add_option("--task", o.task, std::string("the inputs: ") + data::task_names)
      ->check(CLI::IsMember({"listops", "text", "retrieval", "image", "pathfinder", "fashion-mnist", "mnist"}));
  app.add_option("--data,--data-dir", o.data, "the task's folder, as for the trainers (Fashion-MNIST: the IDX files; "
                                              "ListOps: basic_{train,val,test}.tsv, e.g. from lra_data generate)")
      ->required();
  app.add_option("--split", o.split, "which split the sample comes from")->check(CLI::IsMember({"train", "val", "test"}));
  app.add_option("--samples", o.samples, "inputs analyzed: the first N of the split (0: all)")->check(at_least(0));
  app.add_option("--batch", o.batch, "inputs per forward pass")->check(at_least(1));
  app.add_option("--heads", o.heads, "attention heads, for a checkpoint without a stored configuration (0: stored)")
      ->check(at_least(0));
  app.add_option("--windows", o.windows, "window sizes w of the mass share within |i - j| <= w")
      ->delimiter(',')
      ->check(at_least(0));
  app.add_option("--mask-p", o.mask_p, "mask this share of positions as in self-pretraining (0: clean inputs)")
      ->check(examples::probability());
  app.add_option("--seed", o.seed, "seed of the --mask-p masks");
  app.add_flag("--key-padding", o.key_padding, "hide padded keys from attention (the trainers do not: off)");
  app.add_option("--label", o.label, "name of this checkpoint in the outputs and plots (default: folder/file name)")
      ->check(CLI::Validator(
          [](std::string& v) { return v.find_first_of(",\n\"") == std::string::npos ? std::string() : "no commas, quotes or newlines"; },
          "TEXT"));
  app.add_option("--out-dir,--out", o.out_dir, "where heads.csv and attention.json go");
  CLI11_PARSE(app, argc, argv);

  try {
    examples::single_threaded_blas();
    const auto st = interop::Safetensors::load(o.checkpoint);
    const Architecture a = read_architecture(st, o);
    data::Splits splits;
    try {
      splits = data::load_task(o.task, o.data);
    } catch (const std::exception& e) {
      LONGSEQ_FAIL("--task ", o.task, " --data ", o.data, ": ", e.what());
    }
    const data::Dataset& set = o.split == "train" ? splits.train : o.split == "val" ? splits.val : splits.test;
    const bool tokens = set.info().modality == data::Modality::tokens;
    LONGSEQ_CHECK(tokens == a.tokens, "--task ", o.task, " has ", tokens ? "token" : "pixel", " inputs, but checkpoint '",
                  o.checkpoint, "' has a ", a.tokens ? "token embedding" : "pixel (linear)", " encoder");
    LONGSEQ_CHECK(o.mask_p == 0 || tokens || a.in_features == 2, "--mask-p ", o.mask_p, ": checkpoint '", o.checkpoint,
                  "' has no mask-indicator channel (it is a classifier, not a self-pretrained model)");
    LONGSEQ_CHECK(set.size() > 0, "--split ", o.split, " of --task ", o.task, " is empty");
    const index_t n = o.samples > 0 ? std::min(o.samples, set.size()) : set.size();
    std::vector<index_t> idx(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) idx[std::size_t(i)] = i;
    if (o.label.empty()) o.label = fs::path(o.checkpoint).parent_path().filename().string() + "/" +
                                   fs::path(o.checkpoint).stem().string();
    std::fprintf(stderr, "[attention_analysis] %ld layers, %ld heads, width %ld, %s attention%s; %ld %s inputs of %s\n",
                 long(a.layers), long(a.heads), long(a.dim), a.causal ? "causal" : "bidirectional",
                 a.window > 0 ? " (block-local)" : "", long(n), o.split.c_str(), o.task.c_str());

    Sample s;
    auto run = [&]<class Enc>(std::type_identity<Enc>) {
      if (a.rotary)
        s = analyze<Enc, attention::Rotary>(o, a, set, idx);
      else
        s = analyze<Enc, attention::NoRotation>(o, a, set, idx);
    };
    if (a.tokens)
      run(std::type_identity<TokenEnc>{});
    else
      run(std::type_identity<LinearEnc>{});
    LONGSEQ_CHECK(s.inputs > 0, "no input of the sample has a nonzero length");

    const double uniform = s.uniform / double(s.inputs);
    fs::create_directories(o.out_dir);
    std::ostringstream csv;
    csv << "label,layer,head,inputs,mean_distance,uniform_distance,padding_share";
    for (index_t w : o.windows) csv << ",within_" << w;
    csv << '\n';
    nlohmann::json layers = nlohmann::json::array();
    std::printf("\n%s: mean attention distance and share of attention mass within |i - j| <= w\n", o.label.c_str());
    std::printf("(%ld inputs, mean length %.1f; uniform attention would give a distance of %.2f)\n", long(s.inputs),
                s.length_sum / double(s.inputs), uniform);
    std::printf("| layer | head | distance |");
    for (index_t w : o.windows) std::printf(" w<=%-4ld |", long(w));
    std::printf(" padding |\n|-------|------|----------|");
    for (std::size_t k = 0; k < o.windows.size(); ++k) std::printf("---------|");
    std::printf("---------|\n");
    for (index_t l = 0; l < a.layers; ++l) {
      const auto r = s.layers[std::size_t(l)].result();
      nlohmann::json heads = nlohmann::json::array();
      double layer_mean = 0;
      for (index_t h = 0; h < a.heads; ++h) {
        const auto& hr = r[std::size_t(h)];
        layer_mean += hr.mean_distance / double(a.heads);
        csv << o.label << ',' << l << ',' << h << ',' << s.inputs << ',' << hr.mean_distance << ',' << uniform << ','
            << hr.padding_share;
        nlohmann::json within = nlohmann::json::object();
        std::printf("| %5ld | %4ld | %8.2f |", long(l), long(h), hr.mean_distance);
        for (std::size_t k = 0; k < o.windows.size(); ++k) {
          csv << ',' << hr.window_share[k];
          within[std::to_string(o.windows[k])] = hr.window_share[k];
          std::printf(" %7.3f |", hr.window_share[k]);
        }
        std::printf(" %7.3f |\n", hr.padding_share);
        csv << '\n';
        heads.push_back({{"head", h}, {"mean_distance", hr.mean_distance}, {"padding_share", hr.padding_share},
                         {"within", within}});
      }
      layers.push_back({{"layer", l}, {"mean_distance", layer_mean}, {"heads", heads}});
    }
    const nlohmann::json result{
        {"label", o.label}, {"checkpoint", o.checkpoint}, {"task", o.task}, {"split", o.split},
        {"inputs", s.inputs}, {"mean_length", s.length_sum / double(s.inputs)}, {"longest", s.longest},
        {"uniform_distance", uniform}, {"windows", o.windows}, {"mask_p", o.mask_p}, {"key_padding", o.key_padding},
        {"model", {{"layers", a.layers}, {"heads", a.heads}, {"dim", a.dim}, {"ff_hidden", a.ff_hidden},
                   {"causal", a.causal}, {"window", a.window}, {"encoder", a.tokens ? "tokens" : "pixels"},
                   {"mask_channel", a.in_features == 2}, {"position", a.rotary ? "rotary" : a.sinusoidal ? "sinusoidal" : a.learned_positions > 0 ? "learned" : "none"},
                   {"learned_positions", a.learned_positions},
                   {"config", a.config}}},
        {"layers", layers}};
    longseq::train::write_file_atomic((fs::path(o.out_dir) / "heads.csv").string(), csv.str());
    examples::write_json(fs::path(o.out_dir) / "attention.json", result);
    std::printf("wrote %s and %s\n", (fs::path(o.out_dir) / "heads.csv").string().c_str(),
                (fs::path(o.out_dir) / "attention.json").string().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
