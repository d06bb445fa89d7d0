#include "host/http/http_client.h"

#include <fmt/format.h>
#include <poll.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <optional>

namespace fpgahost::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

StatusOr<Endpoint> ParseEndpoint(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgumentError(
        fmt::format("endpoint '{}' must start with http:// (e.g. http://127.0.0.1:8080)", url));
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgumentError(fmt::format("endpoint '{}' needs host:port", url));
  }
  Endpoint ep;
  ep.host = std::string(rest.substr(0, colon));
  std::string_view port = rest.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
    return InvalidArgumentError(fmt::format("endpoint '{}' has a bad port '{}'", url, port));
  }
  ep.port = static_cast<uint16_t>(value);
  return ep;
}

namespace {

std::string Where(const Endpoint& endpoint) {
  return fmt::format("{}:{}", endpoint.host, endpoint.port);
}

StatusOr<beast::tcp_stream> Connect(asio::io_context& ioc, const Endpoint& endpoint,
                                    std::chrono::milliseconds timeout) {
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port), ec);
  std::string where = Where(endpoint);
  if (ec) return UnavailableError(fmt::format("cannot resolve {}: {}", where, ec.message()));
  stream.expires_after(timeout);
  stream.connect(results, ec);
  if (ec) {
    if (ec == beast::error::timeout) {
      return DeadlineExceededError(fmt::format("timed out connecting to {}", where));
    }
    return UnavailableError(fmt::format("cannot connect to {}: {}", where, ec.message()));
  }
  return stream;
}

template <typename Body>
Status PrepareRequest(const Endpoint& endpoint, const ClientRequest& request,
                      bhttp::request<Body>& req, bool keep_alive) {
  auto verb = bhttp::string_to_verb(request.method);
  if (verb == bhttp::verb::unknown) {
    return InvalidArgumentError(fmt::format("unknown HTTP method '{}'", request.method));
  }
  req.method(verb);
  req.target(request.target);
  req.version(11);
  req.set(bhttp::field::host, Where(endpoint));
  req.set(bhttp::field::user_agent, "fpgahost-cli");
  for (const auto& [k, v] : request.headers) req.set(k, v);
  req.keep_alive(keep_alive);
  req.prepare_payload();
  return Status::Ok();
}

// Reads one response from `stream`. `write_error` is how sending the request ended: a server
// may answer early (413, 400) and stop reading, and its answer is still worth reading, so a
// failed write is reported only if no answer can be read either. `keep_alive` is set to
// whether the server leaves the connection open.
StatusOr<ClientResponse> ReadResponse(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                      const Endpoint& endpoint, const ClientRequest& request,
                                      beast::error_code write_error, bool* keep_alive) {
  beast::error_code ec;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  stream.expires_after(request.timeout);
  bhttp::read(stream, buffer, parser, ec);
  std::string where = Where(endpoint);
  if (ec == beast::error::timeout) {
    return DeadlineExceededError(
        fmt::format("no answer from {} within {} ms", where, request.timeout.count()));
  }
  if (ec && write_error) {
    return UnavailableError(fmt::format("sending to {} failed: {}", where, write_error.message()));
  }
  if (ec) return UnavailableError(fmt::format("reading from {} failed: {}", where, ec.message()));
  auto& res = parser.get();
  ClientResponse out;
  out.status = res.result_int();
  for (const auto& field : res) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.headers[name] = std::string(field.value());
  }
  out.body = std::move(res.body());
  *keep_alive = res.keep_alive();
  return out;
}

// Connects, sends the request header and body produced by `write_body`, reads the answer.
template <typename Body, typename WriteBody>
StatusOr<ClientResponse> Exchange(const Endpoint& endpoint, const ClientRequest& request,
                                  bhttp::request<Body>& req, WriteBody&& write_body) {
  asio::io_context ioc;
  ASSIGN_OR_RETURN(beast::tcp_stream stream, Connect(ioc, endpoint, request.timeout));
  RETURN_IF_ERROR(PrepareRequest(endpoint, request, req, /*keep_alive=*/false));
  beast::error_code write_error = write_body(stream, req, request.timeout);
  beast::flat_buffer buffer;
  bool keep_alive = false;
  StatusOr<ClientResponse> out =
      ReadResponse(stream, buffer, endpoint, request, write_error, &keep_alive);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return out;
}

}  // namespace

