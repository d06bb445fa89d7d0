// One function-execution slot: a running sandbox (sandbox.h) whose runtime speaks the Lambda
// Runtime API (runtime_api.h) to us, with its output captured per invocation, its invocations
// timed out, and its end noticed. The slot pool (invoker.h) decides which slot runs what.
//
// States (DESIGN.md): starting -> idle <-> busy -> retired. A slot is `starting` until its
// initialisation is over (its runtime first asks for an event and each of its extensions has
// registered and asked for its first), `busy` while an invocation is in it, `retired` once it
// was killed, shut down or its runtime ended; a retired slot never runs anything again.
//
// Extensions (Lambda's external extensions, runtime_api.h): the executables in the bundle's
// `extensions/` directory, which the sandbox shows at /opt/extensions and starts, sorted by name,
// before the runtime. They run inside the slot's own sandbox, as processes of the same
// namespaces, cgroup and user as the runtime: an extension sees its own slot and nothing of
// any other slot, tenant or the host. They reach the Extensions API at the runtime's address
// (AWS_LAMBDA_RUNTIME_API), their stdout and stderr go to the slot's log like the runtime's,
// and they die with the sandbox. An invocation ends once the runtime has answered and the
// extensions registered for INVOKE have asked for their next event, so their output about it
// lands in its log and their work in its duration.
//
// An invocation ends in exactly one SlotOutcome: the runtime's answer, or a failure the slot
// itself reports: Sandbox.Timedout (the function's timeout passed: the slot is killed, as on
// Lambda) or Runtime.ExitError (the runtime exited or crashed during it). The runtime's
// stdout and stderr between the previous invocation's end and this one's end belong to this
// invocation's log (so output of a cold slot's initialisation shows in its first invocation).
//
// Threads: events come on the shared I/O threads; killing the sandbox may block, so Kill and
// Shutdown kill it on the `blocking` pool given at Start, which must outlive the slot. `done` and
// the hooks run on an I/O thread or on that pool, never under the slot's lock, and must not
// block.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "common/thread_pool.h"
#include "host/functions/runtime_api.h"
#include "host/functions/sandbox.h"

namespace fpgahost::functions {

// The largest log kept per invocation; past it the oldest output is dropped.
inline constexpr size_t kMaxInvocationLogBytes = 64 * 1024;

struct SlotOutcome {
  InvocationResult result;
  // The runtime's output during the invocation, stdout then stderr; the tail when it was
  // longer than kMaxInvocationLogBytes (then `log_truncated`).
  std::string log;
  bool log_truncated = false;
  // From handing the event over to the answer.
  std::chrono::microseconds duration{0};
  // False when the slot was lost with this invocation (timeout, exit): it must not be reused.
  bool slot_reusable = true;
};

class FunctionSlot : public std::enable_shared_from_this<FunctionSlot> {
 public:
  enum class State { kStarting, kIdle, kBusy, kRetired };

  struct Hooks {
    // Initialisation is over: the runtime (and each extension) asked for its first event.
    // Not called once the slot retired.
    std::function<void()> on_ready;
    // The slot retired by itself: its runtime ended outside an invocation, or posted
    // init/error (or an extension did). Not called after Kill or Shutdown.
    std::function<void()> on_retired;
    // The sandbox has been killed and reaped, however the slot retired (on the blocking pool).
    std::function<void()> on_stopped;
  };

