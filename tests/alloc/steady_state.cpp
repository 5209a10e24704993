// After the first training step nothing allocates: every heap allocation of the process (malloc and its
// relatives, so operator new, Buffer and FFTW's aligned memory too) is counted while later steps of small
// S4D and Transformer classifiers (forward, loss, backward, AdamW) and of DSS, DLR and S4 layers run.
// Scratch comes from the context's arena or from buffers a layer keeps; a count above zero names a
// per-call allocation that crept back in. Not counted, and reported apart: what the OpenMP runtime and
// OpenBLAS allocate for themselves (libgomp mallocs a small team record for every region that runs on
// one thread; OpenBLAS's threaded GEMM driver mallocs its job table per call when it runs its own
// threads). This file replaces the C allocator for its whole executable, hence an executable of its own.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include <execinfo.h>
#include <link.h>
#include <unistd.h>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/heads/classification.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/adamw.hpp>

// Sanitizers bring their own allocator; counting through it is not possible (nor needed: they run the
// other suites).
#if defined(__SANITIZE_ADDRESS__)
#define LONGSEQ_COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LONGSEQ_COUNT_ALLOCS 0
#endif
#endif
#ifndef LONGSEQ_COUNT_ALLOCS
#define LONGSEQ_COUNT_ALLOCS 1
#endif

namespace {

std::atomic<bool> counting{false};
std::atomic<long> allocations{0}, runtime_allocations{0};
constexpr int kept = 8;
std::atomic<std::size_t> first_sizes[kept];
thread_local bool in_trace = false;

// LONGSEQ_ALLOC_TRACE=1 prints the call stack of each counted allocation (the executable links with -rdynamic for the names).
bool trace_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LONGSEQ_ALLOC_TRACE");
    return v && *v && *v != '0';
  }();
  return on;
}

// Code ranges of the OpenMP runtime and OpenBLAS (their loaded segments), found before counting starts.
struct Range {
  std::uintptr_t begin, end;
};
constexpr int max_ranges = 16;
Range runtime_ranges[max_ranges];
int n_runtime_ranges = 0;

void find_runtime_ranges() {
  if (n_runtime_ranges > 0) return;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void*) {
        const char* name = info->dlpi_name;
        if (!name || (!std::strstr(name, "libgomp") && !std::strstr(name, "openblas"))) return 0;
        for (int i = 0; i < info->dlpi_phnum && n_runtime_ranges < max_ranges; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          const std::uintptr_t b = info->dlpi_addr + ph.p_vaddr;
          runtime_ranges[n_runtime_ranges++] = {b, b + ph.p_memsz};
        }
        return 0;
      },
      nullptr);
}

bool from_runtime(const void* caller) {
  const auto a = reinterpret_cast<std::uintptr_t>(caller);
  for (int i = 0; i < n_runtime_ranges; ++i)
    if (a >= runtime_ranges[i].begin && a < runtime_ranges[i].end) return true;
  return false;
}

void note(std::size_t bytes, const void* caller) {
  if (!counting.load(std::memory_order_relaxed) || in_trace) return;
  if (from_runtime(caller)) {
    runtime_allocations.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const long i = allocations.fetch_add(1, std::memory_order_relaxed);
  if (i < kept) first_sizes[i].store(bytes, std::memory_order_relaxed);
  if (trace_enabled()) {
    in_trace = true;
    void* frames[32];
    const int n = backtrace(frames, 32);
    char line[64];
    const int len = std::snprintf(line, sizeof line, "allocation of %zu bytes:\n", bytes);
    if (write(2, line, std::size_t(len)) < 0) {
    }
    backtrace_symbols_fd(frames, n, 2);
    in_trace = false;
  }
}

}  // namespace

