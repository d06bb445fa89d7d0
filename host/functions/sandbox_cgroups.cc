#include "host/functions/sandbox_cgroups.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <thread>

#include "host/functions/sandbox_proc.h"

namespace fpgahost::functions {

struct SandboxCgroups::Dir {
  std::string controller;        // "memory", "cpu", "pids"; empty in the unified hierarchy
  std::filesystem::path parent;  // <hierarchy>/<daemon's cgroup>/fpgahost
  std::filesystem::path path;    // parent/<name>
  std::string cgroup_path;       // as /proc/<pid>/cgroup shows it
  bool removed = false;
};

namespace {

constexpr char kParentName[] = "fpgahost";
// cgroup v1 reports "no limit" as the largest page-aligned int64.
constexpr int64_t kV1Unlimited = int64_t{1} << 62;

std::string Trim(std::string_view text) { return std::string(TrimWhitespace(text)); }

bool Contains(const std::vector<std::string>& items, std::string_view item) {
  for (const auto& i : items) {
    if (i == item) return true;
  }
  return false;
}

// The number in the file; nullopt for "max" or a missing file.
std::optional<int64_t> ReadInt(const std::filesystem::path& path) {
  auto text = ReadSmallFile(path);
  if (!text) return std::nullopt;
  return ParseInt64(TrimWhitespace(*text));
}

// 0 or the errno of the failed open/write.
int WriteFile(const std::filesystem::path& path, std::string_view value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = n == static_cast<ssize_t>(value.size()) ? 0 : (n < 0 ? errno : EIO);
  ::close(fd);
  return err;
}

// The directory of cgroup `own_path` in a hierarchy mounted as `mount`, when the mount shows it.
std::optional<std::filesystem::path> DirInMount(const MountInfo& mount,
                                                const std::string& own_path) {
  std::string root = mount.root == "/" ? "" : mount.root;
  if (own_path.compare(0, root.size(), root) != 0) return std::nullopt;
  std::string rel = own_path.substr(root.size());
  if (!rel.empty() && rel[0] != '/') return std::nullopt;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  std::filesystem::path point(mount.mount_point);
  return rel.empty() ? point : point / rel;
}

std::string JoinCgroupPath(const std::string& own_path, const std::string& name) {
  std::string base = own_path == "/" ? "" : own_path;
  return base + "/" + kParentName + "/" + name;
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

}  // namespace

SandboxCgroups::SandboxCgroups(Key) {}

SandboxCgroups::~SandboxCgroups() { Remove().IgnoreError(); }

std::unique_ptr<SandboxCgroups> SandboxCgroups::None(std::string why) {
  auto set = std::make_unique<SandboxCgroups>(Key{});
  set->notes_.push_back(std::move(why));
  return set;
}

namespace {

// Makes parent/<name>: an empty leftover of that name is replaced; one holding processes is
// an error. Returns 0, an errno (the caller notes it), or a Status through `error`.
int MakeLeaf(const std::filesystem::path& parent, const std::string& name, Status& error) {
  std::filesystem::path dir = parent / name;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) return errno;
    if (::mkdir(dir.c_str(), 0755) == 0) return 0;
    int err = errno;
    // Another sandbox removed the shared parent between our two mkdirs.
    if (err == ENOENT) continue;
    if (err != EEXIST) return err;
    auto procs = ReadSmallFile(dir / "cgroup.procs");
    if (procs && !Trim(*procs).empty()) {
      error = AlreadyExistsError(
          fmt::format("cgroup {} of a sandbox named {} still holds processes", dir.string(), name),
          "SANDBOX_NAME_IN_USE");
      return EEXIST;
    }
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return errno;
  }
  return EAGAIN;
}

}  // namespace

