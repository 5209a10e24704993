// The update on CUDA: global gradient norm and finite check as deterministic block reductions, the clipping
// coefficient, the
// dynamic loss scale and the skip decision computed by one device thread, then AdamW's fused kernel gated by
// that decision. Nothing waits for the host: the outcome is copied into pinned memory after the update, and
// the host reads it only when asked (the next backward's scale, or logging).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "../../core/cuda/block_reduce.cuh"
#include "../../core/cuda/check.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/cuda/memory.cuh"
#include "../adamw.hpp"
#include "../loss_scale.hpp"
#include "../step.hpp"

namespace longseq::train {

namespace cuda_detail {

// g^2 in double, so the sum and its finiteness do not depend on the storage type's range.
template <class T>
struct Squared {
  __host__ __device__ double operator()(const T& g) const {
    double d;
    if constexpr (std::is_same_v<T, double>) d = g;
    else d = double(float(g));
    return d * d;
  }
};

// What one update decided, in device memory (and mirrored to pinned host memory after each update).
struct UpdateState {
  double scale = 1;         // loss scale the next backward uses (1 when off)
  double good_steps = 0;    // good updates since the scale last changed
  double skipped = 0;       // updates skipped for overflow over the run
  double sumsq = 0;         // sum of squared (scaled) gradients, from the reduction
  double grad_norm = 0;     // of the unscaled gradients, before clipping
  double grad_factor = 1;   // what AdamW multiplies each gradient by: 1/scale times the clipping coefficient
  double used_scale = 1;    // the scale this update's gradients carried
  int skip = 0;             // this update was not taken
  int fatal = 0;            // non-finite gradients nothing can absorb: the run must stop
};

struct DecideArgs {
  int enabled;
  double max_norm, growth, backoff, min_scale, window;
};

// One thread: the same decisions train::apply_update makes on the host.
__global__ inline void update_decide_kernel(UpdateState* s, DecideArgs a) {
  const double scale = a.enabled ? s->scale : 1.0;
  const double inv = 1.0 / scale;
  const double norm = sqrt(s->sumsq) * inv;  // exact scaling: the scale is a power of two
  s->grad_norm = norm;
  s->used_scale = scale;
  if (!isfinite(norm)) {
    s->skip = 1;
    if (a.enabled && scale * a.backoff >= a.min_scale) {
      s->scale = scale * a.backoff;
      s->good_steps = 0;
      s->skipped += 1;
    } else {
      s->fatal = 1;
    }
    return;
  }
  s->skip = 0;
  double coef = 1.0;
  if (a.max_norm > 0) {
    const double c = a.max_norm / (norm + 1e-6);
    if (c < 1.0) coef = c;
  }
  s->grad_factor = inv * coef;
  if (a.enabled) {
    s->good_steps += 1;
    if (s->good_steps >= a.window) {
      if (isfinite(s->scale * a.growth)) s->scale *= a.growth;
      s->good_steps = 0;
    }
  }
}

// Zeroes the gradients for the next update unless the run must stop (then they stay, to be named).
template <class T>
__global__ void zero_unless_fatal_kernel(T* g, index_t n, const UpdateState* s) {
  if (s->fatal) return;
  for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    g[i] = T(0.0f);
}

// Sum of squares of n gradients into *out, in two fixed passes: `blocks` (a function of n only) blocks each
// sum a strided share, then one block sums their partials in order. The result depends on n alone, not on the
// device or the run. Written on cub::BlockReduce rather than CUB's device-wide algorithms: those instantiate
// kernels on the toolkit's ::cuda::std types, which nvcc's generated stubs name unqualified, so they fail to
// compile in any translation unit that says `using namespace longseq` (longseq::cuda) at file scope.
inline constexpr int reduce_threads = 256;
inline index_t reduce_blocks(index_t n) {
  const index_t b = (n + 4 * reduce_threads - 1) / (4 * reduce_threads);
  return b < 1 ? 1 : b > 1024 ? 1024 : b;
}

template <class T>
__global__ void __launch_bounds__(reduce_threads) sumsq_partial_kernel(const T* g, index_t n, double* partial) {
  __shared__ cuda::BlockReduceStorage<double, reduce_threads> shared;
  double acc = 0;
  const Squared<T> sq;
  for (index_t i = index_t(blockIdx.x) * reduce_threads + threadIdx.x; i < n; i += index_t(gridDim.x) * reduce_threads)
    acc += sq(g[i]);
  acc = cuda::block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ inline void __launch_bounds__(reduce_threads) sum_partials_kernel(const double* partial, index_t m, double* out) {
  __shared__ cuda::BlockReduceStorage<double, reduce_threads> shared;
  double acc = 0;
  for (index_t i = threadIdx.x; i < m; i += reduce_threads) acc += partial[i];
  acc = cuda::block_sum(acc, shared);
  if (threadIdx.x == 0) *out = acc;
}

template <class T>
void grad_sumsq(const T* g, index_t n, double* out, cudaStream_t stream, Tensor<double, device::cuda>& partial) {
  const index_t blocks = reduce_blocks(n);
  if (partial.numel() < blocks) partial = Tensor<double, device::cuda>(Shape{blocks});
  sumsq_partial_kernel<T><<<unsigned(blocks), reduce_threads, 0, stream>>>(g, n, partial.data());
  LONGSEQ_CUDA_LAUNCH_CHECK("grad_sumsq_partial");
  sum_partials_kernel<<<1, reduce_threads, 0, stream>>>(partial.data(), blocks, out);
  LONGSEQ_CUDA_LAUNCH_CHECK("grad_sumsq_finish");
}

// Segmented: out[s] = sum of squares over [begin[s], end[s]), one block per segment (blocks stride over
// segments), deterministic like the above.
template <class T>
__global__ void __launch_bounds__(reduce_threads)
    segment_sumsq_kernel(const T* g, const index_t* begin, const index_t* end, index_t segments, double* out) {
  __shared__ cuda::BlockReduceStorage<double, reduce_threads> shared;
  const Squared<T> sq;
  for (index_t s = blockIdx.x; s < segments; s += gridDim.x) {
    double acc = 0;
    for (index_t i = begin[s] + threadIdx.x; i < end[s]; i += reduce_threads) acc += sq(g[i]);
    acc = cuda::block_sum(acc, shared);
    if (threadIdx.x == 0) out[s] = acc;
  }
}

}  // namespace cuda_detail

// Dynamic loss scaling whose state lives on the device (same rules and checks as train::LossScaler). Off by
// default: scale() == 1 and a non-finite gradient is fatal, as on the host.
class DeviceLossScaler {
 public:
  DeviceLossScaler() : DeviceLossScaler(LossScaleConfig{}) {}
  explicit DeviceLossScaler(LossScaleConfig cfg) : host_(cfg) {
    LONGSEQ_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&mirror_), sizeof(cuda_detail::UpdateState)));
    *mirror_ = cuda_detail::UpdateState{};
    mirror_->scale = host_.scale();
    state_ = Tensor<std::byte, device::cuda>(Shape{index_t(sizeof(cuda_detail::UpdateState))});
    LONGSEQ_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    upload();
  }
  DeviceLossScaler(const DeviceLossScaler&) = delete;
  DeviceLossScaler& operator=(const DeviceLossScaler&) = delete;
  ~DeviceLossScaler() {
    if (done_) {
      cudaEventSynchronize(done_);
      cudaEventDestroy(done_);
    }
    if (mirror_) cudaFreeHost(mirror_);
  }

  bool enabled() const { return host_.enabled(); }
  const LossScaleConfig& config() const { return host_.config(); }
  // The scale for the next backward. Waits only for the last update's small copy (not for work queued since),
  // and throws when that update found gradients nothing could absorb.
  double scale() {
    const auto& s = read();
    LONGSEQ_CHECK(!s.fatal, "train::step: non-finite gradient", enabled() ? " at the smallest loss scale allowed" : "",
                  " (the device update found it; the gradients are left in place: train::first_nonfinite_grad "
                  "names the parameter)");
    return enabled() ? s.scale : 1.0;
  }
  // The scaler's state as a checkpoint stores it (reads the device's outcome).
  LossScaleState state() {
    if (!enabled()) return {};
    const auto& s = read();
    return {s.scale, index_t(s.good_steps), index_t(s.skipped)};
  }
  index_t skipped() { return index_t(read().skipped); }
  void restore(const LossScaleState& st) {
    host_.restore(st);  // validates like the host scaler
    read();
    mirror_->scale = host_.scale();
    mirror_->good_steps = double(host_.state().good_steps);
    mirror_->skipped = double(host_.state().skipped);
    upload();
  }
  // The outcome of the last update (waits for it).
  UpdateResult last() {
    const auto& s = read();
    UpdateResult r;
    r.grad_norm = s.grad_norm;
    r.loss_scale = s.used_scale;
    r.status = s.fatal ? UpdateStatus::nonfinite : s.skip ? UpdateStatus::skipped : UpdateStatus::taken;
    return r;
  }

  cuda_detail::UpdateState* device_state() { return reinterpret_cast<cuda_detail::UpdateState*>(state_.data()); }
  cuda_detail::DecideArgs decide_args(double max_norm) const {
    const auto& c = host_.config();
    return {enabled() ? 1 : 0, max_norm, c.growth, c.backoff, c.min_scale, double(c.window)};
  }
  Tensor<double, device::cuda>& temp() { return temp_; }
  // Queues the copy of the outcome into pinned memory after the update just launched.
  void publish(cudaStream_t s) {
    LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(mirror_, state_.data(), sizeof(cuda_detail::UpdateState),
                                       cudaMemcpyDeviceToHost, s));
    LONGSEQ_CUDA_CHECK(cudaEventRecord(done_, s));
  }

 private:
  const cuda_detail::UpdateState& read() {
    LONGSEQ_CUDA_CHECK(cudaEventSynchronize(done_));
    return *mirror_;
  }
  void upload() {
    LONGSEQ_CUDA_CHECK(cudaMemcpy(state_.data(), mirror_, sizeof(cuda_detail::UpdateState), cudaMemcpyHostToDevice));
    LONGSEQ_CUDA_CHECK(cudaEventRecord(done_, cudaStreamLegacy));
  }

  LossScaler host_;  // configuration and its checks; the live state is on the device
  cuda_detail::UpdateState* mirror_ = nullptr;
  Tensor<std::byte, device::cuda> state_;
  Tensor<double, device::cuda> temp_;  // the norm's per-block partial sums
  cudaEvent_t done_ = nullptr;
};

