// models::Inputs: what a batch feeds a model's encoder (token ids or continuous values, and the valid
// lengths of right-padded sequences), as views in the memory of the model's device policy D.
#pragma once
#include <cstdint>

#include "../core/tensor.hpp"

namespace longseq::models {

template <class T, class D = device::host>
struct Inputs {
  TensorView<const std::int32_t, D> ids;      // (B, L) for token encoders
  TensorView<const T, D> values;              // (B, L, C) for linear encoders
  TensorView<const std::int32_t, D> lengths;  // (B) valid lengths; empty: all L
  index_t batch() const { return lead(0); }
  index_t length() const { return lead(1); }

 private:
  index_t lead(int d) const {
    LONGSEQ_CHECK(ids.data || values.data, "Inputs: the batch has neither token ids nor values");
    const Shape& s = ids.data ? ids.shape : values.shape;
    LONGSEQ_CHECK(s.rank >= 2, "Inputs: tensor '", ids.data ? "ids" : "values", "' has shape ", s,
                  ", expected (B, L", ids.data ? ")" : ", C)");
    return s.dims[d];
  }
};

}  // namespace longseq::models
