// BwrapSandbox against the real thing: bwrap, the real launcher, real bootstrap scripts.
// Skips only where bwrap cannot create namespaces at all on this machine.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "common/subprocess.h"
#include "host/functions/sandbox_bwrap.h"
#include "host/functions/sandbox_proc.h"
#include "tests/support/bwrap.h"
#include "tests/support/sandbox_output.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::functions {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr auto kPatience = seconds(60);

using testing::BwrapUnusableReason;

// Appends what `fd` (nonblocking) delivers to `text` until `done(text)`, end of file or the
// deadline. Returns whether `done` was reached.
template <typename Done>
bool ReadUntil(int fd, std::string& text, Clock::time_point deadline, Done done) {
  char buffer[4096];
  while (!done(text)) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) return done(text);
    if (n > 0) text.append(buffer, static_cast<size_t>(n));
  }
  return true;
}

std::string ReadToEnd(int fd) { return testing::ReadToEnd(fd, kPatience); }
using testing::KeyValues;

// A TCP listener on the host's 127.0.0.1, port chosen by the kernel.
struct HostListener {
  HostListener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd, 8), 0);
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port = ntohs(addr.sin_port);
  }
  ~HostListener() { ::close(fd); }
  int fd = -1;
  uint16_t port = 0;
};

// Accepts one connection on the runtime API socket, reads a line and answers `reply`.
std::string ExchangeLine(int listen_fd, const std::string& reply) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(milliseconds(kPatience).count())) != 1)
    return "<no connection>";
  int conn = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (conn < 0) return "<accept failed>";
  std::string line;
  ReadUntil(conn, line, Clock::now() + kPatience,
            [](const std::string& t) { return t.find('\n') != std::string::npos; });
  std::string answer = reply + "\n";
  EXPECT_EQ(::write(conn, answer.data(), answer.size()), static_cast<ssize_t>(answer.size()));
  ::close(conn);
  return line;
}

// Host pids of the processes in `pid`'s pid namespace.
std::set<pid_t> PidsInNamespaceOf(pid_t pid) {
  std::set<pid_t> out;
  struct stat target {};
  if (::stat(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), &target) != 0) return out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    auto p = ParseInt64(entry.path().filename().string());
    struct stat st {};
    if (p && ::stat((entry.path() / "ns/pid").c_str(), &st) == 0 && st.st_ino == target.st_ino) {
      out.insert(static_cast<pid_t>(*p));
    }
  }
  return out;
}

bool Gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

class BwrapSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = BwrapUnusableReason(); !why.empty()) GTEST_SKIP() << why;
    // As root the sandbox runs as nobody on the host, who must be able to read the bundle.
    ::chmod(task_.path().c_str(), 0755);
  }

  BwrapSandbox::Options SandboxOptions() {
    BwrapSandbox::Options options;
    options.launcher = FPGAHOST_SLOT_INIT;
    return options;
  }

  void WriteBootstrap(const std::string& script) {
    std::ofstream(task_ / "bootstrap") << script;
    ::chmod((task_ / "bootstrap").c_str(), 0755);
  }

  SandboxSpec Spec() {
    static std::atomic<int> counter{0};
    SandboxSpec spec;
    spec.task_dir = task_.path();
    spec.argv = {"/var/task/bootstrap"};
    spec.name = "sbxtest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    spec.memory_mib = 64;
    spec.cpus = 0.5;
    spec.max_pids = 32;
    spec.tmp_mib = 8;
    return spec;
  }

  testing::TempDir task_;
};

