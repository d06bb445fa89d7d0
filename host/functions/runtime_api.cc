#include "host/functions/runtime_api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <optional>
#include <utility>
#include <vector>

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

}  // namespace

// The slot's state machine, Lambda's (the runtime interface emulator's "runtime states"):
//   Started --next--> (waits) --invocation--> Ready --response/error--> ResponseSent --next-->
//   (waits) --invocation--> Ready ...;  Started --init/error--> InitError (final).
// Responding is Ready while a response body is being uploaded.
class RuntimeApi::State {
 public:
  enum class Post { kResponse, kError, kInitError };

  explicit State(RuntimeApiOptions options) : options_(std::move(options)) {}

  void OnNext(http::Responder respond) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (phase_ == Phase::kStarted && !asked_next_) {
      asked_next_ = true;
      if (options_.on_first_next) later.Add(options_.on_first_next);
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
        if (current_) return Deliver(std::move(respond), later);
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
        Finish(ResponseTooLarge(declared), later);
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
      phase_ = Phase::kInitError;
      InitError error{std::move(error_type), std::move(body)};
      spdlog::warn("runtime API: the runtime failed to initialise: {}", error.error_type);
      if (current_) later.Done(TakeDone(), error);
      if (next_) later.Drop(TakeNext());
      if (options_.on_init_error) {
        later.Add([cb = options_.on_init_error, error] { cb(error); });
      }
      return later.Respond(std::move(respond), Accepted());
    }
    // The owner may have failed the invocation (Fail, RuntimeExited, Close) during the upload.
    if (phase_ != Phase::kResponding || current_->invocation.request_id != id) {
      return later.Respond(std::move(respond), InvalidRequestId());
    }
    if (total > kMaxPayloadBytes) {
      Finish(ResponseTooLarge(total), later);
      return later.Respond(std::move(respond), RequestTooLarge());
    }
    if (kind == Post::kResponse) {
      Finish(InvocationResponse{std::move(body)}, later);
    } else {
      Finish(ErrorFromBody(std::move(error_type), content_type, std::move(body)), later);
    }
    later.Respond(std::move(respond), Accepted());
  }

  void OnPostAbort(Post kind, const std::string& id, const Status& why) EXCLUDES(mu_) {
    if (kind == Post::kInitError) return;
    Later later;
    MutexLock lock(mu_);
    if (phase_ != Phase::kResponding || current_->invocation.request_id != id) return;
    if (why.code() == StatusCode::kPayloadTooLarge) {
      Finish(ResponseTooLarge(std::nullopt), later);
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
    if (phase_ == Phase::kClosed) {
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
    current_.emplace(Current{std::move(invocation), std::move(done)});
    if (next_) Deliver(TakeNext(), later);
    return Status::Ok();
  }

  bool Ready() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return next_ != nullptr && !current_ &&
           (phase_ == Phase::kStarted || phase_ == Phase::kResponseSent);
  }

  Status Fail(std::string_view id, RuntimeFailure failure) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (!current_ || current_->invocation.request_id != id) {
      return NotFoundError(fmt::format("invocation {} is not in progress", id),
                           "NO_SUCH_INVOCATION");
    }
    if (phase_ == Phase::kReady || phase_ == Phase::kResponding) {
      Finish(std::move(failure), later);  // a late answer meets ResponseSent: 403
    } else {
      later.Done(TakeDone(), std::move(failure));
    }
    return Status::Ok();
  }

  void RuntimeExited(RuntimeFailure failure) EXCLUDES(mu_) {
    Later later;
    MutexLock lock(mu_);
    if (phase_ == Phase::kClosed) return;
    if (current_) later.Done(TakeDone(), std::move(failure));
    if (next_) later.Drop(TakeNext());
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
  }

 private:
  enum class Phase { kStarted, kReady, kResponding, kResponseSent, kInitError, kClosed };

  struct Current {
    Invocation invocation;
    std::function<void(InvocationResult)> done;
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
  }

  // Ends the delivered invocation with `result`.
  void Finish(InvocationResult result, Later& later) REQUIRES(mu_) {
    phase_ = Phase::kResponseSent;
    later.Done(TakeDone(), std::move(result));
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
  bool asked_next_ GUARDED_BY(mu_) = false;         // on_first_next was called
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
