// Kernel analysis (the paper's Sec. 3.6 figure): loads a checkpoint, rebuilds the SSM kernel of every layer
// from its parameters (S4, S4D, DLR, DSS, ConvKernel; both directions of bidirectional layers), and writes
// K_max(l) = max over channels of |K[c,l]| and the effective decay length per layer, each next to a freshly
// HiPPO-initialized layer of the same size. scripts/plot_kernels.py draws the CSV.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kernel_analysis.hpp"

using namespace longseq;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string checkpoint, out_dir = "kernel_analysis_out";
  index_t length = 0;
  std::vector<index_t> layers;
  double fraction = 0.9;
  std::uint64_t seed = 0;
  double dt_min = 1e-3, dt_max = 1e-1;
  bool dump = false;
};

void write_kmax_rows(std::ofstream& f, const analysis::KernelLayer& l, index_t id, const char* source,
                     const Tensor<double>& K) {
  const auto all = analysis::kmax(K.view());
  const index_t C = K.size(0);
  std::vector<std::vector<double>> dirs;
  for (index_t c = 0; c < C; ++c) dirs.push_back(analysis::kmax(K.view(), c));
  for (std::size_t t = 0; t < all.size(); ++t) {
    f << id << ',' << l.layer << ',' << source << ',' << t << ',' << all[t];
    for (index_t c = 0; c < 2; ++c) {
      f << ',';
      if (c < C) f << dirs[std::size_t(c)][t];
    }
    f << '\n';
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Learned SSM kernels of a checkpoint vs. a HiPPO-initialized layer: K_max(l) and decay lengths"};
  app.add_option("--checkpoint", o.checkpoint,
                 "safetensors file: a longseq checkpoint, or parameters saved by the reference S4 code "
                 "(S4DKernel, SSMKernelDiag or SSMKernelDPLR state_dicts, alone or within a model's)")
      ->required();
  app.add_option("--length", o.length, "kernel length L: the sequence length the model was trained at")->required();
  app.add_option("--out-dir", o.out_dir, "where kmax.csv, layers.csv (and kernels.safetensors) go");
  app.add_option("--layers", o.layers, "layer indices to analyze (default: all)")->delimiter(',');
  app.add_option("--fraction", o.fraction, "mass fraction of sum_l K_max(l) that defines the decay length");
  app.add_option("--seed", o.seed, "seed of the HiPPO baseline's dt and C draws");
  app.add_option("--dt-min", o.dt_min, "dt range of the HiPPO baseline");
  app.add_option("--dt-max", o.dt_max, "dt range of the HiPPO baseline");
  app.add_flag("--dump-kernels", o.dump, "also write every kernel K (C, H, L) to kernels.safetensors");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto st = interop::Safetensors::load(o.checkpoint);
    auto layers = analysis::find_kernel_layers(st, o.checkpoint, o.length);
    LONGSEQ_CHECK(!layers.empty(), "checkpoint '", o.checkpoint,
                  "' holds no SSM kernel parameters (tensors named '...kernel.<param>')");
    fs::create_directories(o.out_dir);
    std::ofstream kf(fs::path(o.out_dir) / "kmax.csv"), lf(fs::path(o.out_dir) / "layers.csv");
    kf << "id,layer,source,l,kmax,kmax_dir0,kmax_dir1\n";
    lf << "id,layer,prefix,kind,H,N,channels,L,fraction,decay_trained,decay_hippo,decay_trained_dir0,"
          "decay_trained_dir1,kmax0_trained,kmax0_hippo,mean_kmax_trained,mean_kmax_hippo,origin\n";
    interop::Safetensors dump;
    std::printf("%-4s %-6s %-12s %5s %5s %3s | decay length (%g%% of sum K_max): trained  HiPPO | K_max(0) trained  "
                "HiPPO\n",
                "id", "layer", "kind", "H", "N", "C", 100 * o.fraction);
    index_t analyzed = 0;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& l = layers[i];
      if (!o.layers.empty() && std::find(o.layers.begin(), o.layers.end(), l.layer) == o.layers.end()) continue;
      const auto size = analysis::kernel_size(l);
      const Tensor<double> K = analysis::learned_kernel(l, o.length);
      const Tensor<double> K0 = analysis::hippo_kernel(l, o.length, o.seed, o.dt_min, o.dt_max);
      const auto km = analysis::kmax(K.view()), km0 = analysis::kmax(K0.view());
      const index_t d = analysis::decay_length(km, o.fraction), d0 = analysis::decay_length(km0, o.fraction);
      auto mean = [](const std::vector<double>& v) {
        double s = 0;
        for (double x : v) s += x;
        return s / double(v.size());
      };
      const index_t id = index_t(i);
      lf << id << ',' << l.layer << ',' << l.prefix << ',' << analysis::kind_name(l.kind) << ',' << size.H << ','
         << size.N << ',' << size.channels << ',' << o.length << ',' << o.fraction << ',' << d << ',' << d0 << ',';
      for (index_t c = 0; c < 2; ++c) {
        if (c < size.channels) lf << analysis::decay_length(analysis::kmax(K.view(), c), o.fraction);
        lf << ',';
      }
      lf << km[0] << ',' << km0[0] << ',' << mean(km) << ',' << mean(km0) << ',' << l.origin << '\n';
      write_kmax_rows(kf, l, id, "trained", K);
      write_kmax_rows(kf, l, id, "hippo", K0);
      if (o.dump) {
        dump.put<double>(l.prefix + "K", K.view());
        dump.put<double>(l.prefix + "K_hippo", K0.view());
      }
      std::printf("%-4ld %-6ld %-12s %5ld %5ld %3ld | %40ld %6ld | %16.4g %6.4g\n", long(id), long(l.layer),
                  analysis::kind_name(l.kind), long(size.H), long(size.N), long(size.channels), long(d), long(d0),
                  km[0], km0[0]);
      if (l.origin != "longseq") std::printf("     (read as %s from '%s*')\n", l.origin.c_str(), l.prefix.c_str());
      ++analyzed;
    }
    LONGSEQ_CHECK(analyzed > 0, "none of the requested --layers is in checkpoint '", o.checkpoint, "'");
    if (o.dump) {
      dump.metadata["source"] = o.checkpoint;
      dump.metadata["length"] = std::to_string(o.length);
      dump.save((fs::path(o.out_dir) / "kernels.safetensors").string());
    }
    std::printf("wrote %s and %s\n", (fs::path(o.out_dir) / "kmax.csv").string().c_str(),
                (fs::path(o.out_dir) / "layers.csv").string().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
