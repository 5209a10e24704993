// Import of parameters saved by the reference PyTorch S4 code (state-spaces/s4): the state_dict names and
// layouts of its standalone S4D block, S4DKernel, SSMKernelDiag and SSMKernelDPLR mapped onto longseq's
// SSMConv / S4D / S4, and the evaluation behind examples/ssm_eval (kernels, outputs and gradients).
#pragma once
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "../ssm/hippo.hpp"
#include "../ssm/s4.hpp"
#include "../ssm/s4d.hpp"
#include "../ssm/ssm_conv.hpp"
#include "safetensors.hpp"

namespace longseq::interop {

// The reference layers ssm_eval understands (command-line names: s4d-block, s4d-kernel, s4-kernel, hippo-legs).
enum class ReferenceLayer { s4d_block, s4d_kernel, s4_kernel, hippo_legs };

inline ReferenceLayer reference_layer(std::string_view name) {
  if (name == "s4d-block") return ReferenceLayer::s4d_block;
  if (name == "s4d-kernel") return ReferenceLayer::s4d_kernel;
  if (name == "s4-kernel") return ReferenceLayer::s4_kernel;
  if (name == "hippo-legs") return ReferenceLayer::hippo_legs;
  LONGSEQ_FAIL("unknown reference layer '", name, "', expected s4d-block, s4d-kernel, s4-kernel or hippo-legs");
}

struct ReferenceOptions {
  index_t length = 0;  // kernel length L (0: from the inputs: u for the block, l_kernel for S4)
  index_t state = 0;   // state size N (0: from the parameter shapes; required for hippo-legs)
};

// The S4D block of the reference (models/s4/s4d.py, default options): ZOH, B = 1, causal convolution,
// GELU, no dropout, Conv1d(H, 2H, 1) + GLU over channels.
template <class T>
using ReferenceS4DBlock = ssm::SSMConv<ssm::S4D<T, ssm::ZOH>, ssm::Causal>;

namespace detail {

// One extent of an expected reference shape with its symbol, so messages read "(H=4, N/2=4, 2)".
struct RefDim {
  const char* sym;
  index_t n;
};
using RefDims = std::vector<RefDim>;

inline std::string ref_dims_str(const RefDims& d) {
  std::string s = "(";
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (i) s += ", ";
    if (d[i].sym[0] != '\0') s += std::string(d[i].sym) + "=";
    s += std::to_string(d[i].n);
  }
  return s + ")";
}
inline Shape ref_dims_shape(const RefDims& d) {
  Shape s;
  for (const auto& x : d) s.dims[s.rank++] = x.n;
  return s;
}

inline const TensorRecord& ref_record(const Safetensors& sd, const std::string& name, const RefDims& want) {
  const TensorRecord* r = sd.find(name);
  LONGSEQ_CHECK(r != nullptr, "reference tensor '", name, "' is missing (expected shape ", ref_dims_str(want), ")");
  LONGSEQ_CHECK(r->shape == ref_dims_shape(want), "reference tensor '", name, "' has shape ", r->shape, ", expected ",
                ref_dims_str(want));
  return *r;
}

template <class T>
Tensor<T> ref_get(const Safetensors& sd, const std::string& name, const RefDims& want) {
  const TensorRecord& r = ref_record(sd, name, want);
  LONGSEQ_CHECK(r.dtype == DType::f32 || r.dtype == DType::f64 || r.dtype == DType::f16 || r.dtype == DType::bf16,
                "reference tensor '", name, "' has dtype ", dtype_name(r.dtype), ", expected a floating-point dtype");
  return sd.get<T>(name);
}

// An extent read off a tensor that defines a size (H from D, N/2 from A_imag, ...), with its rank checked.
inline index_t ref_extent(const Safetensors& sd, const std::string& name, int rank, int axis, std::string_view layout) {
  const TensorRecord* r = sd.find(name);
  LONGSEQ_CHECK(r != nullptr, "reference tensor '", name, "' is missing (expected shape ", layout, ")");
  LONGSEQ_CHECK(r->shape.rank == rank && r->shape[axis] >= 1, "reference tensor '", name, "' has shape ", r->shape,
                ", expected ", layout);
  return r->shape[axis];
}

inline void ref_check_names(const Safetensors& sd, const std::vector<std::string>& allowed, std::string_view what) {
  for (const auto& t : sd.tensors) {
    if (std::find(allowed.begin(), allowed.end(), t.name) != allowed.end()) continue;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    LONGSEQ_FAIL("unknown tensor '", t.name, "' in the ", what, " input, expected only: ", list);
  }
}

inline void ref_check_state(const ReferenceOptions& o, index_t M, const std::string& name) {
  LONGSEQ_CHECK(o.state == 0 || o.state == 2 * M, "--state N = ", o.state, " disagrees with reference tensor '", name,
                "' (N/2 = ", M, ", so N = ", 2 * M, ")");
}

template <class T>
void ref_copy(TensorView<T> dst, const Tensor<T>& src) {
  std::memcpy(dst.data, src.data(), sizeof(T) * std::size_t(src.numel()));
}

inline bool ref_is_diag_kernel(const Safetensors& sd, const std::string& prefix) {
  return sd.contains(prefix + "inv_dt");
}

// Sizes shared by the SSMKernelDiag and SSMKernelDPLR layouts: H from inv_dt (H, 1), the copies S and
// N from A_real (S, N/2), the kernel channels from C (channels, H, N/2, 2).
template <class Config>
void ref_kernel_sizes(const Safetensors& sd, const std::string& prefix, Config& c) {
  c.H = ref_extent(sd, prefix + "inv_dt", 2, 0, "(H, 1)");
  c.n_ssm = ref_extent(sd, prefix + "A_real", 2, 0, "(S, N/2)");
  c.N = 2 * ref_extent(sd, prefix + "A_real", 2, 1, "(S, N/2)");
  c.channels = ref_extent(sd, prefix + "C", 4, 0, "(channels, H, N/2, 2)");
  LONGSEQ_CHECK(c.channels == 1 || c.channels == 2, "reference tensor '", prefix, "C' has ", c.channels,
                " channels, expected 1 or 2");
  LONGSEQ_CHECK(c.H % c.n_ssm == 0, "reference tensor '", prefix, "A_real' has S = ", c.n_ssm,
                " copies, which must divide H = ", c.H);
}

}  // namespace detail

