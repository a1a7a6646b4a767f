// main() for GoogleTest binaries that run under mpirun: every rank runs every test; a rank's failures
// make its exit code non-zero, and mpirun reports it. Output from ranks other than 0 is kept (prefixed
// by mpirun's --tag-output in the CTest command) so a failure on any rank is visible.
#include <gtest/gtest.h>

#include "comm/world.h"
#include "tests/comm/mpi_env.h"

namespace convoy::test {
comm::World* g_world = nullptr;
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  convoy::comm::World world;
  convoy::test::g_world = &world;
  return RUN_ALL_TESTS();
}
