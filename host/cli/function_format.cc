#include "host/cli/function_format.h"

#include <fmt/format.h>

#include <cctype>

#include "common/base64.h"
#include "host/cli/instance_format.h"

namespace fpgahost::cli {
namespace {

const Json& Field(const Json& j, const char* key) {
  static const Json kNull = nullptr;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string Text(const Json& v, std::string_view fallback = "-") {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return std::string(fallback);
  return v.dump();
}

std::string NonEmpty(const Json& v) {
  std::string s = Text(v);
  return s.empty() ? "-" : s;
}

// The first line of `text`, at most 200 bytes of it.
std::string FirstLine(std::string_view text) {
  std::string_view line = text.substr(0, text.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > 200) return std::string(line.substr(0, 200)) + "...";
  return std::string(line);
}

StatusCode CodeForHttp(unsigned status) {
  switch (status) {
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kConflict;
    case 413:
      return StatusCode::kPayloadTooLarge;
    case 429:
      return StatusCode::kResourceExhausted;
    case 503:
      return StatusCode::kUnavailable;
    case 504:
      return StatusCode::kDeadlineExceeded;
    default:
      return status >= 500 ? StatusCode::kInternal : StatusCode::kInvalidArgument;
  }
}

// As PercentEncode in command.h, which lives in the CLI binary and not in this library.
std::string QueryValue(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// Init time counts after a cold start; a warm record's 0 (or null) means "none".
Json InitMs(const Json& invocation) {
  const Json& init = Field(invocation, "init_ms");
  bool cold = Field(invocation, "start") == "cold";
  if (!init.is_number() || (!cold && init.get<double>() <= 0)) return nullptr;
  return init;
}

std::string InvocationType(const Json& v) {
  std::string t = Text(v);
  if (t == "RequestResponse") return "sync";
  if (t == "Event") return "async";
  return t;
}

}  // namespace

StatusOr<Json> CreateFunctionBody(const CreateFunctionArgs& args) {
  Json variables = Json::object();
  for (const std::string& kv : args.env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgumentError(fmt::format("--env '{}' is not KEY=VALUE", kv), "USAGE");
    }
    std::string key = kv.substr(0, eq);
    if (variables.contains(key)) {
      return InvalidArgumentError(fmt::format("--env {} is given twice", key), "USAGE");
    }
    variables[key] = kv.substr(eq + 1);
  }
  Json body = {{"FunctionName", args.name},
               {"Runtime", kDefaultRuntime},
               {"Role", kPlaceholderRole},
               {"PackageType", "Zip"},
               {"Code", {{"ZipFile", Base64Encode(args.zip)}}}};
  if (!args.handler.empty()) body["Handler"] = args.handler;
  if (!args.description.empty()) body["Description"] = args.description;
  if (args.memory_mib) body["MemorySize"] = *args.memory_mib;
  if (args.timeout_seconds) body["Timeout"] = *args.timeout_seconds;
  if (!variables.empty()) body["Environment"] = {{"Variables", std::move(variables)}};
  return body;
}

std::string InvocationsTarget(std::string_view function, int limit, bool logs,
                              std::string_view request_id) {
  std::vector<std::string> query;
  if (!function.empty()) query.push_back("function=" + QueryValue(function));
  if (limit > 0) query.push_back(fmt::format("limit={}", limit));
  if (logs) query.push_back("logs=true");
  if (!request_id.empty()) query.push_back("request_id=" + QueryValue(request_id));
  std::string target = "/v1/invocations";
  for (size_t i = 0; i < query.size(); ++i) target += (i == 0 ? "?" : "&") + query[i];
  return target;
}

Status LambdaApiError(unsigned http_status, const std::map<std::string, std::string>& headers,
                      std::string_view body) {
  StatusCode code = CodeForHttp(http_status);
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  const Json& envelope = Field(j, "error");
  if (envelope.is_object()) {
    return Status(code, Text(Field(envelope, "message"), ""),
                  Text(Field(envelope, "code"), "ERROR"));
  }
  std::string type;
  if (auto it = headers.find("x-amzn-errortype"); it != headers.end()) type = it->second;
  if (type.empty() && Field(j, "__type").is_string()) type = Field(j, "__type");
  if (type.empty() && Field(j, "Type").is_string()) type = Field(j, "Type");
  type = type.substr(0, type.find(':'));
  if (type.empty()) type = fmt::format("HTTP {}", http_status);

  std::string message;
  for (const char* key : {"message", "Message", "errorMessage"}) {
    if (Field(j, key).is_string()) {
      message = Field(j, key);
      break;
    }
  }
  if (message.empty() && j.is_discarded()) message = FirstLine(body);
  if (Field(j, "Reason").is_string()) {
    std::string reason = Field(j, "Reason");
    message = message.empty() ? reason : fmt::format("{} ({})", message, reason);
  }
  if (message.empty()) message = fmt::format("the server answered HTTP {}", http_status);
  return Status(code, message, type);
}

Status FunctionErrorStatus(std::string_view kind, std::string_view payload) {
  Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  const Json& type = Field(j, "errorType");
  const Json& message = Field(j, "errorMessage");
  std::string text;
  if (type.is_string() && message.is_string()) {
    text = fmt::format("{}: {}", type.get<std::string>(), FirstLine(message.get<std::string>()));
  } else if (message.is_string()) {
    text = FirstLine(message.get<std::string>());
  } else if (type.is_string()) {
    text = type.get<std::string>();
  } else {
    text = payload.empty() ? "(no payload)" : FirstLine(payload);
  }
  return Status(StatusCode::kFailedPrecondition, text,
                fmt::format("function error ({})", kind.empty() ? "Unhandled" : kind));
}

std::string FormatFunctionConfiguration(const Json& configuration, const Json& concurrency) {
  std::string out = NonEmpty(Field(configuration, "FunctionName")) + "\n";
  auto line = [&](std::string_view key, const std::string& value) {
    out += fmt::format("  {:<15} {}\n", key, value);
  };
  line("arn", NonEmpty(Field(configuration, "FunctionArn")));
  line("runtime", NonEmpty(Field(configuration, "Runtime")));
  line("handler", NonEmpty(Field(configuration, "Handler")));
  line("memory", fmt::format("{} MiB", Text(Field(configuration, "MemorySize"))));
  line("timeout", fmt::format("{} s", Text(Field(configuration, "Timeout"))));
  line("code sha256", NonEmpty(Field(configuration, "CodeSha256")));
  line("code size", fmt::format("{} bytes", Text(Field(configuration, "CodeSize"))));
  line("last modified", NonEmpty(Field(configuration, "LastModified")));
  line("version", NonEmpty(Field(configuration, "Version")));
  line("state", NonEmpty(Field(configuration, "State")));
  line("description", NonEmpty(Field(configuration, "Description")));
  const Json& reserved = Field(concurrency, "ReservedConcurrentExecutions");
  if (!reserved.is_null()) line("concurrency", fmt::format("{} reserved", Text(reserved)));
  const Json& vars = Field(Field(configuration, "Environment"), "Variables");
  if (vars.is_object() && !vars.empty()) {
    bool first = true;
    for (const auto& [k, v] : vars.items()) {
      line(first ? "environment" : "", fmt::format("{}={}", k, Text(v, "")));
      first = false;
    }
  } else {
    line("environment", "-");
  }
  return out;
}

std::string FormatFunctionList(const Json& functions) {
  Json rows = Json::array();
  if (functions.is_array()) {
    for (const Json& f : functions) {
      rows.push_back({{"name", Field(f, "FunctionName")},
                      {"runtime", Field(f, "Runtime")},
                      {"memory_mib", Field(f, "MemorySize")},
                      {"timeout_s", Field(f, "Timeout")},
                      {"code_size", Field(f, "CodeSize")},
                      {"last_modified", Field(f, "LastModified")},
                      {"description", NonEmpty(Field(f, "Description"))}});
    }
  }
  return FormatTable(rows, {"name", "runtime", "memory_mib", "timeout_s", "code_size",
                            "last_modified", "description"});
}

std::string FormatMs(const Json& ms) {
  if (!ms.is_number()) return "-";
  double v = ms.get<double>();
  if (v < 10) return fmt::format("{:.3f}", v);
  if (v < 1000) return fmt::format("{:.1f}", v);
  return fmt::format("{:.0f}", v);
}

std::string FormatInvocations(const Json& invocations) {
  Json rows = Json::array();
  if (invocations.is_array()) {
    for (const Json& i : invocations) {
      rows.push_back({{"started", Field(i, "started_at")},
                      {"request_id", Field(i, "request_id")},
                      {"function", Field(i, "function")},
                      {"type", InvocationType(Field(i, "invocation_type"))},
                      {"start", Field(i, "start")},
                      {"state", Field(i, "state")},
                      {"duration_ms", FormatMs(Field(i, "duration_ms"))},
                      {"init_ms", FormatMs(InitMs(i))},
                      {"queued_ms", FormatMs(Field(i, "queued_ms"))},
                      {"error", NonEmpty(Field(i, "error_type"))}});
    }
  }
  return FormatTable(rows, {"started", "request_id", "function", "type", "start", "state",
                            "duration_ms", "init_ms", "queued_ms", "error"});
}

std::string FormatInvocationLogs(const Json& invocations) {
  std::string out;
  if (!invocations.is_array()) return out;
  for (auto it = invocations.rbegin(); it != invocations.rend(); ++it) {
    const Json& i = *it;
    out += fmt::format("{}  {}  {}  {}", Text(Field(i, "started_at")), Text(Field(i, "request_id")),
                       Text(Field(i, "start")), Text(Field(i, "state")));
    const Json& error = Field(i, "error_type");
    if (error.is_string() && !error.get<std::string>().empty()) {
      out += " " + error.get<std::string>();
    }
    out += fmt::format("  {} ms", FormatMs(Field(i, "duration_ms")));
    if (Json init = InitMs(i); !init.is_null()) {
      out += fmt::format(", init {} ms", FormatMs(init));
    }
    const Json& attempt = Field(i, "attempt");
    if (attempt.is_number_integer() && attempt.get<int64_t>() > 1) {
      out += fmt::format(", attempt {}", attempt.get<int64_t>());
    }
    out += "\n";
    const Json& log = Field(i, "log");
    if (log.is_string() && !log.get<std::string>().empty()) {
      out += log.get<std::string>();
      if (out.back() != '\n') out += "\n";
    }
  }
  return out;
}

}  // namespace fpgahost::cli
