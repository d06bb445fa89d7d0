// function create|zip|list|describe|delete|invoke|prewarm|idempotent|logs|invocations:
// Lambda-style functions through fpgahostd's Lambda-compatible API (/2015-03-31/functions, the
// shapes the AWS CLI and SDKs use), its own settings and notifications (/v1/functions/{name}/
// prewarm and /idempotency) and its invocation records (/v1/invocations). Requests and layouts live
// in function_format.h.
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>

#include "common/base64.h"
#include "common/files.h"
#include "host/cli/command.h"
#include "host/cli/function_format.h"
#include "host/functions/bundle.h"

namespace fpgahost::cli {
namespace {

namespace fs = std::filesystem;

// Creating uploads up to Lambda's 50 MB zip; an invocation may run for Lambda's 15 minutes.
constexpr auto kCreateTimeout = std::chrono::minutes(5);
constexpr auto kInvokeTimeout = std::chrono::minutes(16);
// 2000-01-01T00:00:00Z.
constexpr time_t kZipEntryTime = 946684800;

std::string FunctionPath(const std::string& name) {
  return "/2015-03-31/functions/" + PercentEncode(name);
}

void AddFunctionName(po::options_description& o, po::positional_options_description& p) {
  o.add_options()("function", po::value<std::string>()->required(), "function name");
  p.add("function", 1);
}

bool IsSuccess(const http::ClientResponse& r) { return r.status >= 200 && r.status < 300; }

std::string Header(const http::ClientResponse& r, const char* lower_case_name) {
  auto it = r.headers.find(lower_case_name);
  return it == r.headers.end() ? "" : it->second;
}

// A Lambda API call whose answer is JSON: the parsed body of a 2xx, else Lambda's error.
StatusOr<Json> LambdaCall(CliContext& ctx, const char* method, std::string target,
                          const Json* body = nullptr,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  http::ClientRequest req;
  req.method = method;
  req.target = std::move(target);
  req.timeout = timeout;
  if (body != nullptr) {
    req.body = body->dump();
    req.headers["Content-Type"] = "application/json";
  }
  ASSIGN_OR_RETURN(http::ClientResponse res, ctx.CallRaw(std::move(req)));
  if (!IsSuccess(res)) return LambdaApiError(res.status, res.headers, res.body);
  if (res.body.empty()) return Json::object();
  Json parsed = Json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return InternalError(
        fmt::format("the server answered {} with a body that is not JSON", res.status));
  }
  return parsed;
}

struct ZipDeleter {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipSourceDeleter {
  void operator()(zip_source_t* s) const { zip_source_free(s); }
};

// Zips the tree under `dir` in memory, each entry keeping its Unix mode so an executable
// `bootstrap` stays executable. Symbolic links and special files are refused, as the daemon's
// bundle checker would refuse them. Entries are sorted and dated kZipEntryTime, so the same
// files give the same zip, and so the same CodeSha256, however often they are rebuilt.
StatusOr<std::string> ZipDirectory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return InvalidArgumentError(fmt::format("{} is not a directory", dir.string()), "USAGE");
  }
  std::vector<fs::path> entries;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(it->path());
  }
  if (ec) {
    return InvalidArgumentError(fmt::format("cannot read {}: {}", dir.string(), ec.message()),
                                "IO_ERROR");
  }
  std::sort(entries.begin(), entries.end());  // the same tree gives the same zip

  zip_error_t error;
  zip_error_init(&error);
  std::unique_ptr<zip_source_t, ZipSourceDeleter> out(
      zip_source_buffer_create(nullptr, 0, 0, &error));
  if (out == nullptr) return InternalError("libzip cannot make a buffer");
  std::unique_ptr<zip_t, ZipDeleter> zip(zip_open_from_source(out.get(), ZIP_TRUNCATE, &error));
  if (zip == nullptr) {
    std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    return InternalError("libzip: " + why);
  }
  zip_error_fini(&error);
  // The archive now owns `out`; a second reference keeps it past the archive, to be read back.
  zip_source_keep(out.get());

  for (const fs::path& path : entries) {
    std::string name = path.lexically_relative(dir).generic_string();
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      return InvalidArgumentError(fmt::format("cannot stat {}", path.string()), "IO_ERROR");
    }
    zip_int64_t index;
    if (S_ISDIR(st.st_mode)) {
      index = zip_dir_add(zip.get(), name.c_str(), ZIP_FL_ENC_UTF_8);
    } else if (S_ISREG(st.st_mode)) {
      zip_source_t* data = zip_source_file(zip.get(), path.c_str(), 0, -1);
      if (data == nullptr) {
        return InvalidArgumentError(
            fmt::format("cannot read {}: {}", path.string(), zip_strerror(zip.get())), "IO_ERROR");
      }
      index = zip_file_add(zip.get(), name.c_str(), data, ZIP_FL_ENC_UTF_8);
      if (index < 0) zip_source_free(data);
    } else if (S_ISLNK(st.st_mode)) {
      return InvalidArgumentError(
          fmt::format("{} is a symbolic link; a function bundle cannot hold links (copy the "
                      "file it points to instead)",
                      path.string()),
          functions::kReasonSymlinkNotAllowed);
    } else {
      return InvalidArgumentError(
          fmt::format("{} is not a regular file or directory", path.string()),
          functions::kReasonSpecialFileNotAllowed);
    }
    if (index < 0) {
      return InternalError(fmt::format("libzip cannot add {}: {}", name, zip_strerror(zip.get())));
    }
    auto attributes = static_cast<zip_uint32_t>(st.st_mode & (S_IFMT | 0777)) << 16;
    auto i = static_cast<zip_uint64_t>(index);
    if (zip_file_set_external_attributes(zip.get(), i, 0, ZIP_OPSYS_UNIX, attributes) != 0 ||
        zip_file_set_mtime(zip.get(), i, kZipEntryTime, 0) != 0) {
      return InternalError(fmt::format("libzip cannot set the mode of {}", name));
    }
  }
  // zip_close reads the files and writes the archive into `out`; it frees the archive only
  // when it succeeds.
  if (zip_close(zip.get()) != 0) {
    return InvalidArgumentError(
        fmt::format("cannot zip {}: {}", dir.string(), zip_strerror(zip.get())), "IO_ERROR");
  }
  static_cast<void>(zip.release());

  zip_stat_t st;
  if (zip_source_open(out.get()) != 0 || zip_source_stat(out.get(), &st) != 0) {
    return InternalError("libzip cannot read back the zip it made");
  }
  std::string bytes(st.size, '\0');
  zip_int64_t n = zip_source_read(out.get(), bytes.data(), st.size);
  zip_source_close(out.get());
  if (n != static_cast<zip_int64_t>(st.size)) {
    return InternalError("libzip cannot read back the zip it made");
  }
  return bytes;
}

