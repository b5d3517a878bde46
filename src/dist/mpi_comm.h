// The MPI backend of dist::Comm (OpenMPI from Debian). This header names no MPI type, so only
// dist/mpi_comm.cc includes <mpi.h> (DESIGN.md). Errors come back as return codes (MPI_ERRORS_RETURN) and
// are thrown as dsv3::Error naming the operation and the rank.
#pragma once

#include <memory>

#include "dist/comm.h"

namespace dsv3::dist {

// MPI_Init_thread (asking for MPI_THREAD_MULTIPLE, needing at least SERIALIZED: the server's engine thread
// calls MPI, one thread at a time) and MPI_COMM_WORLD. Call once per process.
std::unique_ptr<Comm> mpi_init(int* argc, char*** argv);
void mpi_finalize();
// MPI_Abort on the world: every rank of the job ends (used when one rank failed, so none waits forever).
[[noreturn]] void mpi_abort(int code);

}  // namespace dsv3::dist
