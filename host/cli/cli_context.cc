#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <ostream>

#include "host/cli/command.h"
#include "host/cli/instance_format.h"

namespace fpgahost::cli {

StatusOr<Json> CliContext::Call(std::string_view method, std::string_view target, const Json* body,
                                bool needs_token) {
  if (needs_token && token_.empty()) {
    return UnauthenticatedError(
        "this command needs a token: pass --token-file FILE (or --token, or set "
        "FPGAHOST_TOKEN_FILE / FPGAHOST_TOKEN)");
  }
  ASSIGN_OR_RETURN(http::Endpoint ep, http::ParseEndpoint(endpoint_));
  http::ClientRequest req;
  req.method = std::string(method);
  req.target = std::string(target);
  if (!token_.empty()) req.headers["Authorization"] = "Bearer " + token_;
  if (body != nullptr) {
    req.body = body->dump();
    req.headers["Content-Type"] = "application/json";
  }
  if (connection_ == nullptr) connection_ = std::make_unique<http::Connection>(ep);
  ASSIGN_OR_RETURN(http::ClientResponse res, connection_->Send(req));
  return Decode(res);
}

StatusOr<http::ClientResponse> CliContext::CallRaw(http::ClientRequest request, bool needs_token) {
  if (needs_token && token_.empty()) {
    return UnauthenticatedError(
        "this command needs a token: pass --token-file FILE (or --token, or set "
        "FPGAHOST_TOKEN_FILE / FPGAHOST_TOKEN)");
  }
  ASSIGN_OR_RETURN(http::Endpoint ep, http::ParseEndpoint(endpoint_));
  if (!token_.empty()) request.headers["Authorization"] = "Bearer " + token_;
  return http::Send(ep, request);
}

StatusOr<Json> CliContext::Upload(std::string_view target, const std::string& file) {
  if (token_.empty()) {
    return UnauthenticatedError(
        "this command needs a token: pass --token-file FILE (or --token, or set "
        "FPGAHOST_TOKEN_FILE / FPGAHOST_TOKEN)");
  }
  ASSIGN_OR_RETURN(http::Endpoint ep, http::ParseEndpoint(endpoint_));
  http::ClientRequest req;
  req.method = "POST";
  req.target = std::string(target);
  req.headers["Authorization"] = "Bearer " + token_;
  req.headers["Content-Type"] = "application/octet-stream";
  req.timeout = std::chrono::minutes(10);
  bool tty = ::isatty(2) != 0;
  int last_percent = -1;
  auto progress = [&](uint64_t sent, uint64_t total) {
    int percent = total == 0 ? 100 : static_cast<int>(sent * 100 / total);
    if (!tty || percent == last_percent) return;
    last_percent = percent;
    std::string bar(static_cast<size_t>(percent / 4), '#');
    std::cerr << fmt::format("\r[{:<25}] {:3}%  {:.1f} / {:.1f} MiB", bar, percent,
                             static_cast<double>(sent) / (1 << 20),
                             static_cast<double>(total) / (1 << 20))
              << std::flush;
  };
  StatusOr<http::ClientResponse> res = http::SendFile(ep, req, file, progress);
  if (tty && last_percent >= 0) std::cerr << "\n";
  if (!res.ok()) return res.status();
  return Decode(*res);
}

StatusOr<Json> CliContext::Decode(const http::ClientResponse& res) {
  if (res.status == 204) return Json::object();  // No Content
  Json parsed = Json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  if (res.status >= 200 && res.status < 300) {
    if (parsed.is_discarded()) {
      return InternalError(
          fmt::format("the server answered {} with a body that is not JSON", res.status));
    }
    return parsed;
  }
  if (!parsed.is_discarded() && parsed.contains("error") && parsed["error"].is_object()) {
    const Json& e = parsed["error"];
    std::string code = e.value("code", "ERROR");
    std::string message = e.value("message", "");
    // The HTTP status decides the Status code, so the CLI can tell 4xx from 5xx.
    StatusCode sc = res.status >= 500 ? StatusCode::kInternal : StatusCode::kInvalidArgument;
    if (res.status == 401) sc = StatusCode::kUnauthenticated;
    if (res.status == 403) sc = StatusCode::kPermissionDenied;
    if (res.status == 404) sc = StatusCode::kNotFound;
    if (res.status == 409) sc = StatusCode::kConflict;
    return Status(sc, message, code);
  }
  return InternalError(fmt::format("the server answered HTTP {}", res.status));
}

void PrintObject(CliContext& ctx, const Json& value) {
  if (ctx.output() == OutputFormat::kJson || !value.is_object()) {
    ctx.out() << value.dump(2) << "\n";
    return;
  }
  size_t width = 0;
  for (const auto& [k, v] : value.items()) width = std::max(width, k.size());
  for (const auto& [k, v] : value.items()) {
    ctx.out() << fmt::format("{:<{}}  {}\n", k, width, JsonText(v));
  }
}

void PrintTable(CliContext& ctx, const Json& rows, const std::vector<std::string>& columns) {
  if (ctx.output() == OutputFormat::kJson) {
    ctx.out() << rows.dump(2) << "\n";
    return;
  }
  ctx.out() << FormatTable(rows, columns, "");
}

}  // namespace fpgahost::cli