void PrintConfiguration(CliContext& ctx, const Json& json, const Json& configuration,
                        const Json& concurrency = nullptr) {
  if (ctx.output() == OutputFormat::kJson) {
    ctx.out() << json.dump(2) << "\n";
  } else {
    ctx.out() << FormatFunctionConfiguration(configuration, concurrency);
  }
}

class FunctionCreateCommand : public Command {
 public:
  std::string_view name() const override { return "function create"; }
  std::string_view summary() const override {
    return "create a function from a zip or a directory with an executable bootstrap";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFunctionName(o, p);
    o.add_options()("zip", po::value<std::string>(),
                    "the code: a zip with `bootstrap` at its root")(
        "dir", po::value<std::string>(), "the code: a directory to zip (file modes are kept)")(
        "memory", po::value<int>(), "memory in MiB (128-10240, default 128)")(
        "timeout", po::value<int>(), "timeout in seconds (1-900, default 3)")(
        "env", po::value<std::vector<std::string>>()->composing(),
        "environment variable KEY=VALUE (repeatable)")("description", po::value<std::string>(),
                                                       "description")(
        "handler", po::value<std::string>(), "handler, passed to the runtime as _HANDLER")(
        "image", po::value<std::string>(),
        "an FPGA function: the image (img-...) its slots run with, each on a card of its own")(
        "tenant-sidecar", po::value<std::vector<std::string>>()->composing(),
        "an extension of the bundle (extensions/NAME) to run once for the tenant, beside its "
        "slots, instead of in each (repeatable)");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    bool has_zip = vm.count("zip") != 0u;
    if (has_zip == (vm.count("dir") != 0u)) {
      return InvalidArgumentError("give the code with exactly one of --zip FILE and --dir DIR",
                                  "USAGE");
    }
    CreateFunctionArgs args;
    args.name = vm["function"].as<std::string>();
    if (has_zip) {
      ASSIGN_OR_RETURN(args.zip, ReadFile(vm["zip"].as<std::string>()));
    } else {
      ASSIGN_OR_RETURN(args.zip, ZipDirectory(vm["dir"].as<std::string>()));
    }
    if (vm.count("memory") != 0u) args.memory_mib = vm["memory"].as<int>();
    if (vm.count("timeout") != 0u) args.timeout_seconds = vm["timeout"].as<int>();
    if (vm.count("env") != 0u) args.env = vm["env"].as<std::vector<std::string>>();
    if (vm.count("description") != 0u) args.description = vm["description"].as<std::string>();
    if (vm.count("handler") != 0u) args.handler = vm["handler"].as<std::string>();
    if (vm.count("image") != 0u) args.fpga_image = vm["image"].as<std::string>();
    if (vm.count("tenant-sidecar") != 0u) {
      args.tenant_sidecars = vm["tenant-sidecar"].as<std::vector<std::string>>();
    }
    ASSIGN_OR_RETURN(Json body, CreateFunctionBody(args));
    ASSIGN_OR_RETURN(Json created,
                     LambdaCall(ctx, "POST", "/2015-03-31/functions", &body, kCreateTimeout));
    PrintConfiguration(ctx, created, created);
    return Status::Ok();
  }
};