  // How long Lambda gives extensions to finish on SHUTDOWN.
  static constexpr std::chrono::milliseconds kShutdownGrace{2'000};

  // Starts `spec` in `sandbox` (blocking: call it off the I/O threads, from a thread that
  // outlives the slot, see BwrapSandbox's --die-with-parent) and serves its Runtime API on
  // `io`. Errors: those of Sandbox::Start and RuntimeApi::Adopt.
  static StatusOr<std::shared_ptr<FunctionSlot>> Start(Sandbox& sandbox, const SandboxSpec& spec,
                                                       http::IoThreads& io, ThreadPool& blocking,
                                                       Hooks hooks);
  ~FunctionSlot();
  FunctionSlot(const FunctionSlot&) = delete;
  FunctionSlot& operator=(const FunctionSlot&) = delete;

  // Runs one invocation: `done` gets its outcome exactly once, unless Invoke fails.
  // `timeout` counts from now. Errors: Conflict (SLOT_BUSY) while another runs,
  // FailedPrecondition (SLOT_RETIRED) once retired, and RuntimeApi::Dispatch's.
  Status Invoke(Invocation invocation, std::chrono::milliseconds timeout,
                std::function<void(SlotOutcome)> done) EXCLUDES(mu_);

  // Retires the slot: an invocation in progress fails with Sandbox.Failure, the sandbox is
  // killed on the blocking pool. Idempotent; any thread; cuts a Shutdown's grace short.
  void Kill() EXCLUDES(mu_);

  // Retires the slot gracefully, Lambda's Shutdown phase: at once the slot is `retired` (Invoke
  // refused, on_retired not called); when extensions registered for SHUTDOWN, each gets
  // {"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":now + grace} and the sandbox
  // is killed once all of them have asked for their next event again (or posted exit/error),
  // or at the deadline, whichever comes first. Without such extensions, while an invocation is
  // in progress, or with grace <= 0, it is exactly Kill. Idempotent; any thread; never blocks.
  // The slot keeps itself alive through the grace, so whoever shuts slots down must Kill those
  // still in it before the blocking pool goes (the invoker does, when it stops).
  void Shutdown(std::chrono::milliseconds grace = kShutdownGrace) EXCLUDES(mu_);

  State state() const EXCLUDES(mu_);
  const std::string& name() const { return name_; }
  // What is in force (the CPU limit changes once, when initialisation is over).
  Isolation isolation() const EXCLUDES(mu_);
  // Sandbox start to the runtime's first `next`; zero until then.
  std::chrono::microseconds init_duration() const EXCLUDES(mu_);
  // The runtime's exit status once it has ended.
  std::optional<int> exit_status() const EXCLUDES(mu_);
  // The slot's extensions and their registrations; as they were at the end once retired.
  std::vector<ExtensionStatus> extensions() const EXCLUDES(mu_);

 private:
  struct Io;  // the asio objects watching the sandbox's descriptors
  FunctionSlot(std::string name, ThreadPool& blocking, Hooks hooks);

  void Watch();
  void OnOutput(int which) EXCLUDES(mu_);
  void OnExit() EXCLUDES(mu_);
  void OnTimeout(std::string request_id) EXCLUDES(mu_);
  void OnResult(InvocationResult result) EXCLUDES(mu_);
  // Reads what the runtime wrote so far into the current log. Caller holds mu_.
  void DrainOutput() REQUIRES(mu_);
  void AppendLog(const char* data, size_t n) REQUIRES(mu_);
  // Moves the sandbox and the Runtime API to the blocking pool, which kills and frees them.
  void ReleaseProcessLocked() REQUIRES(mu_);

  const std::string name_;
  ThreadPool& blocking_;
  const Hooks hooks_;
  std::chrono::steady_clock::time_point started_at_;

  mutable Mutex mu_;
  State state_ GUARDED_BY(mu_) = State::kStarting;
  Isolation isolation_ GUARDED_BY(mu_);
  std::unique_ptr<SandboxedProcess> process_ GUARDED_BY(mu_);
  std::shared_ptr<RuntimeApi> api_ GUARDED_BY(mu_);
  std::unique_ptr<Io> io_ GUARDED_BY(mu_);
  std::chrono::microseconds init_duration_ GUARDED_BY(mu_){0};
  std::optional<int> exit_status_ GUARDED_BY(mu_);
  // The invocation in progress.
  std::string current_id_ GUARDED_BY(mu_);
  std::function<void(SlotOutcome)> done_ GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point dispatched_at_ GUARDED_BY(mu_);
  bool lost_ GUARDED_BY(mu_) = false;
  // Output since the last invocation ended.
  std::string log_ GUARDED_BY(mu_);
  bool log_truncated_ GUARDED_BY(mu_) = false;
  bool stdout_open_ GUARDED_BY(mu_) = true;
  bool stderr_open_ GUARDED_BY(mu_) = true;
  // extensions() once the Runtime API is gone.
  std::vector<ExtensionStatus> final_extensions_ GUARDED_BY(mu_);
};

}  // namespace fpgahost::functions
