// fpgahost-slot-init: the small launcher around a function slot's sandbox (BwrapSandbox).
//
//   fpgahost-slot-init outer [--join-cgroup FILE]... [--stage DIR --stage-task SRC
//                            [--stage-file SRC]...] [--user UID:GID] -- PROGRAM ARGS...
//     Runs on the host, started by fpgahostd: writes its own pid into each cgroup.procs FILE,
//     stages (below), drops to UID:GID (when given), then executes PROGRAM (bwrap).
//     Everything the sandbox ever runs descends from this process after it joined the
//     cgroups, so no process of the sandbox runs a single instruction outside its limits.
//     Staging, for a root fpgahostd whose files the unprivileged UID cannot reach: in a new
//     mount namespace (private, so the host's mounts never change), a tmpfs on DIR holding
//     DIR/task (SRC bind-mounted) and DIR/launcher (this executable bind-mounted), and
//     DIR/file-0, DIR/file-1, ... (each --stage-file SRC bind-mounted, in order), for bwrap to
//     mount into the sandbox.
//
//   fpgahost-slot-init inner --control-fd FD --port PORT [--extension NAME]... -- PROGRAM ARGS...
//     Runs inside the sandbox, as what bwrap executes: creates a TCP socket listening on
//     127.0.0.1:PORT in the sandbox's network namespace and sends it to fpgahostd over the
//     Unix socket FD (SCM_RIGHTS; fpgahostd learns this process's pid from SCM_CREDENTIALS).
//     fpgahostd checks the sandbox while this process waits, then answers "go" with the write
//     end of a pipe. This process closes every descriptor but 0-2 and that pipe (close-on-exec),
//     starts each extension /opt/extensions/NAME in the order given (Lambda's external
//     extensions: same environment, stdin, stdout and stderr, no arguments; the sandbox's init
//     becomes their parent, so the runtime never sees children it did not start), and executes
//     PROGRAM. A successful exec closes the pipe; a failed one writes "exec <errno>\n" (PROGRAM)
//     or "extension <errno> <NAME>\n" into it.
//
//   fpgahost-slot-init relay
//     The runtime of a tenant's sidecar sandbox, whose only work is its extensions': speaks the
//     Runtime API at $AWS_LAMBDA_RUNTIME_API, answering every invocation with {} at once (its
//     extensions hear INVOKE; the invocation ends when they ask for their next event). Exits 0
//     when the API goes away.
//
// Exit status: 125 when setting up fails (a message on stderr), 127 when PROGRAM cannot be
// executed. Only libc and the C++ runtime are used: the binary runs inside sandboxes that see
// nothing of the host but /usr.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int kSetupFailed = 125;
constexpr int kExecFailed = 127;
// As kSandboxExtensionsDir and kMaxSandboxExtensions (sandbox_bwrap.h, sandbox.h), which this
// binary does not include: it links nothing of fpgahost.
constexpr char kExtensionsDir[] = "/opt/extensions";
constexpr size_t kMaxExtensions = 10;

[[noreturn]] void Fail(int code, const std::string& what, int err = 0) {
  std::string line = "fpgahost-slot-init: " + what;
  if (err != 0) line += std::string(": ") + std::strerror(err);
  line += "\n";
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
  // _exit: no atexit handlers (a sanitizer's leak check among them) in a sandbox.
  ::_exit(code);
}

bool ParseNumber(std::string_view text, long max, long& out) {
  if (text.empty() || text.size() > 10) return false;
  long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value > max) return false;
  out = value;
  return true;
}

void Exec(const std::vector<char*>& argv) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execv(argv[0], argv.data());
}

void BindMount(const std::string& source, const std::string& target) {
  if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    Fail(kSetupFailed, "bind-mounting " + source + " on " + target, errno);
  }
}

void Stage(const std::string& dir, const std::string& task) {
  if (::unshare(CLONE_NEWNS) != 0) Fail(kSetupFailed, "unshare(CLONE_NEWNS)", errno);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    Fail(kSetupFailed, "making mounts private", errno);
  }
  if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") != 0) {
    Fail(kSetupFailed, "mounting a tmpfs on " + dir, errno);
  }
  std::string task_target = dir + "/task";
  std::string launcher_target = dir + "/launcher";
  if (::mkdir(task_target.c_str(), 0755) != 0) Fail(kSetupFailed, "mkdir " + task_target, errno);
  int fd = ::open(launcher_target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
  if (fd < 0) Fail(kSetupFailed, "creating " + launcher_target, errno);
  ::close(fd);
  BindMount(task, task_target);
  // The executable's own path (binding the /proc/self/exe link itself is refused).
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) Fail(kSetupFailed, "readlink /proc/self/exe", errno);
  BindMount(std::string(self, static_cast<size_t>(n)), launcher_target);
}

// Binds `source` at <dir>/file-<index> of the staged tmpfs.
void StageFile(const std::string& dir, int index, const std::string& source) {
  std::string target = dir + "/file-" + std::to_string(index);
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) Fail(kSetupFailed, "creating " + target, errno);
  ::close(fd);
  BindMount(source, target);
}