// ---- S4D kernels -------------------------------------------------------------------------------------
// Two reference layouts load into ssm::S4D<T, ZOH>:
//  * S4DKernel (models/s4/s4d.py): log_dt (H), C (H, N/2, 2), log_A_real (H, N/2), A_imag (H, N/2);
//    A = -exp(log_A_real) + i A_imag, B = 1. Maps one to one (channels 1, n_ssm = H, B set to 1).
//  * SSMKernelDiag (src/models/sequence/kernels/ssm.py, defaults: dt_transform and real_transform exp,
//    imag_transform none, dt tied, ZOH): inv_dt (H, 1), A_real (S, N/2), A_imag (S, N/2), B (1, S, N/2, 2),
//    C (channels, H, N/2, 2); A = -exp(A_real) - i A_imag. Loaded as log_dt = inv_dt[:, 0],
//    log_A_real = A_real, A_imag = -A_imag, B = B[0], n_ssm = S.
// The layout is chosen by the presence of `inv_dt`.

inline std::vector<std::string> s4d_kernel_names(const Safetensors& sd, const std::string& prefix = "") {
  if (detail::ref_is_diag_kernel(sd, prefix))
    return {prefix + "inv_dt", prefix + "A_real", prefix + "A_imag", prefix + "B", prefix + "C"};
  return {prefix + "log_dt", prefix + "C", prefix + "log_A_real", prefix + "A_imag"};
}

