#include "host/http/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <limits>
#include <list>
#include <optional>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "common/thread_annotations.h"
#include "host/http/errors.h"

namespace fpgahost::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

class Connection;

// Live connections, so Shutdown can close the idle ones and wait for the rest.
class ConnectionSet {
 public:
  void Add(const std::shared_ptr<Connection>& c) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    live_.push_back(c);
  }
  void Remove(const Connection* c) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    live_.remove_if([c](const std::weak_ptr<Connection>& w) {
      auto s = w.lock();
      return !s || s.get() == c;
    });
    if (live_.empty()) empty_.notify_all();
  }
  std::vector<std::shared_ptr<Connection>> Snapshot() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    std::vector<std::shared_ptr<Connection>> out;
    for (auto& w : live_) {
      if (auto s = w.lock()) out.push_back(std::move(s));
    }
    return out;
  }
  // True when every connection ended before `deadline`.
  bool WaitEmpty(std::chrono::steady_clock::time_point deadline) EXCLUDES(mu_) {
    std::unique_lock<Mutex> lock(mu_);
    return empty_.wait_until(lock, deadline,
                             [this]() NO_THREAD_SAFETY_ANALYSIS { return live_.empty(); });
  }

 private:
  Mutex mu_;
  std::condition_variable_any empty_;
  std::list<std::weak_ptr<Connection>> live_ GUARDED_BY(mu_);
};

struct Shared {
  ServerOptions options;
  std::unique_ptr<Router> router;
  ConnectionSet connections;
  std::atomic<bool> stopping{false};
};

