// ssm_eval: evaluates parameters saved by the reference PyTorch S4 code (state-spaces/s4) with longseq, so
// that a ported checkpoint can be checked against the reference.
//
//   ssm_eval --layer s4d-block|s4d-kernel|s4-kernel|hippo-legs --in IN.safetensors --out OUT.safetensors
//            [--length L] [--state N]
//
// IN holds the reference tensors under their state_dict names (complex tensors with a trailing dimension of
// 2): the S4D block (D, kernel.log_dt, kernel.C, kernel.log_A_real, kernel.A_imag, output_linear.0.weight,
// output_linear.0.bias) plus the input u (B, H, L) and a cotangent dy (B, H, L); an S4DKernel or
// SSMKernelDiag state_dict for s4d-kernel (needs --length); an SSMKernelDPLR state_dict (with its l_kernel
// buffer) for s4-kernel; nothing for hippo-legs (needs --state).
// OUT gets k (channels, H, L); for s4d-block also y, du (B, H, L) and grad.<name> for every parameter
// (gradients of sum(y * dy)); for hippo-legs A, B and the NPLR w, P, B_nplr. Computation runs in the dtype
// of the inputs (float64 or float32). Names, shapes and the mapping: docs/interop.md.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include <longseq/interop/reference_s4.hpp>

int main(int argc, char** argv) {
  CLI::App app{"Evaluate reference (state-spaces/s4) S4/S4D parameters with longseq: kernels, outputs, gradients"};
  std::string layer, in_path, out_path;
  longseq::interop::ReferenceOptions opt;
  app.add_option("--layer", layer, "reference layer")
      ->required()
      ->check(CLI::IsMember({"s4d-block", "s4d-kernel", "s4-kernel", "hippo-legs"}));
  app.add_option("--in", in_path, "input safetensors (reference state_dict names; u and dy for s4d-block)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--out", out_path, "output safetensors (k; y, du, grad.<name>; or the HiPPO matrices)")->required();
  app.add_option("--length", opt.length, "kernel length L (default: from u, or the l_kernel buffer)")
      ->check(CLI::PositiveNumber);
  app.add_option("--state", opt.state, "state size N (default: from the parameter shapes)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    const auto in = longseq::interop::Safetensors::load(in_path);
    const auto out = longseq::interop::eval_reference_s4(in, longseq::interop::reference_layer(layer), opt);
    out.save(out_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssm_eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