class FunctionZipCommand : public Command {
 public:
  std::string_view name() const override { return "function zip"; }
  std::string_view summary() const override {
    return "zip a directory as a function's code, keeping file modes (for create --zip)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    o.add_options()("dir", po::value<std::string>()->required(), "the directory to zip")(
        "out", po::value<std::string>()->required(), "the zip file to write");
    p.add("dir", 1);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(std::string zip, ZipDirectory(vm["dir"].as<std::string>()));
    std::string out = vm["out"].as<std::string>();
    RETURN_IF_ERROR(WriteFileAtomically(out, zip));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << Json{{"file", out}, {"bytes", zip.size()}}.dump(2) << "\n";
    } else {
      ctx.out() << fmt::format("{}: {} bytes\n", out, zip.size());
    }
    return Status::Ok();
  }
};

class FunctionListCommand : public Command {
 public:
  std::string_view name() const override { return "function list"; }
  std::string_view summary() const override { return "list your functions"; }
  Status Run(CliContext& ctx, const po::variables_map&) override {
    ASSIGN_OR_RETURN(Json res, LambdaCall(ctx, "GET", "/2015-03-31/functions/"));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << res.dump(2) << "\n";
    } else {
      ctx.out() << FormatFunctionList(res.is_object() ? res.value("Functions", Json::array())
                                                      : Json::array());
    }
    return Status::Ok();
  }
};

class FunctionDescribeCommand : public Command {
 public:
  std::string_view name() const override { return "function describe"; }
  std::string_view summary() const override {
    return "show a function's configuration and code digest";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFunctionName(o, p);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(Json res,
                     LambdaCall(ctx, "GET", FunctionPath(vm["function"].as<std::string>())));
    Json configuration = res.is_object() ? res.value("Configuration", Json()) : Json();
    Json concurrency = res.is_object() ? res.value("Concurrency", Json()) : Json();
    PrintConfiguration(ctx, res, configuration, concurrency);
    return Status::Ok();
  }
};

class FunctionDeleteCommand : public Command {
 public:
  std::string_view name() const override { return "function delete"; }
  std::string_view summary() const override { return "delete a function and its code"; }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFunctionName(o, p);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string function = vm["function"].as<std::string>();
    RETURN_IF_ERROR(LambdaCall(ctx, "DELETE", FunctionPath(function)).status());
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << Json{{"FunctionName", function}, {"deleted", true}}.dump(2) << "\n";
    } else {
      ctx.out() << fmt::format("{}: deleted\n", function);
    }
    return Status::Ok();
  }
};

