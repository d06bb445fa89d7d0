#include "host/functions/function_slot.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <utility>

namespace fpgahost::functions {
namespace {

namespace asio = boost::asio;

constexpr int kStdout = 1;
constexpr int kStderr = 2;

// A descriptor of our own for asio, which closes what it holds.
StatusOr<int> DupForAsio(int fd) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return ErrnoError("dup", errno);
  return copy;
}

// Lambda's words for a runtime that ended: "exit status 1", "signal 9".
std::string ExitDescription(int status) {
  if (status > 128) return fmt::format("signal {}", status - 128);
  return fmt::format("exit status {}", status);
}

}  // namespace

struct FunctionSlot::Io {
  Io(asio::io_context& context, int out_fd, int err_fd, int exit_fd)
      : out(context, out_fd), err(context, err_fd), exit(context, exit_fd), timer(context) {}
  asio::posix::stream_descriptor out;
  asio::posix::stream_descriptor err;
  asio::posix::stream_descriptor exit;
  asio::steady_timer timer;
};

FunctionSlot::FunctionSlot(std::string name, ThreadPool& blocking, Hooks hooks)
    : name_(std::move(name)), blocking_(blocking), hooks_(std::move(hooks)) {}

FunctionSlot::~FunctionSlot() {
  MutexLock lock(mu_);
  ReleaseProcessLocked();
}

StatusOr<std::shared_ptr<FunctionSlot>> FunctionSlot::Start(Sandbox& sandbox,
                                                            const SandboxSpec& spec,
                                                            http::IoThreads& io,
                                                            ThreadPool& blocking, Hooks hooks) {
  std::shared_ptr<FunctionSlot> slot(new FunctionSlot(spec.name, blocking, std::move(hooks)));
  slot->started_at_ = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<SandboxedProcess> process, sandbox.Start(spec));

  std::weak_ptr<FunctionSlot> weak = slot;
  RuntimeApiOptions options;
  options.io_threads = &io;
  options.extensions = process->isolation().extensions;
  // What an extension's registration is answered with: the function as its runtime sees it.
  for (const auto& [key, value] : spec.env) {
    if (key == "AWS_LAMBDA_FUNCTION_NAME") options.function_name = value;
    if (key == "AWS_LAMBDA_FUNCTION_VERSION") options.function_version = value;
    if (key == "_HANDLER") options.handler = value;
  }
  options.on_first_next = [weak] {
    std::shared_ptr<FunctionSlot> s = weak.lock();
    if (!s) return;
    std::function<void()> hook;
    {
      MutexLock lock(s->mu_);
      s->init_duration_ = std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::steady_clock::now() - s->started_at_);
      if (s->state_ == State::kStarting) s->state_ = State::kIdle;
      // Initialisation is over: the function's own CPU share applies from now on.
      if (s->process_) {
        Status settled = s->process_->SettleCpu();
        if (!settled.ok()) {
          spdlog::warn("function slot {}: {}", s->name_, settled.ToString());
        }
        s->isolation_ = s->process_->isolation();
      }
      // A slot shut down while it initialised is not ready for anything.
      if (s->state_ != State::kRetired) hook = s->hooks_.on_ready;
    }
    if (hook) hook();
  };
  options.on_init_error = [weak](const InitError& error) {
    std::shared_ptr<FunctionSlot> s = weak.lock();
    if (!s) return;
    spdlog::info("function slot {}: runtime init error {}", s->name_, error.error_type);
    bool retired_now = false;
    {
      MutexLock lock(s->mu_);
      s->lost_ = true;
      // With an invocation dispatched, its outcome (InitError) retires the slot.
      if (!s->done_ && s->state_ != State::kRetired) {
        s->ReleaseProcessLocked();
        retired_now = true;
      }
    }
    if (retired_now && s->hooks_.on_retired) s->hooks_.on_retired();
  };

  ASSIGN_OR_RETURN(int listen_fd, DupForAsio(process->runtime_api_listen_fd()));
  ASSIGN_OR_RETURN(std::unique_ptr<RuntimeApi> api, RuntimeApi::Adopt(listen_fd, options));
  ASSIGN_OR_RETURN(int out_fd, DupForAsio(process->stdout_fd()));
  StatusOr<int> err_fd = DupForAsio(process->stderr_fd());
  StatusOr<int> exit_fd = DupForAsio(process->exit_fd());
  if (!err_fd.ok() || !exit_fd.ok()) {
    ::close(out_fd);
    if (err_fd.ok()) ::close(*err_fd);
    return !err_fd.ok() ? err_fd.status() : exit_fd.status();
  }
  {
    MutexLock lock(slot->mu_);
    // The runtime may have asked for its first event before we got here.
    if (slot->state_ != State::kStarting) process->SettleCpu().IgnoreError();
    slot->isolation_ = process->isolation();
    slot->process_ = std::move(process);
    slot->api_ = std::move(api);
    slot->io_ = std::make_unique<Io>(io.context(), out_fd, *err_fd, *exit_fd);
  }
  slot->Watch();
  return slot;
}