template <class T>
typename ssm::S4D<T, ssm::ZOH>::Config s4d_kernel_config(const Safetensors& sd, const std::string& prefix = "") {
  typename ssm::S4D<T, ssm::ZOH>::Config c;
  if (detail::ref_is_diag_kernel(sd, prefix)) {
    detail::ref_kernel_sizes(sd, prefix, c);
  } else {
    c.H = detail::ref_extent(sd, prefix + "log_dt", 1, 0, "(H)");
    c.N = 2 * detail::ref_extent(sd, prefix + "log_A_real", 2, 1, "(H, N/2)");
    c.channels = 1;
    c.n_ssm = c.H;
  }
  return c;
}

// Fills a bound S4D<T, ZOH> built from s4d_kernel_config (shapes checked, names of both layouts).
template <class T>
void load_s4d_kernel(const Safetensors& sd, ssm::S4D<T, ssm::ZOH>& k, const std::string& prefix = "") {
  using detail::RefDims;
  const index_t H = k.cfg.H, M = k.M, S = k.S, Cn = k.cfg.channels;
  if (detail::ref_is_diag_kernel(sd, prefix)) {
    auto inv_dt = detail::ref_get<T>(sd, prefix + "inv_dt", RefDims{{"H", H}, {"", 1}});
    auto are = detail::ref_get<T>(sd, prefix + "A_real", RefDims{{"S", S}, {"N/2", M}});
    auto aim = detail::ref_get<T>(sd, prefix + "A_imag", RefDims{{"S", S}, {"N/2", M}});
    auto B = detail::ref_get<T>(sd, prefix + "B", RefDims{{"", 1}, {"S", S}, {"N/2", M}, {"", 2}});
    auto C = detail::ref_get<T>(sd, prefix + "C", RefDims{{"channels", Cn}, {"H", H}, {"N/2", M}, {"", 2}});
    detail::ref_copy(k.log_dt.value, inv_dt);
    detail::ref_copy(k.log_A_real.value, are);
    for (index_t i = 0; i < aim.numel(); ++i) k.A_imag.value.data[i] = -aim[i];
    detail::ref_copy(k.B.value, B);
    detail::ref_copy(k.C.value, C);
    return;
  }
  auto log_dt = detail::ref_get<T>(sd, prefix + "log_dt", RefDims{{"H", H}});
  auto C = detail::ref_get<T>(sd, prefix + "C", RefDims{{"H", H}, {"N/2", M}, {"", 2}});
  auto are = detail::ref_get<T>(sd, prefix + "log_A_real", RefDims{{"H", H}, {"N/2", M}});
  auto aim = detail::ref_get<T>(sd, prefix + "A_imag", RefDims{{"H", H}, {"N/2", M}});
  detail::ref_copy(k.log_dt.value, log_dt);
  detail::ref_copy(k.C.value, C);
  detail::ref_copy(k.log_A_real.value, are);
  detail::ref_copy(k.A_imag.value, aim);
  for (index_t i = 0; i < S * M; ++i) {
    k.B.value.data[2 * i] = T(1);
    k.B.value.data[2 * i + 1] = T(0);
  }
}

// ---- The S4D block -----------------------------------------------------------------------------------
// State_dict of S4D(d_model=H, d_state=N): D (H), kernel.* (S4DKernel layout above),
// output_linear.0.weight (2H, H, 1) -> out.weight (2H, H), output_linear.0.bias (2H) -> out.bias.

inline std::vector<std::string> s4d_block_names(const std::string& prefix = "") {
  return {prefix + "D",
          prefix + "kernel.log_dt",
          prefix + "kernel.C",
          prefix + "kernel.log_A_real",
          prefix + "kernel.A_imag",
          prefix + "output_linear.0.weight",
          prefix + "output_linear.0.bias"};
}

