#include "host/functions/runtime_api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/json.h"
#include "common/thread_annotations.h"
#include "host/http/errors.h"

namespace fpgahost::functions {
namespace {

constexpr std::string_view kNextPath = "/2018-06-01/runtime/invocation/next";
constexpr std::string_view kResponsePath = "/2018-06-01/runtime/invocation/{request_id}/response";
constexpr std::string_view kErrorPath = "/2018-06-01/runtime/invocation/{request_id}/error";
constexpr std::string_view kInitErrorPath = "/2018-06-01/runtime/init/error";
constexpr std::string_view kErrorCauseContentType = "application/vnd.aws.lambda.error.cause+json";
constexpr std::string_view kExtensionRegisterPath = "/2020-01-01/extension/register";
constexpr std::string_view kExtensionNextPath = "/2020-01-01/extension/event/next";
constexpr std::string_view kExtensionInitErrorPath = "/2020-01-01/extension/init/error";
constexpr std::string_view kExtensionExitErrorPath = "/2020-01-01/extension/exit/error";
// Registrations and error reports are small JSON documents.
constexpr size_t kExtensionBodyCap = 1024 * 1024;

// A chunked body over kMaxPayloadBytes is read (and dropped) up to this much, so the runtime
// still gets Lambda's 413; past it the server cuts the upload off.
constexpr size_t kRouteBodyCap = 4 * kMaxPayloadBytes;
constexpr size_t kMaxRequestIdBytes = 256;

// Work to do once the lock is released: callbacks into the owner, responses, and dropping
// Responders (which may close a connection). Declare it before the MutexLock.
class Later {
 public:
  Later() = default;
  Later(const Later&) = delete;
  Later& operator=(const Later&) = delete;
  ~Later() {
    for (auto& f : work_) f();
  }
  void Add(std::function<void()> f) { work_.push_back(std::move(f)); }
  void Respond(http::Responder respond, http::Response response) {
    Add([r = std::move(respond), res = std::move(response)]() mutable { r(std::move(res)); });
  }
  void Drop(http::Responder respond) {
    Add([r = std::move(respond)]() mutable { r = nullptr; });
  }
  void Done(std::function<void(InvocationResult)> done, InvocationResult result) {
    Add([d = std::move(done), res = std::move(result)]() mutable { d(std::move(res)); });
  }

 private:
  std::vector<std::function<void()>> work_;
};

http::Response LambdaError(unsigned status, std::string_view type, std::string_view message) {
  return http::JsonResponse(Json{{"errorMessage", message}, {"errorType", type}}.dump(), status);
}

http::Response Accepted() { return http::JsonResponse(R"({"status":"OK"})", 202); }

http::Response InvalidRequestId() {
  return LambdaError(400, "InvalidRequestID", "Invalid request ID");
}

http::Response RequestTooLarge() {
  return LambdaError(
      413, "RequestEntityTooLarge",
      fmt::format("Exceeded maximum allowed payload size ({} bytes).", kMaxPayloadBytes));
}

http::Response InvalidTransition(std::string_view from, std::string_view to) {
  return LambdaError(
      403, "InvalidStateTransition",
      fmt::format("State transition from {} to {} failed for runtime. Error: State transition "
                  "is not allowed",
                  from, to));
}

FunctionError ResponseTooLarge(std::optional<uint64_t> size) {
  std::string message =
      size ? fmt::format(
                 "Response payload size ({} bytes) exceeded maximum allowed payload size "
                 "({} bytes).",
                 *size, kMaxPayloadBytes)
           : fmt::format("Response payload size exceeded maximum allowed payload size ({} bytes).",
                         kMaxPayloadBytes);
  return FunctionError{
      std::string(kErrorTypeResponseTooLarge),
      Json{{"errorMessage", message}, {"errorType", kErrorTypeResponseTooLarge}}.dump()};
}

std::optional<uint64_t> ContentLength(const http::Request& req) {
  std::string_view v = req.Header("content-length");
  uint64_t n = 0;
  if (v.empty() || std::from_chars(v.data(), v.data() + v.size(), n).ec != std::errc()) {
    return std::nullopt;
  }
  return n;
}

std::string_view MediaType(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  return content_type;
}

// Header values go on the wire as they are: no control characters (CR/LF would split them).
bool WireSafe(std::string_view value) {
  for (unsigned char c : value) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// The id is a path segment of the runtime's requests and a header value.
bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (unsigned char c : id) {
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '%') return false;
  }
  return true;
}

http::Response EventResponse(const Invocation& inv) {
  http::Response r;
  r.status = 200;
  r.content_type = "application/json";
  r.body = inv.payload;
  auto deadline_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(inv.deadline.time_since_epoch());
  r.headers = {{"Lambda-Runtime-Aws-Request-Id", inv.request_id},
               {"Lambda-Runtime-Deadline-Ms", std::to_string(deadline_ms.count())},
               {"Lambda-Runtime-Invoked-Function-Arn", inv.function_arn}};
  if (!inv.trace_id.empty()) r.headers.emplace_back("Lambda-Runtime-Trace-Id", inv.trace_id);
  if (!inv.client_context.empty()) {
    r.headers.emplace_back("Lambda-Runtime-Client-Context", inv.client_context);
  }
  if (!inv.cognito_identity.empty()) {
    r.headers.emplace_back("Lambda-Runtime-Cognito-Identity", inv.cognito_identity);
  }
  return r;
}

// The error as Lambda passes it on. A body of the error-cause media type is reduced to
// {errorMessage, errorType, stackTrace} (the X-Ray cause is not passed on), as Lambda does.
FunctionError ErrorFromBody(std::string header_type, std::string_view content_type,
                            std::string body) {
  Json parsed = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (MediaType(content_type) == kErrorCauseContentType) {
    if (parsed.is_object()) {
      Json reduced = Json::object();
      for (const char* key : {"errorMessage", "errorType", "stackTrace"}) {
        if (parsed.contains(key)) reduced[key] = parsed[key];
      }
      body = reduced.dump();
    } else {
      body = Json("Invalid error body").dump();
    }
  }
  if (header_type.empty() && parsed.is_object() && parsed.contains("errorType") &&
      parsed["errorType"].is_string()) {
    header_type = parsed["errorType"].get<std::string>();
  }
  return FunctionError{std::move(header_type), std::move(body)};
}

// A version-4 UUID, as Lambda's extension and event identifiers are.
std::string NewUuid() {
  std::string h = RandomHex(16);
  h[12] = '4';
  h[16] = "89ab"[(h[16] <= '9' ? h[16] - '0' : h[16] - 'a' + 10) & 3];
  return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4),
                     h.substr(16, 4), h.substr(20));
}