int Outer(const std::vector<std::string>& options, std::vector<char*>& program) {
  std::string staged;
  int staged_files = 0;
  for (size_t i = 0; i < options.size(); ++i) {
    if (options[i] == "--join-cgroup" && i + 1 < options.size()) {
      const std::string& file = options[++i];
      int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) Fail(kSetupFailed, "joining cgroup " + file, errno);
      std::string pid = std::to_string(::getpid());
      if (::write(fd, pid.data(), pid.size()) != static_cast<ssize_t>(pid.size())) {
        Fail(kSetupFailed, "joining cgroup " + file, errno);
      }
      ::close(fd);
    } else if (options[i] == "--stage" && i + 3 < options.size() &&
               options[i + 2] == "--stage-task") {
      Stage(options[i + 1], options[i + 3]);
      staged = options[i + 1];
      i += 3;
    } else if (options[i] == "--stage-file" && i + 1 < options.size() && !staged.empty()) {
      StageFile(staged, staged_files++, options[++i]);
    } else if (options[i] == "--user" && i + 1 < options.size()) {
      const std::string& ids = options[++i];
      size_t colon = ids.find(':');
      long uid = 0, gid = 0;
      if (colon == std::string::npos ||
          !ParseNumber(std::string_view(ids).substr(0, colon), 0xfffffffe, uid) ||
          !ParseNumber(std::string_view(ids).substr(colon + 1), 0xfffffffe, gid)) {
        Fail(kSetupFailed, "bad --user " + ids);
      }
      if (::setgroups(0, nullptr) != 0) Fail(kSetupFailed, "setgroups", errno);
      if (::setresgid(static_cast<gid_t>(gid), static_cast<gid_t>(gid), static_cast<gid_t>(gid)) !=
          0) {
        Fail(kSetupFailed, "setresgid", errno);
      }
      if (::setresuid(static_cast<uid_t>(uid), static_cast<uid_t>(uid), static_cast<uid_t>(uid)) !=
          0) {
        Fail(kSetupFailed, "setresuid", errno);
      }
      uid_t r, e, s;
      if (::getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid) {
        Fail(kSetupFailed, "the user did not change");
      }
    } else {
      Fail(kSetupFailed, "unknown option " + options[i]);
    }
  }
  Exec(program);
  Fail(kExecFailed, std::string("cannot execute ") + program[0], errno);
}

void SendText(int control, const std::string& text) {
  ssize_t ignored = ::send(control, text.data(), text.size(), MSG_NOSIGNAL);
  (void)ignored;
}

void CloseAllExcept(int keep) {
  // close_range (Linux 5.9); the loop is for older kernels.
  long first = keep > 3 ? ::syscall(SYS_close_range, 3u, static_cast<unsigned>(keep - 1), 0u) : 0;
  long second = ::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), ~0u, 0u);
  if (first == 0 && second == 0) return;
  long max = ::sysconf(_SC_OPEN_MAX);
  for (long fd = 3; fd < (max > 0 ? max : 65536); ++fd) {
    if (fd != keep) ::close(static_cast<int>(fd));
  }
}

// Starts /opt/extensions/`name`. Its failure to execute is reported on `report`.
void StartExtension(const std::string& name, int report) {
  std::string path = std::string(kExtensionsDir) + "/" + name;
  pid_t child = ::fork();
  if (child < 0) Fail(kSetupFailed, "fork", errno);
  if (child == 0) {
    // Twice: the extension is orphaned at once and adopted by the sandbox's init, which reaps
    // it, instead of becoming a child of the runtime this process is about to become.
    pid_t intermediate = ::getpid();
    pid_t extension = ::fork();
    if (extension != 0) ::_exit(extension < 0 ? kSetupFailed : 0);
    // Executes only once adopted, so the extension never sees the short-lived intermediate as
    // its parent (getppid() in the extension is the sandbox's init, always).
    while (::getppid() == intermediate) ::usleep(100);
    std::vector<char*> argv = {path.data(), nullptr};
    Exec(argv);
    int err = errno;
    std::string why = "extension " + std::to_string(err) + " " + name + "\n";
    ssize_t ignored = ::write(report, why.data(), why.size());
    (void)ignored;
    Fail(kExecFailed, "cannot execute " + path, err);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Fail(kSetupFailed, "cannot start the extension " + path);
  }
}

bool ValidExtensionName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