template <class T>
typename ReferenceS4DBlock<T>::Config s4d_block_config(const Safetensors& sd, const std::string& prefix = "") {
  LONGSEQ_CHECK(!detail::ref_is_diag_kernel(sd, prefix + "kernel."), "reference tensor '", prefix,
                "kernel.inv_dt' belongs to SSMKernelDiag; the S4D block's kernel has 'kernel.log_dt' (H)");
  typename ReferenceS4DBlock<T>::Config c;
  c.kernel = s4d_kernel_config<T>(sd, prefix + "kernel.");
  c.dropout = 0.0;
  c.gelu = ops::Gelu::exact;
  return c;
}

template <class T>
void load_s4d_block(const Safetensors& sd, ReferenceS4DBlock<T>& layer, const std::string& prefix = "") {
  using detail::RefDims;
  const index_t H = layer.width();
  auto D = detail::ref_get<T>(sd, prefix + "D", RefDims{{"H", H}});
  auto w = detail::ref_get<T>(sd, prefix + "output_linear.0.weight", RefDims{{"2H", 2 * H}, {"H", H}, {"", 1}});
  auto b = detail::ref_get<T>(sd, prefix + "output_linear.0.bias", RefDims{{"2H", 2 * H}});
  load_s4d_kernel<T>(sd, layer.kernel, prefix + "kernel.");
  detail::ref_copy(layer.D.value, D);
  detail::ref_copy(layer.out.weight.value, w);
  detail::ref_copy(layer.out.bias.value, b);
}

// ---- The S4 (DPLR) kernel ----------------------------------------------------------------------------
// State_dict of SSMKernelDPLR with its defaults (rank 1, dt tied, exp transforms of inv_dt and A_real,
// imag_transform none, bilinear): inv_dt (H, 1), A_real (S, N/2), A_imag (S, N/2), B (1, S, N/2, 2),
// P (1, S, N/2, 2), C (channels, H, N/2, 2), l_kernel (): A = diag(-exp(A_real) - i A_imag) - P P^*.
// Loaded into ssm::S4<T> as log_dt = inv_dt[:, 0], log_A_real = A_real, A_imag = -A_imag, B = B[0],
// P = P[0]. The stored C is C~ = C (I - dA^l_kernel), the form ssm::S4 keeps, so it is copied as is with
// l_max = l_kernel. When l_kernel is 0 (never run) C is prepared for the requested length; when a longer
// length is requested, the prepared length is doubled as the reference does (C~ <- C~ (I + dA^l_kernel)).

inline std::vector<std::string> s4_kernel_names(const std::string& prefix = "") {
  return {prefix + "inv_dt", prefix + "A_real", prefix + "A_imag", prefix + "B",
          prefix + "P",      prefix + "C",      prefix + "l_kernel"};
}

inline index_t s4_stored_length(const Safetensors& sd, const std::string& prefix = "") {
  const TensorRecord& r = detail::ref_record(sd, prefix + "l_kernel", {});
  LONGSEQ_CHECK(r.dtype == DType::i64 || r.dtype == DType::i32, "reference tensor '", prefix,
                "l_kernel' has dtype ", dtype_name(r.dtype), ", expected an integer");
  const double v = sd.get<double>(prefix + "l_kernel")[0];
  LONGSEQ_CHECK(v >= 0, "reference tensor '", prefix, "l_kernel' is ", v, ", expected >= 0");
  return index_t(v);
}

// The length C~ ends up prepared for when a kernel of `length` is asked of a state_dict with l_kernel.
inline index_t s4_prepared_length(index_t l_kernel, index_t length) {
  if (l_kernel == 0) {
    LONGSEQ_CHECK(length >= 1, "reference tensor 'l_kernel' is 0 (C not prepared yet): give the kernel length");
    return length;
  }
  index_t L = l_kernel;
  while (L < length) L *= 2;
  return L;
}