// 8-4-4-4-12 hex digits, either case (Lambda parses the identifier as a UUID).
bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

http::Response ExtensionEvent(const Json& event) {
  http::Response r;
  r.status = 200;
  r.content_type = "application/json";
  r.body = event.dump();
  r.headers = {{"Lambda-Extension-Event-Identifier", NewUuid()}};
  return r;
}

int64_t EpochMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

http::Response InvokeEvent(const Invocation& inv) {
  Json event = {{"eventType", "INVOKE"},
                {"deadlineMs", EpochMs(inv.deadline)},
                {"requestId", inv.request_id},
                {"invokedFunctionArn", inv.function_arn}};
  if (!inv.trace_id.empty()) {
    event["tracing"] = {{"type", "X-Amzn-Trace-Id"}, {"value", inv.trace_id}};
  }
  return ExtensionEvent(event);
}

std::string_view ShutdownReasonName(ShutdownReason reason) {
  switch (reason) {
    case ShutdownReason::kSpindown:
      return "spindown";
    case ShutdownReason::kTimeout:
      return "timeout";
    case ShutdownReason::kFailure:
      return "failure";
  }
  return "failure";
}

http::Response ExtensionRefusal(std::string_view type, std::string_view message) {
  return LambdaError(403, type, message);
}

}  // namespace

// The slot's state machine, Lambda's (the runtime interface emulator's "runtime states"):
//   Started --next--> (waits) --invocation--> Ready --response/error--> ResponseSent --next-->
//   (waits) --invocation--> Ready ...;  Started --init/error--> InitError (final).
// Responding is Ready while a response body is being uploaded. With extensions, an invocation
// is held back until initialisation is over (init_done_), and a runtime's answer is held in
// Current::held (phase ResponseSent) until the extensions registered for INVOKE are done.
//
// Each extension's own states, Lambda's: Launched --register--> Registered --next--> Ready
// --event--> Running --next--> Ready ...; exit/error: Exited; init/error: InitError.
class RuntimeApi::State {
 public:
  enum class Post { kResponse, kError, kInitError };
  enum class ExtensionPost { kInitError, kExitError };

  explicit State(RuntimeApiOptions options) : options_(std::move(options)) {
    extensions_.reserve(options_.extensions.size());
    for (const std::string& name : options_.extensions) {
      extensions_.emplace_back();
      extensions_.back().name = name;
    }
  }

