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

StatusOr<ClientResponse> Send(const Endpoint& endpoint, const ClientRequest& request) {
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

  bhttp::request<bhttp::string_body> req;
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
  req.body() = request.body;
  req.prepare_payload();

  stream.expires_after(request.timeout);
  bhttp::write(stream, req, ec);
  // A server may answer early (413) and stop reading; its answer is still worth reading.
  beast::error_code write_error = ec;

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
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

}  // namespace fpgahost::http
