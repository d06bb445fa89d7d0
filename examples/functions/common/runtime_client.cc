#include "examples/functions/common/runtime_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fpgahost::examples {
namespace {

// Far more than the Runtime API's headers (client context and identity included) ever take.
constexpr size_t kMaxHeadBytes = 1 << 20;
constexpr size_t kReadChunk = 64 * 1024;

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

}  // namespace

void Die(std::string_view program, std::string_view what, int err) {
  std::fprintf(stderr, "%.*s: %.*s%s%s\n", static_cast<int>(program.size()), program.data(),
               static_cast<int>(what.size()), what.data(), err != 0 ? ": " : "",
               err != 0 ? std::strerror(err) : "");
  std::exit(1);
}

RuntimeClient::RuntimeClient(std::string_view api, std::string_view program)
    : program_(program), host_header_(api), in_(kReadChunk, '\0') {
  size_t colon = api.rfind(':');
  if (colon == std::string_view::npos) Die(program_, "AWS_LAMBDA_RUNTIME_API is not host:port");
  std::string host(api.substr(0, colon));
  std::string port(api.substr(colon + 1));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    Die(program_, std::string("cannot resolve AWS_LAMBDA_RUNTIME_API: ") + ::gai_strerror(rc));
  }
  std::memcpy(&addr_, found->ai_addr, found->ai_addrlen);
  addr_len_ = found->ai_addrlen;
  family_ = found->ai_family;
  ::freeaddrinfo(found);
  head_.reserve(512);
}

RuntimeClient::~RuntimeClient() { Close(); }

void RuntimeClient::Exchange(std::string_view method, std::string_view path_prefix,
                             std::string_view id, std::string_view path_suffix,
                             std::string_view extra_header, std::string_view body,
                             RuntimeResponse& res) {
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
    if (!reused || attempt > 0 || got_bytes_)
      Die(program_, "the Runtime API closed the connection");
  }
}

void RuntimeClient::Connect() {
  fd_ = ::socket(family_, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) Die(program_, "socket", errno);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  while (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr_), addr_len_) != 0) {
    if (errno != EINTR) Die(program_, "cannot connect to the Runtime API", errno);
  }
  in_begin_ = in_end_ = 0;
}

std::string_view RuntimeClient::Buffered() const {
  return std::string_view(in_.data() + in_begin_, in_end_ - in_begin_);
}

void RuntimeClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

// Headers and body in one sendmsg, so with TCP_NODELAY they leave together.
bool RuntimeClient::Send(std::string_view body) {
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
bool RuntimeClient::Fill() {
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  if (in_end_ == in_.size()) {
    if (in_begin_ > 0) {
      std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    } else if (in_.size() < kMaxHeadBytes) {
      in_.resize(in_.size() * 2);
    } else {
      Die(program_, "the Runtime API's headers are too long");
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

bool RuntimeClient::ReadResponse(RuntimeResponse& res) {
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
        Die(program_, "the Runtime API sent a bad Content-Length");
      }
    } else if (EqualsIgnoreCase(name, "lambda-runtime-aws-request-id")) {
      res.request_id.assign(value);
    } else if (EqualsIgnoreCase(name, "connection")) {
      close_after = EqualsIgnoreCase(value, "close");
    } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
      Die(program_, "the Runtime API sent a chunked body, which this runtime does not read");
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
    if (n <= 0) Die(program_, "the Runtime API closed the connection in the middle of a body");
    have += static_cast<size_t>(n);
  }
  if (close_after) Close();
  return true;
}

}  // namespace fpgahost::examples
