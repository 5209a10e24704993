// Recurrent (step-by-step) mode of unidirectional diagonal SSM layers (S4D, DSS, DLR): the discretized
// state update x_m <- z_m x_m + u, y = scale * Re sum_m coef_m x_m, and the full SSMConv step.
#pragma once
#include <cmath>
#include <complex>
#include <vector>

#include "ssm_conv.hpp"
#include "vandermonde.hpp"

namespace longseq::ssm {

// Kernels with a diagonal state (ssm::DiagonalKernel, kernel.hpp: a Vandermonde sum) can run as a recurrence.

// State of a batch of recurrences: (B, H, M) complex.
template <class T>
struct RecurrentState {
  index_t B = 0, H = 0, M = 0;
  std::vector<std::complex<T>> x;
};

template <class T>
class Recurrence {
 public:
  Recurrence() = default;
  // L: the sequence length the layer was trained for (only DSS-softmax's normalization depends on it).
  template <DiagonalKernel K>
  Recurrence(const K& k, index_t L) : form_(k.diagonal_form(L)) {
    z_.resize(form_.log_z.size());
    for (std::size_t i = 0; i < z_.size(); ++i) z_[i] = std::exp(form_.log_z[i]);
  }
  index_t width() const { return form_.H; }

  RecurrentState<T> initial_state(index_t B) const {
    return {B, form_.H, form_.M, std::vector<std::complex<T>>(static_cast<std::size_t>(B * form_.H * form_.M))};
  }

  // One time step: u (B, H) -> y (B, H) = the causal convolution's output at this step (kernel channel 0).
  void step(RecurrentState<T>& st, TensorView<const T> u, TensorView<T> y) const {
    LONGSEQ_CHECK(form_.C == 1,
                  "Recurrence: only unidirectional (one kernel channel) layers can run as a recurrence, got ", form_.C,
                  " channels");
    expect_shape(u, Shape{st.B, form_.H}, "u");
    expect_shape(y, Shape{st.B, form_.H}, "y");
    LONGSEQ_CHECK(st.H == form_.H && st.M == form_.M, "Recurrence: state (B, H, M) = (", st.B, ", ", st.H, ", ", st.M,
                  ") does not match the layer's (H, M) = (", form_.H, ", ", form_.M, ")");
    index_t H = form_.H, M = form_.M;
    for (index_t b = 0; b < st.B; ++b)
      for (index_t h = 0; h < H; ++h) {
        std::complex<T>* x = st.x.data() + (b * H + h) * M;
        T ub = u(b, h), acc = 0;
        for (index_t m = 0; m < M; ++m) {
          x[m] = z_[h * M + m] * x[m] + ub;
          acc += (form_.coef[h * M + m] * x[m]).real();
        }
        y(b, h) = form_.scale * acc;
      }
  }

 private:
  DiagonalForm<T> form_;
  std::vector<std::complex<T>> z_;
};

// One inference step of a causal SSMConv layer: x_t (B, H) -> y_t (B, H), the same as the row t of
// forward() with ctx.training == false.
template <DiagonalKernel K>
void ssm_conv_step(Context<device::host>& ctx, SSMConv<K, Causal>& layer, const Recurrence<typename K::value_type>& rec,
                   RecurrentState<typename K::value_type>& st, TensorView<const typename K::value_type> x,
                   TensorView<typename K::value_type> y) {
  using T = typename K::value_type;
  index_t B = st.B, H = layer.width();
  Tensor<T> z(Shape{B, H}), a(Shape{B, H}), g(Shape{B, 2 * H});
  rec.step(st, x, z.view());
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h) z(b, h) += layer.D.value[h] * x(b, h);
  ops::gelu_forward<T>(ctx, z.view(), a.view(), layer.cfg.gelu);
  layer.out.apply(ctx, a.view(), g.view());
  ops::glu_forward<T>(ctx, g.view(), y);
}

}  // namespace longseq::ssm
