// The AWS Lambda Runtime API (version 2018-06-01) and Extensions API (version 2020-01-01) for
// one function slot, so a function's `bootstrap` (any custom runtime written for Lambda) and its
// external extensions run unchanged: they find the API at AWS_LAMBDA_RUNTIME_API (127.0.0.1:9001
// inside the slot's network namespace), whose listening socket the slot's creator hands to
// RuntimeApi::Adopt.
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
// The extensions' side (RuntimeApiOptions::extensions names the executables the sandbox started
// from /opt/extensions; each is a process of the same sandbox as the runtime):
//   POST /2020-01-01/extension/register    header Lambda-Extension-Name (the file's name), body
//        {"events":["INVOKE","SHUTDOWN"]} (either, both or none); 200 with the header
//        Lambda-Extension-Identifier (a fresh UUID) and {"functionName","functionVersion",
//        "handler"}. Only while the slot initialises.
//   GET  /2020-01-01/extension/event/next  header Lambda-Extension-Identifier; long poll; 200 with
//        {"eventType":"INVOKE","deadlineMs","requestId","invokedFunctionArn","tracing"} or
//        {"eventType":"SHUTDOWN","shutdownReason","deadlineMs"}, header
//        Lambda-Extension-Event-Identifier
//   POST /2020-01-01/extension/init/error  header Lambda-Extension-Function-Error-Type; 202; fails
//        the slot's initialisation as the runtime's init/error does
//   POST /2020-01-01/extension/exit/error  same header; 202; the extension is done (recorded,
//        no longer waited for)
// Refusals, all 403 as on Lambda: Extension.InvalidExtensionName (no name, or not one of
// `extensions`), InvalidRequestFormat (a body that is not {"events":[...]}),
// Extension.InvalidEventType, Extension.RegistrationClosed (after initialisation),
// Extension.InvalidExtensionState (registered twice; a call the extension's state does not
// allow), Extension.MissingExtensionIdentifier, Extension.InvalidExtensionIdentifier (not a
// UUID), Extension.UnknownExtensionIdentifier, Extension.MissingHeader.
//
// Lambda's lifecycle, kept here: the slot's initialisation ends (on_first_next) once the
// runtime has asked for `next` and every extension of `extensions` has registered (or posted
// exit/error) and asked for its first event; an invocation reaches the runtime only then. It is
// delivered to the runtime and to the extensions registered for INVOKE together, and it ends
// (`done`) once the runtime has answered AND each of those extensions has asked for its next
// event again, so their post-invocation work is part of it. An extension that never asks again
// holds the invocation until the owner's timeout fails it (Fail). Without extensions none of
// this costs anything: `done` comes with the runtime's answer, as before.
//
// The slot owner's side: Dispatch one invocation at a time (Lambda semantics), get its
// result through the `done` callback, choose warm slots by Ready(), retire gracefully with
// Shutdown.
//
// Thread-safety: all methods may be called from any thread, except that Close (and the
// destructor) must not be called from an I/O thread, that is from a `done` or
// `on_init_error` callback. Callbacks run on an I/O thread or on the thread calling
// Fail/RuntimeExited/Shutdown/Close, never under a lock held by RuntimeApi, and must not block.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

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

// Why a slot shuts down, Lambda's SHUTDOWN event's shutdownReason.
enum class ShutdownReason { kSpindown, kTimeout, kFailure };

// One extension as the Runtime API sees it.
struct ExtensionStatus {
  std::string name;
  // "Launched" (not registered yet), "Registered", "Ready" (waiting for an event), "Running"
  // (working on an event), "Exited" (posted exit/error), "InitError" (posted init/error).
  std::string state;
  bool invoke = false;     // registered for INVOKE
  bool shutdown = false;   // registered for SHUTDOWN
  std::string error_type;  // from exit/error or init/error
};

struct RuntimeApiOptions {
  // Shared I/O threads (recommended: one pool for all slots). Null: the slot's server runs
  // one thread of its own.
  http::IoThreads* io_threads = nullptr;
  // Called once when the runtime posts /runtime/init/error.
  std::function<void(const InitError&)> on_init_error;
  // Called once when the slot's initialisation is over: the runtime first asked for `next`
  // and every extension registered (or exited) and asked for its first event.
  std::function<void()> on_first_next;
  // The extensions the sandbox started (file names in /opt/extensions; Lambda allows 10): only
  // these may register, and initialisation waits for each of them.
  std::vector<std::string> extensions;
  // What extension/register answers with.
  std::string function_name;
  std::string function_version = "$LATEST";
  std::string handler;
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

  // The slot retires (Lambda's Shutdown phase): Dispatch fails from now on (SLOT_CLOSED), an
  // invocation in progress fails with kErrorTypeSandboxFailure, and every extension registered
  // for SHUTDOWN gets {"eventType":"SHUTDOWN","shutdownReason":reason,"deadlineMs":deadline},
  // now or when it next asks. `done` is called once each of them has asked for its next event
  // again or posted exit/error. Returns false, without calling `done`, when no extension is
  // registered for SHUTDOWN; `done` is not called after Close either. Only the first call counts.
  bool Shutdown(ShutdownReason reason, std::chrono::system_clock::time_point deadline,
                std::function<void()> done);

  // The extensions of `extensions`, in that order, with their registration and state.
  std::vector<ExtensionStatus> Extensions() const;

  // The runtime process is gone: fails the invocation in progress (if any) with `failure`,
  // forgets a pending `next`, and accepts a new runtime process (init/error allowed again).
  void RuntimeExited(RuntimeFailure failure);

  // Stops serving: pending `next`s (the runtime's and extensions') are cut off (their
  // connections closed), an invocation in progress fails with kErrorTypeSandboxFailure, later
  // Dispatch calls fail. Waits up to close_grace for uploads in flight. Idempotent.
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
