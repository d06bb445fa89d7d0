// The HTTP/1.1 server of fpgahostd, on Boost.Beast/Asio.
//
// Asynchronous: a connection waiting for its handler (a long poll, work queued elsewhere)
// holds no thread. Each request gets a request id (the X-Request-Id response header) and an
// access-log line. Limits: header size (431), body size per route (413), idle connections
// (closed after `idle_timeout`), malformed requests (400). Protocol errors are answered with
// the JSON error envelope (host/http/errors.h) and the connection is closed.
//
// Handlers run on the server's I/O threads and must not block: post blocking work
// elsewhere and complete the Responder from there.
//
// Thread-safety: Start, port and Shutdown may be called from any thread. A Responder may be
// completed or dropped until the server is destroyed; one completed after Shutdown is
// discarded.
//
// Threads: by default a server runs `threads` I/O threads of its own. Servers made in large
// numbers (one Runtime API server per function slot) share an IoThreads instead, so each
// costs no thread: idle, such a server holds its listening socket and a few KB of heap.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "host/http/router.h"

namespace boost::asio {
class io_context;
}

namespace fpgahost::http {

// A pool of I/O threads that many servers share (ServerOptions::io_threads). The threads run
// until the IoThreads is destroyed. Destroy every server using it, and drop the Responders
// those servers handed out, before the IoThreads. Thread-safe.
class IoThreads {
 public:
  explicit IoThreads(int threads);
  ~IoThreads();  // stops and joins the threads
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  boost::asio::io_context& context();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port; see HttpServer::port()
  int threads = 2;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;  // default for routes that set none
  std::chrono::milliseconds idle_timeout{60'000};
  // How long Shutdown waits for in-flight requests before cutting them off.
  std::chrono::milliseconds shutdown_grace{10'000};
  // Access-log lines at debug rather than info level (servers whose every request is part of
  // a larger one, such as a function slot's Runtime API).
  bool access_log_debug = false;
  // When set, the server runs on these shared threads and starts none of its own (`threads`
  // is then ignored). Shutdown must then not be called from one of those threads.
  IoThreads* io_threads = nullptr;
};

class HttpServer {
 public:
  // Binds the listening socket without serving yet, so a caller can fail early (port in
  // use) before it writes anything. Errors: Unavailable (reason ADDRESS_IN_USE) when the
  // port is taken, InvalidArgument for an address that is not an IP address.
  static StatusOr<std::unique_ptr<HttpServer>> Listen(ServerOptions options);

  // As Listen, on a TCP socket someone else created and put in the listening state (e.g.
  // inside a function slot's network namespace); `address` and `port` are ignored. Takes
  // ownership of `listen_fd`, which is closed on failure too. Errors: InvalidArgument when
  // the fd is not a listening TCP (IPv4 or IPv6) socket.
  static StatusOr<std::unique_ptr<HttpServer>> Adopt(int listen_fd, ServerOptions options);

  // Starts serving `router` on the I/O threads. Call once.
  void Serve(std::unique_ptr<Router> router);
  ~HttpServer();

  uint16_t port() const;

  // Stops accepting, closes idle connections, lets in-flight requests finish (up to
  // shutdown_grace) and joins the I/O threads. Idempotent; the destructor calls it.
  void Shutdown();

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fpgahost::http