#if LONGSEQ_COUNT_ALLOCS
// glibc lets a program replace malloc and its relatives; these forward to glibc's own allocator.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_malloc(n);
}
void* calloc(std::size_t k, std::size_t n) {
  note(k * n, __builtin_return_address(0));
  return __libc_calloc(k, n);
}
void* realloc(void* p, std::size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(std::size_t a, std::size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  note(n, __builtin_return_address(0));
  void* p = __libc_memalign(a, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(std::size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_memalign(std::size_t(sysconf(_SC_PAGESIZE)), n);
}
}
#endif

using namespace longseq;

namespace {

// Allocations made while f runs (the counter is process-wide: OpenMP worker threads count too).
template <class F>
long count_allocations(F&& f) {
  find_runtime_ranges();
  allocations.store(0);
  runtime_allocations.store(0);
  if (trace_enabled()) {  // backtrace loads its unwinder on first use: not inside the window
    void* frame[1];
    (void)backtrace(frame, 1);
  }
  counting.store(true);
  f();
  counting.store(false);
  return allocations.load();
}

std::string first_sizes_text(long n) {
  std::string s;
  for (long i = 0; i < n && i < kept; ++i) s += std::to_string(first_sizes[i].load()) + " ";
  return s.empty() ? "none" : s + "bytes";
}

// Small, but big enough that the ops take their multithreaded paths with two threads.
constexpr index_t B = 4, L = 256, D = 32, classes = 10;

template <class Backbone, template <class, class> class Position>
using Classifier = models::Model<models::LinearEncoder<float, device::host, Position>, Backbone, nn::LayerNorm<float>,
                                 heads::ClassificationHead<float>>;

template <class Backbone, template <class, class> class Position>
void check_training_steps(typename Backbone::Config backbone) {
  using M = Classifier<Backbone, Position>;
  M model({{.channels = 1, .dim = D, .mask_channel = false},
           backbone,
           {.dim = D},
           {.dim = D, .classes = classes, .pool = nn::PoolMode::mean}});
  ParamStore<float> store;
  store.bind(model);
  Rng rng(1, 1);
  model.init(rng);
  train::AdamW<float> opt(store, {.lr = 1e-3, .weight_decay = 0.05, .ssm_lr = 1e-3, .ssm_weight_decay = 0.0});
  Context<device::host> ctx;
  Tensor<float> pixels(Shape{B, L, 1});
  Tensor<std::int32_t> labels(Shape{B});
  Rng data(2);
  for (index_t i = 0; i < pixels.numel(); ++i) pixels[i] = float(data.uniform());
  for (index_t b = 0; b < B; ++b) labels[b] = std::int32_t(b % classes);
  models::Inputs<float> in;
  in.values = pixels.view();
  heads::Targets<float> t;
  t.classes = labels.view();
  typename M::Saved saved;
  double loss = 0;
  auto step = [&] {
    opt.zero_grad();
    loss = model.forward(ctx, in, t, saved).loss;
    model.backward(ctx, saved);
    opt.step();
  };
  step();  // saved activations, FFT plans, OpenMP threads and the arena reach their size
  const long second = count_allocations(step);
  const long third = count_allocations(step);
  CHECK_MESSAGE(second == 0, "first allocations of step 2: " << first_sizes_text(second));
  MESSAGE("allocations of the OpenMP runtime and OpenBLAS in step 3 (not counted): " << runtime_allocations.load());
  CHECK(third == 0);
  CHECK(std::isfinite(loss));
}

template <class Kernel>
void check_layer_steps(typename Kernel::Config kc) {
  using Layer = ssm::SSMConv<Kernel, ssm::Bidirectional>;
  typename Layer::Config cfg;
  cfg.kernel = kc;
  Layer layer(cfg);
  ParamStore<float> store;
  store.bind(layer);
  Rng rng(3);
  layer.init(rng);
  Context<device::host> ctx;
  Tensor<float> x(Shape{B, L, D}), y(Shape{B, L, D}), dy(Shape{B, L, D}), dx(Shape{B, L, D});
  Rng data(4);
  for (index_t i = 0; i < x.numel(); ++i) {
    x[i] = float(data.normal());
    dy[i] = float(data.normal());
  }
  typename Layer::Saved saved;
  auto step = [&] {
    layer.forward(ctx, x.view(), y.view(), saved);
    layer.backward(ctx, saved, dy.view(), dx.view());
  };
  step();
  const long second = count_allocations(step);
  const long third = count_allocations(step);
  CHECK_MESSAGE(second == 0, "first allocations of call 2: " << first_sizes_text(second));
  CHECK(third == 0);
}

}  // namespace

TEST_CASE("steady state: the allocation counter sees operator new, malloc and aligned buffers") {
  if (!LONGSEQ_COUNT_ALLOCS) {
    MESSAGE("skipped: a sanitizer owns the allocator");
    return;
  }
  // The counter must be able to fail: each of these allocates once.
  CHECK(count_allocations([] {
          int* volatile p = new int(1);  // volatile: the pair may not be elided
          delete p;
        }) == 1);
  CHECK(count_allocations([] { Tensor<float> t(Shape{64}); }) >= 1);
  CHECK(count_allocations([] { std::free(std::malloc(16)); }) == 1);
}

TEST_CASE("steady state: training steps of an S4D classifier allocate nothing after the first") {
  if (!LONGSEQ_COUNT_ALLOCS) return;
  using Stack = nn::Stack<nn::PreNormResidual<nn::LayerNorm<float>, ssm::SSMConv<ssm::S4D<float>, ssm::Bidirectional>>>;
  typename Stack::Config c;
  c.depth = 2;
  c.block.norm = {.dim = D};
  auto& k = c.block.mixer.kernel;
  k.H = D;
  k.channels = 2;
  k.N = 16;
  check_training_steps<Stack, attention::NoPosition>(c);
}

TEST_CASE("steady state: training steps of a Transformer classifier allocate nothing after the first") {
  if (!LONGSEQ_COUNT_ALLOCS) return;
  using Stack = nn::Stack<attention::TransformerEncoderLayer<float, true>>;
  typename Stack::Config c;
  c.depth = 2;
  c.block.dim = D;
  c.block.heads = 2;
  c.block.ff_hidden = 2 * D;
  c.block.activation = nn::Activation::gelu;
  check_training_steps<Stack, attention::SinusoidalPosition>(c);
}

TEST_CASE("steady state: DSS, DLR and S4 layers allocate nothing after their first forward and backward") {
  if (!LONGSEQ_COUNT_ALLOCS) return;
  SUBCASE("DSS") { check_layer_steps<ssm::DSS<float>>({.H = D, .N = 16}); }
  SUBCASE("DLR") { check_layer_steps<ssm::DLR<float>>({.H = D, .N = 32}); }
  SUBCASE("S4") {
    typename ssm::S4<float>::Config kc;
    kc.H = D;
    kc.N = 16;
    kc.l_max = L;
    check_layer_steps<ssm::S4<float>>(kc);
  }
}