StatusOr<std::unique_ptr<SandboxCgroups>> SandboxCgroups::Create(
    const std::filesystem::path& cgroup_root, const std::string& name, const CgroupLimits& limits) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return InvalidArgumentError(fmt::format("bad sandbox name '{}'", name));
  }
  auto set = std::make_unique<SandboxCgroups>(Key{});
  auto own_text = ReadSmallFile("/proc/self/cgroup");
  if (!own_text) return None("cgroups: /proc/self/cgroup is unreadable");
  std::vector<CgroupMembership> own = ParseProcCgroup(*own_text);
  std::vector<MountInfo> mounts =
      ParseMountinfo(ReadSmallFile("/proc/self/mountinfo").value_or(""));

  struct statfs fs {};
  bool unified = ::statfs(cgroup_root.c_str(), &fs) == 0 &&
                 static_cast<int64_t>(fs.f_type) == static_cast<int64_t>(CGROUP2_SUPER_MAGIC);
  if (unified) {
    const MountInfo* mount = nullptr;
    for (const auto& m : mounts) {
      if (m.fstype == "cgroup2" && std::filesystem::path(m.mount_point) == cgroup_root) mount = &m;
    }
    const CgroupMembership* entry = nullptr;
    for (const auto& e : own) {
      if (e.hierarchy_id == "0") entry = &e;
    }
    if (mount == nullptr || entry == nullptr) {
      return None("cgroup v2: cannot find the daemon's own cgroup");
    }
    auto base = DirInMount(*mount, entry->path);
    if (!base) return None("cgroup v2: the daemon's cgroup is outside the mounted hierarchy");
    std::vector<std::string> available =
        SplitNonEmpty(Trim(ReadSmallFile(*base / "cgroup.controllers").value_or("")), ' ');
    std::vector<std::string> enabled =
        SplitNonEmpty(Trim(ReadSmallFile(*base / "cgroup.subtree_control").value_or("")), ' ');
    std::vector<std::string> wanted;
    for (const char* c : {"memory", "cpu", "pids"}) {
      if (!Contains(available, c)) {
        set->notes_.push_back(
            fmt::format("cgroup v2: the {} controller is not available in {}", c, base->string()));
        continue;
      }
      int err = Contains(enabled, c)
                    ? 0
                    : WriteFile(*base / "cgroup.subtree_control", "+" + std::string(c));
      if (err == EBUSY) {
        set->notes_.push_back(fmt::format(
            "cgroup v2: cannot enable {} below {}: it holds processes (run fpgahostd in a leaf "
            "of a delegated cgroup)",
            c, base->string()));
      } else if (err != 0) {
        set->notes_.push_back(fmt::format("cgroup v2: cannot enable {} below {}: {}", c,
                                          base->string(), ErrnoText(err)));
      } else {
        wanted.push_back(c);
      }
    }
    if (wanted.empty()) return set;
    Dir dir;
    dir.parent = *base / kParentName;
    dir.path = dir.parent / name;
    dir.cgroup_path = JoinCgroupPath(entry->path, name);
    Status error;
    // The parent must pass the controllers on before the leaf is made.
    if (::mkdir(dir.parent.c_str(), 0755) != 0 && errno != EEXIST) {
      set->notes_.push_back(
          fmt::format("cgroup v2: cannot create {}: {}", dir.parent.string(), ErrnoText(errno)));
      return set;
    }
    for (auto it = wanted.begin(); it != wanted.end();) {
      int err = WriteFile(dir.parent / "cgroup.subtree_control", "+" + *it);
      if (err != 0) {
        set->notes_.push_back(fmt::format("cgroup v2: cannot enable {} below {}: {}", *it,
                                          dir.parent.string(), ErrnoText(err)));
        it = wanted.erase(it);
      } else {
        ++it;
      }
    }
    int err = wanted.empty() ? ENOTSUP : MakeLeaf(dir.parent, name, error);
    if (!error.ok()) return error;
    if (err != 0) {
      if (!wanted.empty()) {
        set->notes_.push_back(
            fmt::format("cgroup v2: cannot create {}: {}", dir.path.string(), ErrnoText(err)));
      }
      ::rmdir(dir.parent.c_str());
      return set;
    }
    auto apply = [&](const char* file, const std::string& value) {
      int e = WriteFile(dir.path / file, value);
      if (e != 0) {
        set->notes_.push_back(fmt::format("cgroup v2: cannot set {} = {} in {}: {}", file, value,
                                          dir.path.string(), ErrnoText(e)));
      }
    };
    if (Contains(wanted, "memory")) {
      apply("memory.max", std::to_string(limits.memory_bytes));
      if (std::filesystem::exists(dir.path / "memory.swap.max")) apply("memory.swap.max", "0");
    }
    if (Contains(wanted, "cpu")) {
      apply("cpu.max", fmt::format("{} {}", limits.cpu_quota_us, limits.cpu_period_us));
    }
    if (Contains(wanted, "pids")) apply("pids.max", std::to_string(limits.pids_max));
    set->version_ = "v2";
    set->dirs_.push_back(std::move(dir));
    return set;
  }

  for (const char* controller : {"memory", "cpu", "pids"}) {
    const MountInfo* mount = nullptr;
    for (const auto& m : mounts) {
      if (m.fstype == "cgroup" && Contains(m.super_options, controller) &&
          std::filesystem::path(m.mount_point).parent_path() == cgroup_root) {
        mount = &m;
      }
    }
    const CgroupMembership* entry = nullptr;
    for (const auto& e : own) {
      if (Contains(e.controllers, controller)) entry = &e;
    }
    if (mount == nullptr || entry == nullptr) {
      set->notes_.push_back(fmt::format("cgroup v1: no {} hierarchy is mounted in {}", controller,
                                        cgroup_root.string()));
      continue;
    }
    auto base = DirInMount(*mount, entry->path);
    if (!base) {
      set->notes_.push_back(fmt::format(
          "cgroup v1: the daemon's {} cgroup is outside the mounted hierarchy", controller));
      continue;
    }
    Dir dir;
    dir.controller = controller;
    dir.parent = *base / kParentName;
    dir.path = dir.parent / name;
    dir.cgroup_path = JoinCgroupPath(entry->path, name);
    Status error;
    int err = MakeLeaf(dir.parent, name, error);
    if (!error.ok()) return error;
    if (err != 0) {
      set->notes_.push_back(
          fmt::format("cgroup v1: cannot create {}: {}", dir.path.string(), ErrnoText(err)));
      continue;
    }
    std::vector<std::pair<std::string, std::string>> settings;
    if (dir.controller == "memory") {
      settings = {{"memory.limit_in_bytes", std::to_string(limits.memory_bytes)}};
      // mem+swap must be set after the memory limit it may not undercut.
      if (std::filesystem::exists(dir.path / "memory.memsw.limit_in_bytes")) {
        settings.emplace_back("memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes));
      } else {
        set->notes_.push_back("cgroup v1: swap is not limited (no memory.memsw; swapaccount=0)");
      }
    } else if (dir.controller == "cpu") {
      settings = {{"cpu.cfs_period_us", std::to_string(limits.cpu_period_us)},
                  {"cpu.cfs_quota_us", std::to_string(limits.cpu_quota_us)}};
    } else {
      settings = {{"pids.max", std::to_string(limits.pids_max)}};
    }
    bool ok = true;
    for (const auto& [file, value] : settings) {
      int e = WriteFile(dir.path / file, value);
      if (e != 0) {
        set->notes_.push_back(fmt::format("cgroup v1: cannot set {} = {} in {}: {}", file, value,
                                          dir.path.string(), ErrnoText(e)));
        // Without mem+swap the memory limit alone still holds.
        ok = ok && file == "memory.memsw.limit_in_bytes";
      }
    }
    if (!ok) {
      ::rmdir(dir.path.c_str());
      ::rmdir(dir.parent.c_str());
      continue;
    }
    set->dirs_.push_back(std::move(dir));
    set->version_ = "v1";
  }
  return set;
}