  void OnNext(http::Responder respond) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (phase_ == Phase::kStarted && !asked_next_) {
      asked_next_ = true;
      CheckInitDone(later);
    }
    switch (phase_) {
      case Phase::kClosed:
        return later.Drop(std::move(respond));
      case Phase::kInitError:
      case Phase::kResponding:
        return later.Respond(std::move(respond), InvalidTransition(PhaseName(), "Ready"));
      case Phase::kReady:
        // The runtime asks again without answering (it lost the event): Lambda re-sends it.
        return later.Respond(std::move(respond), EventResponse(current_->invocation));
      case Phase::kStarted:
      case Phase::kResponseSent:
        if (current_ && !current_->held && init_done_) return Deliver(std::move(respond), later);
        // A newer `next` replaces an older one, whose connection may well be dead.
        if (next_) later.Drop(TakeNext());
        next_ = std::move(respond);
        return;
    }
  }

  std::unique_ptr<http::BodySink> OnPostHeader(Post kind, http::Request& req,
                                               http::Responder respond) EXCLUDES(mu_) {
    std::string id = kind == Post::kInitError ? "" : req.params.at("request_id");
    std::optional<uint64_t> declared = ContentLength(req);
    Later later;
    MutexLock lock(mu_);
    if (kind == Post::kInitError) {
      if (phase_ != Phase::kStarted) {
        later.Respond(std::move(respond), InvalidTransition(PhaseName(), "InitError"));
        return nullptr;
      }
      if (declared && *declared > kMaxPayloadBytes) {
        later.Respond(std::move(respond), RequestTooLarge());
        return nullptr;
      }
    } else {
      if (phase_ != Phase::kReady) {
        later.Respond(std::move(respond), InvalidTransition(PhaseName(), TargetName(kind)));
        return nullptr;
      }
      if (current_->invocation.request_id != id) {
        later.Respond(std::move(respond), InvalidRequestId());
        return nullptr;
      }
      if (declared && *declared > kMaxPayloadBytes) {
        spdlog::warn("runtime API: {} of invocation {} is {} bytes, over Lambda's limit",
                     TargetName(kind), id, *declared);
        Answer(ResponseTooLarge(declared), later);
        later.Respond(std::move(respond), RequestTooLarge());
        return nullptr;
      }
      phase_ = Phase::kResponding;
      responding_ = kind;
    }
    return std::make_unique<PayloadSink>(
        *this, kind, std::move(id), std::string(req.Header("lambda-runtime-function-error-type")),
        std::string(req.Header("content-type")), declared.value_or(0), std::move(respond));
  }

  void OnPostBody(Post kind, const std::string& id, std::string error_type,
                  std::string_view content_type, std::string body, uint64_t total,
                  http::Responder respond) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (kind == Post::kInitError) {
      if (phase_ != Phase::kStarted) {
        return later.Respond(std::move(respond), InvalidTransition(PhaseName(), "InitError"));
      }
      if (total > kMaxPayloadBytes) return later.Respond(std::move(respond), RequestTooLarge());
      spdlog::warn("runtime API: the runtime failed to initialise: {}", error_type);
      FailInit(InitError{std::move(error_type), std::move(body)}, later);
      return later.Respond(std::move(respond), Accepted());
    }
    // The owner may have failed the invocation (Fail, RuntimeExited, Close) during the upload.
    if (phase_ != Phase::kResponding || current_->invocation.request_id != id) {
      return later.Respond(std::move(respond), InvalidRequestId());
    }
    if (total > kMaxPayloadBytes) {
      Answer(ResponseTooLarge(total), later);
      return later.Respond(std::move(respond), RequestTooLarge());
    }
    if (kind == Post::kResponse) {
      Answer(InvocationResponse{std::move(body)}, later);
    } else {
      Answer(ErrorFromBody(std::move(error_type), content_type, std::move(body)), later);
    }
    later.Respond(std::move(respond), Accepted());
  }

  void OnPostAbort(Post kind, const std::string& id, const Status& why) EXCLUDES(mu_) {
    if (kind == Post::kInitError) return;
    Later later;
    MutexLock lock(mu_);
    if (phase_ != Phase::kResponding || current_->invocation.request_id != id) return;
    if (why.code() == StatusCode::kPayloadTooLarge) {
      Answer(ResponseTooLarge(std::nullopt), later);
    } else {
      phase_ = Phase::kReady;  // the upload broke off; the runtime may post again
    }
  }

  Status Dispatch(Invocation invocation, std::function<void(InvocationResult)> done) EXCLUDES(mu_) {
    if (!ValidRequestId(invocation.request_id)) {
      return InvalidArgumentError(
          fmt::format("request id '{}' cannot be sent to a runtime", invocation.request_id),
          "INVALID_REQUEST_ID");
    }
    for (const std::string* v : {&invocation.function_arn, &invocation.trace_id,
                                 &invocation.client_context, &invocation.cognito_identity}) {
      if (!WireSafe(*v)) {
        return InvalidArgumentError(
            fmt::format("invocation {} has a control character in a header value",
                        invocation.request_id),
            "INVALID_HEADER_VALUE");
      }
    }
    Later later;
    MutexLock lock(mu_);
    if (phase_ == Phase::kClosed || shutting_down_) {
      return FailedPreconditionError("the function slot is closed", "SLOT_CLOSED");
    }
    if (phase_ == Phase::kInitError) {
      return FailedPreconditionError("the slot's runtime failed to initialise",
                                     "RUNTIME_INIT_FAILED");
    }
    if (current_) {
      return ConflictError(
          fmt::format("the slot is running invocation {}", current_->invocation.request_id),
          "SLOT_BUSY");
    }
    current_.emplace(Current{std::move(invocation), std::move(done), std::nullopt});
    MaybeDeliver(later);
    return Status::Ok();
  }

  bool Ready() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return next_ != nullptr && !current_ && init_done_ && !shutting_down_ &&
           (phase_ == Phase::kStarted || phase_ == Phase::kResponseSent);
  }

  Status Fail(std::string_view id, RuntimeFailure failure) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (!current_ || current_->invocation.request_id != id) {
      return NotFoundError(fmt::format("invocation {} is not in progress", id),
                           "NO_SUCH_INVOCATION");
    }
    FailCurrent(std::move(failure), later);
    return Status::Ok();
  }

  void RuntimeExited(RuntimeFailure failure) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (phase_ == Phase::kClosed) return;
    if (current_) later.Done(TakeDone(), std::move(failure));
    if (next_) later.Drop(TakeNext());
    DropExtensionNexts(later);
    phase_ = Phase::kStarted;
  }

  void Close() EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    if (current_) {
      later.Done(TakeDone(), RuntimeFailure{std::string(kErrorTypeSandboxFailure),
                                            "the function slot was closed during the invocation"});
    }
    if (next_) later.Drop(TakeNext());
    DropExtensionNexts(later);
    shutdown_done_ = nullptr;
  }

  bool Shutdown(ShutdownReason reason, std::chrono::system_clock::time_point deadline,
                std::function<void()> done) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (phase_ == Phase::kClosed || shutting_down_) return false;
    shutting_down_ = true;
    if (current_) {
      FailCurrent(RuntimeFailure{std::string(kErrorTypeSandboxFailure),
                                 "the function slot was shut down during the invocation"},
                  later);
    }
    bool any = std::any_of(extensions_.begin(), extensions_.end(),
                           [](const Extension& e) { return e.shutdown && Live(e); });
    if (!any) return false;
    shutdown_done_ = std::move(done);
    DeliverToExtensions(ExtensionEvent({{"eventType", "SHUTDOWN"},
                                        {"shutdownReason", ShutdownReasonName(reason)},
                                        {"deadlineMs", EpochMs(deadline)}}),
                        &Extension::shutdown, later);
    return true;
  }

  std::vector<ExtensionStatus> Extensions() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    std::vector<ExtensionStatus> out;
    for (const Extension& e : extensions_) {
      out.push_back(ExtensionStatus{e.name, std::string(StateName(e.state)), e.invoke, e.shutdown,
                                    e.error_type});
    }
    return out;
  }

  void OnRegister(const http::Request& req, http::Responder respond) EXCLUDES(mu_) {
    Later later;
    std::string name(req.Header("lambda-extension-name"));
    if (name.empty()) {
      return later.Respond(std::move(respond), ExtensionRefusal("Extension.InvalidExtensionName",
                                                                "Empty extension name"));
    }
    Json body = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || (body.contains("events") && !body["events"].is_array())) {
      return later.Respond(
          std::move(respond),
          ExtensionRefusal("InvalidRequestFormat", "the body must be {\"events\":[...]}"));
    }
    bool invoke = false, shutdown = false;
    for (const Json& event : body.value("events", Json::array())) {
      if (event == "INVOKE") {
        invoke = true;
      } else if (event == "SHUTDOWN") {
        shutdown = true;
      } else {
        return later.Respond(
            std::move(respond),
            ExtensionRefusal(
                "Extension.InvalidEventType",
                fmt::format("{}: not an event of the Extensions API (INVOKE, "
                            "SHUTDOWN)",
                            event.is_string() ? event.get<std::string>() : event.dump())));
      }
    }
    std::string id = NewUuid();
    MutexLock lock(mu_);
    if (init_done_ || shutting_down_ || phase_ != Phase::kStarted) {
      return later.Respond(std::move(respond),
                           ExtensionRefusal("Extension.RegistrationClosed",
                                            "Extension registration closed already"));
    }
    Extension* e = FindByName(name);
    if (e == nullptr) {
      return later.Respond(
          std::move(respond),
          ExtensionRefusal("Extension.InvalidExtensionName",
                           fmt::format("{} is not the name of a file in /opt/extensions", name)));
    }
    if (e->state != Extension::State::kLaunched) {
      return later.Respond(std::move(respond), InvalidExtensionState(*e, "Registered"));
    }
    e->id = std::move(id);
    e->state = Extension::State::kRegistered;
    e->invoke = invoke;
    e->shutdown = shutdown;
    spdlog::debug("runtime API: extension {} registered (INVOKE {}, SHUTDOWN {})", name, invoke,
                  shutdown);
    http::Response r = http::JsonResponse(Json{{"functionName", options_.function_name},
                                               {"functionVersion", options_.function_version},
                                               {"handler", options_.handler}}
                                              .dump(),
                                          200);
    r.headers.emplace_back("Lambda-Extension-Identifier", e->id);
    later.Respond(std::move(respond), std::move(r));
  }

  void OnExtensionNext(const http::Request& req, http::Responder respond) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    Extension* e = Identify(req, respond, later);
    if (e == nullptr) return;
    if (phase_ == Phase::kClosed) return later.Drop(std::move(respond));
    if (!Live(*e) || phase_ == Phase::kInitError) {
      return later.Respond(std::move(respond), InvalidExtensionState(*e, "Ready"));
    }
    bool first = e->state == Extension::State::kRegistered;
    e->state = Extension::State::kReady;
    // A newer `next` replaces an older one, whose connection may well be dead.
    if (e->next) later.Drop(std::exchange(e->next, nullptr));
    if (e->pending) {
      e->state = Extension::State::kRunning;
      later.Respond(std::move(respond), std::move(*e->pending));
      e->pending.reset();
    } else {
      e->next = std::move(respond);
    }
    if (first && CheckInitDone(later)) MaybeDeliver(later);
    ExtensionProgress(later);
  }

  void OnExtensionError(ExtensionPost kind, const http::Request& req, http::Responder respond)
      EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    Extension* e = Identify(req, respond, later);
    if (e == nullptr) return;
    std::string error_type(req.Header("lambda-extension-function-error-type"));
    if (error_type.empty()) {
      return later.Respond(std::move(respond),
                           ExtensionRefusal("Extension.MissingHeader",
                                            "Lambda-Extension-Function-Error-Type not found"));
    }
    if (!WireSafe(error_type)) {
      return later.Respond(
          std::move(respond),
          ExtensionRefusal("InvalidRequestFormat", "the error type has a control character"));
    }
    if (kind == ExtensionPost::kInitError) {
      if (!Live(*e) || init_done_ || phase_ != Phase::kStarted) {
        return later.Respond(std::move(respond), InvalidExtensionState(*e, "InitError"));
      }
      spdlog::warn("runtime API: extension {} failed to initialise: {}", e->name, error_type);
      e->state = Extension::State::kInitError;
      e->error_type = error_type;
      std::string body = req.body;
      if (body.empty()) {
        body = Json{{"errorMessage", fmt::format("Extension {} failed to initialise", e->name)},
                    {"errorType", error_type}}
                   .dump();
      }
      FailInit(InitError{std::move(error_type), std::move(body)}, later);
      return later.Respond(std::move(respond), Accepted());
    }
    if (!Live(*e) || phase_ == Phase::kClosed) {
      return later.Respond(std::move(respond), InvalidExtensionState(*e, "Exited"));
    }
    spdlog::warn("runtime API: extension {} exits with error {}", e->name, error_type);
    bool was_registered = e->state == Extension::State::kRegistered;
    e->state = Extension::State::kExited;
    e->error_type = std::move(error_type);
    e->pending.reset();
    if (e->next) later.Drop(std::exchange(e->next, nullptr));
    if (was_registered && CheckInitDone(later)) MaybeDeliver(later);
    ExtensionProgress(later);
    later.Respond(std::move(respond), Accepted());
  }

 private:
  enum class Phase { kStarted, kReady, kResponding, kResponseSent, kInitError, kClosed };

  struct Current {
    Invocation invocation;
    std::function<void(InvocationResult)> done;
    // The runtime's answer, while extensions registered for INVOKE are still at work.
    std::optional<InvocationResult> held;
  };

  struct Extension {
    enum class State { kLaunched, kRegistered, kReady, kRunning, kExited, kInitError };
    std::string name;
    std::string id;  // lower case
    State state = State::kLaunched;
    bool invoke = false;
    bool shutdown = false;
    http::Responder next;                   // a pending event/next, or null
    std::optional<http::Response> pending;  // an event for its next `next`
    std::string error_type;                 // from exit/error or init/error
  };

  // Collects a posted body up to kMaxPayloadBytes; past that it only counts, so the answer
  // can still be Lambda's 413 once the body is in.
  class PayloadSink : public http::BodySink {
   public:
    PayloadSink(State& state, Post kind, std::string id, std::string error_type,
                std::string content_type, uint64_t declared, http::Responder respond)
        : state_(state),
          kind_(kind),
          id_(std::move(id)),
          error_type_(std::move(error_type)),
          content_type_(std::move(content_type)),
          respond_(std::move(respond)) {
      body_.reserve(static_cast<size_t>(declared));
    }
    Status Write(std::string_view piece) override {
      total_ += piece.size();
      if (total_ <= kMaxPayloadBytes) {
        body_.append(piece);
      } else if (body_.capacity() != 0) {
        std::string().swap(body_);
      }
      return Status::Ok();
    }
    void Finish() override {
      state_.OnPostBody(kind_, id_, std::move(error_type_), content_type_, std::move(body_), total_,
                        std::move(respond_));
    }
    void Abort(const Status& why) override { state_.OnPostAbort(kind_, id_, why); }

   private:
    // The route's handler holds the State for as long as the server can call this sink.
    State& state_;
    Post kind_;
    std::string id_;
    std::string error_type_;
    std::string content_type_;
    http::Responder respond_;
    std::string body_;
    uint64_t total_ = 0;
  };

  void Deliver(http::Responder respond, Later& later) REQUIRES(mu_) {
    phase_ = Phase::kReady;
    later.Respond(std::move(respond), EventResponse(current_->invocation));
    if (!extensions_.empty()) {
      DeliverToExtensions(InvokeEvent(current_->invocation), &Extension::invoke, later);
    }
  }

  // Hands the dispatched invocation to a waiting runtime once initialisation is over.
  void MaybeDeliver(Later& later) REQUIRES(mu_) {
    if (init_done_ && next_ && current_ && !current_->held &&
        (phase_ == Phase::kStarted || phase_ == Phase::kResponseSent)) {
      Deliver(TakeNext(), later);
    }
  }

  // Ends the delivered invocation with the runtime's answer, or holds the answer while
  // extensions registered for INVOKE still work on the invocation.
  void Answer(InvocationResult result, Later& later) REQUIRES(mu_) {
    phase_ = Phase::kResponseSent;
    if (!extensions_.empty() && InvokeExtensionsBusy()) {
      current_->held = std::move(result);
      return;
    }
    later.Done(TakeDone(), std::move(result));
  }

  // Ends the delivered invocation with `result` at once.
  void Finish(InvocationResult result, Later& later) REQUIRES(mu_) {
    phase_ = Phase::kResponseSent;
    later.Done(TakeDone(), std::move(result));
  }

  // Ends the invocation in progress (delivered or not) with `failure`.
  void FailCurrent(RuntimeFailure failure, Later& later) REQUIRES(mu_) {
    if (phase_ == Phase::kReady || phase_ == Phase::kResponding) {
      Finish(std::move(failure), later);  // a late answer meets ResponseSent: 403
    } else {
      later.Done(TakeDone(), std::move(failure));
    }
  }

  void FailInit(InitError error, Later& later) REQUIRES(mu_) {
    phase_ = Phase::kInitError;
    if (current_) later.Done(TakeDone(), error);
    if (next_) later.Drop(TakeNext());
    DropExtensionNexts(later);
    if (options_.on_init_error) {
      later.Add([cb = options_.on_init_error, error = std::move(error)] { cb(error); });
    }
  }

  // Initialisation is over once the runtime asked for `next` and every extension registered
  // and asked for its first event (or exited). Returns whether it ended now.
  bool CheckInitDone(Later& later) REQUIRES(mu_) {
    if (init_done_ || !asked_next_ || phase_ != Phase::kStarted || shutting_down_) return false;
    for (const Extension& e : extensions_) {
      if (e.state == Extension::State::kLaunched || e.state == Extension::State::kRegistered) {
        return false;
      }
    }
    init_done_ = true;
    if (options_.on_first_next) later.Add(options_.on_first_next);
    return true;
  }

  // `event` to every live extension registered for it (`wants`): now if it waits on `next`,
  // else on its next `next`.
  void DeliverToExtensions(const http::Response& event, bool Extension::*wants, Later& later)
      REQUIRES(mu_) {
    for (Extension& e : extensions_) {
      if (!(e.*wants) || !Live(e)) continue;
      if (e.next) {
        e.state = Extension::State::kRunning;
        later.Respond(std::exchange(e.next, nullptr), event);
      } else {
        e.pending = event;
      }
    }
  }

  bool InvokeExtensionsBusy() const REQUIRES(mu_) {
    return std::any_of(extensions_.begin(), extensions_.end(), [](const Extension& e) {
      return e.invoke && Live(e) && (e.state == Extension::State::kRunning || e.pending);
    });
  }

  // An extension finished with its event (asked for the next, or exited): ends a held
  // invocation or the shutdown once nothing else is awaited.
  void ExtensionProgress(Later& later) REQUIRES(mu_) {
    if (current_ && current_->held && !InvokeExtensionsBusy()) {
      InvocationResult result = std::move(*current_->held);
      later.Done(TakeDone(), std::move(result));
    }
    if (shutdown_done_ &&
        std::none_of(extensions_.begin(), extensions_.end(), [](const Extension& e) {
          return e.shutdown && Live(e) && (e.state == Extension::State::kRunning || e.pending);
        })) {
      later.Add(std::exchange(shutdown_done_, nullptr));
    }
  }

  void DropExtensionNexts(Later& later) REQUIRES(mu_) {
    for (Extension& e : extensions_) {
      if (e.next) later.Drop(std::exchange(e.next, nullptr));
    }
  }

  static bool Live(const Extension& e) {
    return e.state != Extension::State::kExited && e.state != Extension::State::kInitError;
  }

  Extension* FindByName(std::string_view name) REQUIRES(mu_) {
    for (Extension& e : extensions_) {
      if (e.name == name) return &e;
    }
    return nullptr;
  }

  // The registered extension the request's Lambda-Extension-Identifier names; null after
  // refusing the request.
  Extension* Identify(const http::Request& req, http::Responder& respond, Later& later)
      REQUIRES(mu_) {
    std::string_view id = req.Header("lambda-extension-identifier");
    if (id.empty()) {
      later.Respond(std::move(respond),
                    ExtensionRefusal("Extension.MissingExtensionIdentifier",
                                     "Missing Lambda-Extension-Identifier header"));
      return nullptr;
    }
    if (!IsUuid(id)) {
      later.Respond(std::move(respond), ExtensionRefusal("Extension.InvalidExtensionIdentifier",
                                                         "Invalid Lambda-Extension-Identifier"));
      return nullptr;
    }
    std::string lower = Lower(id);
    for (Extension& e : extensions_) {
      if (!e.id.empty() && e.id == lower) return &e;
    }
    later.Respond(std::move(respond), ExtensionRefusal("Extension.UnknownExtensionIdentifier",
                                                       fmt::format("Unknown extension {}", id)));
    return nullptr;
  }

  static http::Response InvalidExtensionState(const Extension& e, std::string_view to) {
    return ExtensionRefusal(
        "Extension.InvalidExtensionState",
        fmt::format("State transition from {} to {} failed for extension {}. Error: State "
                    "transition is not allowed",
                    StateName(e.state), to, e.id.empty() ? e.name : e.id));
  }

  static std::string_view StateName(Extension::State state) {
    switch (state) {
      case Extension::State::kLaunched:
        return "Launched";
      case Extension::State::kRegistered:
        return "Registered";
      case Extension::State::kReady:
        return "Ready";
      case Extension::State::kRunning:
        return "Running";
      case Extension::State::kExited:
        return "Exited";
      case Extension::State::kInitError:
        return "InitError";
    }
    return "Unknown";
  }

  http::Responder TakeNext() REQUIRES(mu_) { return std::exchange(next_, nullptr); }

  std::function<void(InvocationResult)> TakeDone() REQUIRES(mu_) {
    auto done = std::move(current_->done);
    current_.reset();
    return done;
  }

  std::string_view PhaseName() const REQUIRES(mu_) {
    switch (phase_) {
      case Phase::kStarted:
        return "Started";
      case Phase::kReady:
        return "Ready";
      case Phase::kResponding:
        return TargetName(responding_);
      case Phase::kResponseSent:
        return "RuntimeResponseSentState";
      case Phase::kInitError:
        return "InitError";
      case Phase::kClosed:
        return "Closed";
    }
    return "Unknown";
  }

  static std::string_view TargetName(Post kind) {
    switch (kind) {
      case Post::kResponse:
        return "InvocationResponse";
      case Post::kError:
        return "InvocationErrorResponse";
      case Post::kInitError:
        return "InitError";
    }
    return "Unknown";
  }

  const RuntimeApiOptions options_;
  mutable Mutex mu_;
  Phase phase_ GUARDED_BY(mu_) = Phase::kStarted;
  Post responding_ GUARDED_BY(mu_) = Post::kResponse;
  std::optional<Current> current_ GUARDED_BY(mu_);  // set in Ready and Responding
  http::Responder next_ GUARDED_BY(mu_);            // a pending `next`, or null
  bool asked_next_ GUARDED_BY(mu_) = false;         // the runtime asked for `next`
  bool init_done_ GUARDED_BY(mu_) = false;          // on_first_next was called
  std::vector<Extension> extensions_ GUARDED_BY(mu_);
  bool shutting_down_ GUARDED_BY(mu_) = false;
  std::function<void()> shutdown_done_ GUARDED_BY(mu_);  // set while the shutdown is awaited
};