template <class T>
typename ssm::S4<T>::Config s4_kernel_config(const Safetensors& sd, index_t length = 0, const std::string& prefix = "") {
  typename ssm::S4<T>::Config c;
  detail::ref_kernel_sizes(sd, prefix, c);
  const index_t rank = detail::ref_extent(sd, prefix + "P", 4, 0, "(rank=1, S, N/2, 2)");
  LONGSEQ_CHECK(rank == 1, "reference tensor '", prefix, "P' has rank ", rank,
                ", expected rank 1 (ssm::S4 represents A = Lambda - P P^* with one P)");
  c.l_max = s4_prepared_length(s4_stored_length(sd, prefix), length);
  return c;
}

// Fills a bound S4<T> built from s4_kernel_config(sd, length) and prepares C for cfg.l_max.
template <class T>
void load_s4_kernel(const Safetensors& sd, ssm::S4<T>& k, const std::string& prefix = "") {
  using detail::RefDims;
  const index_t H = k.cfg.H, M = k.M, S = k.S, Cn = k.cfg.channels;
  auto inv_dt = detail::ref_get<T>(sd, prefix + "inv_dt", RefDims{{"H", H}, {"", 1}});
  auto are = detail::ref_get<T>(sd, prefix + "A_real", RefDims{{"S", S}, {"N/2", M}});
  auto aim = detail::ref_get<T>(sd, prefix + "A_imag", RefDims{{"S", S}, {"N/2", M}});
  auto B = detail::ref_get<T>(sd, prefix + "B", RefDims{{"", 1}, {"S", S}, {"N/2", M}, {"", 2}});
  auto P = detail::ref_get<T>(sd, prefix + "P", RefDims{{"rank", 1}, {"S", S}, {"N/2", M}, {"", 2}});
  auto C = detail::ref_get<T>(sd, prefix + "C", RefDims{{"channels", Cn}, {"H", H}, {"N/2", M}, {"", 2}});
  detail::ref_copy(k.log_dt.value, inv_dt);
  detail::ref_copy(k.log_A_real.value, are);
  for (index_t i = 0; i < aim.numel(); ++i) k.A_imag.value.data[i] = -aim[i];
  detail::ref_copy(k.B.value, B);
  detail::ref_copy(k.P.value, P);
  detail::ref_copy(k.C.value, C);
  index_t L = s4_stored_length(sd, prefix);
  if (L == 0) {
    k.correct_C(k.cfg.l_max);
    return;
  }
  LONGSEQ_CHECK(k.cfg.l_max == s4_prepared_length(L, k.cfg.l_max), "load_s4_kernel: l_max = ", k.cfg.l_max,
                " is not l_kernel = ", L, " times a power of two");
  // Doubling: C~ (I + dA^L) = 2 C~ - C~ (I - dA^L), the second term being what correct_C(L) leaves.
  for (; L < k.cfg.l_max; L *= 2) {
    std::vector<T> before(k.C.value.data, k.C.value.data + k.C.value.numel());
    k.correct_C(L);
    for (std::size_t i = 0; i < before.size(); ++i) k.C.value.data[i] = T(2) * before[i] - k.C.value.data[i];
  }
}

// ---- Evaluation (examples/ssm_eval) ------------------------------------------------------------------