void FunctionSlot::Watch() {
  std::weak_ptr<FunctionSlot> weak = weak_from_this();
  MutexLock lock(mu_);
  if (!io_) return;
  io_->out.async_wait(asio::posix::descriptor_base::wait_read,
                      [weak](const boost::system::error_code& ec) {
                        if (ec) return;
                        if (auto s = weak.lock()) s->OnOutput(kStdout);
                      });
  io_->err.async_wait(asio::posix::descriptor_base::wait_read,
                      [weak](const boost::system::error_code& ec) {
                        if (ec) return;
                        if (auto s = weak.lock()) s->OnOutput(kStderr);
                      });
  io_->exit.async_wait(asio::posix::descriptor_base::wait_read,
                       [weak](const boost::system::error_code& ec) {
                         if (ec) return;
                         if (auto s = weak.lock()) s->OnExit();
                       });
}

void FunctionSlot::OnOutput(int which) {
  std::weak_ptr<FunctionSlot> weak = weak_from_this();
  MutexLock lock(mu_);
  if (!io_) return;
  DrainOutput();
  bool open = which == kStdout ? stdout_open_ : stderr_open_;
  if (!open) return;
  asio::posix::stream_descriptor& d = which == kStdout ? io_->out : io_->err;
  d.async_wait(asio::posix::descriptor_base::wait_read,
               [weak, which](const boost::system::error_code& ec) {
                 if (ec) return;
                 if (auto s = weak.lock()) s->OnOutput(which);
               });
}

void FunctionSlot::DrainOutput() {
  if (!process_) return;
  char buffer[16 * 1024];
  auto drain = [&](int fd, bool& open) NO_THREAD_SAFETY_ANALYSIS {
    while (open) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        AppendLog(buffer, static_cast<size_t>(n));
      } else if (n == 0) {
        open = false;
      } else if (errno != EINTR) {
        // EAGAIN: nothing more for now. Anything else: the pipe is unusable.
        if (errno != EAGAIN) open = false;
        return;
      }
    }
  };
  drain(process_->stdout_fd(), stdout_open_);
  drain(process_->stderr_fd(), stderr_open_);
}

void FunctionSlot::AppendLog(const char* data, size_t n) {
  log_.append(data, n);
  // Keep the tail; trim in large steps so appending stays amortised O(1).
  if (log_.size() > 2 * kMaxInvocationLogBytes) {
    log_.erase(0, log_.size() - kMaxInvocationLogBytes);
    log_truncated_ = true;
  }
}

void FunctionSlot::OnExit() {
  std::shared_ptr<RuntimeApi> api;
  std::string request_id;
  int status = -1;
  {
    MutexLock lock(mu_);
    if (!process_) return;
    DrainOutput();
    StatusOr<int> waited = process_->Wait(std::chrono::milliseconds(0));
    status = waited.ok() ? *waited : -1;
    exit_status_ = status;
    lost_ = true;
    api = api_;
    request_id = current_id_;
  }
  spdlog::info("function slot {}: runtime ended ({})", name_, ExitDescription(status));
  // Fails the invocation in progress (OnResult retires the slot then).
  if (api) {
    api->RuntimeExited(RuntimeFailure{
        std::string(kErrorTypeRuntimeExit),
        request_id.empty() ? fmt::format("Runtime exited with error: {}", ExitDescription(status))
                           : fmt::format("RequestId: {} Error: Runtime exited with error: {}",
                                         request_id, ExitDescription(status))});
  }
  bool retired_now = false;
  {
    MutexLock lock(mu_);
    if (state_ != State::kRetired) {
      ReleaseProcessLocked();
      retired_now = true;
    } else if (process_) {
      ReleaseProcessLocked();  // ended during a Shutdown's grace: nothing left to wait for
    }
  }
  if (retired_now && hooks_.on_retired) hooks_.on_retired();
}

Status FunctionSlot::Invoke(Invocation invocation, std::chrono::milliseconds timeout,
                            std::function<void(SlotOutcome)> done) {
  std::shared_ptr<RuntimeApi> api;
  std::string request_id = invocation.request_id;
  {
    MutexLock lock(mu_);
    if (state_ == State::kRetired || !api_) {
      return FailedPreconditionError(fmt::format("function slot {} is retired", name_),
                                     "SLOT_RETIRED");
    }
    if (done_) {
      return ConflictError(fmt::format("function slot {} is running {}", name_, current_id_),
                           "SLOT_BUSY");
    }
    current_id_ = request_id;
    done_ = std::move(done);
    dispatched_at_ = std::chrono::steady_clock::now();
    if (state_ == State::kIdle) state_ = State::kBusy;
    std::weak_ptr<FunctionSlot> weak = weak_from_this();
    io_->timer.expires_after(timeout);
    io_->timer.async_wait([weak, request_id](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto s = weak.lock()) s->OnTimeout(request_id);
    });
    api = api_;
  }
  std::weak_ptr<FunctionSlot> weak = weak_from_this();
  Status dispatched = api->Dispatch(std::move(invocation), [weak](InvocationResult result) {
    if (auto s = weak.lock()) s->OnResult(std::move(result));
  });
  if (!dispatched.ok()) {
    MutexLock lock(mu_);
    if (current_id_ == request_id) {
      current_id_.clear();
      done_ = nullptr;
      if (io_) io_->timer.cancel();
      if (state_ == State::kBusy) state_ = State::kIdle;
    }
  }
  return dispatched;
}