// The device update: unscale, clip, check, loss-scale bookkeeping, AdamW (or any optimizer taking an
// UpdateGate) and zeroing, all queued without a host round trip. Returns at once; scaler.last() has the
// outcome when it is wanted. Kernels run on the legacy default stream, which every context's blocking
// stream is ordered with.
template <class O>
  requires(O::device_type::is_gpu)
void apply_update(O& opt, DeviceLossScaler& scaler, double max_norm, double lr_factor) {
  assert_optimizer<O>();
  static_assert(requires(O& o) { o.step(1.0, UpdateGate{}); },
                "train::apply_update on CUDA: the optimizer must provide step(lr_factor, UpdateGate) so the "
                "device can scale the gradients and skip the update without the host");
  using T = typename O::value_type;
  auto& store = opt.store();
  auto g = store.grads();
  cudaStream_t s = cudaStreamLegacy;
  auto* st = scaler.device_state();
  // A fatal outcome stays until someone has read it: the scale of the next backward throws.
  cuda_detail::grad_sumsq<T>(g.data, g.numel(), &st->sumsq, s, scaler.temp());
  cuda_detail::update_decide_kernel<<<1, 1, 0, s>>>(st, scaler.decide_args(max_norm));
  LONGSEQ_CUDA_LAUNCH_CHECK("update_decide");
  opt.step(lr_factor, UpdateGate{&st->grad_factor, &st->skip});
  if (g.numel() > 0) {
    cuda_detail::zero_unless_fatal_kernel<T><<<cuda::grid_for(g.numel()), cuda::block_threads, 0, s>>>(
        g.data, g.numel(), st);
    LONGSEQ_CUDA_LAUNCH_CHECK("zero_grads");
  }
  scaler.publish(s);
}