namespace detail {

template <class T>
void put_view(Safetensors& out, const std::string& name, const T* p, Shape s) {
  out.put<T>(name, TensorView<const T>(p, s));
}

template <class T>
Safetensors eval_s4d_block(const Safetensors& in, const ReferenceOptions& o) {
  std::vector<std::string> names = s4d_block_names();
  names.push_back("u");
  names.push_back("dy");
  ref_check_names(in, names, "s4d-block");
  auto cfg = s4d_block_config<T>(in);
  const index_t H = cfg.kernel.H, M = cfg.kernel.N / 2;
  ref_check_state(o, M, "kernel.log_A_real");
  const index_t B = ref_extent(in, "u", 3, 0, "(B, H, L)"), L = ref_extent(in, "u", 3, 2, "(B, H, L)");
  LONGSEQ_CHECK(o.length == 0 || o.length == L, "--length ", o.length, " disagrees with tensor 'u' of shape (B=", B,
                ", H=", H, ", L=", L, ")");
  auto u = ref_get<T>(in, "u", RefDims{{"B", B}, {"H", H}, {"L", L}});
  auto dy = ref_get<T>(in, "dy", RefDims{{"B", B}, {"H", H}, {"L", L}});

  ReferenceS4DBlock<T> layer(cfg);
  ParamStore<T> store;
  store.bind(layer);
  load_s4d_block<T>(in, layer);

  Context<device::host> ctx;
  ctx.training = false;
  // The reference works channel-first (B, H, L); longseq layers take (B, L, H).
  auto to_blh = [&](const Tensor<T>& a) {
    Tensor<T> r(Shape{B, L, H});
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < H; ++h)
        for (index_t l = 0; l < L; ++l) r(b, l, h) = a(b, h, l);
    return r;
  };
  auto to_bhl = [&](const Tensor<T>& a) {
    Tensor<T> r(Shape{B, H, L});
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < H; ++h)
        for (index_t l = 0; l < L; ++l) r(b, h, l) = a(b, l, h);
    return r;
  };
  Tensor<T> x = to_blh(u), y(Shape{B, L, H}), dyl = to_blh(dy), dx(Shape{B, L, H});
  typename ReferenceS4DBlock<T>::Saved saved;
  layer.forward(ctx, x.view(), y.view(), saved);
  layer.backward(ctx, saved, dyl.view(), dx.view());

  Safetensors out;
  out.put<T>("k", saved.K.view());
  out.put<T>("y", to_bhl(y).view());
  out.put<T>("du", to_bhl(dx).view());
  auto& k = layer.kernel;
  put_view(out, "grad.D", layer.D.grad.data, Shape{H});
  put_view(out, "grad.kernel.log_dt", k.log_dt.grad.data, Shape{H});
  put_view(out, "grad.kernel.C", k.C.grad.data, Shape{H, M, 2});
  put_view(out, "grad.kernel.log_A_real", k.log_A_real.grad.data, Shape{H, M});
  put_view(out, "grad.kernel.A_imag", k.A_imag.grad.data, Shape{H, M});
  put_view(out, "grad.output_linear.0.weight", layer.out.weight.grad.data, Shape{2 * H, H, 1});
  put_view(out, "grad.output_linear.0.bias", layer.out.bias.grad.data, Shape{2 * H});
  return out;
}

template <class T>
Safetensors eval_s4d_kernel(const Safetensors& in, const ReferenceOptions& o) {
  ref_check_names(in, s4d_kernel_names(in), "s4d-kernel");
  LONGSEQ_CHECK(o.length >= 1, "s4d-kernel needs the kernel length (--length L)");
  auto cfg = s4d_kernel_config<T>(in);
  ref_check_state(o, cfg.N / 2, ref_is_diag_kernel(in, "") ? "A_real" : "log_A_real");
  ssm::S4D<T, ssm::ZOH> k(cfg);
  ParamStore<T> store;
  store.bind(k);
  load_s4d_kernel<T>(in, k);
  Context<device::host> ctx;
  Tensor<T> K(Shape{cfg.channels, cfg.H, o.length});
  typename ssm::S4D<T, ssm::ZOH>::Saved saved;
  k.kernel_forward(ctx, o.length, K.view(), saved);
  Safetensors out;
  out.put<T>("k", K.view());
  return out;
}

