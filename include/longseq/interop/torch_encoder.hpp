// Import of torch.nn.TransformerEncoderLayer parameters by their state_dict names, and the evaluation
// behind examples/attn_eval: y, dx and parameter gradients of sum(y * dy), written back under the
// same names. Padded positions (key_padding_mask = 1) are never attended to as keys, but their own
// outputs are computed like any other query, as in PyTorch's non-fused path; a sequence that is
// entirely padding has zero attention output (PyTorch gives NaN there).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "safetensors.hpp"
#include "../attention/encoder_layer.hpp"

namespace longseq::interop {

struct TorchEncoderOptions {
  index_t heads = 1;
  bool norm_first = false;
  nn::Activation activation = nn::Activation::relu;
  bool causal = false;
  double eps = 1e-5;
};

namespace detail {

// A torch tensor name and the longseq parameter holding rows [row0, row0 + rows) of it.
template <class T>
struct TorchSlot {
  std::string torch_name;
  Param<T>* param;
  index_t row0, torch_rows;
};

template <class T, bool NormFirst>
std::vector<TorchSlot<T>> torch_slots(attention::TransformerEncoderLayer<T, NormFirst>& layer) {
  auto& a = layer.attn.mixer;
  const index_t D = layer.cfg.dim;
  return {{"self_attn.in_proj_weight", &a.q_proj.weight, 0, 3 * D},
          {"self_attn.in_proj_weight", &a.k_proj.weight, D, 3 * D},
          {"self_attn.in_proj_weight", &a.v_proj.weight, 2 * D, 3 * D},
          {"self_attn.in_proj_bias", &a.q_proj.bias, 0, 3 * D},
          {"self_attn.in_proj_bias", &a.k_proj.bias, D, 3 * D},
          {"self_attn.in_proj_bias", &a.v_proj.bias, 2 * D, 3 * D},
          {"self_attn.out_proj.weight", &a.out_proj.weight, 0, D},
          {"self_attn.out_proj.bias", &a.out_proj.bias, 0, D},
          {"linear1.weight", &layer.ff.mixer.linear1.weight, 0, layer.cfg.ff_hidden},
          {"linear1.bias", &layer.ff.mixer.linear1.bias, 0, layer.cfg.ff_hidden},
          {"linear2.weight", &layer.ff.mixer.linear2.weight, 0, D},
          {"linear2.bias", &layer.ff.mixer.linear2.bias, 0, D},
          {"norm1.weight", &layer.attn.norm.weight, 0, D},
          {"norm1.bias", &layer.attn.norm.bias, 0, D},
          {"norm2.weight", &layer.ff.norm.weight, 0, D},
          {"norm2.bias", &layer.ff.norm.bias, 0, D}};
}

inline Shape torch_shape(const Shape& ours, index_t torch_rows) {
  Shape s = ours;
  s[0] = torch_rows;
  return s;
}

template <class T>
Tensor<T> fetch(const Safetensors& st, const std::string& name, const Shape& want) {
  LONGSEQ_CHECK(st.contains(name), "input has no tensor '", name, "' (expected shape ", want, ")");
  Tensor<T> t = st.get<T>(name);
  LONGSEQ_CHECK(t.shape() == want, "tensor '", name, "' has shape ", t.shape(), ", expected ", want);
  return t;
}

template <class T, bool NormFirst>
Safetensors eval_torch_encoder(const Safetensors& in, const TorchEncoderOptions& o) {
  LONGSEQ_CHECK(in.contains("x"), "input has no tensor 'x' (expected shape (B, L, D))");
  Tensor<T> x = in.get<T>("x");
  LONGSEQ_CHECK(x.shape().rank == 3, "tensor 'x' has shape ", x.shape(), ", expected (B, L, D)");
  const index_t B = x.size(0), L = x.size(1), D = x.size(2);
  LONGSEQ_CHECK(o.heads > 0 && D % o.heads == 0, "--heads ", o.heads, " must divide the model width ", D,
                " of tensor 'x'");
  LONGSEQ_CHECK(in.contains("linear1.weight"), "input has no tensor 'linear1.weight' (expected shape (F, ", D, "))");
  const Shape w1 = in.record("linear1.weight").shape;
  LONGSEQ_CHECK(w1.rank == 2 && w1[1] == D && w1[0] > 0, "tensor 'linear1.weight' has shape ", w1, ", expected (F, ", D,
                ")");
  typename attention::TransformerEncoderLayer<T, NormFirst>::Config cfg;
  cfg.dim = D;
  cfg.heads = o.heads;
  cfg.ff_hidden = w1[0];
  cfg.activation = o.activation;
  cfg.causal = o.causal;
  cfg.eps = o.eps;
  attention::TransformerEncoderLayer<T, NormFirst> layer(cfg);
  ParamStore<T> store;
  store.bind(layer);
  const auto slots = torch_slots(layer);
  for (const auto& s : slots) {
    const Tensor<T> t = fetch<T>(in, s.torch_name, torch_shape(s.param->shape, s.torch_rows));
    const index_t row = s.param->shape.numel() / s.param->shape[0];
    std::copy(t.data() + s.row0 * row, t.data() + s.row0 * row + s.param->shape.numel(), s.param->value.data);
  }
  const Tensor<T> dy = fetch<T>(in, "dy", x.shape());
  Tensor<std::uint8_t> pad;
  if (in.contains("key_padding_mask")) {
    const Tensor<double> m = fetch<double>(in, "key_padding_mask", Shape{B, L});
    pad = Tensor<std::uint8_t>(Shape{B, L});
    for (index_t i = 0; i < B * L; ++i) pad[i] = m[i] != 0.0 ? 1 : 0;
    layer.set_key_padding(pad.view());
  }
  Context<device::host> ctx;
  Tensor<T> y(x.shape()), dx(x.shape());
  typename attention::TransformerEncoderLayer<T, NormFirst>::Saved saved;
  layer.forward(ctx, x.view(), y.view(), saved);
  layer.backward(ctx, saved, dy.view(), dx.view());

  Safetensors out;
  out.put<T>("y", y.view());
  out.put<T>("dx", dx.view());
  // Gradients are gathered back into PyTorch's layout (q, k, v stacked in in_proj_*).
  for (std::size_t i = 0; i < slots.size();) {
    const auto& first = slots[i];
    Tensor<T> g(torch_shape(first.param->shape, first.torch_rows));
    std::size_t j = i;
    for (; j < slots.size() && slots[j].torch_name == first.torch_name; ++j) {
      const auto& s = slots[j];
      const index_t row = s.param->shape.numel() / s.param->shape[0];
      std::copy(s.param->grad.data, s.param->grad.data + s.param->shape.numel(), g.data() + s.row0 * row);
    }
    out.put<T>("grad." + first.torch_name, g.view());
    i = j;
  }
  out.metadata["format"] = "pt";
  return out;
}

}  // namespace detail

// Runs in the dtype of `x` (float64 or float32).
inline Safetensors eval_torch_encoder_layer(const Safetensors& in, const TorchEncoderOptions& o) {
  LONGSEQ_CHECK(in.contains("x"), "input has no tensor 'x' (expected shape (B, L, D))");
  const DType dt = in.record("x").dtype;
  if (dt == DType::f64)
    return o.norm_first ? detail::eval_torch_encoder<double, true>(in, o)
                        : detail::eval_torch_encoder<double, false>(in, o);
  if (dt == DType::f32)
    return o.norm_first ? detail::eval_torch_encoder<float, true>(in, o)
                        : detail::eval_torch_encoder<float, false>(in, o);
  LONGSEQ_FAIL("tensor 'x' has dtype ", dtype_name(dt), ", expected float64 or float32");
}

}  // namespace longseq::interop