std::vector<std::filesystem::path> SandboxCgroups::procs_files() const {
  std::vector<std::filesystem::path> out;
  for (const auto& d : dirs_) {
    if (!d.removed) out.push_back(d.path / "cgroup.procs");
  }
  return out;
}

void SandboxCgroups::Verify(pid_t pid, Isolation& isolation) const {
  for (const auto& n : notes_) isolation.notes.push_back(n);
  auto text = ReadSmallFile(fmt::format("/proc/{}/cgroup", pid));
  std::vector<CgroupMembership> entries = ParseProcCgroup(text.value_or(""));
  bool any = false;
  for (const auto& d : dirs_) {
    if (d.removed) continue;
    bool member = false;
    for (const auto& e : entries) {
      bool hierarchy =
          d.controller.empty() ? e.hierarchy_id == "0" : Contains(e.controllers, d.controller);
      if (hierarchy) member = e.path == d.cgroup_path;
    }
    if (!member) {
      isolation.notes.push_back(
          fmt::format("cgroups: the runtime (pid {}) is not in {}", pid, d.path.string()));
      continue;
    }
    isolation.cgroup_dirs.push_back(d.path.string());
    auto positive = [](std::optional<int64_t> v) {
      return v && *v >= 0 ? v : std::optional<int64_t>();
    };
    if (d.controller.empty()) {
      isolation.memory_max_bytes = positive(ReadInt(d.path / "memory.max"));
      isolation.swap_max_bytes = positive(ReadInt(d.path / "memory.swap.max"));
      auto cpu_max = SplitNonEmpty(Trim(ReadSmallFile(d.path / "cpu.max").value_or("")), ' ');
      if (cpu_max.size() == 2) {
        isolation.cpu_quota_us = positive(ParseInt64(cpu_max[0]));
        if (isolation.cpu_quota_us) isolation.cpu_period_us = ParseInt64(cpu_max[1]);
      }
      isolation.pids_max = positive(ReadInt(d.path / "pids.max"));
    } else if (d.controller == "memory") {
      auto limit = ReadInt(d.path / "memory.limit_in_bytes");
      if (limit && *limit < kV1Unlimited) {
        isolation.memory_max_bytes = limit;
        auto memsw = ReadInt(d.path / "memory.memsw.limit_in_bytes");
        if (memsw && *memsw < kV1Unlimited) isolation.swap_max_bytes = *memsw - *limit;
      }
    } else if (d.controller == "cpu") {
      isolation.cpu_quota_us = positive(ReadInt(d.path / "cpu.cfs_quota_us"));
      if (isolation.cpu_quota_us) isolation.cpu_period_us = ReadInt(d.path / "cpu.cfs_period_us");
    } else if (d.controller == "pids") {
      isolation.pids_max = positive(ReadInt(d.path / "pids.max"));
    }
    any = true;
  }
  bool limited = isolation.memory_max_bytes || isolation.cpu_quota_us || isolation.pids_max;
  isolation.cgroup_version = any && limited ? version_ : "none";
}

