// Fine-tuning from a self-pretraining checkpoint: every backbone tensor loaded by name, the SPT head
// dropped (the new head keeps its fresh initialization), and the mask-indicator column of a pixel
// encoder's weight dropped (pretraining saw [value, mask], fine-tuning sees [value]). The store may live
// on any device policy: values are prepared on the host and copied into a device store.
#pragma once
#include <string>
#include <vector>

#include "../interop/safetensors.hpp"
#include "../core/parameters.hpp"

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)
#include "../core/cuda/memory.cuh"
#endif

namespace longseq::train {

struct TransferOptions {
  std::string prefix = "model.";                        // where model tensors live in the checkpoint
  std::vector<std::string> fresh_prefixes{"head."};     // model tensors that keep their new initialization
  std::vector<std::string> drop_last_column{"encoder.linear.weight"};  // (out, in + 1) -> (out, in)
};

struct TransferReport {
  std::vector<std::string> loaded;       // copied as stored
  std::vector<std::string> sliced;       // copied without the mask-indicator column
  std::vector<std::string> fresh;        // model tensors left at their initialization (new head)
  std::vector<std::string> dropped;      // checkpoint tensors not used (the SPT head)
};

namespace detail {
inline bool starts_with_any(const std::string& s, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (s.rfind(p, 0) == 0) return true;
  return false;
}
// Writes host values into a parameter of either policy.
template <class T, class D>
void set_values(TensorView<T, D> dst, const Tensor<T>& src) {
  if constexpr (D::is_gpu) {
    copy_to_device<T>(src.view(), dst);
  } else {
    std::copy(src.data(), src.data() + src.numel(), dst.data);
  }
}
}  // namespace detail

template <class T, class D>
TransferReport transfer(const std::string& path, ParamStore<T, D>& store, const TransferOptions& o = {}) {
  const interop::Safetensors st = interop::Safetensors::load(path);
  TransferReport r;
  for (const auto& e : store.entries()) {
    if (detail::starts_with_any(e.name, o.fresh_prefixes)) { r.fresh.push_back(e.name); continue; }
    const std::string key = o.prefix + e.name;
    LONGSEQ_CHECK(st.contains(key), "transfer from '", path, "': the checkpoint lacks tensor '", key,
                  "' needed by the model");
    const auto& rec = st.record(key);
    const Shape& want = e.param->shape;
    Tensor<T> src = st.get<T>(key);
    if (rec.shape == want) {
      detail::set_values(e.param->value, src);
      r.loaded.push_back(e.name);
      continue;
    }
    bool sliceable = false;
    for (const auto& n : o.drop_last_column) sliceable = sliceable || n == e.name;
    sliceable = sliceable && rec.shape.rank == 2 && want.rank == 2 && rec.shape[0] == want[0] &&
                rec.shape[1] == want[1] + 1;
    LONGSEQ_CHECK(sliceable, "transfer from '", path, "': tensor '", key, "' has shape ", rec.shape,
                  ", the model expects ", want);
    Tensor<T> kept(want);
    for (index_t i = 0; i < want[0]; ++i)
      for (index_t j = 0; j < want[1]; ++j) kept[i * want[1] + j] = src[i * rec.shape[1] + j];
    detail::set_values(e.param->value, kept);
    r.sliced.push_back(e.name);
  }
  for (const auto& rec : st.tensors) {
    if (rec.name.rfind(o.prefix, 0) != 0) continue;
    const std::string name = rec.name.substr(o.prefix.size());
    const auto* e = store.find(name);
    if (!e || detail::starts_with_any(name, o.fresh_prefixes)) r.dropped.push_back(name);
  }
  return r;
}

}  // namespace longseq::train
