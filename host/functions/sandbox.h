// The sandbox a function slot runs in (DESIGN.md, "Function slots").
//
// A slot's runtime (the bundle's `bootstrap`) runs in its own namespaces with a read-only
// system, a private /tmp and resource limits, and speaks the Lambda Runtime API to fpgahostd
// over a listening socket that lives inside the sandbox's network namespace: the sandbox
// creates it and hands it to the daemon, so a connection to 127.0.0.1:<port> made inside the
// sandbox reaches the daemon while nothing else can reach it.
//
// What is in force depends on the host (root or not, cgroup v1 or v2, delegated or not), so a
// started sandbox reports its Isolation as read back from the kernel (/proc/<pid>/status,
// uid_map, ns links, mountinfo, cgroup files), never as requested. A limit that could not be
// applied is absent from the report, with a note saying why.
//
// Sandbox is the injected interface (BwrapSandbox in sandbox_bwrap.h runs bubblewrap); tests
// of the slot manager use a fake. Implementations are safe for concurrent Start calls.
// A SandboxedProcess is thread-compatible: one owner calls its methods, though its descriptors
// may be read from other threads while it lives.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace fpgahost::functions {

// Lambda's limit on extensions per function.
inline constexpr size_t kMaxSandboxExtensions = 10;

struct SandboxSpec {
  // The unpacked bundle, mounted read-only at /var/task (the working directory). Its
  // `extensions/` directory, when it has one, is Lambda's /opt/extensions: every file in it
  // (at most kMaxSandboxExtensions, by name) is started as an extension beside argv.
  std::filesystem::path task_dir;
  // Which of those extensions start here: all (nullopt), or only these (a tenant's sidecar
  // sandbox, which runs the ones its functions declare tenant-wide); `extensions_except` never
  // start here (they run in the tenant's sidecar sandbox instead). Names must be the bundle's.
  std::optional<std::vector<std::string>> extensions_only;
  std::vector<std::string> extensions_except;
  // What runs, as a path inside the sandbox: {"/var/task/bootstrap"}. argv[0] is absolute.
  std::vector<std::string> argv;
  // The whole environment of argv besides AWS_LAMBDA_RUNTIME_API (which the sandbox sets to
  // 127.0.0.1:<runtime_api_port>, overriding an entry of that name here).
  std::vector<std::pair<std::string, std::string>> env;
  int64_t memory_mib = 128;
  // CPU time per wall second (1.0 = one core). Lambda-like, proportional to memory: the
  // caller decides.
  double cpus = 1.0;
  // CPU while the sandbox is built and its runtime initialises, until SettleCpu: 0 means
  // `cpus`. Building the sandbox is fpgahost's work, not the function's, and a small share
  // would stretch it by whole CPU periods.
  double init_cpus = 0;
  int max_pids = 256;
  // Size cap of the private /tmp (tmpfs; its pages count against the memory limit too).
  int64_t tmp_mib = 512;
  uint16_t runtime_api_port = 9001;
  // Host files made visible read-only inside, {host path, absolute sandbox path under /opt}:
  // an FPGA function's xclbin. The host path must exist.
  std::vector<std::pair<std::filesystem::path, std::string>> ro_binds;
  // Names the sandbox's cgroup (fpgahost/<name>), hostname and log lines: [A-Za-z0-9._-],
  // at most 63 characters, unique among running sandboxes.
  std::string name;
};

// What is actually in force for a started sandbox, each item verified on the running process.
struct Isolation {
  struct Namespaces {
    bool mount = false;
    bool pid = false;
    bool ipc = false;
    bool uts = false;
    bool net = false;
    bool user = false;
    bool cgroup = false;
  } namespaces;

  // Every mount the runtime sees is read-only except /tmp and the kernel's own (proc,
  // devpts, device nodes): `writable_mounts` lists the exceptions found.
  bool read_only_system = false;
  std::vector<std::string> writable_mounts;
  // /tmp is a tmpfs of the sandbox's own mount namespace, of this size.
  bool private_tmp = false;
  std::optional<int64_t> tmp_size_bytes;
  // Effective, permitted, inheritable, ambient and bounding sets all empty.
  bool capabilities_dropped = false;
  bool no_new_privs = false;
  // The runtime's ids inside the sandbox, and the host ids they map to.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<uid_t> host_uid;
  std::optional<gid_t> host_gid;
  // Network interfaces of the sandbox's network namespace (just "lo" for no network).
  std::vector<std::string> network_interfaces;
  // The runtime API socket lives in the sandbox's network namespace.
  bool runtime_api_in_sandbox_netns = false;

  // "v2", "v1" or "none": the hierarchy the limits below were applied through.
  std::string cgroup_version = "none";
  std::vector<std::string> cgroup_dirs;
  std::optional<int64_t> memory_max_bytes;
  std::optional<int64_t> swap_max_bytes;
  std::optional<int64_t> cpu_quota_us;
  std::optional<int64_t> cpu_period_us;
  std::optional<int64_t> pids_max;

  // Why something above is missing or weaker than asked.
  std::vector<std::string> notes;

  // The extensions (files of /opt/extensions) the launcher started, by name, just before it
  // executed the runtime: processes of this same sandbox, so every item above applies to them.
  std::vector<std::string> extensions;

  Json ToJson() const;
};

// One running sandbox. Destroying it kills it (as Kill) if it still runs.
class SandboxedProcess {
 public:
  virtual ~SandboxedProcess() = default;

  // The host pid of the process running spec.argv.
  virtual pid_t pid() const = 0;
  // Listening TCP socket bound to 127.0.0.1:<runtime_api_port> inside the sandbox's network
  // namespace; nonblocking. Owned by this object: accept() on it, do not close it.
  virtual int runtime_api_listen_fd() const = 0;
  // Read ends of the runtime's stdout and stderr (the sandbox's own diagnostics go to stderr
  // too); nonblocking, owned by this object.
  virtual int stdout_fd() const = 0;
  virtual int stderr_fd() const = 0;
  // Becomes readable (poll, epoll) once the sandbox has ended: its runtime exited or was
  // killed. Owned by this object.
  virtual int exit_fd() const = 0;
  virtual const Isolation& isolation() const = 0;

  // Applies spec.cpus after the start-up allowance (spec.init_cpus) and reads the limit back
  // into isolation(). Call from the sandbox's owner only.
  virtual Status SettleCpu() = 0;

  // SIGKILLs every process of the sandbox, reaps them and removes its cgroups. Idempotent;
  // fine after the sandbox has exited.
  virtual Status Kill() = 0;
  // Waits up to `timeout` for the sandbox to end and gives its exit status (128 + signal when
  // a signal ended the runtime, as shells do); DeadlineExceeded while it still runs. Once it
  // has ended, its cgroups are removed and later calls give the same status.
  virtual StatusOr<int> Wait(std::chrono::milliseconds timeout) = 0;
};

class Sandbox {
 public:
  virtual ~Sandbox() = default;

  // Starts spec.argv in a new sandbox and returns once argv[0] has been executed there.
  // Errors: InvalidArgument for a bad spec; FailedPrecondition when the host cannot build the
  // sandbox (the message carries the sandbox tool's own words); NotFound when argv[0] cannot
  // be executed inside; DeadlineExceeded when setting up takes too long.
  virtual StatusOr<std::unique_ptr<SandboxedProcess>> Start(const SandboxSpec& spec) = 0;
};

}  // namespace fpgahost::functions
