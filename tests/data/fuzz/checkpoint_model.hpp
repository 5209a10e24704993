// The model whose checkpoints the checkpoint harness loads (and make_seeds writes): two parameter
// slots in two groups, enough to reach every branch of train::load_checkpoint.
#pragma once
#include <longseq/core/parameters.hpp>

namespace longseq::fuzz {

struct CheckpointModel {
  Param<float> weight{Shape{2, 3}};
  Param<float> bias{Shape{3}, ParamGroup::no_decay};
  template <class F>
  void parameters(F&& f) {
    f("weight", weight);
    f("bias", bias);
  }
};

}  // namespace longseq::fuzz
