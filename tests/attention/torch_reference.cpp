#include <doctest/doctest.h>

#include <longseq/attention/flash.hpp>
#include <longseq/attention/rotary.hpp>
#include <longseq/interop/torch_encoder.hpp>
#include <string>

using namespace longseq;

namespace {
std::string fixture(const std::string& name) {
  std::string here = __FILE__;
  return here.substr(0, here.find_last_of('/')) + "/fixtures/" + name;
}

double max_rel_err(const Tensor<double>& a, const Tensor<double>& b) {
  REQUIRE(a.shape() == b.shape());
  double scale = 1e-30, err = 0;
  for (index_t i = 0; i < a.numel(); ++i) scale = std::max(scale, std::abs(b[i]));
  for (index_t i = 0; i < a.numel(); ++i) err = std::max(err, std::abs(a[i] - b[i]));
  return err / scale;
}

interop::TorchEncoderOptions options_of(const interop::Safetensors& st) {
  interop::TorchEncoderOptions o;
  o.heads = std::stoi(st.metadata.at("heads"));
  o.norm_first = st.metadata.at("norm_first") == "1";
  o.causal = st.metadata.at("causal") == "1";
  o.activation = st.metadata.at("activation") == "gelu" ? nn::Activation::gelu : nn::Activation::relu;
  return o;
}
}  // namespace

TEST_CASE("torch.nn.TransformerEncoderLayer fixtures are reproduced (y, dx, every parameter gradient)") {
  for (const char* name : {"encoder_post_relu_f64.safetensors", "encoder_pre_gelu_pad_f64.safetensors",
                           "encoder_post_gelu_causal_pad_f64.safetensors", "encoder_pre_relu_causal_f32.safetensors"}) {
    CAPTURE(name);
    const auto in = interop::Safetensors::load(fixture(name));
    const bool f32 = in.record("x").dtype == DType::f32;
    const double tol = f32 ? 2e-5 : 1e-11;
    const auto out = interop::eval_torch_encoder_layer(in, options_of(in));
    CHECK(out.record("y").dtype == in.record("x").dtype);
    int compared = 0;
    for (const auto& r : in.tensors) {
      if (r.name.rfind("expected.", 0) != 0) continue;
      const std::string ours = r.name.substr(9);
      CAPTURE(ours);
      REQUIRE(out.contains(ours));
      CHECK(max_rel_err(out.get<double>(ours), in.get<double>(r.name)) < tol);
      ++compared;
    }
    CHECK(compared == 14);  // y, dx and 12 parameter gradients
  }
}

TEST_CASE("flash kernel agrees with torch scaled_dot_product_attention and a rotary reference") {
  const auto st = interop::Safetensors::load(fixture("sdpa_f64.safetensors"));
  const auto q = st.get<double>("q"), k = st.get<double>("k"), v = st.get<double>("v"), dout = st.get<double>("do");
  const index_t B = q.size(0), H = q.size(1), L = q.size(2), dh = q.size(3);
  HostContext ctx;
  // (B, H, L, dh) is a batch of B * H single-head problems with rows of dh.
  attention::FlashArgs<double> a;
  a.batch = B * H;
  a.heads = 1;
  a.len_q = a.len_k = L;
  a.head_dim = dh;
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.q_batch = a.k_batch = a.v_batch = L * dh;
  a.q_row = a.k_row = a.v_row = dh;
  a.scale = 1.0 / std::sqrt(double(dh));
  a.block_q = 4;
  a.block_k = 3;
  for (bool causal : {false, true}) {
    const std::string tag = causal ? "causal." : "full.";
    a.mask.causal = causal;
    Tensor<double> o(q.shape()), lse(Shape{B * H, L}), dq(q.shape()), dk(q.shape()), dv(q.shape());
    attention::flash_forward(ctx, a, o.data(), L * dh, dh, lse.data());
    attention::flash_backward(ctx, a, o.data(), L * dh, dh, lse.data(), dout.data(), dq.data(), dk.data(), dv.data());
    CHECK(max_rel_err(o, st.get<double>(tag + "o")) < 1e-13);
    CHECK(max_rel_err(dq, st.get<double>(tag + "dq")) < 1e-12);
    CHECK(max_rel_err(dk, st.get<double>(tag + "dk")) < 1e-12);
    CHECK(max_rel_err(dv, st.get<double>(tag + "dv")) < 1e-12);
  }
  attention::Rotary rot({.fraction = 1.0, .base = 10000.0}, dh);
  Tensor<double> qr(q.shape()), kr(k.shape());
  std::copy(q.data(), q.data() + q.numel(), qr.data());
  std::copy(k.data(), k.data() + k.numel(), kr.data());
  rot.apply(qr.data(), B * H, L, 1, 0, dh);
  rot.apply(kr.data(), B * H, L, 1, 0, dh);
  CHECK(max_rel_err(qr, st.get<double>("rotary.q")) < 1e-14);
  CHECK(max_rel_err(kr, st.get<double>("rotary.k")) < 1e-14);
  a.q = qr.data();
  a.k = kr.data();
  a.mask.causal = true;
  Tensor<double> o(q.shape()), lse(Shape{B * H, L});
  attention::flash_forward(ctx, a, o.data(), L * dh, dh, lse.data());
  CHECK(max_rel_err(o, st.get<double>("rotary.o")) < 1e-13);
}

TEST_CASE("encoder import names the tensor and shape that is wrong") {
  auto in = interop::Safetensors::load(fixture("encoder_post_relu_f64.safetensors"));
  const auto o = options_of(in);
  {
    auto bad = in;
    Tensor<double> w(Shape{24, 7}, 0.0);
    bad.put<double>("self_attn.in_proj_weight", w.view());
    CHECK_THROWS_WITH_AS(interop::eval_torch_encoder_layer(bad, o),
                         doctest::Contains("tensor 'self_attn.in_proj_weight' has shape (24, 7), expected (24, 8)"),
                         Error);
  }
  {
    auto bad = in;
    std::erase_if(bad.tensors, [](const auto& r) { return r.name == "norm2.bias"; });
    CHECK_THROWS_WITH_AS(interop::eval_torch_encoder_layer(bad, o),
                         doctest::Contains("input has no tensor 'norm2.bias' (expected shape (8))"), Error);
  }
  {
    auto bad = in;
    Tensor<double> dy(Shape{2, 5, 4}, 0.0);
    bad.put<double>("dy", dy.view());
    CHECK_THROWS_WITH_AS(interop::eval_torch_encoder_layer(bad, o),
                         doctest::Contains("tensor 'dy' has shape (2, 5, 4), expected (2, 5, 8)"), Error);
  }
  auto o3 = o;
  o3.heads = 3;
  CHECK_THROWS_WITH_AS(interop::eval_torch_encoder_layer(in, o3),
                       doctest::Contains("--heads 3 must divide the model width 8"), Error);
  {
    auto bad = in;
    Tensor<std::int32_t> xi(Shape{2, 5, 8});
    bad.put<std::int32_t>("x", xi.view());
    CHECK_THROWS_WITH_AS(interop::eval_torch_encoder_layer(bad, o), doctest::Contains("tensor 'x' has dtype"), Error);
  }
}
