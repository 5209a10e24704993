// Kernel analysis of SSM checkpoints: finds every layer's kernel parameterization in a safetensors file,
// rebuilds it from the stored parameters, evaluates its kernel K (C, H, L), K_max(l) = max_{c,h} |K[c,h,l]|
// and the effective decay length, next to a freshly HiPPO-initialized layer of the same size. Parameters
// saved by the reference PyTorch S4 code (S4DKernel, SSMKernelDiag, SSMKernelDPLR state_dicts, alone or
// inside a model's state_dict) are read directly, through interop/reference_s4.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <longseq/core/context.hpp>
#include <longseq/core/parameters.hpp>
#include <longseq/core/rng.hpp>
#include <longseq/interop/reference_s4.hpp>
#include <longseq/interop/safetensors.hpp>
#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>

namespace longseq::analysis {

enum class KernelKind { s4, s4d, dlr, dss_exp, dss_softmax, conv };

inline const char* kind_name(KernelKind k) {
  switch (k) {
    case KernelKind::s4: return "s4";
    case KernelKind::s4d: return "s4d";
    case KernelKind::dlr: return "dlr";
    case KernelKind::dss_exp: return "dss-exp";
    case KernelKind::dss_softmax: return "dss-softmax";
    case KernelKind::conv: return "conv";
  }
  return "?";
}

// One kernel parameterization found in a checkpoint: the tensors under "<prefix>kernel.<param>" (or
// the bare names of a file that holds a single kernel's state_dict, prefix "").
struct KernelLayer {
  std::string prefix;  // up to and including "kernel.", e.g. "model.backbone.layers.3.mixer.kernel."
  index_t layer = -1;  // the i of the last "layers.<i>" in the prefix (-1: none)
  KernelKind kind = KernelKind::s4d;
  std::map<std::string, Tensor<double>> params;  // longseq parameter name inside the kernel -> value
  std::string origin = "longseq";  // or the reference module whose layout the file used
  index_t l_max = 0;               // S4: the length the stored C is prepared for (0: the analysis length)
};

// Sizes read off the parameter shapes.
struct KernelSize {
  index_t H = 0, N = 0, channels = 0, n_ssm = 0, L_max = 0;
};

namespace detail {

inline bool has(const KernelLayer& l, const char* name) { return l.params.count(name) != 0; }

// Layouts of the reference code (see interop/reference_s4.hpp for the name and layout mapping).
enum class RefLayout { none, s4d_kernel, diag, dplr };

inline RefLayout reference_layout(const KernelLayer& l) {
  if (has(l, "inv_dt") && has(l, "A_real")) return has(l, "P") ? RefLayout::dplr : RefLayout::diag;
  // S4DKernel has no B, and its C is (H, N/2, 2); longseq's S4D has B and C (channels, H, N/2, 2).
  if (has(l, "log_dt") && has(l, "log_A_real") && has(l, "A_imag") && has(l, "C") && !has(l, "B") &&
      l.params.at("C").shape().rank == 3)
    return RefLayout::s4d_kernel;
  return RefLayout::none;
}

// Loads a reference layer into a longseq kernel and keeps its parameters under longseq's names.
template <class Kern, class Load>
void adopt(KernelLayer& l, Kern& k, Load&& load) {
  ParamStore<double> store;
  store.bind(k);
  load(k);
  l.params.clear();
  for (const auto& e : store.entries()) {
    Tensor<double> t(e.param->shape);
    std::copy(e.param->value.data, e.param->value.data + t.numel(), t.data());
    l.params.emplace(e.name, std::move(t));
  }
}

// A reference layer becomes the equivalent S4 / S4D (ZOH) layer. `length` is the analysis length: a
// DPLR kernel's C is prepared for it as the reference would (l_kernel doubled until it covers it).
inline void import_reference(KernelLayer& l, const interop::Safetensors& st, index_t length) {
  const RefLayout layout = reference_layout(l);
  if (layout == RefLayout::none) return;
  interop::Safetensors sub;  // the layer's records under their bare names, dtypes kept (l_kernel is an integer)
  for (const auto& rec : st.tensors)
    if (rec.name.size() > l.prefix.size() && rec.name.compare(0, l.prefix.size(), l.prefix) == 0 &&
        rec.name.find('.', l.prefix.size()) == std::string::npos) {
      auto r = rec;
      r.name = rec.name.substr(l.prefix.size());
      sub.tensors.push_back(std::move(r));
    }
  if (layout == RefLayout::dplr) {
    ssm::S4<double> k(interop::s4_kernel_config<double>(sub, length));
    adopt(l, k, [&](ssm::S4<double>& kk) { interop::load_s4_kernel<double>(sub, kk); });
    l.kind = KernelKind::s4;
    l.l_max = k.cfg.l_max;
    l.origin = "reference SSMKernelDPLR";
    return;
  }
  ssm::S4D<double, ssm::ZOH> k(interop::s4d_kernel_config<double>(sub));
  adopt(l, k, [&](ssm::S4D<double, ssm::ZOH>& kk) { interop::load_s4d_kernel<double>(sub, kk); });
  l.kind = KernelKind::s4d;
  l.origin = layout == RefLayout::diag ? "reference SSMKernelDiag" : "reference S4DKernel";
}

inline KernelKind classify(const KernelLayer& l, const std::string& file) {
  if (has(l, "P") && has(l, "log_A_real")) return KernelKind::s4;
  if (has(l, "log_A_real") && has(l, "A_imag")) return KernelKind::s4d;
  if (has(l, "Lambda_r") && has(l, "Lambda_theta")) return KernelKind::dlr;
  if (has(l, "log_Lambda_re") && has(l, "Lambda_im")) return KernelKind::dss_exp;
  if (has(l, "Lambda_re") && has(l, "Lambda_im")) return KernelKind::dss_softmax;
  if (has(l, "kernel")) return KernelKind::conv;
  std::string names;
  for (const auto& [n, t] : l.params) names += (names.empty() ? "" : ", ") + n;
  LONGSEQ_FAIL("checkpoint '", file, "': the tensors under '", l.prefix, "' (", names,
               ") match no kernel parameterization (S4, S4D, DLR, DSS, ConvKernel)");
}

inline const Tensor<double>& param(const KernelLayer& l, const char* name) {
  auto it = l.params.find(name);
  LONGSEQ_CHECK(it != l.params.end(), "kernel layer '", l.prefix, "' lacks parameter '", name, "'");
  return it->second;
}

inline index_t dim(const KernelLayer& l, const char* name, int rank, int d) {
  const Tensor<double>& t = param(l, name);
  LONGSEQ_CHECK(t.shape().rank == rank, "kernel layer '", l.prefix, "': tensor '", name, "' has shape ", t.shape(),
                ", expected rank ", rank);
  return t.size(d);
}

// Binds the layer's parameters, fills them from `from` (or initializes them with rng when from is null)
// and evaluates the kernel at length L.
template <class Kern>
Tensor<double> evaluate(Kern& k, const KernelLayer* from, index_t L, Rng* rng) {
  ParamStore<double> store;
  store.bind(k);
  if (from) {
    for (const auto& e : store.entries()) {
      const Tensor<double>& t = param(*from, e.name.c_str());
      LONGSEQ_CHECK(t.shape() == e.param->shape, "kernel layer '", from->prefix, "': tensor '", e.name,
                    "' has shape ", t.shape(), ", the rebuilt ", kind_name(from->kind), " layer expects ",
                    e.param->shape);
      std::copy(t.data(), t.data() + t.numel(), e.param->value.data);
    }
  } else {
    k.init(*rng);
  }
  Tensor<double> K(Shape{k.channels(), k.width(), L});
  typename Kern::Saved saved;
  HostContext ctx;
  k.kernel_forward(ctx, L, K.view(), saved);
  return K;
}

}  // namespace detail

// Every kernel parameterization in the file, ordered by layer index then prefix. Optimizer state of a
// longseq checkpoint ("optim.*": AdamW moments under the same names) is not a kernel and is skipped.
// `length` is only used for reference DPLR layers (see detail::import_reference); 0 keeps their l_kernel.
inline std::vector<KernelLayer> find_kernel_layers(const interop::Safetensors& st, const std::string& file,
                                                   index_t length = 0) {
  static const std::regex pat(R"(^(.*\bkernel\.)([A-Za-z_][A-Za-z0-9_]*)$)");
  static const std::regex bare(R"(^[A-Za-z_][A-Za-z0-9_]*$)");
  static const std::regex layer_pat(R"(layers\.([0-9]+)\.)");
  std::map<std::string, KernelLayer> found;
  for (const auto& rec : st.tensors) {
    std::smatch m;
    if (rec.name.rfind("optim.", 0) == 0) continue;
    if (!std::regex_match(rec.name, m, pat)) continue;
    KernelLayer& l = found[m[1].str()];
    l.prefix = m[1].str();
    l.params.emplace(m[2].str(), st.get<double>(rec.name));
  }
  if (found.empty()) {  // a single kernel's own state_dict: bare parameter names
    KernelLayer l;
    for (const auto& rec : st.tensors)
      if (std::regex_match(rec.name, bare)) l.params.emplace(rec.name, st.get<double>(rec.name));
    if (!l.params.empty()) found.emplace("", std::move(l));
  }
  std::vector<KernelLayer> out;
  for (auto& [p, l] : found) {
    for (auto it = std::sregex_iterator(p.begin(), p.end(), layer_pat); it != std::sregex_iterator(); ++it)
      l.layer = std::stol((*it)[1].str());
    if (detail::reference_layout(l) != detail::RefLayout::none)
      detail::import_reference(l, st, length);
    else
      l.kind = detail::classify(l, file);
    out.push_back(std::move(l));
  }
  std::stable_sort(out.begin(), out.end(), [](const KernelLayer& a, const KernelLayer& b) {
    return a.layer != b.layer ? a.layer < b.layer : a.prefix < b.prefix;
  });
  return out;
}

inline KernelSize kernel_size(const KernelLayer& l) {
  using detail::dim;
  KernelSize s;
  switch (l.kind) {
    case KernelKind::s4:
    case KernelKind::s4d:
      s.channels = dim(l, "C", 4, 0);
      s.H = dim(l, "C", 4, 1);
      s.N = 2 * dim(l, "C", 4, 2);
      s.n_ssm = dim(l, "log_A_real", 2, 0);
      break;
    case KernelKind::dlr:
    case KernelKind::dss_exp:
    case KernelKind::dss_softmax:
      s.channels = dim(l, "W", 4, 0);
      s.H = dim(l, "W", 4, 1);
      s.N = dim(l, "W", 4, 2);
      break;
    case KernelKind::conv:
      s.channels = dim(l, "kernel", 3, 0);
      s.H = dim(l, "kernel", 3, 1);
      s.L_max = dim(l, "kernel", 3, 2);
      break;
  }
  return s;
}

// The learned kernel K (C, H, L) of a layer, rebuilt from its parameters. For S4 the stored C is corrected
// for its l_max, so L must be the length the model was trained at (a reference layer carries its own
// l_max, and K is its kernel truncated to L).
inline Tensor<double> learned_kernel(const KernelLayer& l, index_t L) {
  LONGSEQ_CHECK(L >= 1, "kernel analysis: length L = ", L, ", expected L >= 1");
  const KernelSize s = kernel_size(l);
  switch (l.kind) {
    case KernelKind::s4: {
      ssm::S4<double> k(
          {.H = s.H, .N = s.N, .l_max = l.l_max > 0 ? l.l_max : L, .channels = s.channels, .n_ssm = s.n_ssm});
      return detail::evaluate(k, &l, L, nullptr);
    }
    case KernelKind::s4d: {
      ssm::S4D<double> k({.H = s.H, .N = s.N, .channels = s.channels, .n_ssm = s.n_ssm});
      return detail::evaluate(k, &l, L, nullptr);
    }
    case KernelKind::dlr: {
      ssm::DLR<double> k({.H = s.H, .N = s.N, .channels = s.channels});
      return detail::evaluate(k, &l, L, nullptr);
    }
    case KernelKind::dss_exp: {
      ssm::DSS<double, ssm::DSSVariant::exp> k({.H = s.H, .N = s.N, .channels = s.channels});
      return detail::evaluate(k, &l, L, nullptr);
    }
    case KernelKind::dss_softmax: {
      ssm::DSS<double, ssm::DSSVariant::softmax> k({.H = s.H, .N = s.N, .channels = s.channels});
      return detail::evaluate(k, &l, L, nullptr);
    }
    case KernelKind::conv: {
      LONGSEQ_CHECK(L <= s.L_max, "kernel layer '", l.prefix, "': length L = ", L, " exceeds the stored kernel's ",
                    s.L_max, " taps");
      ssm::ConvKernel<double> k({.H = s.H, .l_max = s.L_max, .channels = s.channels});
      return detail::evaluate(k, &l, L, nullptr);
    }
  }
  return {};
}

// The baseline: a freshly HiPPO-initialized layer with the same H and number of directions. S4 layers get
// a fresh S4 (HiPPO-LegS, DPLR) of the same state size; every other kind an S4D-LegS layer with the same
// state size (N = 64 for DLR/DSS/ConvKernel, whose N is not comparable). dt ~ logU[dt_min, dt_max].
inline Tensor<double> hippo_kernel(const KernelLayer& l, index_t L, std::uint64_t seed, double dt_min = 1e-3,
                                   double dt_max = 1e-1) {
  const KernelSize s = kernel_size(l);
  Rng rng(seed, 7);
  if (l.kind == KernelKind::s4) {
    ssm::S4<double> k({.H = s.H, .N = s.N, .l_max = L, .channels = s.channels, .n_ssm = s.n_ssm,
                       .dt_min = dt_min, .dt_max = dt_max});
    return detail::evaluate(k, nullptr, L, &rng);
  }
  const index_t N = l.kind == KernelKind::s4d ? s.N : 64;
  const index_t n_ssm = l.kind == KernelKind::s4d ? s.n_ssm : 0;
  ssm::S4D<double> k({.H = s.H, .N = N, .channels = s.channels, .n_ssm = n_ssm, .dt_min = dt_min,
                      .dt_max = dt_max, .init = ssm::S4DInit::legs});
  return detail::evaluate(k, nullptr, L, &rng);
}

// K_max(l) = max over channels h (and directions c, or only direction `direction` when >= 0) of |K[c,h,l]|.
inline std::vector<double> kmax(TensorView<const double> K, index_t direction = -1) {
  expect_rank(K, 3, "K");
  const index_t C = K.size(0), H = K.size(1), L = K.size(2);
  LONGSEQ_CHECK(direction < C, "kmax: direction ", direction, " out of range for K of shape ", K.shape);
  std::vector<double> out(std::size_t(L), 0.0);
  for (index_t c = 0; c < C; ++c) {
    if (direction >= 0 && c != direction) continue;
    for (index_t h = 0; h < H; ++h)
      for (index_t t = 0; t < L; ++t) out[std::size_t(t)] = std::max(out[std::size_t(t)], std::abs(K(c, h, t)));
  }
  return out;
}

// Effective decay length: the smallest n such that the first n shifts (l < n) hold at least `fraction`
// of sum_l K_max(l). A kernel that keeps its mass at large shifts has a length close to L.
inline index_t decay_length(const std::vector<double>& km, double fraction = 0.9) {
  LONGSEQ_CHECK(fraction > 0 && fraction <= 1, "decay_length: fraction = ", fraction, ", expected (0, 1]");
  LONGSEQ_CHECK(!km.empty(), "decay_length: K_max is empty");
  double total = 0;
  for (double v : km) total += v;
  if (total <= 0) return 0;
  double acc = 0;
  for (std::size_t i = 0; i < km.size(); ++i) {
    acc += km[i];
    if (acc >= fraction * total * (1 - 1e-12)) return index_t(i + 1);
  }
  return index_t(km.size());
}

}  // namespace longseq::analysis
