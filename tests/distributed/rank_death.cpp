// A rank that stops taking part makes its peers end the job with a clear error instead of hanging.
// Skipped in the normal run; tests/CMakeLists.txt runs each case alone (--no-skip) and matches the
// error text in the job's output.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "world.hpp"

using longseq::testing::world;

TEST_CASE("rank death: a stuck rank makes the others abort naming the collective" * doctest::skip()) {
  auto& comm = world();
  std::vector<double> g(16, 1.0);
  comm.allreduce_sum(g.data(), 16);  // everyone alive: completes (under the default timeout)
  comm.set_timeout(2.0);
  if (comm.rank() == comm.size() - 1) {
    // Simulated death: this rank never reaches the next collective (a hung process).
    std::this_thread::sleep_for(std::chrono::seconds(120));
    std::_Exit(0);
  }
  comm.allreduce_sum(g.data(), 16);  // must end the job through the watchdog after ~2 s
  FAIL("the allreduce with a dead peer returned");
}

TEST_CASE("rank death: a rank that exits makes the job end" * doctest::skip()) {
  auto& comm = world();
  std::vector<double> g(16, 1.0);
  comm.allreduce_sum(g.data(), 16);
  comm.set_timeout(5.0);
  if (comm.rank() == comm.size() - 1) std::_Exit(3);  // simulated crash, without MPI_Finalize
  comm.allreduce_sum(g.data(), 16);
  FAIL("the allreduce with an exited peer returned");
}