StatusOr<std::string> ReadPayloadFile(const std::string& file) {
  if (file != "-") return ReadFile(file);
  std::string text(std::istreambuf_iterator<char>(std::cin), {});
  if (std::cin.bad()) return InvalidArgumentError("cannot read the payload from stdin", "IO_ERROR");
  return text;
}

class FunctionInvokeCommand : public Command {
 public:
  std::string_view name() const override { return "function invoke"; }
  std::string_view summary() const override {
    return "invoke a function and print its response (Lambda's Invoke)";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFunctionName(o, p);
    o.add_options()("payload", po::value<std::string>(), "the event, JSON text")(
        "payload-file", po::value<std::string>(), "read the event from a file ('-': stdin)")(
        "async", "queue the invocation (InvocationType Event) and return at once")(
        "log-type", po::value<std::string>(),
        "Tail: print the end of the invocation's log on stderr")(
        "out", po::value<std::string>(), "write the response payload to this file, as is")(
        "routing-key", po::value<std::string>(),
        "affinity: prefer the warm slot that served this key last (X-Fpgahost-Routing-Key)");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    if (vm.count("payload") != 0u && vm.count("payload-file") != 0u) {
      return InvalidArgumentError("give at most one of --payload and --payload-file", "USAGE");
    }
    std::string log_type = vm.count("log-type") != 0u ? vm["log-type"].as<std::string>() : "";
    if (!log_type.empty() && log_type != "Tail" && log_type != "None") {
      return InvalidArgumentError(
          fmt::format("--log-type must be Tail or None, not '{}'", log_type), "USAGE");
    }
    bool async = vm.count("async") != 0u;
    std::string function = vm["function"].as<std::string>();

    http::ClientRequest req;
    req.method = "POST";
    req.target = FunctionPath(function) + "/invocations";
    req.timeout = kInvokeTimeout;
    req.headers["X-Amz-Invocation-Type"] = async ? "Event" : "RequestResponse";
    if (!log_type.empty()) req.headers["X-Amz-Log-Type"] = log_type;
    if (vm.count("routing-key") != 0u) {
      req.headers["X-Fpgahost-Routing-Key"] = vm["routing-key"].as<std::string>();
    }
    req.headers["Content-Type"] = "application/json";
    if (vm.count("payload") != 0u) req.body = vm["payload"].as<std::string>();
    if (vm.count("payload-file") != 0u) {
      ASSIGN_OR_RETURN(req.body, ReadPayloadFile(vm["payload-file"].as<std::string>()));
    }
    ASSIGN_OR_RETURN(http::ClientResponse res, ctx.CallRaw(std::move(req)));
    if (!IsSuccess(res)) return LambdaApiError(res.status, res.headers, res.body);

    std::string request_id = Header(res, "x-amzn-requestid");
    if (async) {
      if (ctx.output() == OutputFormat::kJson) {
        ctx.out() << Json{{"StatusCode", res.status}, {"RequestId", request_id}}.dump(2) << "\n";
      } else {
        ctx.out() << fmt::format("queued (HTTP {}), request id {}\n", res.status,
                                 request_id.empty() ? "-" : request_id);
      }
      return Status::Ok();
    }

    std::string log = Header(res, "x-amz-log-result");
    if (!log.empty()) {
      std::optional<std::string> decoded = Base64Decode(log);
      std::cerr << (decoded ? *decoded : "(X-Amz-Log-Result is not base64: " + log + ")");
      if (decoded && !decoded->empty() && decoded->back() != '\n') std::cerr << "\n";
    }
    bool to_file = vm.count("out") != 0u;
    if (to_file) RETURN_IF_ERROR(WriteFileAtomically(vm["out"].as<std::string>(), res.body));
    std::string function_error = Header(res, "x-amz-function-error");
    if (ctx.output() == OutputFormat::kJson) {
      Json summary = {{"StatusCode", res.status}};
      std::string version = Header(res, "x-amz-executed-version");
      if (!version.empty()) summary["ExecutedVersion"] = version;
      if (!function_error.empty()) summary["FunctionError"] = function_error;
      // fpgahost's: an idempotent call answered with an earlier call's result.
      std::string reused_from = Header(res, "x-fpgahost-reused-from");
      if (!reused_from.empty()) summary["ReusedFrom"] = reused_from;
      if (!to_file) {
        Json payload = Json::parse(res.body, nullptr, /*allow_exceptions=*/false);
        summary["Payload"] = payload.is_discarded() ? Json(res.body) : payload;
      }
      ctx.out() << summary.dump(2) << "\n";
    } else if (!to_file) {
      ctx.out() << res.body;
      if (!res.body.empty() && res.body.back() != '\n') ctx.out() << "\n";
    }
    if (!function_error.empty()) return FunctionErrorStatus(function_error, res.body);
    return Status::Ok();
  }
};