Status SandboxCgroups::SetCpuQuota(int64_t quota_us, int64_t period_us) {
  for (const Dir& d : dirs_) {
    if (d.removed) continue;
    int e = 0;
    if (d.controller.empty()) {
      e = WriteFile(d.path / "cpu.max", fmt::format("{} {}", quota_us, period_us));
    } else if (d.controller == "cpu") {
      e = WriteFile(d.path / "cpu.cfs_quota_us", std::to_string(quota_us));
    } else {
      continue;
    }
    if (e != 0) return ErrnoError("setting the CPU quota in " + d.path.string(), e);
  }
  return Status::Ok();
}

Status SandboxCgroups::Remove() {
  Status result;
  for (auto& d : dirs_) {
    if (d.removed) continue;
    // cgroup.kill (v2, Linux 5.14) kills atomically, forks in flight included.
    if (d.controller.empty()) WriteFile(d.path / "cgroup.kill", "1");
    int err = 0;
    // Normally empty by now (the sandbox's pid namespace is gone); anything left is killed.
    // A killed process leaves the cgroup when it is reaped, shortly after the kill.
    for (int attempt = 0; attempt < 200; ++attempt) {
      auto procs = ReadSmallFile(d.path / "cgroup.procs");
      for (const auto& p : SplitNonEmpty(procs.value_or(""), '\n')) {
        if (auto pid = ParseInt64(p); pid && *pid > 0) ::kill(static_cast<pid_t>(*pid), SIGKILL);
      }
      err = ::rmdir(d.path.c_str()) == 0 || errno == ENOENT ? 0 : errno;
      if (err != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (err != 0) {
      if (result.ok()) result = ErrnoError("removing cgroup " + d.path.string(), err);
      continue;
    }
    d.removed = true;
    // Fails harmlessly while other sandboxes use the parent.
    ::rmdir(d.parent.c_str());
  }
  return result;
}

}  // namespace fpgahost::functions
