// attn_eval: evaluates a torch.nn.TransformerEncoderLayer (saved by its state_dict names) with longseq
// and writes the output, the input gradient and every parameter gradient of sum(y * dy).
//
//   attn_eval --layer torch-encoder-layer --in IN.safetensors --out OUT.safetensors --heads H
//             [--norm-first] [--activation relu|gelu] [--causal]
//
// IN: self_attn.in_proj_weight/bias, self_attn.out_proj.*, linear1.*, linear2.*, norm1.*, norm2.*,
// x (B, L, D), dy (B, L, D), optionally key_padding_mask (B, L) integer with 1 = padding.
// OUT: y, dx, grad.<name> for each parameter, in the dtype of x (float64 or float32).
// Padded keys are never attended to; padded positions still get outputs (their queries attend to the
// unpadded keys), as in PyTorch. A sequence that is all padding gets zero attention output.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <longseq/interop/torch_encoder.hpp>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"Evaluate a PyTorch Transformer encoder layer with longseq (outputs and gradients)"};
  std::string layer, in_path, out_path, activation = "relu";
  longseq::interop::TorchEncoderOptions opt;
  app.add_option("--layer", layer, "layer kind")->required()->check(CLI::IsMember({"torch-encoder-layer"}));
  app.add_option("--in", in_path, "input safetensors (parameters, x, dy, optional key_padding_mask)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--out", out_path, "output safetensors (y, dx, grad.<name>)")->required();
  app.add_option("--heads", opt.heads, "number of attention heads")->required()->check(CLI::PositiveNumber);
  app.add_flag("--norm-first", opt.norm_first, "pre-norm layer (PyTorch norm_first=True)");
  app.add_option("--activation", activation, "feed-forward activation")->check(CLI::IsMember({"relu", "gelu"}));
  app.add_flag("--causal", opt.causal, "causal self-attention mask");
  CLI11_PARSE(app, argc, argv);
  opt.activation = activation == "gelu" ? longseq::nn::Activation::gelu : longseq::nn::Activation::relu;
  try {
    const auto in = longseq::interop::Safetensors::load(in_path);
    const auto out = longseq::interop::eval_torch_encoder_layer(in, opt);
    out.save(out_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attn_eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
