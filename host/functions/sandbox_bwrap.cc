#include "host/functions/sandbox_bwrap.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "common/subprocess.h"
#include "host/functions/sandbox_cgroups.h"
#include "host/functions/sandbox_proc.h"

extern char** environ;

namespace fpgahost::functions {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kRuntimeApiVariable[] = "AWS_LAMBDA_RUNTIME_API";
constexpr char kReasonIsolationIncomplete[] = "SANDBOX_ISOLATION_INCOMPLETE";
// What a `provided` runtime reads from /etc besides the generated files: the dynamic
// linker's cache and configuration, Debian's alternatives links (/usr/bin/awk and friends
// point there), the time zone and the public CA certificates.
// OpenCL/vendors: the ICD loader's list of platforms (XRT's, PoCL's), for FPGA functions.
constexpr const char* kEtcFiles[] = {"ld.so.cache",     "ld.so.conf",    "ld.so.conf.d",
                                     "alternatives",    "localtime",     "ssl/certs",
                                     "ssl/openssl.cnf", "OpenCL/vendors"};
constexpr int64_t kCpuPeriodUs = 100000;

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++; the system calls are simple enough.
int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u)); }
int PidfdKill(int pidfd) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0u));
}

std::string ErrnoMessage(int err) {
  return std::error_code(err, std::generic_category()).message();
}

// Polls until one descriptor is ready (> 0), the deadline passes (0) or poll fails (-1).
int PollUntil(pollfd* fds, nfds_t count, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    int timeout = static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT_MAX));
    int n = ::poll(fds, count, timeout);
    if (n >= 0 || errno != EINTR) return n;
  }
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 63 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Status ValidateSpec(const SandboxSpec& spec) {
  if (!ValidName(spec.name)) {
    return InvalidArgumentError(
        fmt::format("sandbox name '{}' must be 1-63 characters of [A-Za-z0-9._-]", spec.name));
  }
  std::error_code ec;
  if (spec.task_dir.empty() || !std::filesystem::is_directory(spec.task_dir, ec)) {
    return InvalidArgumentError(
        fmt::format("task_dir {} is not a directory", spec.task_dir.string()));
  }
  if (spec.argv.empty() || spec.argv[0].empty() || spec.argv[0][0] != '/') {
    return InvalidArgumentError("argv[0] must be an absolute path inside the sandbox");
  }
  for (const auto& a : spec.argv) {
    if (a.find('\0') != std::string::npos) return InvalidArgumentError("argv holds a NUL byte");
  }
  for (const auto& [key, value] : spec.env) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return InvalidArgumentError(fmt::format("bad environment variable name '{}'", key));
    }
  }
  for (const auto& [host, inside] : spec.ro_binds) {
    // Under /opt, so a bind can neither hide the system nor the bundle; no "..", no NUL.
    if (!inside.starts_with("/opt/") || inside.find("/..") != std::string::npos ||
        inside.find('\0') != std::string::npos || inside.starts_with(kSandboxExtensionsDir)) {
      return InvalidArgumentError(
          fmt::format("read-only bind target '{}' must be a path under /opt", inside));
    }
    if (!std::filesystem::exists(host, ec)) {
      return InvalidArgumentError(
          fmt::format("read-only bind source {} does not exist", host.string()));
    }
  }
  if (spec.memory_mib <= 0 || spec.memory_mib > (int64_t{1} << 30)) {
    return InvalidArgumentError("memory_mib must be positive");
  }
  if (!(spec.cpus > 0.0 && spec.cpus <= 4096.0)) {
    return InvalidArgumentError("cpus must be positive");
  }
  // bwrap, the pid namespace's init and the runtime take three.
  if (spec.max_pids < 4) return InvalidArgumentError("max_pids must be at least 4");
  if (spec.tmp_mib <= 0 || spec.tmp_mib > (int64_t{1} << 30)) {
    return InvalidArgumentError("tmp_mib must be positive");
  }
  if (spec.runtime_api_port == 0) return InvalidArgumentError("runtime_api_port must be set");
  return Status::Ok();
}

