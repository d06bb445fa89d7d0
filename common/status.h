// Status and StatusOr: how every fpgahost module reports failure.
//
// No exceptions cross a module boundary. A function that can fail returns a Status (or a
// StatusOr<T> carrying a value on success). A Status has
//   - a code, the broad kind of failure, which the API maps to an HTTP status in one table
//     (host/api/errors.cc);
//   - a reason, the stable machine-readable error code a client can switch on
//     (e.g. "XCLBIN_TRUNCATED"); when none is given it is the code's name
//     ("INVALID_ARGUMENT");
//   - a message for people, which names the offending field or file.
//
// Status is a value type; an OK status allocates nothing. Thread-compatible.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace fpgahost {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong
  kNotFound,            // no such thing (or not visible to the caller)
  kAlreadyExists,       // a thing with that name exists
  kUnauthenticated,     // no or bad credentials
  kPermissionDenied,    // credentials fine, not allowed
  kFailedPrecondition,  // the system is not in a state that allows this
  kConflict,            // busy: another operation holds the resource
  kResourceExhausted,   // capacity or rate limits
  kPayloadTooLarge,     // input over a configured size limit
  kDeadlineExceeded,    // took too long
  kUnavailable,         // a dependency is down; retrying may help
  kUnimplemented,       // not supported here
  kDataLoss,            // stored data is corrupt
  kInternal,            // a bug or an unexpected environment failure
};

// "INVALID_ARGUMENT", "NOT_FOUND", ...
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string reason = {});

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;
  ~Status() = default;

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  // The stable error code; the code's name when the creator gave none.
  std::string_view reason() const;
  std::string_view message() const { return rep_ ? std::string_view(rep_->message) : ""; }

  // A copy whose message is "<context>: <message>"; code and reason are kept.
  Status WithContext(std::string_view context) const;

  // "REASON: message", or "OK".
  std::string ToString() const;

  // Explicitly drops a status the caller has decided not to act on.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.reason() == b.reason() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
    std::string reason;
  };
  std::unique_ptr<Rep> rep_;
};

Status InvalidArgumentError(std::string message, std::string reason = {});
Status NotFoundError(std::string message, std::string reason = {});
Status AlreadyExistsError(std::string message, std::string reason = {});
Status UnauthenticatedError(std::string message, std::string reason = {});
Status PermissionDeniedError(std::string message, std::string reason = {});
Status FailedPreconditionError(std::string message, std::string reason = {});
Status ConflictError(std::string message, std::string reason = {});
Status ResourceExhaustedError(std::string message, std::string reason = {});
Status PayloadTooLargeError(std::string message, std::string reason = {});
Status DeadlineExceededError(std::string message, std::string reason = {});
Status UnavailableError(std::string message, std::string reason = {});
Status UnimplementedError(std::string message, std::string reason = {});
Status DataLossError(std::string message, std::string reason = {});
Status InternalError(std::string message, std::string reason = {});

// An InternalError (reason IO_ERROR) for a failed system call: "<what>: <strerror(err)>".
Status ErrnoError(std::string_view what, int err);

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  // Implicit from a failed Status and from a value, so `return value;` and
  // `return SomeError(...);` both read naturally.
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "StatusOr given OK");
  }
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // Precondition: ok(). Checked: a broken invariant aborts.
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? std::get<T>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<Status, T> v_;
};

}  // namespace fpgahost

#define FPGAHOST_CONCAT_INNER(a, b) a##b
#define FPGAHOST_CONCAT(a, b) FPGAHOST_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr) \
  RETURN_IF_ERROR_IMPL(FPGAHOST_CONCAT(fpgahost_status_, __COUNTER__), expr)
#define RETURN_IF_ERROR_IMPL(tmp, expr) \
  do {                                  \
    ::fpgahost::Status tmp = (expr);    \
    if (!tmp.ok()) return tmp;          \
  } while (false)

// `ASSIGN_OR_RETURN(auto x, Foo());` declares x from a StatusOr or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(FPGAHOST_CONCAT(fpgahost_statusor_, __COUNTER__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
