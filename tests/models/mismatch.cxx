// Must not compile: models::Model names the part whose device or dtype differs from the encoder's.
// Built by the models_mismatch_* tests (tests/CMakeLists.txt), which expect the static_assert's words.
#include <longseq/models/family.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>

using namespace longseq;
using F = models::Family<float>;
using Block = nn::PreNormResidual<F::LayerNorm, F::FeedForward>;
#if LONGSEQ_MISMATCH_DEVICE
using Head = heads::ClassificationHead<float, device::cuda>;  // "the head's device is cuda ..."
#else
using Head = heads::ClassificationHead<double>;  // "the head's value type differs ..."
#endif
using Net = F::Model<F::LinearEncoder, nn::Stack<Block>, Head>;
Net::Config config;