std::string LowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Shared is held, not borrowed: on shared I/O threads a connection cut off by Shutdown may
  // outlive its server until its last handler has run.
  Connection(tcp::socket socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)), shared_holder_(std::move(shared)), shared_(*shared_holder_) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }
  ~Connection() {
    AbortSink(UnavailableError("fpgahostd is shutting down", "UPLOAD_INTERRUPTED"));
    shared_.connections.Remove(this);
  }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

  // Called by Shutdown: a connection waiting for a new request is closed now; one in the
  // middle of a request finishes it and then closes.
  void CloseIfIdle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->awaiting_request_) self->Close();
    });
  }

  // Called by Shutdown on shared I/O threads once the grace period is over.
  void CutOff() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }

 private:
  void ReadHeader() {
    if (shared_.stopping) return Close();
    stream_parser_.reset();
    match_ = Router::Match();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(shared_.options.max_header_bytes));
    // The body limit depends on the route, known only once the header is in (OnHeader).
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    awaiting_request_ = true;
    stream_.expires_after(shared_.options.idle_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    awaiting_request_ = false;
    started_ = std::chrono::steady_clock::now();
    request_.request_id = NewId("req");
    if (ec) return OnReadError(ec, /*in_header=*/true);

    const auto& header = parser_->get();
    request_.method = std::string(header.method_string());
    request_.target = std::string(header.target());
    request_.remote = remote_;
    request_.headers.clear();
    for (const auto& field : header) {
      request_.headers[LowerCase(std::string_view(
          field.name_string().data(), field.name_string().size()))] = std::string(field.value());
    }
    keep_alive_ = header.keep_alive();
    if (!SplitTarget(request_.target, request_.path, request_.query)) {
      return Fail(InvalidArgumentError(
          fmt::format("request target '{}' has malformed percent-encoding", request_.target),
          "MALFORMED_REQUEST"));
    }
    match_ = shared_.router->Find(request_.method, request_.path);
    if (!match_.found()) {
      // The body (if any) is not read: close afterwards so it is not taken for a request.
      keep_alive_ = false;
      if (match_.path_known) {
        return Fail(
            Status(StatusCode::kInvalidArgument,
                   fmt::format("method {} is not allowed on {}", request_.method, request_.path),
                   "METHOD_NOT_ALLOWED"),
            405);
      }
      return Fail(
          NotFoundError(fmt::format("no such resource: {}", request_.path), "UNKNOWN_PATH"));
    }
    // Beast checks a declared Content-Length against the limit only while parsing the
    // header, so check it here; a chunked body is checked as it arrives.
    parser_->body_limit(BodyLimit());
    auto declared = parser_->content_length();
    if (declared && *declared > BodyLimit()) {
      return OnReadError(bhttp::error::body_limit, /*in_header=*/false);
    }
    if (match_.stream_handler != nullptr) return StartStream();
    ContinueThen([self = shared_from_this()] {
      bhttp::async_read(self->stream_, self->buffer_, *self->parser_,
                        [self](beast::error_code e, size_t) { self->OnBody(e); });
    });
  }

  // A client that sent "Expect: 100-continue" (curl does for large bodies) waits for
  // "100 Continue" before sending the body; tell it to go on once the request is accepted.
  template <typename Next>
  void ContinueThen(Next next) {
    auto expect = request_.headers.find("expect");
    if (expect == request_.headers.end() || !beast::iequals(expect->second, "100-continue")) {
      return next();
    }
    auto res = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, 11);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res, next](beast::error_code ec, size_t) {
                         if (ec) return self->OnReadError(ec, /*in_header=*/false);
                         next();
                       });
  }

  void OnBody(beast::error_code ec) {
    if (ec) return OnReadError(ec, /*in_header=*/false);
    stream_.expires_never();  // the handler may take its time (long polls)
    request_.body = std::move(parser_->get().body());
    request_.params = std::move(match_.params);
    (*match_.handler)(request_, MakeResponder());
  }

  size_t BodyLimit() const {
    return match_.options.max_body_bytes != 0 ? match_.options.max_body_bytes
                                              : shared_.options.max_body_bytes;
  }

  Responder MakeResponder() {
    auto responded = std::make_shared<std::atomic<bool>>(false);
    return [self = shared_from_this(), responded](Response response) {
      if (responded->exchange(true)) {
        spdlog::error("handler for {} responded twice; second response dropped",
                      self->request_.path);
        return;
      }
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(response)]() mutable { self->Write(std::move(r)); });
    };
  }

  // Streaming routes: the body goes piece by piece to the route's BodySink, through one
  // fixed buffer, so memory does not grow with the body.
  void StartStream() {
    request_.params = std::move(match_.params);
    sink_ = (*match_.stream_handler)(request_, MakeResponder());
    if (!sink_) {
      keep_alive_ = false;  // refused before the body: it stays unread
      return;
    }
    stream_parser_.emplace(std::move(*parser_));
    stream_parser_->body_limit(BodyLimit());
    piece_.resize(kStreamPieceBytes);
    // Beast reads at most the buffer's free capacity per call; a small buffer would make
    // thousands of tiny reads (each with its timer and epoll round trip) per megabyte.
    buffer_.reserve(kStreamPieceBytes);
    ContinueThen([self = shared_from_this()] { self->ReadPiece(); });
  }

  void ReadPiece() {
    if (stream_parser_->is_done()) {
      stream_.expires_never();
      std::unique_ptr<BodySink> sink = std::move(sink_);
      return sink->Finish();
    }
    auto& body = stream_parser_->get().body();
    body.data = piece_.data();
    body.size = piece_.size();
    body.more = true;
    stream_.expires_after(shared_.options.idle_timeout);
    bhttp::async_read(
        stream_, buffer_, *stream_parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnPiece(ec); });
  }

  void OnPiece(beast::error_code ec) {
    if (ec == bhttp::error::need_buffer) ec = {};
    size_t got = piece_.size() - stream_parser_->get().body().size;
    if (ec) {
      AbortSink(ec == bhttp::error::body_limit
                    ? PayloadTooLargeError("request body is over the limit", "BODY_TOO_LARGE")
                    : UnavailableError(fmt::format("upload ended early: {}", ec.message()),
                                       "UPLOAD_INTERRUPTED"));
      return OnReadError(ec, /*in_header=*/false);
    }
    if (got > 0) {
      Status s = sink_->Write(std::string_view(piece_.data(), got));
      if (!s.ok()) {
        AbortSink(s);
        keep_alive_ = false;
        return Fail(s);
      }
    }
    ReadPiece();
  }

  void AbortSink(const Status& why) {
    if (std::unique_ptr<BodySink> sink = std::move(sink_)) sink->Abort(why);
  }

  void OnReadError(beast::error_code ec, bool in_header) {
    // A peer that goes away or idles out between requests is normal: no response, no log.
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      if (!in_header)
        spdlog::info("{} {} aborted by peer ({})", remote_, request_.target, ec.message());
      return Close();
    }
    keep_alive_ = false;
    if (ec == bhttp::error::header_limit) {
      return Fail(Status(StatusCode::kInvalidArgument,
                         fmt::format("request header is over the limit of {} bytes",
                                     shared_.options.max_header_bytes),
                         "HEADER_TOO_LARGE"),
                  431);
    }
    if (ec == bhttp::error::body_limit) {
      return Fail(PayloadTooLargeError(
          fmt::format("request body is over the limit of {} bytes", BodyLimit()),
          "BODY_TOO_LARGE"));
    }
    Fail(InvalidArgumentError(fmt::format("malformed HTTP request: {}", ec.message()),
                              "MALFORMED_REQUEST"));
  }

  void Fail(const Status& status, unsigned http_status = 0) {
    Response r = ErrorResponse(status, request_.request_id);
    if (http_status != 0) r.status = http_status;
    Write(std::move(r));
  }

  void Write(Response r) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->result(r.status);
    res->version(11);
    res->set(bhttp::field::server, "fpgahostd");
    res->set(bhttp::field::content_type, r.content_type);
    res->set("X-Request-Id", request_.request_id);
    for (auto& [k, v] : r.headers) res->set(k, v);
    bool keep = keep_alive_ && !shared_.stopping;
    res->keep_alive(keep);
    res->body() = std::move(r.body);
    res->prepare_payload();
    auto elapsed =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_);
    spdlog::log(shared_.options.access_log_debug ? spdlog::level::debug : spdlog::level::info,
                "access {} \"{} {}\" {} {}B {:.2f}ms {}", remote_,
                request_.method.empty() ? "-" : request_.method,
                request_.target.empty() ? "-" : request_.target, r.status, res->body().size(),
                elapsed.count(), request_.request_id);
    stream_.expires_after(shared_.options.idle_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
                         if (ec) return self->Close();
                         if (!keep) return self->LingeringClose();
                         self->request_ = Request();
                         self->ReadHeader();
                       });
  }

  // After an early answer (413, 400) the client may still be sending its body; closing now
  // would reset the connection and the client might never read the answer. So stop sending,
  // then read and discard for a bounded time and amount (as nginx's lingering close does).
  void LingeringClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    Drain(0);
  }

  void Drain(size_t drained) {
    static constexpr size_t kMaxDrain = 64 * 1024 * 1024;
    auto buf = std::make_shared<std::array<char, 16384>>();
    stream_.async_read_some(asio::buffer(*buf), [self = shared_from_this(), buf, drained](
                                                    beast::error_code ec, size_t n) {
      if (ec || drained + n > kMaxDrain) return self->Close();
      self->Drain(drained + n);
    });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  std::shared_ptr<Shared> shared_holder_;
  Shared& shared_;
  beast::flat_buffer buffer_;
  static constexpr size_t kStreamPieceBytes = 256 * 1024;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> stream_parser_;
  std::unique_ptr<BodySink> sink_;
  std::vector<char> piece_;
  Request request_;
  Router::Match match_;
  std::string remote_ = "-";
  bool keep_alive_ = false;
  bool awaiting_request_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace

class IoThreads::Impl {
 public:
  explicit Impl(int threads) : ioc_(std::max(1, threads)), work_(ioc_.get_executor()) {
    for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { ioc_.run(); });
  }
  ~Impl() {
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }
  asio::io_context& context() { return ioc_; }

 private:
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

IoThreads::IoThreads(int threads) : impl_(std::make_unique<Impl>(threads)) {}
IoThreads::~IoThreads() = default;
asio::io_context& IoThreads::context() { return impl_->context(); }

class HttpServer::Impl {
 public:
  explicit Impl(ServerOptions options)
      : shared_(std::make_shared<Shared>()),
        own_ioc_(options.io_threads == nullptr ? std::make_unique<asio::io_context>(options.threads)
                                               : nullptr),
        ioc_(own_ioc_ ? *own_ioc_ : options.io_threads->context()),
        acceptor_(asio::make_strand(ioc_)) {
    shared_->options = std::move(options);
  }

  Status Listen() {
    beast::error_code ec;
    auto address = asio::ip::make_address(shared_->options.address, ec);
    if (ec) {
      return InvalidArgumentError(
          fmt::format("listen address '{}' is not an IP address", shared_->options.address));
    }
    tcp::endpoint ep(address, shared_->options.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (ec == asio::error::address_in_use) {
      return UnavailableError(fmt::format("cannot listen on {}:{}: the port is already in use",
                                          shared_->options.address, shared_->options.port),
                              "ADDRESS_IN_USE");
    }
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError(fmt::format("cannot listen on {}:{}: {}", shared_->options.address,
                                          shared_->options.port, ec.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  // Takes `fd` in all cases: it is closed here on failure, by the acceptor otherwise.
  Status Adopt(int fd) {
    int listening = 0;
    int domain = 0;
    socklen_t len = sizeof(listening);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
      int err = errno;
      ::close(fd);
      return InvalidArgumentError(
          fmt::format("fd {} is not a listening socket: {}", fd, std::strerror(err)));
    }
    len = sizeof(domain);
    if (!listening || ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
        (domain != AF_INET && domain != AF_INET6)) {
      ::close(fd);
      return InvalidArgumentError(
          fmt::format("fd {} is not a TCP socket in the listening state", fd));
    }
    beast::error_code ec;
    acceptor_.assign(domain == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      return InvalidArgumentError(fmt::format("cannot adopt socket fd {}: {}", fd, ec.message()));
    }
    auto ep = acceptor_.local_endpoint(ec);
    if (ec) return InvalidArgumentError(fmt::format("socket fd {}: {}", fd, ec.message()));
    port_ = ep.port();
    return Status::Ok();
  }

  void Run(std::unique_ptr<Router> router) {
    shared_->router = std::move(router);
    accepting_ = true;
    if (own_ioc_) {
      // Handlers may answer from other threads while no I/O is pending: keep run() going.
      work_.emplace(ioc_.get_executor());
    }
    Accept();
    if (!own_ioc_) return;
    int n = std::max(1, shared_->options.threads);
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }

  void Shutdown() {
    if (shared_->stopping.exchange(true)) return;
    std::promise<void> closed;
    asio::post(acceptor_.get_executor(), [this, &closed] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      closed.set_value();
    });
    for (auto& c : shared_->connections.Snapshot()) c->CloseIfIdle();
    auto deadline = std::chrono::steady_clock::now() + shared_->options.shutdown_grace;
    if (!shared_->connections.WaitEmpty(deadline)) {
      spdlog::warn("shutdown: requests still running after {} ms are cut off",
                   shared_->options.shutdown_grace.count());
    }
    if (own_ioc_) {
      work_.reset();
      ioc_.stop();
      for (auto& t : threads_) t.join();
      threads_.clear();
      return;
    }
    // Shared threads go on running: cut off what is left, and wait for every handler that
    // uses `this` (the acceptor's) to have run.
    for (auto& c : shared_->connections.Snapshot()) c->CutOff();
    closed.get_future().wait();
    if (accepting_) accept_ended_.get_future().wait();
  }

  uint16_t port() const { return port_; }

 private:
  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_),
                           [this](beast::error_code ec, tcp::socket socket) {
                             if (ec) {
                               if (ec == asio::error::operation_aborted || shared_->stopping) {
                                 return accept_ended_.set_value();
                               }
                               spdlog::warn("accept failed: {}", ec.message());
                             } else {
                               auto c = std::make_shared<Connection>(std::move(socket), shared_);
                               shared_->connections.Add(c);
                               c->Start();
                             }
                             if (shared_->stopping) return accept_ended_.set_value();
                             Accept();
                           });
  }

  std::shared_ptr<Shared> shared_;
  std::unique_ptr<asio::io_context> own_ioc_;  // null on shared IoThreads
  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  bool accepting_ = false;
  std::promise<void> accept_ended_;
  uint16_t port_ = 0;
};

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Listen(ServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Adopt(int listen_fd, ServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  RETURN_IF_ERROR(impl->Adopt(listen_fd));
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Serve(std::unique_ptr<Router> router) { impl_->Run(std::move(router)); }

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Shutdown(); }

uint16_t HttpServer::port() const { return impl_->port(); }

void HttpServer::Shutdown() { impl_->Shutdown(); }

}  // namespace fpgahost::http