TEST_F(BwrapSandboxTest, BootstrapSeesOnlyItsSandboxAndTheReportMatches) {
  // A host file outside the bundle, both in a private directory and beside the test binary.
  testing::TempDir secret_dir;
  std::ofstream(secret_dir / "secret") << "host secret\n";
  std::filesystem::path visible_secret =
      std::filesystem::path(FPGAHOST_BINARY_DIR) / ("sandbox-secret-" + std::to_string(::getpid()));
  std::ofstream(visible_secret) << "host secret\n";
  ::chmod(visible_secret.c_str(), 0644);
  HostListener host;
  ::setenv("FPGAHOST_SANDBOX_TEST_HOST_ONLY", "1", 1);

  WriteBootstrap(R"SH(#!/bin/bash
echo "uid=$(id -u)"
echo "gid=$(id -g)"
echo "capeff=$(grep '^CapEff' /proc/self/status | cut -f2)"
echo "capbnd=$(grep '^CapBnd' /proc/self/status | cut -f2)"
echo "nonewprivs=$(grep '^NoNewPrivs' /proc/self/status | cut -f2)"
touch /var/task/x 2>/dev/null && echo task_write=ok || echo task_write=fail
touch /usr/x 2>/dev/null && echo usr_write=ok || echo usr_write=fail
touch /x 2>/dev/null && echo root_write=ok || echo root_write=fail
touch /etc/x 2>/dev/null && echo etc_write=ok || echo etc_write=fail
[ -z "$(ls -A /tmp)" ] && echo tmp_empty=yes || echo tmp_empty=no
echo data > /tmp/f && [ "$(cat /tmp/f)" = data ] && echo tmp_write=ok || echo tmp_write=fail
cat "$SECRET_1" >/dev/null 2>&1 && echo secret_1=read || echo secret_1=unreadable
cat "$SECRET_2" >/dev/null 2>&1 && echo secret_2=read || echo secret_2=unreadable
[ -e "$SECRET_2" ] && echo secret_2_path=exists || echo secret_2_path=missing
[ -e /etc/shadow ] && echo shadow=exists || echo shadow=missing
[ -e /home ] || [ -e /root ] || [ -e /var/lib ] && echo host_dirs=present || echo host_dirs=absent
host=/dev/tcp/127.0.0.1/$HOST_PORT
(exec 4<>$host) 2>/dev/null && echo host_port=connected || echo host_port=refused
(exec 4<>/dev/tcp/192.0.2.1/80) 2>/dev/null && echo outside=connected || echo outside=unreachable
[ -w /proc/sys/kernel/core_pattern ] && echo procsys=writable || echo procsys=protected
echo "pid=$$"
echo "pid1=$(cat /proc/1/comm)"
echo "hostname=$(cat /proc/sys/kernel/hostname)"
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ',')"
echo "env_host=${FPGAHOST_SANDBOX_TEST_HOST_ONLY:-unset}"
echo "env_spec=$SPEC_VAR"
echo "api=$AWS_LAMBDA_RUNTIME_API"
echo "cwd=$(pwd)"
echo "fds=$(ls /proc/self/fd | tr '\n' ',')"
echo "to stderr" >&2
exec 3<>/dev/tcp/${AWS_LAMBDA_RUNTIME_API%:*}/${AWS_LAMBDA_RUNTIME_API#*:}
echo "hello from the sandbox" >&3
read -r reply <&3
echo "reply=$reply"
)SH");
  BwrapSandbox sandbox(SandboxOptions());
  SandboxSpec spec = Spec();
  spec.runtime_api_port = 9001;
  spec.env = {{"SECRET_1", (secret_dir / "secret").string()},
              {"SECRET_2", visible_secret.string()},
              {"HOST_PORT", std::to_string(host.port)},
              {"SPEC_VAR", "42"},
              {"AWS_LAMBDA_RUNTIME_API", "ignored:1"}};
  auto started = sandbox.Start(spec);
  ::unsetenv("FPGAHOST_SANDBOX_TEST_HOST_ONLY");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  SandboxedProcess& process = **started;

  EXPECT_EQ(ExchangeLine(process.runtime_api_listen_fd(), "hello from the host"),
            "hello from the sandbox\n");
  std::string out = ReadToEnd(process.stdout_fd());
  std::string err = ReadToEnd(process.stderr_fd());
  auto exit_code = process.Wait(kPatience);
  std::filesystem::remove(visible_secret);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status().ToString();
  EXPECT_EQ(*exit_code, 0) << err;
  EXPECT_EQ(err, "to stderr\n");
  auto seen = KeyValues(out);
  const Isolation& iso = process.isolation();
  SCOPED_TRACE(out + "\n" + iso.ToJson().dump(2));

  EXPECT_EQ(seen["reply"], "hello from the host");
  EXPECT_EQ(seen["task_write"], "fail");
  EXPECT_EQ(seen["usr_write"], "fail");
  EXPECT_EQ(seen["root_write"], "fail");
  EXPECT_EQ(seen["etc_write"], "fail");
  EXPECT_EQ(seen["tmp_empty"], "yes");
  EXPECT_EQ(seen["tmp_write"], "ok");
  EXPECT_EQ(seen["secret_1"], "unreadable");
  EXPECT_EQ(seen["secret_2"], "unreadable");
  EXPECT_EQ(seen["secret_2_path"], "missing");
  EXPECT_EQ(seen["shadow"], "missing");
  EXPECT_EQ(seen["host_dirs"], "absent");
  EXPECT_EQ(seen["host_port"], "refused");
  EXPECT_EQ(seen["outside"], "unreachable");
  EXPECT_EQ(seen["procsys"], "protected");
  EXPECT_EQ(seen["pid1"], "bwrap");
  EXPECT_NE(seen["pid"], std::to_string(process.pid()));
  char hostname[256] = {};
  ::gethostname(hostname, sizeof hostname - 1);
  EXPECT_NE(seen["hostname"], hostname);
  EXPECT_EQ(seen["hostname"], spec.name);
  EXPECT_EQ(seen["ifaces"], "lo,");
  EXPECT_EQ(seen["env_host"], "unset");
  EXPECT_EQ(seen["env_spec"], "42");
  EXPECT_EQ(seen["api"], "127.0.0.1:9001");
  EXPECT_EQ(seen["cwd"], "/var/task");
  EXPECT_EQ(seen["fds"], "0,1,2,3,");  // 3 is `ls`'s own directory: nothing leaked in
  int stray = ::accept4(host.fd, nullptr, nullptr, SOCK_NONBLOCK);
  EXPECT_LT(stray, 0) << "the sandbox reached the host's loopback";

  // The report says what the bootstrap saw.
  EXPECT_TRUE(iso.namespaces.mount);
  EXPECT_TRUE(iso.namespaces.pid);
  EXPECT_TRUE(iso.namespaces.ipc);
  EXPECT_TRUE(iso.namespaces.uts);
  EXPECT_TRUE(iso.namespaces.net);
  EXPECT_TRUE(iso.namespaces.user);
  EXPECT_TRUE(iso.read_only_system);
  EXPECT_EQ(iso.writable_mounts, std::vector<std::string>{"/tmp"});
  EXPECT_TRUE(iso.private_tmp);
  EXPECT_EQ(iso.tmp_size_bytes, int64_t{8} << 20);
  EXPECT_EQ(iso.capabilities_dropped,
            seen["capeff"] == "0000000000000000" && seen["capbnd"] == "0000000000000000");
  EXPECT_TRUE(iso.capabilities_dropped);
  EXPECT_EQ(iso.no_new_privs, seen["nonewprivs"] == "1");
  EXPECT_TRUE(iso.no_new_privs);
  ASSERT_TRUE(iso.uid && iso.gid && iso.host_uid);
  EXPECT_EQ(std::to_string(*iso.uid), seen["uid"]);
  EXPECT_EQ(std::to_string(*iso.gid), seen["gid"]);
  EXPECT_EQ(*iso.uid, 993u);
  EXPECT_NE(*iso.host_uid, 0u);
  if (::geteuid() != 0) {
    EXPECT_EQ(*iso.host_uid, ::geteuid());
  }
  EXPECT_EQ(iso.network_interfaces, std::vector<std::string>{"lo"});
  EXPECT_TRUE(iso.runtime_api_in_sandbox_netns);
  if (iso.cgroup_version != "none") {
    EXPECT_EQ(iso.memory_max_bytes, int64_t{64} << 20);
    EXPECT_EQ(iso.cpu_quota_us, 50000);
    EXPECT_EQ(iso.cpu_period_us, 100000);
    EXPECT_EQ(iso.pids_max, 32);
    // Wait removed them.
    for (const auto& dir : iso.cgroup_dirs) EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
  } else {
    EXPECT_FALSE(iso.notes.empty());
  }
  Json json = iso.ToJson();
  RecordProperty("isolation", json.dump());
  EXPECT_EQ(json["uid"], 993);
  EXPECT_EQ(json["namespaces"]["net"], true);
  EXPECT_EQ(json["cgroup"]["version"], iso.cgroup_version);
}

