#include "host/http/http_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>

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

// Connects, sends the request header and body produced by `write_body`, reads the answer.
template <typename Body, typename WriteBody>
StatusOr<ClientResponse> Exchange(const Endpoint& endpoint, const ClientRequest& request,
                                  bhttp::request<Body>& req, WriteBody&& write_body) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port), ec);
  std::string where = fmt::format("{}:{}", endpoint.host, endpoint.port);
  if (ec) return UnavailableError(fmt::format("cannot resolve {}: {}", where, ec.message()));
  stream.expires_after(request.timeout);
  stream.connect(results, ec);
  if (ec) {
    if (ec == beast::error::timeout) {
      return DeadlineExceededError(fmt::format("timed out connecting to {}", where));
    }
    return UnavailableError(fmt::format("cannot connect to {}: {}", where, ec.message()));
  }

  auto verb = bhttp::string_to_verb(request.method);
  if (verb == bhttp::verb::unknown) {
    return InvalidArgumentError(fmt::format("unknown HTTP method '{}'", request.method));
  }
  req.method(verb);
  req.target(request.target);
  req.version(11);
  req.set(bhttp::field::host, where);
  req.set(bhttp::field::user_agent, "fpgahost-cli");
  for (const auto& [k, v] : request.headers) req.set(k, v);
  req.prepare_payload();

  // A server may answer early (413, 400) and stop reading; its answer is still worth
  // reading, so a failed write is reported only if no answer can be read either.
  beast::error_code write_error = write_body(stream, req, request.timeout);

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  stream.expires_after(request.timeout);
  bhttp::read(stream, buffer, parser, ec);
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

}  // namespace fpgahost::http