int Inner(const std::vector<std::string>& options, std::vector<char*>& program) {
  long control_fd = -1, port = -1;
  std::vector<std::string> extensions;
  for (size_t i = 0; i + 1 < options.size(); i += 2) {
    bool ok = false;
    if (options[i] == "--control-fd") ok = ParseNumber(options[i + 1], 1 << 20, control_fd);
    if (options[i] == "--port") ok = ParseNumber(options[i + 1], 65535, port);
    if (options[i] == "--extension" && ValidExtensionName(options[i + 1]) &&
        extensions.size() < kMaxExtensions) {
      extensions.push_back(options[i + 1]);
      ok = true;
    }
    if (!ok) Fail(kSetupFailed, "bad option " + options[i] + " " + options[i + 1]);
  }
  if (control_fd < 3 || port <= 0 || options.size() % 2 != 0) {
    Fail(kSetupFailed,
         "usage: inner --control-fd FD --port PORT [--extension NAME]... -- PROGRAM ARGS...");
  }
  int control = static_cast<int>(control_fd);

  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) {
    SendText(control, std::string("error: socket: ") + std::strerror(errno));
    Fail(kSetupFailed, "socket", errno);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, SOMAXCONN) != 0) {
    int err = errno;
    SendText(control,
             "error: listening on 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(err));
    Fail(kSetupFailed, "listening on 127.0.0.1:" + std::to_string(port), err);
  }

  char ready[] = "ready";
  iovec iov{ready, sizeof ready - 1};
  alignas(cmsghdr) char control_buffer[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control_buffer;
  msg.msg_controllen = sizeof control_buffer;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
  if (::sendmsg(control, &msg, MSG_NOSIGNAL) < 0) Fail(kSetupFailed, "sending the socket", errno);
  ::close(listener);

  char answer[16];
  iovec answer_iov{answer, sizeof answer};
  alignas(cmsghdr) char answer_control[CMSG_SPACE(sizeof(int))] = {};
  msghdr reply{};
  reply.msg_iov = &answer_iov;
  reply.msg_iovlen = 1;
  reply.msg_control = answer_control;
  reply.msg_controllen = sizeof answer_control;
  ssize_t n;
  do {
    n = ::recvmsg(control, &reply, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  int report = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&reply); c != nullptr; c = CMSG_NXTHDR(&reply, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      std::memcpy(&report, CMSG_DATA(c), sizeof(int));
    }
  }
  if (n != 2 || std::memcmp(answer, "go", 2) != 0 || report < 0) {
    Fail(kSetupFailed, "fpgahostd did not let the sandbox start");
  }
  CloseAllExcept(report);
  for (const std::string& name : extensions) StartExtension(name, report);
  Exec(program);
  int err = errno;
  std::string why = "exec " + std::to_string(err) + "\n";
  ssize_t ignored = ::write(report, why.data(), why.size());
  (void)ignored;
  Fail(kExecFailed, std::string("cannot execute ") + program[0], err);
}

}  // namespace

// One HTTP/1.1 request on a new connection to 127.0.0.1:`port`; the response's status, with the
// request id header's value in `id` (empty when absent). -1 when the API is gone.
int RelayRequest(uint16_t port, const std::string& request, std::string* id) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    // Connection: close: the response ends with the connection.
    while ((n = ::read(fd, buf, sizeof buf)) > 0) response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) return -1;
  if (id) {
    id->clear();
    const std::string header = "\r\nlambda-runtime-aws-request-id: ";
    std::string lower = response.substr(0, response.find("\r\n\r\n"));
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t at = lower.find(header);
    if (at != std::string::npos) {
      size_t start = at + header.size();
      *id = response.substr(start, response.find("\r\n", start) - start);
    }
  }
  return std::atoi(response.c_str() + 9);
}

int Relay() {
  const char* api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  const char* colon = api ? std::strrchr(api, ':') : nullptr;
  long port = 0;
  if (!colon || !ParseNumber(colon + 1, 65535, port)) {
    Fail(kSetupFailed, "relay: AWS_LAMBDA_RUNTIME_API is not host:port");
  }
  const std::string next =
      "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: relay\r\nConnection: "
      "close\r\n\r\n";
  while (true) {
    std::string id;
    int status = RelayRequest(static_cast<uint16_t>(port), next, &id);
    if (status < 0) return 0;
    if (status != 200 || id.empty()) {
      ::usleep(10000);  // refused: not a loop that burns the sandbox's CPU
      continue;
    }
    std::string answer = "POST /2018-06-01/runtime/invocation/" + id +
                         "/response HTTP/1.1\r\nHost: relay\r\nContent-Length: "
                         "2\r\nConnection: close\r\n\r\n{}";
    if (RelayRequest(static_cast<uint16_t>(port), answer, nullptr) < 0) return 0;
  }
}

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "relay") return Relay();
  std::vector<std::string> options;
  std::vector<char*> program;
  int i = 2;
  for (; i < argc && std::string_view(argv[i]) != "--"; ++i) options.emplace_back(argv[i]);
  for (++i; i < argc; ++i) program.push_back(argv[i]);
  program.push_back(nullptr);
  std::string_view mode = argc > 1 ? argv[1] : "";
  if (program.size() < 2 || (mode != "outer" && mode != "inner")) {
    Fail(kSetupFailed, "usage: fpgahost-slot-init outer|inner [OPTIONS] -- PROGRAM ARGS...");
  }
  return mode == "outer" ? Outer(options, program) : Inner(options, program);
}