// Global L2 norm of a device store's gradients (synchronizes: for tests and logging).
template <class T>
double global_grad_norm(ParamStore<T, device::cuda>& store) {
  auto g = store.grads();
  Tensor<double, device::cuda> out(Shape{1}), partial;
  cuda_detail::grad_sumsq<T>(g.data, g.numel(), out.data(), cudaStreamLegacy, partial);
  double sq = 0;
  LONGSEQ_CUDA_CHECK(cudaMemcpy(&sq, out.data(), sizeof(double), cudaMemcpyDeviceToHost));
  return std::sqrt(sq);
}

// Name of the first parameter of a device store whose gradient holds NaN or Inf (empty when none): one
// segmented reduction (a sum of squares per parameter), read back once.
template <class T>
std::string first_nonfinite_grad(ParamStore<T, device::cuda>& store) {
  const auto& e = store.entries();
  if (e.empty()) return {};
  std::vector<index_t> begin(e.size()), end(e.size());
  for (std::size_t i = 0; i < e.size(); ++i) {
    begin[i] = e[i].offset;
    end[i] = e[i].offset + e[i].param->shape.numel();
  }
  const auto n = index_t(e.size());
  Tensor<index_t, device::cuda> db(Shape{n}), de(Shape{n});
  Tensor<double, device::cuda> sums(Shape{n});
  LONGSEQ_CUDA_CHECK(cudaMemcpy(db.data(), begin.data(), begin.size() * sizeof(index_t), cudaMemcpyHostToDevice));
  LONGSEQ_CUDA_CHECK(cudaMemcpy(de.data(), end.data(), end.size() * sizeof(index_t), cudaMemcpyHostToDevice));
  const unsigned blocks = unsigned(n < 65535 ? n : 65535);
  cuda_detail::segment_sumsq_kernel<T><<<blocks, cuda_detail::reduce_threads, 0, cudaStreamLegacy>>>(
      store.grads().data, db.data(), de.data(), n, sums.data());
  LONGSEQ_CUDA_LAUNCH_CHECK("segment_sumsq");
  std::vector<double> h(e.size());
  LONGSEQ_CUDA_CHECK(cudaMemcpy(h.data(), sums.data(), h.size() * sizeof(double), cudaMemcpyDeviceToHost));
  for (std::size_t i = 0; i < e.size(); ++i)
    if (!std::isfinite(h[i])) return e[i].name;
  return {};
}

}  // namespace longseq::train
