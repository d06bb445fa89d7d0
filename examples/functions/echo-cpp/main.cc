// echo-cpp: a Lambda custom runtime (`provided.al2023`) in C++ with nothing but POSIX sockets,
// libc and libstdc++, so it runs in a slot that sees only the host's /usr.
//
// Each invocation's event is posted back as its response, byte for byte, and one line is logged
// to stdout. An event holding "fail": true is reported as a function error instead (errorType
// EchoError), to show how function errors look to callers.
//
// It sits on the warm-invoke path, so it keeps one keep-alive HTTP/1.1 connection to the
// Runtime API (TCP_NODELAY), reads exactly Content-Length bytes, sends headers and body with
// one sendmsg, and reuses its buffers: after the largest event so far, an invocation allocates
// nothing. When the Runtime API goes away the runtime exits, as on Lambda.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view kNextPath = "/2018-06-01/runtime/invocation/next";
constexpr std::string_view kInvocationPath = "/2018-06-01/runtime/invocation/";
constexpr std::string_view kFailError =
    R"({"errorMessage":"asked to fail","errorType":"EchoError"})";
// Far more than the Runtime API's headers (client context and identity included) ever take.
constexpr size_t kMaxHeadBytes = 1 << 20;
constexpr size_t kReadChunk = 64 * 1024;

[[noreturn]] void Die(std::string_view what, int err = 0) {
  std::fprintf(stderr, "echo-cpp: %.*s%s%s\n", static_cast<int>(what.size()), what.data(),
               err != 0 ? ": " : "", err != 0 ? std::strerror(err) : "");
  std::exit(1);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The event asks to fail: it holds "fail" followed by `:` and `true` (whitespace allowed).
bool AsksToFail(std::string_view event) {
  constexpr std::string_view kKey = "\"fail\"";
  for (size_t at = event.find(kKey); at != std::string_view::npos; at = event.find(kKey, at + 1)) {
    std::string_view rest = event.substr(at + kKey.size());
    auto skip_space = [&rest] {
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t' ||
                               rest.front() == '\n' || rest.front() == '\r')) {
        rest.remove_prefix(1);
      }
    };
    skip_space();
    if (rest.empty() || rest.front() != ':') continue;
    rest.remove_prefix(1);
    skip_space();
    if (rest.starts_with("true")) return true;
  }
  return false;
}

struct Response {
  int status = 0;
  std::string request_id;  // Lambda-Runtime-Aws-Request-Id, when sent
  std::string body;
};