void FunctionSlot::OnTimeout(std::string request_id) {
  std::shared_ptr<RuntimeApi> api;
  std::chrono::milliseconds elapsed;
  {
    MutexLock lock(mu_);
    if (current_id_ != request_id || !api_) return;
    lost_ = true;
    api = api_;
    elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - dispatched_at_);
  }
  // As Lambda: the slot is killed (OnResult retires it) and the caller told.
  api->Fail(request_id, RuntimeFailure{std::string(kErrorTypeTimeout),
                                       fmt::format("RequestId: {} Error: Task timed out after "
                                                   "{:.2f} seconds",
                                                   request_id, elapsed.count() / 1000.0)})
      .IgnoreError();
}

void FunctionSlot::OnResult(InvocationResult result) {
  std::function<void(SlotOutcome)> done;
  SlotOutcome outcome;
  {
    MutexLock lock(mu_);
    if (!done_) return;
    done = std::exchange(done_, nullptr);
    current_id_.clear();
    if (io_) io_->timer.cancel();
    DrainOutput();
    outcome.log = std::move(log_);
    log_.clear();
    outcome.log_truncated = std::exchange(log_truncated_, false);
    if (outcome.log.size() > kMaxInvocationLogBytes) {
      outcome.log.erase(0, outcome.log.size() - kMaxInvocationLogBytes);
      outcome.log_truncated = true;
    }
    auto now = std::chrono::steady_clock::now();
    // A cold slot's initialisation is not part of the invocation's duration (Lambda reports
    // it separately as Init Duration).
    auto begin = std::max(dispatched_at_, started_at_ + init_duration_);
    outcome.duration = std::chrono::duration_cast<std::chrono::microseconds>(now - begin);
    bool failed_slot =
        std::holds_alternative<InitError>(result) || std::holds_alternative<RuntimeFailure>(result);
    outcome.slot_reusable = !lost_ && !failed_slot;
    if (outcome.slot_reusable) {
      if (state_ == State::kBusy) state_ = State::kIdle;
    } else {
      ReleaseProcessLocked();
    }
  }
  outcome.result = std::move(result);
  done(std::move(outcome));
}

void FunctionSlot::Kill() {
  MutexLock lock(mu_);
  lost_ = true;
  ReleaseProcessLocked();
}

void FunctionSlot::Shutdown(std::chrono::milliseconds grace) {
  std::shared_ptr<RuntimeApi> api;
  std::weak_ptr<FunctionSlot> weak = weak_from_this();
  {
    MutexLock lock(mu_);
    if (state_ == State::kRetired) return;
    lost_ = true;
    if (done_ || !api_ || !io_ || grace <= std::chrono::milliseconds(0)) {
      ReleaseProcessLocked();
      return;
    }
    state_ = State::kRetired;
    api = api_;
    // The timer is free: no invocation is in progress. It holds the slot until the deadline
    // or until Kill cancels it, so the grace holds though the owner has let go of the slot.
    io_->timer.expires_after(grace);
    io_->timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->Kill();
    });
  }
  // Outside mu_: the Runtime API calls back (into Kill) without its own lock held.
  bool waiting =
      api->Shutdown(ShutdownReason::kSpindown, std::chrono::system_clock::now() + grace, [weak] {
        if (auto s = weak.lock()) s->Kill();
      });
  if (!waiting) {
    Kill();
  } else {
    spdlog::debug("function slot {}: shutting down, extensions have {} ms", name_, grace.count());
  }
}

void FunctionSlot::ReleaseProcessLocked() {
  state_ = State::kRetired;
  io_.reset();  // cancels the waits; their handlers see operation_aborted
  if (!process_ && !api_) return;
  // The Runtime API never calls back under its own lock, so asking it under mu_ is safe.
  if (api_) final_extensions_ = api_->Extensions();
  // Closing the Runtime API fails an invocation in progress (OnResult reports it); killing
  // the sandbox waits for its processes. Neither may run on an I/O thread or under mu_.
  blocking_.Post([api = std::move(api_), process = std::move(process_),
                  stopped = hooks_.on_stopped]() mutable {
    if (api) api->Close();
    if (process) process->Kill().IgnoreError();
    api.reset();
    process.reset();
    if (stopped) stopped();
  });
}

Isolation FunctionSlot::isolation() const {
  MutexLock lock(mu_);
  return isolation_;
}

FunctionSlot::State FunctionSlot::state() const {
  MutexLock lock(mu_);
  return state_;
}

std::chrono::microseconds FunctionSlot::init_duration() const {
  MutexLock lock(mu_);
  return init_duration_;
}

std::optional<int> FunctionSlot::exit_status() const {
  MutexLock lock(mu_);
  return exit_status_;
}

std::vector<ExtensionStatus> FunctionSlot::extensions() const {
  MutexLock lock(mu_);
  return api_ ? api_->Extensions() : final_extensions_;
}

}  // namespace fpgahost::functions