StatusOr<ClientResponse> Send(const Endpoint& endpoint, const ClientRequest& request) {
  bhttp::request<bhttp::string_body> req;
  req.body() = request.body;
  return Exchange(endpoint, request, req,
                  [](beast::tcp_stream& stream, auto& r, std::chrono::milliseconds timeout) {
                    beast::error_code ec;
                    stream.expires_after(timeout);
                    bhttp::write(stream, r, ec);
                    return ec;
                  });
}

StatusOr<ClientResponse> SendFile(const Endpoint& endpoint, const ClientRequest& request,
                                  const std::string& body_file,
                                  const std::function<void(uint64_t, uint64_t)>& progress) {
  bhttp::request<bhttp::file_body> req;
  beast::error_code ec;
  req.body().open(body_file.c_str(), beast::file_mode::scan, ec);
  if (ec) return InvalidArgumentError(fmt::format("cannot read {}: {}", body_file, ec.message()));
  uint64_t total = req.body().size();
  return Exchange(endpoint, request, req,
                  [&](beast::tcp_stream& stream, auto& r, std::chrono::milliseconds timeout) {
                    beast::error_code wec;
                    bhttp::request_serializer<bhttp::file_body> sr(r);
                    uint64_t sent = 0;
                    while (!sr.is_done()) {
                      stream.expires_after(timeout);
                      size_t n = bhttp::write_some(stream, sr, wec);
                      if (wec) break;
                      sent += n;
                      if (progress) progress(std::min(sent, total), total);
                    }
                    return wec;
                  });
}

namespace {

// Between requests an HTTP/1.1 server sends nothing: a kept connection that is readable has
// been closed (or broken) by the server, which closes idle connections after a while.
bool PeerClosed(tcp::socket& socket) {
  pollfd p{socket.native_handle(), POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

}  // namespace

struct Connection::Impl {
  Endpoint endpoint;
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
};

Connection::Connection(Endpoint endpoint) : impl_(std::make_unique<Impl>()) {
  impl_->endpoint = std::move(endpoint);
}

Connection::~Connection() {
  if (impl_->stream) {
    beast::error_code ec;
    impl_->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  }
}

StatusOr<ClientResponse> Connection::Send(const ClientRequest& request) {
  bhttp::request<bhttp::string_body> req;
  req.body() = request.body;
  RETURN_IF_ERROR(PrepareRequest(impl_->endpoint, request, req, /*keep_alive=*/true));
  for (int attempt = 0;; ++attempt) {
    if (impl_->stream && PeerClosed(impl_->stream->socket())) impl_->stream.reset();
    bool reused = impl_->stream.has_value();
    if (!reused) {
      ASSIGN_OR_RETURN(beast::tcp_stream stream,
                       Connect(impl_->ioc, impl_->endpoint, request.timeout));
      impl_->stream.emplace(std::move(stream));
      impl_->buffer.clear();
    }
    beast::error_code write_error;
    impl_->stream->expires_after(request.timeout);
    bhttp::write(*impl_->stream, req, write_error);
    bool keep_alive = false;
    StatusOr<ClientResponse> out = ReadResponse(*impl_->stream, impl_->buffer, impl_->endpoint,
                                                request, write_error, &keep_alive);
    if (!out.ok() || !keep_alive) impl_->stream.reset();
    // The server closes idle connections: a reused one may be gone before the request arrived.
    bool retry = !out.ok() && out.status().code() == StatusCode::kUnavailable && reused &&
                 attempt == 0 && request.method != "POST";
    if (!retry) return out;
  }
}

}  // namespace fpgahost::http
