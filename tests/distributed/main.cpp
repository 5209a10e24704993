// Entry point of the distributed tests: every rank runs the same doctest cases (so their collectives
// match); the exit code is non-zero when any rank failed. Launch through mpirun (see tests/CMakeLists.txt).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <memory>

#include "world.hpp"

namespace {
std::unique_ptr<longseq::train::MpiCommunicator> g_world;
}

namespace longseq::testing {
train::MpiCommunicator& world() { return *g_world; }
}  // namespace longseq::testing

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  g_world = std::make_unique<longseq::train::MpiCommunicator>(
      longseq::train::MpiCommunicator::Options{.timeout_s = 120});
  doctest::Context ctx(argc, argv);
  int failed = ctx.run() != 0 ? 1 : 0;
  if (!ctx.shouldExit()) failed = int(longseq::train::allreduce_sum(*g_world, double(failed)) > 0);
  g_world.reset();
  MPI_Finalize();
  return failed;
}
