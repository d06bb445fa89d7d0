#include "host/cli/function_format.h"

#include <fmt/format.h>

#include <cctype>

#include "common/base64.h"
#include "host/cli/instance_format.h"
#include "host/cli/json_text.h"

namespace fpgahost::cli {
namespace {

std::string NonEmpty(const Json& v) {
  std::string s = JsonText(v);
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

// Init time counts after a cold start; a warm record's 0 (or null) means "none".
Json InitMs(const Json& invocation) {
  const Json& init = JsonField(invocation, "init_ms");
  bool cold = JsonField(invocation, "start") == "cold";
  if (!init.is_number() || (!cold && init.get<double>() <= 0)) return nullptr;
  return init;
}

std::string InvocationType(const Json& v) {
  std::string t = JsonText(v);
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
  if (!args.fpga_image.empty()) body["FpgaImage"] = args.fpga_image;
  if (!args.tenant_sidecars.empty()) body["TenantSidecars"] = args.tenant_sidecars;
  if (args.memory_mib) body["MemorySize"] = *args.memory_mib;
  if (args.timeout_seconds) body["Timeout"] = *args.timeout_seconds;
  if (!variables.empty()) body["Environment"] = {{"Variables", std::move(variables)}};
  return body;
}

std::string InvocationsTarget(std::string_view function, int limit, bool logs,
                              std::string_view request_id) {
  std::vector<std::string> query;
  if (!function.empty()) query.push_back("function=" + PercentEncode(function));
  if (limit > 0) query.push_back(fmt::format("limit={}", limit));
  if (logs) query.push_back("logs=true");
  if (!request_id.empty()) query.push_back("request_id=" + PercentEncode(request_id));
  std::string target = "/v1/invocations";
  for (size_t i = 0; i < query.size(); ++i) target += (i == 0 ? "?" : "&") + query[i];
  return target;
}

Status LambdaApiError(unsigned http_status, const std::map<std::string, std::string>& headers,
                      std::string_view body) {
  StatusCode code = CodeForHttp(http_status);
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  const Json& envelope = JsonField(j, "error");
  if (envelope.is_object()) {
    return Status(code, JsonText(JsonField(envelope, "message"), ""),
                  JsonText(JsonField(envelope, "code"), "ERROR"));
  }
  std::string type;
  if (auto it = headers.find("x-amzn-errortype"); it != headers.end()) type = it->second;
  if (type.empty() && JsonField(j, "__type").is_string()) type = JsonField(j, "__type");
  if (type.empty() && JsonField(j, "Type").is_string()) type = JsonField(j, "Type");
  type = type.substr(0, type.find(':'));
  if (type.empty()) type = fmt::format("HTTP {}", http_status);

  std::string message;
  for (const char* key : {"message", "Message", "errorMessage"}) {
    if (JsonField(j, key).is_string()) {
      message = JsonField(j, key);
      break;
    }
  }
  if (message.empty() && j.is_discarded()) message = FirstLine(body);
  if (JsonField(j, "Reason").is_string()) {
    std::string reason = JsonField(j, "Reason");
    message = message.empty() ? reason : fmt::format("{} ({})", message, reason);
  }
  if (message.empty()) message = fmt::format("the server answered HTTP {}", http_status);
  return Status(code, message, type);
}

Status FunctionErrorStatus(std::string_view kind, std::string_view payload) {
  Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  const Json& type = JsonField(j, "errorType");
  const Json& message = JsonField(j, "errorMessage");
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
  std::string out = NonEmpty(JsonField(configuration, "FunctionName")) + "\n";
  auto line = [&](std::string_view key, const std::string& value) {
    out += fmt::format("  {:<15} {}\n", key, value);
  };
  line("arn", NonEmpty(JsonField(configuration, "FunctionArn")));
  line("runtime", NonEmpty(JsonField(configuration, "Runtime")));
  line("handler", NonEmpty(JsonField(configuration, "Handler")));
  line("memory", fmt::format("{} MiB", JsonText(JsonField(configuration, "MemorySize"))));
  line("timeout", fmt::format("{} s", JsonText(JsonField(configuration, "Timeout"))));
  line("code sha256", NonEmpty(JsonField(configuration, "CodeSha256")));
  line("code size", fmt::format("{} bytes", JsonText(JsonField(configuration, "CodeSize"))));
  line("last modified", NonEmpty(JsonField(configuration, "LastModified")));
  line("version", NonEmpty(JsonField(configuration, "Version")));
  line("state", NonEmpty(JsonField(configuration, "State")));
  line("description", NonEmpty(JsonField(configuration, "Description")));
  // fpgahost's own fields, when the daemon sends them.
  auto joined = [](const Json& list) {
    std::string s;
    if (list.is_array()) {
      for (const Json& item : list) s += (s.empty() ? "" : ", ") + JsonText(item, "");
    }
    return s.empty() ? std::string("-") : s;
  };
  if (const Json& features = JsonField(configuration, "CpuFeatures"); features.is_array()) {
    line("cpu features", joined(features));
  }
  if (const Json& sidecars = JsonField(configuration, "TenantSidecars");
      sidecars.is_array() && !sidecars.empty()) {
    line("tenant sidecars", joined(sidecars));
  }
  if (const Json& image = JsonField(configuration, "FpgaImage"); image.is_string()) {
    line("fpga image", JsonText(image));
  }
  if (const Json& idem = JsonField(configuration, "Idempotency"); idem.is_object()) {
    line("idempotent", fmt::format("results kept {} s", JsonText(JsonField(idem, "ttl_seconds"))));
    line("", "depends on files: " + joined(JsonField(idem, "files")));
    line("", "images: " + joined(JsonField(idem, "images")));
    line("", "functions: " + joined(JsonField(idem, "functions")));
  }
  const Json& reserved = JsonField(concurrency, "ReservedConcurrentExecutions");
  if (!reserved.is_null()) line("concurrency", fmt::format("{} reserved", JsonText(reserved)));
  const Json& vars = JsonField(JsonField(configuration, "Environment"), "Variables");
  if (vars.is_object() && !vars.empty()) {
    bool first = true;
    for (const auto& [k, v] : vars.items()) {
      line(first ? "environment" : "", fmt::format("{}={}", k, JsonText(v, "")));
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
      rows.push_back({{"name", JsonField(f, "FunctionName")},
                      {"runtime", JsonField(f, "Runtime")},
                      {"memory_mib", JsonField(f, "MemorySize")},
                      {"timeout_s", JsonField(f, "Timeout")},
                      {"code_size", JsonField(f, "CodeSize")},
                      {"last_modified", JsonField(f, "LastModified")},
                      {"description", NonEmpty(JsonField(f, "Description"))}});
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
  // An FPGA function's calls add the card and the image's load time for them.
  bool fpga = false;
  if (invocations.is_array()) {
    for (const Json& i : invocations) fpga = fpga || JsonField(i, "fpga_card").is_string();
  }
  if (invocations.is_array()) {
    for (const Json& i : invocations) {
      rows.push_back({{"started", JsonField(i, "started_at")},
                      {"request_id", JsonField(i, "request_id")},
                      {"function", JsonField(i, "function")},
                      {"type", InvocationType(JsonField(i, "invocation_type"))},
                      {"slot", NonEmpty(JsonField(i, "slot"))},
                      {"start", JsonField(i, "start")},
                      {"state", JsonField(i, "state")},
                      {"duration_ms", FormatMs(JsonField(i, "duration_ms"))},
                      {"init_ms", FormatMs(InitMs(i))},
                      {"queued_ms", FormatMs(JsonField(i, "queued_ms"))},
                      {"error", NonEmpty(JsonField(i, "error_type"))}});
      if (fpga) {
        const Json& load = JsonField(i, "image_load_ms");
        rows.back()["card"] = NonEmpty(JsonField(i, "fpga_card"));
        rows.back()["load_ms"] = load.is_number() && load.get<double>() > 0 ? FormatMs(load) : "-";
      }
    }
  }
  std::vector<std::string> columns = {"started", "request_id", "function", "type",
                                      "slot",    "start",      "state",    "duration_ms",
                                      "init_ms", "queued_ms"};
  if (fpga) columns.insert(columns.end(), {"card", "load_ms"});
  columns.push_back("error");
  return FormatTable(rows, columns);
}

std::string FormatFunctionSlots(const Json& slots) {
  Json rows = Json::array();
  if (slots.is_array()) {
    for (const Json& s : slots) {
      const Json& fpga = JsonField(s, "fpga");
      std::string image = "-";
      if (fpga.is_object()) {
        image = JsonText(JsonField(fpga, "loaded_for_slot")) == "true"
                    ? fmt::format("loaded in {} ms", JsonText(JsonField(fpga, "load_ms")))
                    : std::string("held already");
      }
      rows.push_back({{"name", JsonField(s, "name")},
                      {"function", JsonField(s, "function")},
                      {"state", JsonField(s, "state")},
                      {"invocations", JsonText(JsonField(s, "invocations"))},
                      {"prewarmed", JsonText(JsonField(s, "prewarmed"))},
                      {"init_ms", FormatMs(JsonField(s, "init_ms"))},
                      {"card", fpga.is_object() ? NonEmpty(JsonField(fpga, "card")) : "-"},
                      {"image", image}});
    }
  }
  return FormatTable(
      rows, {"name", "function", "state", "invocations", "prewarmed", "init_ms", "card", "image"});
}

std::string FormatInvocationLogs(const Json& invocations) {
  std::string out;
  if (!invocations.is_array()) return out;
  for (auto it = invocations.rbegin(); it != invocations.rend(); ++it) {
    const Json& i = *it;
    out += fmt::format("{}  {}  {}  {}", JsonText(JsonField(i, "started_at")),
                       JsonText(JsonField(i, "request_id")), JsonText(JsonField(i, "start")),
                       JsonText(JsonField(i, "state")));
    const Json& error = JsonField(i, "error_type");
    if (error.is_string() && !error.get<std::string>().empty()) {
      out += " " + error.get<std::string>();
    }
    out += fmt::format("  {} ms", FormatMs(JsonField(i, "duration_ms")));
    if (Json init = InitMs(i); !init.is_null()) {
      out += fmt::format(", init {} ms", FormatMs(init));
    }
    const Json& attempt = JsonField(i, "attempt");
    if (attempt.is_number_integer() && attempt.get<int64_t>() > 1) {
      out += fmt::format(", attempt {}", attempt.get<int64_t>());
    }
    out += "\n";
    const Json& log = JsonField(i, "log");
    if (log.is_string() && !log.get<std::string>().empty()) {
      out += log.get<std::string>();
      if (out.back() != '\n') out += "\n";
    }
  }
  return out;
}

}  // namespace fpgahost::cli
