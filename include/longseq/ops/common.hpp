// Helpers shared by the host ops: argument checks with readable messages and the OpenMP threshold.
#pragma once
#include <algorithm>
#include <source_location>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../core/context.hpp"
#include "../core/dtype.hpp"
#include "../core/tensor.hpp"

namespace longseq::ops {

// Whether an input gradient is written (the default) or added to what is already there.
enum class GradMode : bool { write, accumulate };

namespace detail {

// Below this many elements a loop runs on one thread: the fork/join costs more than it saves.
inline constexpr index_t parallel_grain = 1 << 15;

// The calling thread's number inside an OpenMP parallel region (0 outside one, or without OpenMP): picks
// a thread's slice of scratch carved before the region.
inline int thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int threads_for(const Context<device::host>& ctx, index_t work) {
  return work >= parallel_grain && ctx.threads > 1 ? ctx.threads : 1;
}

template <class T, class D>
void expect_same_shape(const TensorView<T, D>& t, const Shape& want, std::string_view name,
                       std::string_view other,
                       std::source_location loc = std::source_location::current()) {
  if (!(t.shape == want))
    throw Error(longseq::detail::concat("tensor '", name, "' has shape ", t.shape, ", expected ", want,
                                        " (the shape of '", other, "')"),
                loc);
}

// Rows of a tensor viewed as (rows, last): the product of all but the last extent.
inline index_t leading_rows(const Shape& s) {
  index_t r = 1;
  for (int i = 0; i + 1 < s.rank; ++i) r *= s.dims[i];
  return r;
}

template <class T>
using acc = accum_t<std::remove_const_t<T>>;

// An input view whose element type is not deduced from it: T comes from the output view (or is given
// explicitly), so a TensorView<T> or Tensor<T> converts where a TensorView<const T> is expected.
template <class T>
using In = std::type_identity_t<TensorView<const T>>;

// Sums per-row contributions over all rows: fn(r, acc) adds row r's `width` values into acc, then
// done(total) reads the `width` sums. Rows are cut into a fixed number of blocks summed in a fixed order,
// so the result does not depend on the number of threads (gradients are reproducible run to run). The
// partial sums live in the context's arena until done returns.
template <class W, class RowFn, class Done>
void sum_over_rows(Context<device::host>& ctx, index_t rows, index_t width, RowFn fn, Done done) {
  constexpr index_t max_blocks = 64;
  using A = Arena<device::host>;
  const index_t blocks = std::min<index_t>(std::max<index_t>(rows, 1), max_blocks);
  const index_t per = (rows + blocks - 1) / blocks;
  const auto n_partial = std::size_t(blocks * width), n_total = std::size_t(width);
  auto scope = ctx.arena.scope(A::bytes_for<W>(n_partial) + A::bytes_for<W>(n_total));
  W* partial = scope.template take<W>(n_partial);
  W* total = scope.template take<W>(n_total);
  const int nt = threads_for(ctx, rows * width);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t b = 0; b < blocks; ++b) {
    W* acc = partial + b * width;
    std::fill(acc, acc + width, W(0));
    for (index_t r = b * per; r < std::min(rows, (b + 1) * per); ++r) fn(r, acc);
  }
  std::fill(total, total + width, W(0));
  for (index_t b = 0; b < blocks; ++b)
    for (index_t j = 0; j < width; ++j) total[j] += partial[b * width + j];
  done(static_cast<const W*>(total));
}

}  // namespace detail
}  // namespace longseq::ops