TEST_F(BwrapSandboxTest, MemoryLimitKillsAnAllocatorOverIt) {
  // Waits for "go" on the runtime API before allocating, so nothing is allocated unless the
  // limit is in force; stops by itself at four times the limit.
  WriteBootstrap(R"SH(#!/bin/bash
exec 3<>/dev/tcp/127.0.0.1/${AWS_LAMBDA_RUNTIME_API#*:}
echo ready >&3
read -r go <&3
s=x
while [ ${#s} -lt $((4 * LIMIT_BYTES)) ]; do s=$s$s; done
echo survived
)SH");
  BwrapSandbox sandbox(SandboxOptions());
  SandboxSpec spec = Spec();
  spec.memory_mib = 32;
  spec.env = {{"LIMIT_BYTES", std::to_string(spec.memory_mib << 20)}};
  auto process = sandbox.Start(spec);
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  const Isolation& iso = (*process)->isolation();
  if (!iso.memory_max_bytes) {
    GTEST_SKIP() << "no memory limit in force on this host, not testing it: "
                 << iso.ToJson()["notes"].dump();
  }
  EXPECT_EQ(*iso.memory_max_bytes, int64_t{32} << 20);
  EXPECT_EQ(ExchangeLine((*process)->runtime_api_listen_fd(), "go"), "ready\n");
  auto exit_code = (*process)->Wait(kPatience);
  ASSERT_TRUE(exit_code.ok()) << exit_code.status().ToString();
  EXPECT_EQ(*exit_code, 128 + SIGKILL);
  EXPECT_EQ(ReadToEnd((*process)->stdout_fd()), "");
}

TEST_F(BwrapSandboxTest, PidsLimitContainsAForkBomb) {
  WriteBootstrap(R"SH(#!/bin/bash
exec 3<>/dev/tcp/127.0.0.1/${AWS_LAMBDA_RUNTIME_API#*:}
echo ready >&3
read -r go <&3
exec 3>&-
bomb() { bomb | bomb; }
bomb
)SH");
  BwrapSandbox sandbox(SandboxOptions());
  SandboxSpec spec = Spec();
  spec.max_pids = 16;
  auto process = sandbox.Start(spec);
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  const Isolation& iso = (*process)->isolation();
  if (!iso.pids_max) {
    GTEST_SKIP() << "no pids limit in force on this host, not running a fork bomb: "
                 << iso.ToJson()["notes"].dump();
  }
  EXPECT_EQ(*iso.pids_max, 16);
  EXPECT_EQ(ExchangeLine((*process)->runtime_api_listen_fd(), "go"), "ready\n");
  // bash says so when a fork fails: the limit has been reached.
  std::string err;
  EXPECT_TRUE(ReadUntil((*process)->stderr_fd(), err, Clock::now() + kPatience,
                        [](const std::string& t) {
                          return t.find("Resource temporarily unavailable") != std::string::npos;
                        }))
      << err;
  std::filesystem::path pids_dir;
  for (const auto& d : iso.cgroup_dirs) {
    if (std::filesystem::exists(std::filesystem::path(d) / "pids.max")) pids_dir = d;
  }
  ASSERT_FALSE(pids_dir.empty());
  auto current = ParseInt64(TrimWhitespace(ReadSmallFile(pids_dir / "pids.current").value_or("")));
  ASSERT_TRUE(current);
  EXPECT_LE(*current, 16);
  std::set<pid_t> pids = PidsInNamespaceOf((*process)->pid());
  EXPECT_GT(pids.size(), 2u);
  EXPECT_LE(pids.size(), 16u);

  ASSERT_TRUE((*process)->Kill().ok());
  for (pid_t p : pids)
    EXPECT_TRUE(Gone(p)) << ReadSmallFile("/proc/" + std::to_string(p) + "/stat").value_or("");
  EXPECT_FALSE(std::filesystem::exists(pids_dir));
}

TEST_F(BwrapSandboxTest, KillRemovesEveryProcessAndTheCgroups) {
  WriteBootstrap(R"SH(#!/bin/bash
sleep 1000 &
sleep 1000 &
echo ready
wait
)SH");
  BwrapSandbox sandbox(SandboxOptions());
  auto process = sandbox.Start(Spec());
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  std::string out;
  ASSERT_TRUE(ReadUntil((*process)->stdout_fd(), out, Clock::now() + kPatience,
                        [](const std::string& t) { return t == "ready\n"; }));
  std::set<pid_t> pids = PidsInNamespaceOf((*process)->pid());
  // bwrap's init, the bootstrap and two sleeps.
  EXPECT_EQ(pids.size(), 4u);
  std::vector<std::string> dirs = (*process)->isolation().cgroup_dirs;
  for (const auto& d : dirs) {
    auto procs = ReadSmallFile(std::filesystem::path(d) / "cgroup.procs");
    ASSERT_TRUE(procs);
    // Those four plus bwrap itself.
    EXPECT_EQ(SplitNonEmpty(*procs, '\n').size(), 5u) << d;
  }
  auto still = (*process)->Wait(milliseconds(0));
  EXPECT_EQ(still.status().code(), StatusCode::kDeadlineExceeded);

  ASSERT_TRUE((*process)->Kill().ok());
  for (pid_t p : pids)
    EXPECT_TRUE(Gone(p)) << ReadSmallFile("/proc/" + std::to_string(p) + "/stat").value_or("");
  for (const auto& d : dirs) EXPECT_FALSE(std::filesystem::exists(d)) << d;
  auto code = (*process)->Wait(milliseconds(0));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 128 + SIGKILL);
  EXPECT_TRUE((*process)->Kill().ok());
}

TEST_F(BwrapSandboxTest, WithoutCgroupsTheReportSaysNone) {
  WriteBootstrap("#!/bin/sh\necho ok\n");
  BwrapSandbox::Options options = SandboxOptions();
  options.use_cgroups = false;
  BwrapSandbox sandbox(options);
  auto process = sandbox.Start(Spec());
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  const Isolation& iso = (*process)->isolation();
  EXPECT_EQ(iso.cgroup_version, "none");
  EXPECT_FALSE(iso.memory_max_bytes);
  EXPECT_FALSE(iso.cpu_quota_us);
  EXPECT_FALSE(iso.pids_max);
  EXPECT_TRUE(iso.cgroup_dirs.empty());
  EXPECT_FALSE(iso.notes.empty());
  EXPECT_TRUE(iso.read_only_system);
  EXPECT_EQ(ReadToEnd((*process)->stdout_fd()), "ok\n");
  auto code = (*process)->Wait(kPatience);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

TEST_F(BwrapSandboxTest, ExitStatusIsTheRuntimes) {
  WriteBootstrap("#!/bin/sh\nexit 7\n");
  BwrapSandbox sandbox(SandboxOptions());
  auto process = sandbox.Start(Spec());
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  auto code = (*process)->Wait(kPatience);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 7);
}

TEST_F(BwrapSandboxTest, MissingBootstrapIsNotFound) {
  BwrapSandbox sandbox(SandboxOptions());
  SandboxSpec spec = Spec();
  spec.argv = {"/var/task/no-such-bootstrap"};
  auto process = sandbox.Start(spec);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.status().code(), StatusCode::kNotFound) << process.status().ToString();
  EXPECT_NE(process.status().message().find("no-such-bootstrap"), std::string::npos);
}

TEST_F(BwrapSandboxTest, BadSpecsAreInvalidArguments) {
  BwrapSandbox sandbox(SandboxOptions());
  SandboxSpec relative = Spec();
  relative.argv = {"bootstrap"};
  SandboxSpec bad_name = Spec();
  bad_name.name = "../escape";
  SandboxSpec no_dir = Spec();
  no_dir.task_dir = task_ / "missing";
  SandboxSpec bad_env = Spec();
  bad_env.env = {{"A=B", "c"}};
  // Host files are bound only under /opt (never over the system, the bundle or extensions),
  // and only files that exist.
  SandboxSpec over_system = Spec();
  over_system.ro_binds = {{task_ / "bootstrap", "/usr/bin/env"}};
  SandboxSpec climbing = Spec();
  climbing.ro_binds = {{task_ / "bootstrap", "/opt/../usr/bin/env"}};
  SandboxSpec over_extensions = Spec();
  over_extensions.ro_binds = {{task_ / "bootstrap", "/opt/extensions/x"}};
  SandboxSpec missing_source = Spec();
  missing_source.ro_binds = {{task_ / "missing", "/opt/fpga/image.xclbin"}};
  for (const SandboxSpec& spec : {relative, bad_name, no_dir, bad_env, over_system, climbing,
                                  over_extensions, missing_source}) {
    auto process = sandbox.Start(spec);
    ASSERT_FALSE(process.ok());
    EXPECT_EQ(process.status().code(), StatusCode::kInvalidArgument);
  }
}

// A host file bound read-only under /opt: readable by the sandbox's user even where the host's
// path to it is not, never writable.
TEST_F(BwrapSandboxTest, ReadOnlyBindsShowAHostFileUnderOpt) {
  testing::TempDir host;
  std::filesystem::path file = host.path() / "private" / "image.xclbin";
  std::filesystem::create_directories(file.parent_path());
  { std::ofstream(file) << "xclbin bytes"; }
  std::filesystem::permissions(file.parent_path(), std::filesystem::perms::owner_all);
  std::filesystem::permissions(file, std::filesystem::perms::owner_read |
                                         std::filesystem::perms::group_read |
                                         std::filesystem::perms::others_read);
  WriteBootstrap(
      "#!/bin/sh\ncat /opt/fpga/image.xclbin; echo\n"
      "(echo x >> /opt/fpga/image.xclbin) 2>/dev/null && echo written || echo refused\n");
  BwrapSandbox sandbox(SandboxOptions());
  SandboxSpec spec = Spec();
  spec.ro_binds = {{file, "/opt/fpga/image.xclbin"}};
  auto process = sandbox.Start(spec);
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  EXPECT_EQ(ReadToEnd((*process)->stdout_fd()), "xclbin bytes\nrefused\n");
  auto code = (*process)->Wait(kPatience);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

TEST_F(BwrapSandboxTest, NameOfARunningSandboxIsTaken) {
  WriteBootstrap("#!/bin/sh\nexec sleep 1000\n");
  BwrapSandbox sandbox(SandboxOptions());
  SandboxSpec spec = Spec();
  auto first = sandbox.Start(spec);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  if ((*first)->isolation().cgroup_version == "none") {
    GTEST_SKIP() << "no cgroups in force: names are not reserved";
  }
  auto second = sandbox.Start(spec);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE((*first)->Kill().ok());
  auto third = sandbox.Start(spec);
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST(SandboxProcTest, ParsesMountinfo) {
  auto mounts = ParseMountinfo(
      "64 41 0:39 /newroot / ro,nosuid,nodev,relatime - tmpfs tmpfs rw,uid=65534\n"
      "78 64 0:43 / /tmp rw,nosuid,nodev,relatime shared:5 - tmpfs tmpfs rw,size=1024k,mode=755\n"
      "79 64 254:0 /a\\040b /var/task ro,relatime - ext4 /dev/vda rw\n");
  ASSERT_EQ(mounts.size(), 3u);
  EXPECT_TRUE(mounts[0].read_only());
  EXPECT_EQ(mounts[1].mount_point, "/tmp");
  EXPECT_FALSE(mounts[1].read_only());
  EXPECT_EQ(ParseTmpfsSize(mounts[1].super_options), 1024 * 1024);
  EXPECT_EQ(mounts[2].root, "/a b");
  EXPECT_EQ(mounts[2].fstype, "ext4");
}

TEST(SandboxProcTest, MapsIdsAndReadsStatus) {
  EXPECT_EQ(MapIdInside("       993      65534          1\n", 65534), 993);
  EXPECT_EQ(MapIdInside("       993      65534          1\n", 0), std::nullopt);
  auto status = ParseProcStatus("Name:\tbash\nCapEff:\t0000000000000000\nUid:\t1\t2\t3\t4\n");
  EXPECT_EQ(status["CapEff"], "0000000000000000");
  EXPECT_EQ(status["Uid"], "1\t2\t3\t4");
  EXPECT_EQ(ParseNetDev("Inter-|   Receive\n face |bytes\n    lo: 1 2 3\n  eth0: 4\n"),
            (std::vector<std::string>{"lo", "eth0"}));
  auto cg = ParseProcCgroup("4:memory:/a/b\n2:cpu,cpuacct:/\n0::/x\n");
  ASSERT_EQ(cg.size(), 3u);
  EXPECT_EQ(cg[1].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(cg[2].hierarchy_id, "0");
  EXPECT_EQ(cg[2].path, "/x");
}

}  // namespace
}  // namespace fpgahost::functions
