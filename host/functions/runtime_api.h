// The AWS Lambda Runtime API (version 2018-06-01) for one function slot, so a function's
// `bootstrap` (any custom runtime written for Lambda) runs unchanged: it finds the API at
// AWS_LAMBDA_RUNTIME_API (127.0.0.1:9001 inside the slot's network namespace), whose listening
// socket the slot's creator hands to RuntimeApi::Adopt.
//
// The runtime's side, as Lambda defines it:
//   GET  /2018-06-01/runtime/invocation/next           long poll; 200 with the event payload
//        and the Lambda-Runtime-* headers once an invocation is dispatched to the slot
//   POST /2018-06-01/runtime/invocation/{id}/response  202 {"status":"OK"}
//   POST /2018-06-01/runtime/invocation/{id}/error     202; error JSON body, error type in
//                                                     the Lambda-Runtime-Function-Error-Type
//   POST /2018-06-01/runtime/init/error                202; the runtime could not start
// Refusals are Lambda's, in Lambda's {"errorMessage","errorType"} shape: 400 InvalidRequestID
// (an id that is not the current invocation's), 403 InvalidStateTransition (a call the
// runtime's state does not allow: a second answer to one invocation, init/error after the
// first `next`), 413 RequestEntityTooLarge (a body over kMaxPayloadBytes; the invocation then
// fails with Function.ResponseSizeTooLarge, as on Lambda). As on Lambda, error bodies are
// passed on as sent, JSON or not.
//
// The slot owner's side: Dispatch one invocation at a time (Lambda semantics), get its
// result through the `done` callback, choose warm slots by Ready().
//
// Thread-safety: all methods may be called from any thread, except that Close (and the
// destructor) must not be called from an I/O thread, that is from a `done` or
// `on_init_error` callback. Callbacks run on an I/O thread or on the thread calling
// Fail/RuntimeExited/Close, never under a lock held by RuntimeApi, and must not block.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.h"
#include "host/http/http_server.h"

namespace fpgahost::functions {

// Largest response or error body a runtime may post: Lambda's 6 MB (6 MiB + 100 bytes).
inline constexpr size_t kMaxPayloadBytes = 6 * 1024 * 1024 + 100;

// Lambda's error types for failures the runtime does not report itself.
inline constexpr std::string_view kErrorTypeResponseTooLarge = "Function.ResponseSizeTooLarge";
inline constexpr std::string_view kErrorTypeTimeout = "Sandbox.Timedout";
inline constexpr std::string_view kErrorTypeRuntimeExit = "Runtime.ExitError";
inline constexpr std::string_view kErrorTypeSandboxFailure = "Sandbox.Failure";

struct Invocation {
  std::string request_id;  // printable ASCII, no '/', '?', '#', '%' or space; at most 256
  std::string payload;     // the event, sent as the body of `next`
  std::chrono::system_clock::time_point deadline;  // sent as epoch milliseconds
  std::string function_arn;
  std::string trace_id;          // X-Ray trace header; not sent when empty
  std::string client_context;    // JSON; not sent when empty
  std::string cognito_identity;  // JSON; not sent when empty
};

// The runtime answered with a response: the payload, byte for byte.
struct InvocationResponse {
  std::string payload;
};

// The runtime reported a function error (Lambda's "Unhandled" error). `error_type` is the
// Lambda-Runtime-Function-Error-Type header, else the body's "errorType", else empty; `body` is
// what the runtime posted, normally {"errorMessage","errorType","stackTrace"}. An oversized
// response is reported here too, with type kErrorTypeResponseTooLarge and Lambda's message.
struct FunctionError {
  std::string error_type;
  std::string body;
};

// The runtime posted /runtime/init/error before taking the invocation.
struct InitError {
  std::string error_type;
  std::string body;
};

// The owner failed the invocation (Fail, RuntimeExited) or the slot was closed (type
// kErrorTypeSandboxFailure).
struct RuntimeFailure {
  std::string error_type;  // e.g. kErrorTypeTimeout, kErrorTypeRuntimeExit
  std::string message;
};

using InvocationResult = std::variant<InvocationResponse, FunctionError, InitError, RuntimeFailure>;

struct RuntimeApiOptions {
  // Shared I/O threads (recommended: one pool for all slots). Null: the slot's server runs
  // one thread of its own.
  http::IoThreads* io_threads = nullptr;
  // Called once when the runtime posts /runtime/init/error.
  std::function<void(const InitError&)> on_init_error;
  // Called once when the runtime first asks for `next`: its initialisation is over.
  std::function<void()> on_first_next;
  // How long Close waits for a request being uploaded before cutting it off.
  std::chrono::milliseconds close_grace{2'000};
};

class RuntimeApi {
 public:
  // Serves the Runtime API on `listen_fd`, a listening TCP socket; takes ownership of it
  // (closed on failure too). Errors: InvalidArgument when it is not a listening TCP socket.
  static StatusOr<std::unique_ptr<RuntimeApi>> Adopt(int listen_fd, RuntimeApiOptions options);
  ~RuntimeApi();  // Close()
  RuntimeApi(const RuntimeApi&) = delete;
  RuntimeApi& operator=(const RuntimeApi&) = delete;

  // Hands `invocation` to the runtime: now if it is waiting on `next`, else when it next
  // asks (a cold slot whose runtime is still starting). `done` is called exactly once with
  // the result, unless Dispatch fails. Errors: Conflict (reason SLOT_BUSY) while another
  // invocation is in progress, FailedPrecondition (RUNTIME_INIT_FAILED after init/error,
  // SLOT_CLOSED after Close), InvalidArgument for a request id or header value that cannot go
  // on the wire.
  Status Dispatch(Invocation invocation, std::function<void(InvocationResult)> done);

  // True when the runtime is waiting on `next` and no invocation is in progress: the slot is
  // warm. Advisory: a runtime that died while waiting is noticed only via RuntimeExited.
  bool Ready() const;

  // Fails invocation `request_id` (the runtime timed out, or exited while running it): its
  // `done` gets `failure`; a late answer from the runtime is refused. Errors: NotFound when
  // that invocation is not in progress (already answered, never dispatched).
  Status Fail(std::string_view request_id, RuntimeFailure failure);

  // The runtime process is gone: fails the invocation in progress (if any) with `failure`,
  // forgets a pending `next`, and accepts a new runtime process (init/error allowed again).
  void RuntimeExited(RuntimeFailure failure);

  // Stops serving: a pending `next` is cut off (its connection closed), an invocation in
  // progress fails with kErrorTypeSandboxFailure, later Dispatch calls fail. Waits up to
  // close_grace for uploads in flight. Idempotent.
  void Close();

  // The port of the adopted socket.
  uint16_t port() const;

 private:
  class State;  // shared with the I/O threads, which may outlive this object briefly
  RuntimeApi(std::shared_ptr<State> state, std::unique_ptr<http::HttpServer> server);
  std::shared_ptr<State> state_;
  std::unique_ptr<http::HttpServer> server_;
  uint16_t port_ = 0;
};

}  // namespace fpgahost::functions