// The bundle's extensions: the files (and links) of <task>/extensions, sorted by name; nullopt
// when it has no such directory. A link is followed inside the sandbox, never here. Hidden files
// are skipped; a name Lambda-Extension-Name cannot carry, or more than kMaxSandboxExtensions
// files, is refused (Lambda fails such a function's initialisation too).
StatusOr<std::optional<std::vector<std::string>>> ListExtensions(
    const std::filesystem::path& task_dir) {
  std::filesystem::path dir = task_dir / "extensions";
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::symlink_status(dir, ec))) {
    return std::optional<std::vector<std::string>>();
  }
  std::vector<std::string> names;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    auto type = it->symlink_status(ec).type();
    if (ec || name.front() == '.' ||
        (type != std::filesystem::file_type::regular &&
         type != std::filesystem::file_type::symlink)) {
      continue;
    }
    if (!ValidName(name)) {
      return InvalidArgumentError(
          fmt::format("extension file name '{}' must be 1-63 characters of [A-Za-z0-9._-]", name),
          "BAD_EXTENSION_NAME");
    }
    names.push_back(std::move(name));
  }
  if (ec) return ErrnoError("listing " + dir.string(), ec.value());
  if (names.size() > kMaxSandboxExtensions) {
    return InvalidArgumentError(fmt::format("the bundle has {} extensions; at most {} may run",
                                            names.size(), kMaxSandboxExtensions),
                                "TOO_MANY_EXTENSIONS");
  }
  std::sort(names.begin(), names.end());
  return std::optional<std::vector<std::string>>(std::move(names));
}

StatusOr<std::filesystem::path> FindProgram(const std::filesystem::path& program) {
  if (program.string().find('/') != std::string::npos) {
    if (::access(program.c_str(), X_OK) == 0) return program;
  } else if (const char* path = ::getenv("PATH"); path != nullptr) {
    for (const auto& dir : SplitNonEmpty(path, ':')) {
      std::filesystem::path candidate = std::filesystem::path(dir) / program;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return FailedPreconditionError(
      fmt::format("cannot find {} (install bubblewrap)", program.string()), "BWRAP_NOT_FOUND");
}

// A sealed-off in-memory file holding `contents`, read from its start by bwrap.
StatusOr<UniqueFd> MemoryFile(const char* name, std::string_view contents) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
  if (!fd.valid()) return ErrnoError("memfd_create", errno);
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd.get(), contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("writing a memfd", errno);
    done += static_cast<size_t>(n);
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) return ErrnoError("lseek", errno);
  return fd;
}