class FunctionIdempotentCommand : public Command {
 public:
  std::string_view name() const override { return "function idempotent"; }
  std::string_view summary() const override {
    return "declare a function idempotent: identical calls reuse a result while its "
           "dependencies are unchanged";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFunctionName(o, p);
    o.add_options()("file", po::value<std::vector<std::string>>()->composing(),
                    "a file or directory it reads, relative to the tenant's data root "
                    "(repeatable)")("image", po::value<std::vector<std::string>>()->composing(),
                                    "an fpgahost image it uses (repeatable)")(
        "depends-on", po::value<std::vector<std::string>>()->composing(),
        "another function it calls (repeatable)")("ttl", po::value<int64_t>(),
                                                  "seconds a result is reused (default 3600)")(
        "off", "no longer idempotent: every call runs");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string function = vm["function"].as<std::string>();
    std::string target = "/v1/functions/" + PercentEncode(function) + "/idempotency";
    if (vm.count("off") != 0u) {
      if (vm.count("file") + vm.count("image") + vm.count("depends-on") + vm.count("ttl") != 0u) {
        return InvalidArgumentError("--off takes no dependencies or --ttl", "USAGE");
      }
      RETURN_IF_ERROR(ctx.Call("DELETE", target).status());
      ctx.out() << fmt::format("{}: not idempotent\n", function);
      return Status::Ok();
    }
    auto list = [&vm](const char* option) {
      return vm.count(option) != 0u ? vm[option].as<std::vector<std::string>>()
                                    : std::vector<std::string>();
    };
    Json body = {
        {"files", list("file")}, {"images", list("image")}, {"functions", list("depends-on")}};
    if (vm.count("ttl") != 0u) body["ttl_seconds"] = vm["ttl"].as<int64_t>();
    ASSIGN_OR_RETURN(Json res, ctx.Call("PUT", target, &body));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << res.dump(2) << "\n";
    } else {
      const Json& spec = JsonField(res, "idempotency");
      ctx.out() << fmt::format(
          "{}: idempotent, results reused for {} s while {} files, {} images and {} functions "
          "stay unchanged\n",
          function, JsonText(JsonField(spec, "ttl_seconds")), JsonField(spec, "files").size(),
          JsonField(spec, "images").size(), JsonField(spec, "functions").size());
    }
    return Status::Ok();
  }
};

class FunctionPrewarmCommand : public Command {
 public:
  std::string_view name() const override { return "function prewarm"; }
  std::string_view summary() const override {
    return "announce calls ahead: start warm slots for them now";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFunctionName(o, p);
    o.add_options()("count", po::value<int>()->required(), "about how many calls are coming")(
        "within", po::value<int>(), "within how many seconds (default 60)");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    std::string function = vm["function"].as<std::string>();
    Json body = {{"count", vm["count"].as<int>()}};
    if (vm.count("within") != 0u) body["within_seconds"] = vm["within"].as<int>();
    ASSIGN_OR_RETURN(
        Json res, ctx.Call("POST", "/v1/functions/" + PercentEncode(function) + "/prewarm", &body));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << res.dump(2) << "\n";
    } else {
      ctx.out() << fmt::format(
          "{}: {} slots wanted within {} s: {} there, {} starting, {} waiting for capacity\n",
          function, JsonText(JsonField(res, "requested")),
          JsonText(JsonField(res, "within_seconds")), JsonText(JsonField(res, "existing")),
          JsonText(JsonField(res, "starting")), JsonText(JsonField(res, "deferred")));
    }
    return Status::Ok();
  }
};

void AddLimit(po::options_description& o, const char* help) {
  o.add_options()("limit", po::value<int>(), help);
}