StatusOr<std::unique_ptr<RuntimeApi>> RuntimeApi::Adopt(int listen_fd, RuntimeApiOptions options) {
  http::ServerOptions server_options;
  server_options.threads = 1;
  server_options.io_threads = options.io_threads;
  server_options.shutdown_grace = options.close_grace;
  // Each invocation is logged once by the invoke API; the runtime's two requests per
  // invocation only at debug level.
  server_options.access_log_debug = true;
  // A runtime's keep-alive connection stays quiet while its function runs, which Lambda
  // allows for up to 15 minutes.
  server_options.idle_timeout = std::chrono::hours(1);
  ASSIGN_OR_RETURN(auto server, http::HttpServer::Adopt(listen_fd, server_options));

  auto state = std::make_shared<State>(std::move(options));
  auto router = std::make_unique<http::Router>();
  router->Add("GET", std::string(kNextPath), [state](http::Request&, http::Responder respond) {
    state->OnNext(std::move(respond));
  });
  const std::pair<std::string_view, State::Post> posts[] = {
      {kResponsePath, State::Post::kResponse},
      {kErrorPath, State::Post::kError},
      {kInitErrorPath, State::Post::kInitError}};
  for (const auto& [path, kind] : posts) {
    router->AddStreaming(
        "POST", std::string(path),
        [state, kind = kind](http::Request& req, http::Responder respond) {
          return state->OnPostHeader(kind, req, std::move(respond));
        },
        http::RouteOptions{.max_body_bytes = kRouteBodyCap});
  }
  router->Add(
      "POST", std::string(kExtensionRegisterPath),
      [state](http::Request& req, http::Responder respond) {
        state->OnRegister(req, std::move(respond));
      },
      http::RouteOptions{.max_body_bytes = kExtensionBodyCap});
  router->Add("GET", std::string(kExtensionNextPath),
              [state](http::Request& req, http::Responder respond) {
                state->OnExtensionNext(req, std::move(respond));
              });
  const std::pair<std::string_view, State::ExtensionPost> extension_posts[] = {
      {kExtensionInitErrorPath, State::ExtensionPost::kInitError},
      {kExtensionExitErrorPath, State::ExtensionPost::kExitError}};
  for (const auto& [path, kind] : extension_posts) {
    router->Add(
        "POST", std::string(path),
        [state, kind = kind](http::Request& req, http::Responder respond) {
          state->OnExtensionError(kind, req, std::move(respond));
        },
        http::RouteOptions{.max_body_bytes = kExtensionBodyCap});
  }
  server->Serve(std::move(router));
  return std::unique_ptr<RuntimeApi>(new RuntimeApi(std::move(state), std::move(server)));
}