template <class T>
Safetensors eval_s4_kernel(const Safetensors& in, const ReferenceOptions& o) {
  ref_check_names(in, s4_kernel_names(), "s4-kernel");
  auto cfg = s4_kernel_config<T>(in, o.length);
  ref_check_state(o, cfg.N / 2, "A_real");
  const index_t L = o.length > 0 ? o.length : cfg.l_max;
  ssm::S4<T> k(cfg);
  ParamStore<T> store;
  store.bind(k);
  load_s4_kernel<T>(in, k);
  Context<device::host> ctx;
  Tensor<T> K(Shape{cfg.channels, cfg.H, L});
  typename ssm::S4<T>::Saved saved;
  k.kernel_forward(ctx, L, K.view(), saved);
  Safetensors out;
  out.put<T>("k", K.view());
  return out;
}

inline Safetensors eval_hippo_legs(const Safetensors& in, const ReferenceOptions& o) {
  ref_check_names(in, {}, "hippo-legs");
  LONGSEQ_CHECK(o.state >= 2 && o.state % 2 == 0, "hippo-legs needs an even state size (--state N), got ", o.state);
  const index_t N = o.state, M = N / 2;
  const auto t = ssm::hippo::transition(ssm::hippo::Measure::legs, N);
  const auto& h = ssm::hippo::nplr(ssm::hippo::Measure::legs, N);
  Safetensors out;
  put_view(out, "A", t.A.data(), Shape{N, N});
  put_view(out, "B", t.B.data(), Shape{N});
  put_view(out, "w", reinterpret_cast<const double*>(h.w.data()), Shape{M, 2});
  put_view(out, "P", reinterpret_cast<const double*>(h.P.data()), Shape{h.rank, M, 2});
  put_view(out, "B_nplr", reinterpret_cast<const double*>(h.B.data()), Shape{M, 2});
  return out;
}

// The computation dtype: that of `name` (float64 or float32).
inline DType ref_compute_dtype(const Safetensors& in, const std::string& name, std::string_view layout) {
  const TensorRecord* r = in.find(name);
  LONGSEQ_CHECK(r != nullptr, "reference tensor '", name, "' is missing (expected shape ", layout, ")");
  LONGSEQ_CHECK(r->dtype == DType::f64 || r->dtype == DType::f32, "reference tensor '", name, "' has dtype ",
                dtype_name(r->dtype), ", expected float64 or float32");
  return r->dtype;
}

}  // namespace detail

// Evaluates a reference layer from its state_dict (and inputs) as ssm_eval does. Outputs, in the dtype of
// the inputs: k (channels, H, L); for the block also y and du (B, H, L) and grad.<name> of every reference
// parameter, in the reference's layout (gradients of sum(y * dy)); for hippo-legs A, B, w, P, B_nplr (float64).
inline Safetensors eval_reference_s4(const Safetensors& in, ReferenceLayer layer, const ReferenceOptions& o = {}) {
  switch (layer) {
    case ReferenceLayer::s4d_block:
      if (detail::ref_compute_dtype(in, "u", "(B, H, L)") == DType::f64) return detail::eval_s4d_block<double>(in, o);
      return detail::eval_s4d_block<float>(in, o);
    case ReferenceLayer::s4d_kernel:
      if (detail::ref_compute_dtype(in, "C", detail::ref_is_diag_kernel(in, "") ? "(channels, H, N/2, 2)"
                                                                                  : "(H, N/2, 2)") == DType::f64)
        return detail::eval_s4d_kernel<double>(in, o);
      return detail::eval_s4d_kernel<float>(in, o);
    case ReferenceLayer::s4_kernel:
      if (detail::ref_compute_dtype(in, "C", "(channels, H, N/2, 2)") == DType::f64)
        return detail::eval_s4_kernel<double>(in, o);
      return detail::eval_s4_kernel<float>(in, o);
    case ReferenceLayer::hippo_legs:
      return detail::eval_hippo_legs(in, o);
  }
  LONGSEQ_FAIL("unknown reference layer");
}

}  // namespace longseq::interop
