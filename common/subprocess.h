// RunProcess: runs a program to completion with a deadline, capturing what it prints.
//
// For the tools fpgahostd drives (xbmgmt, the verification designs' host programs): no shell is
// involved (argv[0] is executed directly, found through PATH when it has no '/'), the child gets
// its own process group and /dev/null as stdin, and no descriptor of the daemon other than
// 0-2 (listening sockets, the database) survives into it. stdout and stderr are captured
// separately, each keeping only its last `max_output_bytes`. When the deadline passes the whole
// process group is killed (SIGKILL) and reaped.
//
// Errors: NotFound (reason PROGRAM_NOT_FOUND) when the program does not exist or is not
// executable; other failures to start as ErrnoError. A program that runs and fails is not an
// error: look at the result.
//
// Thread-safe: may be called from several threads at once (the child is started with
// posix_spawn).
#pragma once

#include <spawn.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace fpgahost {

inline constexpr char kReasonProgramNotFound[] = "PROGRAM_NOT_FOUND";

struct ProcessOptions {
  std::chrono::milliseconds timeout{60000};
  size_t max_output_bytes = 64 * 1024;
  // Added to (or replacing in) the daemon's environment.
  std::vector<std::pair<std::string, std::string>> environment;
};

struct ProcessResult {
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal ended it (SIGKILL after a timeout)
  bool timed_out = false;
  std::string stdout_text;
  std::string stderr_text;
  std::chrono::milliseconds elapsed{0};

  bool ok() const { return !timed_out && signal == 0 && exit_code == 0; }
  // "exit status 2", "killed by signal 9", "timed out after 60 s".
  std::string Describe() const;
};

StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                   const ProcessOptions& options);

// posix_spawn attributes for the daemon's children: an empty signal mask (the daemon blocks
// SIGINT/SIGTERM for sigwait; children must not inherit that), default dispositions for the
// signals the daemon handles, and a process group of their own (so a deadline can kill the
// whole group).
class ChildSpawnAttributes {
 public:
  ChildSpawnAttributes();
  ~ChildSpawnAttributes();
  ChildSpawnAttributes(const ChildSpawnAttributes&) = delete;
  ChildSpawnAttributes& operator=(const ChildSpawnAttributes&) = delete;
  const posix_spawnattr_t* get() const { return &attr_; }

 private:
  posix_spawnattr_t attr_;
};

}  // namespace fpgahost
