// The cgroups one sandbox runs in: created, limited, verified and removed.
//
// Each sandbox gets <daemon's own cgroup>/fpgahost/<name>: in the unified hierarchy when
// <cgroup_root> is cgroup2 (memory.max, memory.swap.max, cpu.max, pids.max), otherwise in each
// cgroup v1 hierarchy mounted in <cgroup_root> that carries the memory, cpu or pids controller
// (memory.limit_in_bytes and memory.memsw.limit_in_bytes, cpu.cfs_quota_us/cfs_period_us,
// pids.max). Nesting under the daemon's own cgroup keeps every limit set on the daemon (a
// systemd unit, a container) in force for its sandboxes as well.
//
// Lack of permission (not root, a v2 hierarchy not delegated, a cgroup holding processes) is
// not an error: fewer limits are applied, and Verify notes why. The caller moves the
// sandbox's first process into procs_files() before it runs anything, then calls Verify on a
// process of the sandbox to learn what is really in force.
//
// Thread-compatible; different objects may be used concurrently (they share only the
// fpgahost parent directory, which each creates when missing and removes when empty).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "host/functions/sandbox.h"

namespace fpgahost::functions {

struct CgroupLimits {
  int64_t memory_bytes = 0;
  int64_t cpu_quota_us = 0;
  int64_t cpu_period_us = 100000;
  int64_t pids_max = 0;
};

class SandboxCgroups {
 public:
  // `cgroup_root` is where the hierarchies are mounted (/sys/fs/cgroup).
  // Errors: AlreadyExists (reason SANDBOX_NAME_IN_USE) when a cgroup named `name` still holds
  // processes; InvalidArgument for a name that is not a single path component.
  static StatusOr<std::unique_ptr<SandboxCgroups>> Create(const std::filesystem::path& cgroup_root,
                                                          const std::string& name,
                                                          const CgroupLimits& limits);
  // A set that applies nothing, noting why.
  static std::unique_ptr<SandboxCgroups> None(std::string why);

  struct Key {
   private:
    friend class SandboxCgroups;
    Key() = default;
  };
  explicit SandboxCgroups(Key);  // use Create or None
  SandboxCgroups(const SandboxCgroups&) = delete;
  SandboxCgroups& operator=(const SandboxCgroups&) = delete;
  // Removes the cgroups (as Remove) unless already done.
  ~SandboxCgroups();

  // The cgroup.procs files the sandbox's first process must write its pid into.
  std::vector<std::filesystem::path> procs_files() const;

  // Fills the cgroup part of `isolation` for `pid`, a process of the sandbox: a limit counts
  // only when `pid` is a member of the cgroup and the limit reads back as a number.
  void Verify(pid_t pid, Isolation& isolation) const;

  // Sets the CPU quota (per period) of a set made with a cpu controller; nothing otherwise.
  Status SetCpuQuota(int64_t quota_us, int64_t period_us);

  // SIGKILLs whatever is left in the cgroups, removes them, and removes the fpgahost parent
  // when no other sandbox uses it. Idempotent.
  Status Remove();

 private:
  struct Dir;
  std::string version_ = "none";
  std::vector<Dir> dirs_;
  std::vector<std::string> notes_;
};

}  // namespace fpgahost::functions