// One keep-alive HTTP/1.1 connection to the Runtime API, reopened when the server closes it.
class RuntimeClient {
 public:
  explicit RuntimeClient(std::string_view api) : host_header_(api) {
    size_t colon = api.rfind(':');
    if (colon == std::string_view::npos) Die("AWS_LAMBDA_RUNTIME_API is not host:port");
    std::string host(api.substr(0, colon));
    std::string port(api.substr(colon + 1));
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      Die(std::string("cannot resolve AWS_LAMBDA_RUNTIME_API: ") + ::gai_strerror(rc));
    }
    std::memcpy(&addr_, found->ai_addr, found->ai_addrlen);
    addr_len_ = found->ai_addrlen;
    family_ = found->ai_family;
    ::freeaddrinfo(found);
    head_.reserve(512);
  }

  // Sends one request (`body` may be empty) and reads its response into `res`. Exits when the
  // Runtime API cannot be reached.
  void Exchange(std::string_view method, std::string_view path_prefix, std::string_view id,
                std::string_view path_suffix, std::string_view extra_header, std::string_view body,
                Response& res) {
    head_.clear();
    head_.append(method).append(" ").append(path_prefix).append(id).append(path_suffix);
    head_.append(" HTTP/1.1\r\nHost: ").append(host_header_).append("\r\n");
    if (method == "POST") {
      char digits[24];
      auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), body.size());
      head_.append("Content-Type: application/json\r\nContent-Length: ")
          .append(digits, static_cast<size_t>(end - digits))
          .append("\r\n");
    }
    head_.append(extra_header).append("\r\n");
    // A kept-alive connection may have been closed by the server while idle: one retry on a
    // fresh connection, when nothing of the answer had arrived.
    for (int attempt = 0;; ++attempt) {
      bool reused = fd_ >= 0;
      if (!reused) Connect();
      got_bytes_ = false;
      if (Send(body) && ReadResponse(res)) return;
      Close();
      if (!reused || attempt > 0 || got_bytes_) Die("the Runtime API closed the connection");
    }
  }

 private:
  void Connect() {
    fd_ = ::socket(family_, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) Die("socket", errno);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    while (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr_), addr_len_) != 0) {
      if (errno != EINTR) Die("cannot connect to the Runtime API", errno);
    }
    in_begin_ = in_end_ = 0;
  }

  std::string_view Buffered() const {
    return std::string_view(in_.data() + in_begin_, in_end_ - in_begin_);
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Headers and body in one sendmsg, so with TCP_NODELAY they leave together.
  bool Send(std::string_view body) {
    iovec iov[2] = {{head_.data(), head_.size()}, {const_cast<char*>(body.data()), body.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = body.empty() ? 1 : 2;
    while (msg.msg_iovlen > 0) {
      ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      auto left = static_cast<size_t>(n);
      while (msg.msg_iovlen > 0 && left >= msg.msg_iov->iov_len) {
        left -= msg.msg_iov->iov_len;
        ++msg.msg_iov;
        --msg.msg_iovlen;
      }
      if (msg.msg_iovlen > 0) {
        msg.msg_iov->iov_base = static_cast<char*>(msg.msg_iov->iov_base) + left;
        msg.msg_iov->iov_len -= left;
      }
    }
    return true;
  }

  // Reads what the socket has into in_ after in_end_; false on EOF or error. Makes room by
  // moving unparsed bytes to the front, and grows only for headers longer than the buffer.
  bool Fill() {
    if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
    if (in_end_ == in_.size()) {
      if (in_begin_ > 0) {
        std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
        in_end_ -= in_begin_;
        in_begin_ = 0;
      } else if (in_.size() < kMaxHeadBytes) {
        in_.resize(in_.size() * 2);
      } else {
        Die("the Runtime API's headers are too long");
      }
    }
    ssize_t n;
    do {
      n = ::read(fd_, in_.data() + in_end_, in_.size() - in_end_);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    in_end_ += static_cast<size_t>(n);
    got_bytes_ = true;
    return true;
  }

  bool ReadResponse(Response& res) {
    size_t end;
    while ((end = Buffered().find("\r\n\r\n")) == std::string_view::npos) {
      if (!Fill()) return false;
    }
    std::string_view head(in_.data() + in_begin_, end);
    in_begin_ += end + 4;

    size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    size_t sp = status_line.find(' ');
    res.status = 0;
    if (sp != std::string_view::npos) {
      std::from_chars(status_line.data() + sp + 1, status_line.data() + status_line.size(),
                      res.status);
    }
    res.request_id.clear();
    size_t length = 0;
    bool close_after = status_line.starts_with("HTTP/1.0");
    while (eol != std::string_view::npos) {
      head.remove_prefix(eol + 2);
      eol = head.find("\r\n");
      std::string_view line = head.substr(0, eol);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = line.substr(0, colon);
      std::string_view value = Trim(line.substr(colon + 1));
      if (EqualsIgnoreCase(name, "content-length")) {
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
        if (ec != std::errc() || p != value.data() + value.size()) {
          Die("the Runtime API sent a bad Content-Length");
        }
      } else if (EqualsIgnoreCase(name, "lambda-runtime-aws-request-id")) {
        res.request_id.assign(value);
      } else if (EqualsIgnoreCase(name, "connection")) {
        close_after = EqualsIgnoreCase(value, "close");
      } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
        Die("the Runtime API sent a chunked body, which this runtime does not read");
      }
    }

    // Exactly Content-Length bytes: what is buffered already, then straight into the body.
    res.body.resize(length);
    size_t have = std::min(length, in_end_ - in_begin_);
    std::memcpy(res.body.data(), in_.data() + in_begin_, have);
    in_begin_ += have;
    while (have < length) {
      ssize_t n = ::read(fd_, res.body.data() + have, length - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) Die("the Runtime API closed the connection in the middle of a body");
      have += static_cast<size_t>(n);
    }
    if (close_after) Close();
    return true;
  }

  std::string host_header_;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  int family_ = AF_INET;
  int fd_ = -1;
  std::string in_ = std::string(kReadChunk, '\0');  // [in_begin_, in_end_) read, not parsed
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  std::string head_;  // the request being sent, reused
  bool got_bytes_ = false;
};

void Log(std::string_view id, size_t bytes) {
  char line[400];
  int n = std::snprintf(line, sizeof(line), "echo-cpp: request %.*s (%zu bytes)\n",
                        static_cast<int>(std::min<size_t>(id.size(), 300)), id.data(), bytes);
  // One write per line, unbuffered: the line reaches the log even if the slot is killed next.
  if (n > 0) {
    ssize_t ignored = ::write(1, line, std::min<size_t>(static_cast<size_t>(n), sizeof(line) - 1));
    (void)ignored;
  }
}

}  // namespace

int main() {
  const char* api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  if (api == nullptr || *api == '\0') Die("AWS_LAMBDA_RUNTIME_API is not set");
  RuntimeClient client(api);
  Response next;
  Response ack;
  next.request_id.reserve(256);
  while (true) {
    client.Exchange("GET", kNextPath, "", "", "", "", next);
    if (next.status != 200 || next.request_id.empty()) {
      std::fprintf(stderr, "echo-cpp: invocation/next answered %d: %s\n", next.status,
                   next.body.c_str());
      return 1;
    }
    Log(next.request_id, next.body.size());
    if (AsksToFail(next.body)) {
      client.Exchange("POST", kInvocationPath, next.request_id, "/error",
                      "Lambda-Runtime-Function-Error-Type: EchoError\r\n", kFailError, ack);
    } else {
      client.Exchange("POST", kInvocationPath, next.request_id, "/response", "", next.body, ack);
    }
    if (ack.status != 202) {
      // Lambda refused the answer (too large, a stale id): say so and carry on, as Lambda's own
      // runtimes do.
      std::fprintf(stderr, "echo-cpp: request %s: the Runtime API answered %d: %s\n",
                   next.request_id.c_str(), ack.status, ack.body.c_str());
    }
  }
}