// Up to `max` bytes that are ready on nonblocking `fd`.
std::string ReadAvailable(int fd, size_t max) {
  std::string out;
  char buffer[4096];
  while (out.size() < max) {
    ssize_t n = ::read(fd, buffer, std::min(sizeof buffer, max - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return std::string(TrimWhitespace(out));
}

// Starts `argv` with stdin /dev/null, stdout and stderr on `out` and `err`, and `passed[i]`
// as descriptor 3 + i. No other descriptor of the daemon survives into it.
StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int out, int err,
                      const std::vector<int>& passed) {
  // Every source is first copied above the highest target so that no dup2 overwrites a
  // source a later one still needs.
  const int first_free = 3 + static_cast<int>(passed.size());
  std::vector<UniqueFd> lifted;
  auto lift = [&](int fd) -> StatusOr<int> {
    int high = ::fcntl(fd, F_DUPFD_CLOEXEC, first_free);
    if (high < 0) return ErrnoError("fcntl(F_DUPFD_CLOEXEC)", errno);
    lifted.emplace_back(high);
    return high;
  };
  ASSIGN_OR_RETURN(int high_out, lift(out));
  ASSIGN_OR_RETURN(int high_err, lift(err));
  std::vector<int> high_passed;
  for (int fd : passed) {
    ASSIGN_OR_RETURN(int high, lift(fd));
    high_passed.push_back(high);
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, high_out, 1);
  posix_spawn_file_actions_adddup2(&actions, high_err, 2);
  for (size_t i = 0; i < high_passed.size(); ++i) {
    posix_spawn_file_actions_adddup2(&actions, high_passed[i], 3 + static_cast<int>(i));
  }
  posix_spawn_file_actions_addclosefrom_np(&actions, first_free);
  // The host user the launcher drops to may not be able to enter the daemon's directory.
  posix_spawn_file_actions_addchdir_np(&actions, "/");

  ChildSpawnAttributes attributes;

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, attributes.get(), args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return FailedPreconditionError(
        fmt::format("cannot run the launcher {}: {}", argv[0], ErrnoMessage(rc)));
  }
  return pid;
}

int ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

std::optional<ino_t> NamespaceInode(const std::string& link) {
  struct stat st {};
  if (::stat(link.c_str(), &st) != 0) return std::nullopt;
  return st.st_ino;
}

class BwrapSandboxedProcess final : public SandboxedProcess {
 public:
  BwrapSandboxedProcess(std::string name, pid_t bwrap_pid, UniqueFd bwrap_pidfd,
                        std::unique_ptr<SandboxCgroups> cgroups, UniqueFd out, UniqueFd err)
      : name_(std::move(name)),
        bwrap_pid_(bwrap_pid),
        bwrap_pidfd_(std::move(bwrap_pidfd)),
        cgroups_(std::move(cgroups)),
        stdout_(std::move(out)),
        stderr_(std::move(err)) {}

  ~BwrapSandboxedProcess() override { BwrapSandboxedProcess::Kill().IgnoreError(); }

  pid_t pid() const override { return runtime_pid_; }
  int runtime_api_listen_fd() const override { return listen_.get(); }

  // The quota SettleCpu applies; 0 when the start-up quota is already the final one.
  void set_settled_cpu_quota(int64_t quota_us) { settled_cpu_quota_us_ = quota_us; }
  Status SettleCpu() override {
    if (settled_cpu_quota_us_ == 0 || exit_code_) return Status::Ok();
    RETURN_IF_ERROR(cgroups_->SetCpuQuota(settled_cpu_quota_us_, kCpuPeriodUs));
    settled_cpu_quota_us_ = 0;
    Isolation read_back = isolation_;
    cgroups_->Verify(runtime_pid_, read_back);
    isolation_.cpu_quota_us = read_back.cpu_quota_us;
    isolation_.cpu_period_us = read_back.cpu_period_us;
    return Status::Ok();
  }
  int stdout_fd() const override { return stdout_.get(); }
  int stderr_fd() const override { return stderr_.get(); }
  int exit_fd() const override { return bwrap_pidfd_.get(); }
  const Isolation& isolation() const override { return isolation_; }

  Status Kill() override {
    if (!exit_code_) {
      if (init_pidfd_.valid()) {
        // Killing the pid namespace's init kills every process in it; the init exits only
        // once they are all gone, and bwrap, having reaped it, exits then too.
        PidfdKill(init_pidfd_.get());
        pollfd p{bwrap_pidfd_.get(), POLLIN, 0};
        PollUntil(&p, 1, Clock::now() + std::chrono::seconds(10));
      }
      // Killing bwrap first would leave the init unreaped for whoever inherits it. bwrap is
      // our unreaped child: its pid cannot have been reused.
      ::kill(bwrap_pid_, SIGKILL);
      Reap();
    }
    return cgroups_->Remove();
  }

  StatusOr<int> Wait(std::chrono::milliseconds timeout) override {
    if (!exit_code_) {
      pollfd p{bwrap_pidfd_.get(), POLLIN, 0};
      int n = PollUntil(&p, 1, Clock::now() + timeout);
      if (n < 0) return ErrnoError("poll", errno);
      if (n == 0) {
        return DeadlineExceededError(
            fmt::format("sandbox {} still runs after {} ms", name_, timeout.count()));
      }
      Reap();
    }
    // bwrap exits after the pid namespace's init, which goes last: nothing is left to kill.
    Status removed = cgroups_->Remove();
    if (!removed.ok()) return removed;
    return *exit_code_;
  }

  // Start-up, step 1: the launcher's message with the runtime API socket.
  Status ReceiveRuntimeSocket(int control, uint16_t port, Clock::time_point deadline) {
    pollfd fds[2] = {{control, POLLIN, 0}, {bwrap_pidfd_.get(), POLLIN, 0}};
    int ready = PollUntil(fds, 2, deadline);
    if (ready < 0) return ErrnoError("poll", errno);
    if (ready == 0) return DeadlineExceededError("the sandbox did not come up in time");
    if ((fds[0].revents & POLLIN) == 0) return Broken("bwrap could not build the sandbox");

    char text[512];
    iovec iov{text, sizeof text};
    alignas(cmsghdr) char buffer[CMSG_SPACE(sizeof(int) * 4) + CMSG_SPACE(sizeof(ucred))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buffer;
    msg.msg_controllen = sizeof buffer;
    ssize_t n;
    do {
      n = ::recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return Broken("the sandbox's launcher ended before it was ready");
    std::vector<UniqueFd> fds_received;
    std::optional<ucred> credentials;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds_received.emplace_back(fd);
        }
      } else if (c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        credentials = cred;
      }
    }
    std::string_view message(text, static_cast<size_t>(n));
    if (message.substr(0, 7) == "error: ") {
      return FailedPreconditionError(fmt::format("sandbox {}: {}", name_, message.substr(7)),
                                     "SANDBOX_SETUP_FAILED");
    }
    if (message != "ready" || fds_received.size() != 1 || !credentials ||
        (msg.msg_flags & MSG_CTRUNC) != 0) {
      return InternalError(fmt::format("sandbox {}: unexpected message from the launcher", name_));
    }
    listen_ = std::move(fds_received[0]);
    int flags = ::fcntl(listen_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(listen_.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
      return ErrnoError("fcntl", errno);
    }
    RETURN_IF_ERROR(CheckListener(port));

    runtime_pid_ = credentials->pid;
    UniqueFd runtime_pidfd(PidfdOpen(runtime_pid_));
    if (!runtime_pidfd.valid()) return ErrnoError("pidfd_open(runtime)", errno);
    auto init_pid = ParentOf(runtime_pid_);
    if (!init_pid) return Broken("cannot find the sandbox's init");
    init_pidfd_ = UniqueFd(PidfdOpen(*init_pid));
    if (!init_pidfd_.valid()) return ErrnoError("pidfd_open(init)", errno);
    // The runtime still lives, waiting for us, and is still the init's child: so the pidfd
    // just opened is its pid namespace's init and not a process that took a recycled pid.
    pollfd alive{runtime_pidfd.get(), POLLIN, 0};
    if (::poll(&alive, 1, 0) != 0 || ParentOf(runtime_pid_) != init_pid) {
      return Broken("the sandbox's launcher ended before it was ready");
    }
    return Status::Ok();
  }

  // Start-up, step 2: what is really in force, read back from the kernel.
  Status CheckIsolation() {
    Isolation iso;
    const std::string proc = fmt::format("/proc/{}", runtime_pid_);
    auto differs = [&](const char* ns) {
      auto theirs = NamespaceInode(proc + "/ns/" + ns);
      auto ours = NamespaceInode(std::string("/proc/self/ns/") + ns);
      if (!theirs || !ours) {
        iso.notes.push_back(fmt::format("cannot compare {} namespaces", ns));
        return false;
      }
      return *theirs != *ours;
    };
    iso.namespaces.mount = differs("mnt");
    iso.namespaces.pid = differs("pid");
    iso.namespaces.ipc = differs("ipc");
    iso.namespaces.uts = differs("uts");
    iso.namespaces.net = differs("net");
    iso.namespaces.user = differs("user");
    iso.namespaces.cgroup = differs("cgroup");
    if (!iso.namespaces.cgroup) iso.notes.push_back("no cgroup namespace (kernel without one)");

    auto status = ParseProcStatus(ReadSmallFile(proc + "/status").value_or(""));
    auto effective_id = [&](const char* key) -> std::optional<int64_t> {
      auto ids = SplitNonEmpty(status[key], '\t');
      return ids.size() >= 2 ? ParseInt64(ids[1]) : std::nullopt;
    };
    if (auto uid = effective_id("Uid")) {
      iso.host_uid = static_cast<uid_t>(*uid);
      if (auto inside = MapIdInside(ReadSmallFile(proc + "/uid_map").value_or(""), *uid)) {
        iso.uid = static_cast<uid_t>(*inside);
      }
    }
    if (auto gid = effective_id("Gid")) {
      iso.host_gid = static_cast<gid_t>(*gid);
      if (auto inside = MapIdInside(ReadSmallFile(proc + "/gid_map").value_or(""), *gid)) {
        iso.gid = static_cast<gid_t>(*inside);
      }
    }
    bool no_caps = true;
    for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
      auto value = ParseInt64(status[set], 16);
      if (!value || *value != 0) no_caps = false;
    }
    iso.capabilities_dropped = no_caps;
    iso.no_new_privs = status["NoNewPrivs"] == "1";

    auto mounts = ParseMountinfo(ReadSmallFile(proc + "/mountinfo").value_or(""));
    bool root_read_only = false;
    bool tmp_is_tmpfs = false;
    for (const auto& m : mounts) {
      if (m.mount_point == "/") root_read_only = m.read_only();
      if (m.mount_point == "/tmp" && m.fstype == "tmpfs") {
        tmp_is_tmpfs = true;
        iso.tmp_size_bytes = ParseTmpfsSize(m.super_options);
      }
      // The kernel's own file systems and device nodes are writable by design.
      bool kernel = m.fstype == "proc" || m.fstype == "devpts" || m.fstype == "mqueue" ||
                    (m.fstype == "devtmpfs" && m.mount_point.rfind("/dev/", 0) == 0);
      if (!m.read_only() && !kernel) iso.writable_mounts.push_back(m.mount_point);
    }
    bool only_tmp = true;
    for (const auto& w : iso.writable_mounts) only_tmp = only_tmp && w == "/tmp";
    iso.read_only_system = !mounts.empty() && root_read_only && only_tmp;
    iso.private_tmp = tmp_is_tmpfs && iso.namespaces.mount;
    if (!iso.tmp_size_bytes) iso.notes.push_back("/tmp has no size cap");

    iso.network_interfaces = ParseNetDev(ReadSmallFile(proc + "/net/dev").value_or(""));
    UniqueFd socket_ns(::ioctl(listen_.get(), SIOCGSKNS));
    if (socket_ns.valid()) {
      struct stat st {};
      auto sandbox_net = NamespaceInode(proc + "/ns/net");
      iso.runtime_api_in_sandbox_netns = ::fstat(socket_ns.get(), &st) == 0 && sandbox_net &&
                                         st.st_ino == *sandbox_net && iso.namespaces.net;
    } else {
      iso.notes.push_back(
          fmt::format("cannot check the runtime API socket's namespace: {}", ErrnoMessage(errno)));
    }

    cgroups_->Verify(runtime_pid_, iso);
    isolation_ = std::move(iso);

    // Everything but the limits is what the sandbox is for: a sandbox short of it is refused.
    std::vector<std::string> missing;
    const auto& ns = isolation_.namespaces;
    for (auto [ok, what] : std::initializer_list<std::pair<bool, const char*>>{
             {ns.mount, "mount namespace"},
             {ns.pid, "pid namespace"},
             {ns.ipc, "ipc namespace"},
             {ns.uts, "uts namespace"},
             {ns.net, "network namespace"},
             {ns.user, "user namespace"},
             {isolation_.read_only_system, "read-only system"},
             {isolation_.private_tmp, "private /tmp"},
             {isolation_.capabilities_dropped, "dropped capabilities"},
             {isolation_.no_new_privs, "no_new_privs"},
             {isolation_.host_uid.has_value() && *isolation_.host_uid != 0, "non-root host user"},
         }) {
      if (!ok) missing.push_back(what);
    }
    if (!missing.empty()) {
      std::string list;
      for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
      return FailedPreconditionError(fmt::format("sandbox {} lacks: {}", name_, list),
                                     kReasonIsolationIncomplete);
    }
    return Status::Ok();
  }

  // Start-up, step 3: let the launcher start the extensions and execute argv, and learn whether
  // that worked.
  Status LetRun(int control, const std::string& program, Clock::time_point deadline) {
    int report_pipe[2];
    if (::pipe2(report_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe2", errno);
    UniqueFd report(report_pipe[0]);
    UniqueFd report_write(report_pipe[1]);
    char go[] = "go";
    iovec iov{go, 2};
    alignas(cmsghdr) char buffer[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buffer;
    msg.msg_controllen = sizeof buffer;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int fd = report_write.get();
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (::sendmsg(control, &msg, MSG_NOSIGNAL) < 0) {
      return Broken("the sandbox's launcher ended before it could start the runtime");
    }
    // From now on only the launcher and the extensions it starts hold the write end,
    // close-on-exec: end of file on `report` means every exec happened. A failed one writes a
    // line: "exec <errno>" (the runtime) or "extension <errno> <name>".
    report_write.Reset();
    std::string said;
    while (said.size() < 4096) {
      pollfd p{report.get(), POLLIN, 0};
      int ready = PollUntil(&p, 1, deadline);
      if (ready < 0) return ErrnoError("poll", errno);
      if (ready == 0) return DeadlineExceededError("the sandbox did not start its runtime in time");
      char text[512];
      ssize_t n = ::read(report.get(), text, sizeof text);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      said.append(text, static_cast<size_t>(n));
    }
    auto error_text = [](std::string_view number) {
      auto err = ParseInt64(number);
      return err ? ErrnoMessage(static_cast<int>(*err)) : std::string("unknown");
    };
    Status failed = Status::Ok();
    for (std::string_view line : SplitNonEmpty(said, '\n')) {
      if (line.rfind("exec ", 0) == 0) {
        return NotFoundError(fmt::format("sandbox {}: cannot execute {}: {}", name_, program,
                                         error_text(line.substr(5))),
                             kReasonProgramNotFound);
      }
      if (line.rfind("extension ", 0) == 0 && failed.ok()) {
        std::string_view rest = line.substr(10);
        size_t space = rest.find(' ');
        std::string_view extension = space == std::string_view::npos ? "" : rest.substr(space + 1);
        failed = FailedPreconditionError(
            fmt::format("sandbox {}: cannot execute extension {}/{}: {}", name_,
                        kSandboxExtensionsDir, extension, error_text(rest.substr(0, space))),
            "EXTENSION_LAUNCH_FAILED");
      }
    }
    return failed;
  }

  void set_extensions(std::vector<std::string> names) { isolation_.extensions = std::move(names); }

 private:
  void Reap() {
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(bwrap_pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    exit_code_ = r == bwrap_pid_ ? ExitCode(status) : -1;
  }

  // A FailedPrecondition carrying what bwrap and the launcher printed.
  Status Broken(std::string_view what) {
    // bwrap has exited or will at once: its error is in the pipe.
    pollfd p{bwrap_pidfd_.get(), POLLIN, 0};
    PollUntil(&p, 1, Clock::now() + std::chrono::seconds(2));
    std::string said = ReadAvailable(stderr_.get(), 4096);
    return FailedPreconditionError(
        fmt::format("sandbox {}: {}{}{}", name_, what, said.empty() ? "" : ": ", said),
        "SANDBOX_SETUP_FAILED");
  }

  Status CheckListener(uint16_t port) {
    int accepting = 0, domain = 0, type = 0;
    socklen_t len = sizeof(int);
    sockaddr_in addr{};
    socklen_t addr_len = sizeof addr;
    bool ok = ::getsockopt(listen_.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 &&
              ::getsockopt(listen_.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
              ::getsockopt(listen_.get(), SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
              ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &addr_len) == 0;
    if (!ok || accepting != 1 || domain != AF_INET || type != SOCK_STREAM ||
        addr.sin_addr.s_addr != htonl(INADDR_LOOPBACK) || addr.sin_port != htons(port)) {
      return InternalError(fmt::format(
          "sandbox {}: the runtime API socket is not listening on 127.0.0.1:{}", name_, port));
    }
    return Status::Ok();
  }

  static std::optional<pid_t> ParentOf(pid_t pid) {
    auto status = ParseProcStatus(ReadSmallFile(fmt::format("/proc/{}/status", pid)).value_or(""));
    auto ppid = ParseInt64(status["PPid"]);
    if (!ppid || *ppid <= 0) return std::nullopt;
    return static_cast<pid_t>(*ppid);
  }

  std::string name_;
  pid_t bwrap_pid_;
  UniqueFd bwrap_pidfd_;
  int64_t settled_cpu_quota_us_ = 0;
  std::unique_ptr<SandboxCgroups> cgroups_;
  UniqueFd stdout_;
  UniqueFd stderr_;
  UniqueFd listen_;
  UniqueFd init_pidfd_;
  pid_t runtime_pid_ = -1;
  Isolation isolation_;
  std::optional<int> exit_code_;
};

std::string PasswdFile(uid_t uid, gid_t gid) {
  return fmt::format(
      "root:x:0:0:root:/root:/sbin/nologin\n"
      "sbx_user1051:x:{}:{}::/tmp:/sbin/nologin\n"
      "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
      uid, gid);
}

std::string GroupFile(gid_t gid) {
  return fmt::format("root:x:0:\nsbx_user1051:x:{}:\nnogroup:x:65534:\n", gid);
}

std::string HostsFile(const std::string& hostname) {
  return fmt::format("127.0.0.1\tlocalhost {}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                     hostname);
}

constexpr char kNsswitch[] = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n";

int64_t CpuQuota(double cpus) {
  return std::max<int64_t>(1000, std::llround(cpus * static_cast<double>(kCpuPeriodUs)));
}

// bwrap's arguments; the generated /etc files arrive as descriptors 4 to 7.
// `task_dir` and `launcher` are where bwrap finds them: spec.task_dir and options.launcher, or
// their staged views (see Stage in slot_init.cc).
// `extensions`: the bundle's extensions (ListExtensions), nullopt without an extensions/ dir.
std::vector<std::string> BwrapArguments(const BwrapSandbox::Options& options,
                                        const std::filesystem::path& bwrap, const SandboxSpec& spec,
                                        const std::string& task_dir, const std::string& launcher,
                                        const std::optional<std::vector<std::string>>& extensions) {
  std::vector<std::string> a = {
      bwrap.string(),
      // Every namespace; the user namespace is required (it carries the uid change and the
      // dropped capabilities), and none may be created inside.
      "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
      "--uid", std::to_string(options.sandbox_uid), "--gid", std::to_string(options.sandbox_gid),
      "--hostname", spec.name, "--ro-bind", "/usr", "/usr"};
  // Merged-/usr hosts have links here, older ones directories.
  for (const char* dir : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    std::error_code ec;
    auto st = std::filesystem::symlink_status(dir, ec);
    if (ec) continue;
    if (std::filesystem::is_symlink(st)) {
      auto target = std::filesystem::read_symlink(dir, ec);
      if (!ec) a.insert(a.end(), {"--symlink", target.string(), dir});
    } else if (std::filesystem::is_directory(st)) {
      a.insert(a.end(), {"--ro-bind", dir, dir});
    }
  }
  for (const char* file : kEtcFiles) {
    std::string path = std::string("/etc/") + file;
    a.insert(a.end(), {"--ro-bind-try", path, path});
  }
  a.insert(a.end(),
           {"--ro-bind-data", "4", "/etc/passwd", "--ro-bind-data", "5", "/etc/group",
            "--ro-bind-data", "6", "/etc/hosts", "--ro-bind-data", "7", "/etc/nsswitch.conf"});
  a.insert(a.end(), {"--ro-bind", task_dir, "/var/task"});
  if (extensions) a.insert(a.end(), {"--ro-bind", task_dir + "/extensions", kSandboxExtensionsDir});
  for (const auto& [host, inside] : spec.ro_binds) {
    a.insert(a.end(), {"--ro-bind", host.string(), inside});
  }
  a.insert(a.end(), {"--ro-bind", launcher, kSandboxLauncherPath, "--proc", "/proc", "--dev",
                     "/dev", "--size", std::to_string(spec.tmp_mib << 20), "--tmpfs", "/tmp",
                     "--chdir", "/var/task", "--cap-drop", "ALL", "--clearenv"});
  for (const auto& [key, value] : spec.env) {
    if (key != kRuntimeApiVariable) a.insert(a.end(), {"--setenv", key, value});
  }
  a.insert(a.end(),
           {"--setenv", kRuntimeApiVariable, fmt::format("127.0.0.1:{}", spec.runtime_api_port)});
  // Last, once every mount point exists: the root tmpfs and /dev become read-only.
  a.insert(a.end(),
           {"--remount-ro", "/dev", "--remount-ro", "/", "--", kSandboxLauncherPath, "inner",
            "--control-fd", "3", "--port", std::to_string(spec.runtime_api_port)});
  if (extensions) {
    for (const std::string& name : *extensions) a.insert(a.end(), {"--extension", name});
  }
  a.push_back("--");
  a.insert(a.end(), spec.argv.begin(), spec.argv.end());
  return a;
}

}  // namespace

BwrapSandbox::BwrapSandbox(Options options) : options_(std::move(options)) {}

StatusOr<std::unique_ptr<SandboxedProcess>> BwrapSandbox::Start(const SandboxSpec& spec) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  ASSIGN_OR_RETURN(std::optional<std::vector<std::string>> extensions,
                   ListExtensions(spec.task_dir));
  if (extensions) {
    for (const auto* wanted :
         {&spec.extensions_except, spec.extensions_only ? &*spec.extensions_only : nullptr}) {
      if (!wanted) continue;
      for (const std::string& name : *wanted) {
        if (std::find(extensions->begin(), extensions->end(), name) == extensions->end()) {
          return InvalidArgumentError(fmt::format("the bundle has no extension '{}'", name),
                                      "NO_SUCH_EXTENSION");
        }
      }
    }
    std::erase_if(*extensions, [&spec](const std::string& name) {
      return std::find(spec.extensions_except.begin(), spec.extensions_except.end(), name) !=
                 spec.extensions_except.end() ||
             (spec.extensions_only &&
              std::find(spec.extensions_only->begin(), spec.extensions_only->end(), name) ==
                  spec.extensions_only->end());
    });
  } else if (spec.extensions_only || !spec.extensions_except.empty()) {
    return InvalidArgumentError("the bundle has no extensions/ directory", "NO_SUCH_EXTENSION");
  }
  const auto started = Clock::now();
  const auto deadline = started + options_.start_timeout;
  ASSIGN_OR_RETURN(std::filesystem::path bwrap, FindProgram(options_.bwrap));
  if (options_.launcher.empty() || ::access(options_.launcher.c_str(), X_OK) != 0) {
    return FailedPreconditionError(
        fmt::format("the sandbox launcher {} is not executable", options_.launcher.string()));
  }
  const bool as_root = ::geteuid() == 0;
  if (as_root && options_.host_uid == 0) {
    return FailedPreconditionError("refusing to run sandboxes as the host's root user");
  }

  std::unique_ptr<SandboxCgroups> cgroups;
  if (options_.use_cgroups) {
    CgroupLimits limits;
    limits.memory_bytes = spec.memory_mib << 20;
    limits.cpu_period_us = kCpuPeriodUs;
    limits.cpu_quota_us = CpuQuota(spec.init_cpus > 0 ? spec.init_cpus : spec.cpus);
    limits.pids_max = spec.max_pids;
    ASSIGN_OR_RETURN(cgroups, SandboxCgroups::Create(options_.cgroup_root, spec.name, limits));
  } else {
    cgroups = SandboxCgroups::None("cgroups: disabled by configuration");
  }

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return ErrnoError("socketpair", errno);
  }
  UniqueFd control(pair[0]), control_child(pair[1]);
  // The kernel then attaches the launcher's pid, as this process sees it, to its message.
  int one = 1;
  if (::setsockopt(control.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
    return ErrnoError("setsockopt(SO_PASSCRED)", errno);
  }
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe2", errno);
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe2", errno);
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  for (int fd : {out_read.get(), err_read.get()}) {
    if (::fcntl(fd, F_SETFL, O_NONBLOCK) != 0) return ErrnoError("fcntl", errno);
  }
  ASSIGN_OR_RETURN(UniqueFd passwd,
                   MemoryFile("passwd", PasswdFile(options_.sandbox_uid, options_.sandbox_gid)));
  ASSIGN_OR_RETURN(UniqueFd group, MemoryFile("group", GroupFile(options_.sandbox_gid)));
  ASSIGN_OR_RETURN(UniqueFd hosts, MemoryFile("hosts", HostsFile(spec.name)));
  ASSIGN_OR_RETURN(UniqueFd nsswitch, MemoryFile("nsswitch.conf", kNsswitch));

  std::vector<std::string> argv = {options_.launcher.string(), "outer"};
  for (const auto& procs : cgroups->procs_files()) {
    argv.insert(argv.end(), {"--join-cgroup", procs.string()});
  }
  std::string task_dir = spec.task_dir.string();
  std::string launcher = options_.launcher.string();
  SandboxSpec staged_spec;
  const SandboxSpec* bwrap_spec = &spec;
  if (as_root) {
    // The host user may not be able to reach the bundle or the launcher (a private data dir,
    // a build under /root): the launcher, still root, shows them to bwrap in a mount
    // namespace of its own.
    std::error_code ec;
    std::filesystem::create_directories(options_.stage_dir, ec);
    ::chmod(options_.stage_dir.c_str(), 0755);
    argv.insert(argv.end(), {"--stage", options_.stage_dir.string(), "--stage-task", task_dir});
    task_dir = (options_.stage_dir / "task").string();
    launcher = (options_.stage_dir / "launcher").string();
    if (!spec.ro_binds.empty()) {
      staged_spec = spec;
      for (size_t i = 0; i < spec.ro_binds.size(); ++i) {
        argv.insert(argv.end(), {"--stage-file", spec.ro_binds[i].first.string()});
        staged_spec.ro_binds[i].first = options_.stage_dir / fmt::format("file-{}", i);
      }
      bwrap_spec = &staged_spec;
    }
    argv.insert(argv.end(), {"--user", fmt::format("{}:{}", options_.host_uid, options_.host_gid)});
  }
  argv.push_back("--");
  for (auto& a : BwrapArguments(options_, bwrap, *bwrap_spec, task_dir, launcher, extensions)) {
    argv.push_back(std::move(a));
  }

  ASSIGN_OR_RETURN(pid_t bwrap_pid, Spawn(argv, out_write.get(), err_write.get(),
                                          {control_child.get(), passwd.get(), group.get(),
                                           hosts.get(), nsswitch.get()}));
  out_write.Reset();
  err_write.Reset();
  control_child.Reset();
  // Our own unreaped child: the pid cannot be stale.
  UniqueFd bwrap_pidfd(PidfdOpen(bwrap_pid));
  if (!bwrap_pidfd.valid()) {
    int err = errno;
    ::kill(bwrap_pid, SIGKILL);
    ::waitpid(bwrap_pid, nullptr, 0);
    return ErrnoError("pidfd_open", err);
  }
  auto process = std::make_unique<BwrapSandboxedProcess>(spec.name, bwrap_pid,
                                                         std::move(bwrap_pidfd), std::move(cgroups),
                                                         std::move(out_read), std::move(err_read));
  process->set_settled_cpu_quota(spec.init_cpus > 0 ? CpuQuota(spec.cpus) : 0);

  auto spawned = Clock::now();
  Status status = process->ReceiveRuntimeSocket(control.get(), spec.runtime_api_port, deadline);
  auto socket_received = Clock::now();
  if (status.ok()) status = process->CheckIsolation();
  auto checked = Clock::now();
  if (status.ok()) status = process->LetRun(control.get(), spec.argv[0], deadline);
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  spdlog::debug(
      "sandbox {}: set up and spawned in {:.1f} ms, bwrap built it in {:.1f} ms, "
      "isolation checked in {:.1f} ms, runtime executed in {:.1f} ms",
      spec.name, ms(spawned - started), ms(socket_received - spawned),
      ms(checked - socket_received), ms(Clock::now() - checked));
  if (!status.ok()) {
    process->Kill().IgnoreError();
    return status;
  }
  if (extensions) process->set_extensions(std::move(*extensions));
  return std::unique_ptr<SandboxedProcess>(std::move(process));
}

}  // namespace fpgahost::functions