StatusOr<int> Limit(const po::variables_map& vm) {
  if (vm.count("limit") == 0u) return 0;
  int limit = vm["limit"].as<int>();
  if (limit <= 0) return InvalidArgumentError("--limit must be a positive number", "USAGE");
  return limit;
}

Json Invocations(const Json& res) {
  return res.is_object() ? res.value("invocations", Json::array()) : Json::array();
}

class FunctionLogsCommand : public Command {
 public:
  std::string_view name() const override { return "function logs"; }
  std::string_view summary() const override {
    return "print the logs of a function's latest invocations, oldest first";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    AddFunctionName(o, p);
    AddLimit(o, "how many of the latest invocations (default: the daemon's)");
    o.add_options()("request-id", po::value<std::string>(), "only this invocation");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(int limit, Limit(vm));
    std::string request_id = vm.count("request-id") != 0u ? vm["request-id"].as<std::string>() : "";
    ASSIGN_OR_RETURN(Json res, ctx.Call("GET", InvocationsTarget(vm["function"].as<std::string>(),
                                                                 limit, true, request_id)));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << res.dump(2) << "\n";
    } else if (Invocations(res).empty()) {
      std::cerr << "no invocations recorded" << (request_id.empty() ? "" : " with that request id")
                << "\n";
    } else {
      ctx.out() << FormatInvocationLogs(Invocations(res));
    }
    return Status::Ok();
  }
};

class FunctionInvocationsCommand : public Command {
 public:
  std::string_view name() const override { return "function invocations"; }
  std::string_view summary() const override {
    return "list the latest invocations, of one function or all, newest first";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    o.add_options()("function", po::value<std::string>(), "function name (default: all)");
    p.add("function", 1);
    AddLimit(o, "how many (default: the daemon's)");
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(int limit, Limit(vm));
    std::string function = vm.count("function") != 0u ? vm["function"].as<std::string>() : "";
    ASSIGN_OR_RETURN(Json res, ctx.Call("GET", InvocationsTarget(function, limit, false, "")));
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << res.dump(2) << "\n";
    } else {
      ctx.out() << FormatInvocations(Invocations(res));
    }
    return Status::Ok();
  }
};

class FunctionSlotsCommand : public Command {
 public:
  std::string_view name() const override { return "function slots"; }
  std::string_view summary() const override {
    return "list the function slots (warm sandboxes), of one function or all";
  }
  void DefineOptions(po::options_description& o, po::positional_options_description& p) override {
    o.add_options()("function", po::value<std::string>(), "function name (default: all)");
    p.add("function", 1);
  }
  Status Run(CliContext& ctx, const po::variables_map& vm) override {
    ASSIGN_OR_RETURN(Json res, ctx.Call("GET", "/v1/function-slots"));
    Json slots = res.is_object() && res.contains("slots") ? res["slots"] : Json::array();
    if (vm.count("function") != 0u) {
      std::string function = vm["function"].as<std::string>();
      Json mine = Json::array();
      for (const Json& s : slots) {
        if (s.is_object() && s.value("function", "") == function) mine.push_back(s);
      }
      slots = std::move(mine);
    }
    if (ctx.output() == OutputFormat::kJson) {
      ctx.out() << Json{{"slots", slots}}.dump(2) << "\n";
    } else {
      ctx.out() << FormatFunctionSlots(slots);
    }
    return Status::Ok();
  }
};

}  // namespace

void AddFunctionCommands(std::vector<std::unique_ptr<Command>>& out) {
  out.push_back(std::make_unique<FunctionCreateCommand>());
  out.push_back(std::make_unique<FunctionZipCommand>());
  out.push_back(std::make_unique<FunctionListCommand>());
  out.push_back(std::make_unique<FunctionDescribeCommand>());
  out.push_back(std::make_unique<FunctionDeleteCommand>());
  out.push_back(std::make_unique<FunctionInvokeCommand>());
  out.push_back(std::make_unique<FunctionPrewarmCommand>());
  out.push_back(std::make_unique<FunctionIdempotentCommand>());
  out.push_back(std::make_unique<FunctionLogsCommand>());
  out.push_back(std::make_unique<FunctionInvocationsCommand>());
  out.push_back(std::make_unique<FunctionSlotsCommand>());
}

}  // namespace fpgahost::cli
