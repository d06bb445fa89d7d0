// BwrapSandbox: function slots in bubblewrap (bwrap) sandboxes.
//
// Each sandbox gets new user, mount, pid, ipc, uts, network and (where the kernel allows)
// cgroup namespaces; further user namespaces are disabled inside. Its file system is a
// read-only tmpfs root holding: /usr (and the /bin, /sbin, /lib* links or binds the host has),
// a few files of /etc a `provided` runtime needs (ld.so.cache and config, alternatives,
// localtime, ssl/certs) plus generated passwd, group, hosts and nsswitch.conf, the bundle at
// /var/task (read-only, the working directory), its `extensions/` directory (when it has one)
// at /opt/extensions (read-only, Lambda's place for extensions), the launcher at /var/runtime,
// a fresh /proc, a minimal read-only /dev, and a private size-capped tmpfs at /tmp. Nothing
// else of the host (homes, /var, /srv, the daemon's data) is there. The runtime (and each
// extension) runs as uid/gid 993 inside with every capability dropped and no_new_privs, its
// environment cleared to spec.env plus AWS_LAMBDA_RUNTIME_API, and only loopback networking.
//
// Host user: bwrap maps the sandbox's user to the user that runs bwrap. When fpgahostd runs
// as root, that would make the sandbox's processes host root (no capabilities, but root's
// file permissions, e.g. on /proc/sys), so bwrap then runs as Options::host_uid/host_gid.
// That user need not be able to reach the bundle or the launcher: the launcher, before it
// drops to it, bind-mounts both onto a tmpfs at Options::stage_dir in a mount namespace of
// its own, which bwrap inherits (nothing changes in the host's mounts). The files must be
// readable by others (bundles are extracted 0755/0644). Otherwise bwrap runs as the daemon's
// user and reads them where they are.
//
// Start-up, race-free: fpgahostd spawns fpgahost-slot-init ("outer"), which joins the
// sandbox's cgroups, drops to the host user and executes bwrap; bwrap builds the sandbox and
// runs fpgahost-slot-init ("inner") in it, which opens the runtime API socket, hands it over,
// waits while fpgahostd checks the isolation, starts the extensions (each file of
// /opt/extensions, sorted by name, with the runtime's environment, stdout and stderr) and then
// executes spec.argv. See slot_init.cc. Start fails when an extension cannot be executed
// (Lambda's Extension.LaunchError) or the bundle has more than kMaxSandboxExtensions.
//
// Lifetime: bwrap runs with --die-with-parent: a sandbox dies with the daemon thread that
// started it (Linux's parent-death signal follows the thread), so call Start from a thread
// that outlives its sandboxes.
//
// Thread-safe: Start may be called concurrently.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include "common/status.h"
#include "host/functions/sandbox.h"

namespace fpgahost::functions {

// Where the launcher appears inside a sandbox.
inline constexpr char kSandboxLauncherPath[] = "/var/runtime/fpgahost-slot-init";
// Where the bundle's extensions/ directory appears inside a sandbox (as on Lambda).
inline constexpr char kSandboxExtensionsDir[] = "/opt/extensions";

class BwrapSandbox final : public Sandbox {
 public:
  struct Options {
    // The fpgahost-slot-init executable.
    std::filesystem::path launcher;
    // bwrap; searched in PATH when it has no '/'.
    std::filesystem::path bwrap = "bwrap";
    // The host user sandboxes run as when fpgahostd runs as root (nobody by default).
    uid_t host_uid = 65534;
    gid_t host_gid = 65534;
    // Where a root daemon's launcher stages the bundle and itself for bwrap (a tmpfs in the
    // launcher's own mount namespace; the directory is created when missing).
    std::filesystem::path stage_dir = "/run/fpgahost-slot-stage";
    // The user the runtime sees itself as (Lambda's sbx_user1051).
    uid_t sandbox_uid = 993;
    gid_t sandbox_gid = 993;
    // Apply cgroup limits where the host lets us (sandbox_cgroups.h).
    bool use_cgroups = true;
    std::filesystem::path cgroup_root = "/sys/fs/cgroup";
    // Longest a sandbox may take to come up to the exec of spec.argv.
    std::chrono::milliseconds start_timeout{10000};
  };

  explicit BwrapSandbox(Options options);

  StatusOr<std::unique_ptr<SandboxedProcess>> Start(const SandboxSpec& spec) override;

 private:
  Options options_;
};

}  // namespace fpgahost::functions
