// Test main for the dist room: starts the world (MPI under mpirun, local otherwise), runs the tests, and
// makes the job's result the same on every rank (a rank whose test failed fails them all), so ctest sees
// one verdict. Only rank 0 prints gtest's report.
#include <gtest/gtest.h>

#include "dist/world.h"

int main(int argc, char** argv) {
  dsv3::dist::init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (dsv3::dist::world().rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  rc = dsv3::dist::world().allreduce_one<int32_t>(rc != 0 ? 1 : 0, dsv3::dist::ReduceOp::Max);
  dsv3::dist::finalize();
  return rc;
}