RuntimeApi::RuntimeApi(std::shared_ptr<State> state, std::unique_ptr<http::HttpServer> server)
    : state_(std::move(state)), server_(std::move(server)), port_(server_->port()) {}

RuntimeApi::~RuntimeApi() { Close(); }

Status RuntimeApi::Dispatch(Invocation invocation, std::function<void(InvocationResult)> done) {
  return state_->Dispatch(std::move(invocation), std::move(done));
}

bool RuntimeApi::Ready() const { return state_->Ready(); }

Status RuntimeApi::Fail(std::string_view request_id, RuntimeFailure failure) {
  return state_->Fail(request_id, std::move(failure));
}

bool RuntimeApi::Shutdown(ShutdownReason reason, std::chrono::system_clock::time_point deadline,
                          std::function<void()> done) {
  return state_->Shutdown(reason, deadline, std::move(done));
}

std::vector<ExtensionStatus> RuntimeApi::Extensions() const { return state_->Extensions(); }

void RuntimeApi::RuntimeExited(RuntimeFailure failure) {
  state_->RuntimeExited(std::move(failure));
}

void RuntimeApi::Close() {
  // The pending `next` goes first: Shutdown would otherwise wait for it as for any request.
  state_->Close();
  server_->Shutdown();
}

uint16_t RuntimeApi::port() const { return port_; }

}  // namespace fpgahost::functions
