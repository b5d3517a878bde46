// The process's place in a job: started by mpirun (OpenMPI sets OMPI_COMM_WORLD_SIZE; PMI/PMIx launchers
// set PMIX_RANK / PMI_RANK) the world communicator is MPI's, otherwise it is a LocalComm and no MPI call is
// made — a dsv3 binary run without mpirun behaves exactly as one process. The world is a fact of the
// process (like argv), so it is the one process-wide object here; everything else gets a Comm& passed in.
#pragma once

#include <string>
#include <vector>

#include "dist/comm.h"

namespace dsv3::dist {

// True when the environment says a multi-process launcher started this process.
bool launched_by_mpirun();

// Starts the world (MPI only when launched_by_mpirun()). Under mpirun with no OMP_NUM_THREADS set, each rank
// gets as many OpenMP threads as cores it is bound to, at most cores / ranks on its host (at least 1), so
// ranks neither oversubscribe the cores nor leave them idle. Idempotent.
void init(int* argc, char*** argv);
// Ends MPI when it was started (every rank must call it; main does on a normal exit).
void finalize();
// The world communicator (LocalComm before init or without mpirun).
Comm& world();
// Ends the whole job with `code` after printing `message` (prefixed with the rank) on stderr: MPI_Abort
// under mpirun, so no rank is left waiting in a collective; plain exit otherwise.
[[noreturn]] void abort_job(int code, const std::string& message);

// Byte-string conveniences over a communicator (variable length: the size travels first).
void bcast_bytes(Comm& c, std::string& s, int root);
// Every rank's string, in rank order.
std::vector<std::string> allgather_bytes(Comm& c, const std::string& s);

}  // namespace dsv3::dist
