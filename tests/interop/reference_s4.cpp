// Reference S4/S4D import (interop/reference_s4.hpp, the core of examples/ssm_eval) against fixtures written
// by tests/fixtures/ssm/make_reference_fixtures.py from the state-spaces/s4 PyTorch code, plus bad inputs.
#include <doctest/doctest.h>

#include <cmath>
#include <complex>
#include <filesystem>
#include <longseq/interop/reference_s4.hpp>
#include <string>

using namespace longseq;
using namespace longseq::interop;

namespace {

std::string fixture(const std::string& name) {
  return (std::filesystem::path(__FILE__).parent_path() / ".." / "fixtures" / "ssm" / name).string();
}

// max |a - b| / max |b| over the tensor.
double rel_err(const Tensor<double>& a, const Tensor<double>& b) {
  double num = 0, den = 0;
  for (index_t i = 0; i < b.numel(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / den;
}

// Every tensor of the expected file is in `out`, with its shape, within `tol` (relative to its max).
void check_against(const Safetensors& out, const Safetensors& want, double tol) {
  CHECK(out.tensors.size() == want.tensors.size());
  for (const auto& r : want.tensors) {
    INFO("tensor ", r.name);
    REQUIRE(out.contains(r.name));
    REQUIRE(out.record(r.name).shape == r.shape);
    CHECK(rel_err(out.get<double>(r.name), want.get<double>(r.name)) <= tol);
  }
}

Safetensors run_case(const std::string& name, ReferenceLayer layer, ReferenceOptions o = {}) {
  return eval_reference_s4(Safetensors::load(fixture(name + ".in.safetensors")), layer, o);
}

Safetensors without(Safetensors s, const std::string& name) {
  std::erase_if(s.tensors, [&](const TensorRecord& r) { return r.name == name; });
  return s;
}

}  // namespace

TEST_CASE("reference import: S4D block outputs and gradients match the reference in float64") {
  const auto out = run_case("s4d_block", ReferenceLayer::s4d_block);
  CHECK(out.record("y").dtype == DType::f64);
  check_against(out, Safetensors::load(fixture("s4d_block.expected.safetensors")), 1e-9);
}

TEST_CASE("reference import: S4D block in float32 computes in float32") {
  const auto in64 = Safetensors::load(fixture("s4d_block.in.safetensors"));
  Safetensors in32;
  for (const auto& r : in64.tensors) in32.put<float>(r.name, in64.get<float>(r.name).view());
  const auto out = eval_reference_s4(in32, ReferenceLayer::s4d_block);
  CHECK(out.record("y").dtype == DType::f32);
  CHECK(out.record("grad.kernel.C").dtype == DType::f32);
  const auto want = Safetensors::load(fixture("s4d_block.expected.safetensors"));
  for (const char* n : {"k", "y", "du", "grad.kernel.log_dt", "grad.output_linear.0.weight"}) {
    INFO("tensor ", n);
    CHECK(rel_err(out.get<double>(n), want.get<double>(n)) <= 1e-4);
  }
}

TEST_CASE("reference import: S4D kernels (S4DKernel and SSMKernelDiag layouts) match the reference") {
  ReferenceOptions o;
  o.length = 16;
  check_against(run_case("s4d_kernel", ReferenceLayer::s4d_kernel, o),
                Safetensors::load(fixture("s4d_kernel.expected.safetensors")), 1e-9);
  check_against(run_case("s4d_kernel_diag", ReferenceLayer::s4d_kernel, o),
                Safetensors::load(fixture("s4d_kernel_diag.expected.safetensors")), 1e-9);
}

TEST_CASE("reference import: S4 DPLR kernel with prepared, unprepared and doubled C matches the reference") {
  check_against(run_case("s4_kernel", ReferenceLayer::s4_kernel),
                Safetensors::load(fixture("s4_kernel.expected.safetensors")), 1e-9);
  ReferenceOptions o;
  o.length = 16;
  check_against(run_case("s4_kernel_fresh", ReferenceLayer::s4_kernel, o),
                Safetensors::load(fixture("s4_kernel_fresh.expected.safetensors")), 1e-9);
  check_against(run_case("s4_kernel_double", ReferenceLayer::s4_kernel, o),
                Safetensors::load(fixture("s4_kernel_double.expected.safetensors")), 1e-9);
  // A shorter request reuses the prepared C and truncates, as the reference does.
  o.length = 5;
  const auto shorter = run_case("s4_kernel", ReferenceLayer::s4_kernel, o);
  const auto full = Safetensors::load(fixture("s4_kernel.expected.safetensors")).get<double>("k");
  const auto k5 = shorter.get<double>("k");
  REQUIRE(k5.shape() == Shape{1, 4, 5});
  for (index_t h = 0; h < 4; ++h)
    for (index_t l = 0; l < 5; ++l) CHECK(k5(0, h, l) == doctest::Approx(full(0, h, l)).epsilon(1e-12));
}

TEST_CASE("reference import: HiPPO-LegS matrices and NPLR form match the reference up to eigenvector phases") {
  ReferenceOptions o;
  o.state = 8;
  const auto out = run_case("hippo_legs", ReferenceLayer::hippo_legs, o);
  const auto want = Safetensors::load(fixture("hippo_legs.expected.safetensors"));
  for (const char* n : {"A", "B", "w"}) {
    INFO("tensor ", n);
    CHECK(rel_err(out.get<double>(n), want.get<double>(n)) <= 1e-9);
  }
  // Each eigenvector's phase is arbitrary (it rotates P_n and B_n together): compare |P_n|, |B_n| and
  // P_n conj(B_n), which do not depend on it.
  const auto P = out.get<double>("P"), B = out.get<double>("B_nplr");
  const auto Pw = want.get<double>("P"), Bw = want.get<double>("B_nplr");
  REQUIRE(P.shape() == Pw.shape());
  REQUIRE(B.shape() == Bw.shape());
  for (index_t n = 0; n < 4; ++n) {
    std::complex<double> p(P(0, n, 0), P(0, n, 1)), b(B(n, 0), B(n, 1));
    std::complex<double> pw(Pw(0, n, 0), Pw(0, n, 1)), bw(Bw(n, 0), Bw(n, 1));
    CHECK(std::abs(p) == doctest::Approx(std::abs(pw)).epsilon(1e-9));
    CHECK(std::abs(b) == doctest::Approx(std::abs(bw)).epsilon(1e-9));
    CHECK(std::abs(p * std::conj(b) - pw * std::conj(bw)) <= 1e-9 * std::abs(pw * std::conj(bw)));
  }
}

TEST_CASE("reference import: bad inputs name the tensor and the expected shape") {
  const auto block = Safetensors::load(fixture("s4d_block.in.safetensors"));
  CHECK_THROWS_WITH_AS(eval_reference_s4(without(block, "kernel.C"), ReferenceLayer::s4d_block),
                       doctest::Contains("reference tensor 'kernel.C' is missing (expected shape (H=4, N/2=4, 2))"),
                       Error);
  CHECK_THROWS_WITH_AS(eval_reference_s4(without(block, "D"), ReferenceLayer::s4d_block),
                       doctest::Contains("reference tensor 'D' is missing (expected shape (H=4))"), Error);
  CHECK_THROWS_WITH_AS(eval_reference_s4(without(block, "u"), ReferenceLayer::s4d_block),
                       doctest::Contains("reference tensor 'u' is missing (expected shape (B, H, L))"), Error);
  {
    Safetensors bad = block;
    Tensor<double> w(Shape{8, 4}, 0.0);
    bad.put<double>("output_linear.0.weight", w.view());
    CHECK_THROWS_WITH_AS(
        eval_reference_s4(bad, ReferenceLayer::s4d_block),
        doctest::Contains("reference tensor 'output_linear.0.weight' has shape (8, 4), expected (2H=8, H=4, 1)"),
        Error);
  }
  {
    Safetensors bad = block;
    Tensor<double> dy(Shape{2, 4, 15}, 0.0);
    bad.put<double>("dy", dy.view());
    CHECK_THROWS_WITH_AS(eval_reference_s4(bad, ReferenceLayer::s4d_block),
                         doctest::Contains("reference tensor 'dy' has shape (2, 4, 15), expected (B=2, H=4, L=16)"),
                         Error);
  }
  {
    Safetensors bad = block;
    Tensor<double> extra(Shape{4}, 0.0);
    bad.put<double>("kernel.B", extra.view());
    CHECK_THROWS_WITH_AS(eval_reference_s4(bad, ReferenceLayer::s4d_block),
                         doctest::Contains("unknown tensor 'kernel.B' in the s4d-block input"), Error);
  }
  ReferenceOptions o;
  o.state = 16;
  CHECK_THROWS_WITH_AS(eval_reference_s4(block, ReferenceLayer::s4d_block, o),
                       doctest::Contains("--state N = 16 disagrees with reference tensor 'kernel.log_A_real'"), Error);

  const auto s4 = Safetensors::load(fixture("s4_kernel.in.safetensors"));
  CHECK_THROWS_WITH_AS(eval_reference_s4(without(s4, "P"), ReferenceLayer::s4_kernel),
                       doctest::Contains("reference tensor 'P' is missing (expected shape (rank=1, S, N/2, 2))"),
                       Error);
  {
    Safetensors bad = s4;
    Tensor<double> P(Shape{2, 4, 4, 2}, 0.0);
    bad.put<double>("P", P.view());
    CHECK_THROWS_WITH_AS(eval_reference_s4(bad, ReferenceLayer::s4_kernel),
                         doctest::Contains("reference tensor 'P' has rank 2, expected rank 1"), Error);
  }
  {
    Safetensors bad = s4;
    Tensor<double> B(Shape{1, 4, 3, 2}, 0.0);
    bad.put<double>("B", B.view());
    CHECK_THROWS_WITH_AS(eval_reference_s4(bad, ReferenceLayer::s4_kernel),
                         doctest::Contains("reference tensor 'B' has shape (1, 4, 3, 2), expected (1, S=4, N/2=4, 2)"),
                         Error);
  }
  CHECK_THROWS_WITH_AS(eval_reference_s4(without(s4, "l_kernel"), ReferenceLayer::s4_kernel),
                       doctest::Contains("reference tensor 'l_kernel' is missing"), Error);
  const auto fresh = Safetensors::load(fixture("s4_kernel_fresh.in.safetensors"));
  CHECK_THROWS_WITH_AS(eval_reference_s4(fresh, ReferenceLayer::s4_kernel),
                       doctest::Contains("'l_kernel' is 0 (C not prepared yet): give the kernel length"), Error);
  CHECK_THROWS_WITH_AS(eval_reference_s4(Safetensors::load(fixture("s4d_kernel.in.safetensors")),
                                         ReferenceLayer::s4d_kernel),
                       doctest::Contains("s4d-kernel needs the kernel length (--length L)"), Error);
  CHECK_THROWS_WITH_AS(reference_layer("s5-kernel"), doctest::Contains("unknown reference layer 's5-kernel'"), Error);
}
