// The client side of the Lambda Runtime API (version 2018-06-01) that the sample C++ runtimes
// (echo-cpp, vadd-fpga) share: one keep-alive HTTP/1.1 connection to $AWS_LAMBDA_RUNTIME_API
// with nothing but POSIX sockets, libc and libstdc++, so a runtime that uses it runs in a slot
// that sees only the host's /usr.
//
//   GET  kNextPath                                 the next event (Lambda-Runtime-Aws-Request-Id)
//   POST kInvocationPath + id + "/response"        its response
//   POST kInvocationPath + id + "/error"           a function error
//   POST kInitErrorPath                            the runtime could not start
//
// It sits on the warm-invoke path: TCP_NODELAY, exactly Content-Length bytes read, headers and
// body sent with one sendmsg, buffers reused (after the largest message so far an exchange
// allocates nothing). When the Runtime API cannot be reached or breaks the protocol, the
// process exits with status 1 (Die), as Lambda's runtimes do. Not thread-safe: one thread
// owns a client.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace fpgahost::examples {

inline constexpr std::string_view kNextPath = "/2018-06-01/runtime/invocation/next";
inline constexpr std::string_view kInvocationPath = "/2018-06-01/runtime/invocation/";
inline constexpr std::string_view kInitErrorPath = "/2018-06-01/runtime/init/error";

// Prints "<program>: <what>[: strerror(err)]" on stderr and exits with status 1.
[[noreturn]] void Die(std::string_view program, std::string_view what, int err = 0);

struct RuntimeResponse {
  int status = 0;
  std::string request_id;  // Lambda-Runtime-Aws-Request-Id, when sent
  std::string body;
};

// One keep-alive HTTP/1.1 connection to the Runtime API, reopened when the server closes it.
class RuntimeClient {
 public:
  // `api` is AWS_LAMBDA_RUNTIME_API (host:port); `program` prefixes the messages of Die.
  // Exits when `api` is not host:port or does not resolve.
  RuntimeClient(std::string_view api, std::string_view program);
  RuntimeClient(const RuntimeClient&) = delete;
  RuntimeClient& operator=(const RuntimeClient&) = delete;
  ~RuntimeClient();

  // Sends `method` on path_prefix + id + path_suffix with `extra_header` (whole "Name: value\r\n"
  // lines, or empty) and, for POST, `body` as application/json, then reads the answer into
  // `res`. Exits when the Runtime API cannot be reached.
  void Exchange(std::string_view method, std::string_view path_prefix, std::string_view id,
                std::string_view path_suffix, std::string_view extra_header, std::string_view body,
                RuntimeResponse& res);

 private:
  void Connect();
  std::string_view Buffered() const;
  void Close();
  bool Send(std::string_view body);
  bool Fill();
  bool ReadResponse(RuntimeResponse& res);

  std::string program_;
  std::string host_header_;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  int family_ = AF_INET;
  int fd_ = -1;
  std::string in_;  // [in_begin_, in_end_) read, not parsed
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  std::string head_;  // the request being sent, reused
  bool got_bytes_ = false;
};

}  // namespace fpgahost::examples
