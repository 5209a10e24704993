// The communicator over all ranks of the test job, created by the test executable's main.
#pragma once
#include <longseq/train/distributed_mpi.hpp>

namespace longseq::testing {
train::MpiCommunicator& world();
}
