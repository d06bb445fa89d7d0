#include "common/status.h"

#include <cstring>

namespace fpgahost {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case StatusCode::kNotFound:
      return "NOT_FOUND";
    case StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    case StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case StatusCode::kConflict:
      return "CONFLICT";
    case StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::kPayloadTooLarge:
      return "PAYLOAD_TOO_LARGE";
    case StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case StatusCode::kDataLoss:
      return "DATA_LOSS";
    case StatusCode::kInternal:
      return "INTERNAL";
  }
  return "UNKNOWN";
}

Status::Status(StatusCode code, std::string message, std::string reason) {
  if (code == StatusCode::kOk) return;
  rep_ = std::make_unique<Rep>(Rep{code, std::move(message), std::move(reason)});
}

Status::Status(const Status& other)
    : rep_(other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr) {}

Status& Status::operator=(const Status& other) {
  if (this != &other) rep_ = other.rep_ ? std::make_unique<Rep>(*other.rep_) : nullptr;
  return *this;
}

std::string_view Status::reason() const {
  if (rep_ == nullptr) return "OK";
  if (!rep_->reason.empty()) return rep_->reason;
  return StatusCodeName(rep_->code);
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string message(context);
  message += ": ";
  message += rep_->message;
  return Status(rep_->code, std::move(message), rep_->reason);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(reason());
  out += ": ";
  out += rep_->message;
  return out;
}

#define FPGAHOST_STATUS_FACTORY(Name, Code)                     \
  Status Name(std::string message, std::string reason) {        \
    return Status(Code, std::move(message), std::move(reason)); \
  }
FPGAHOST_STATUS_FACTORY(InvalidArgumentError, StatusCode::kInvalidArgument)
FPGAHOST_STATUS_FACTORY(NotFoundError, StatusCode::kNotFound)
FPGAHOST_STATUS_FACTORY(AlreadyExistsError, StatusCode::kAlreadyExists)
FPGAHOST_STATUS_FACTORY(UnauthenticatedError, StatusCode::kUnauthenticated)
FPGAHOST_STATUS_FACTORY(PermissionDeniedError, StatusCode::kPermissionDenied)
FPGAHOST_STATUS_FACTORY(FailedPreconditionError, StatusCode::kFailedPrecondition)
FPGAHOST_STATUS_FACTORY(ConflictError, StatusCode::kConflict)
FPGAHOST_STATUS_FACTORY(ResourceExhaustedError, StatusCode::kResourceExhausted)
FPGAHOST_STATUS_FACTORY(PayloadTooLargeError, StatusCode::kPayloadTooLarge)
FPGAHOST_STATUS_FACTORY(DeadlineExceededError, StatusCode::kDeadlineExceeded)
FPGAHOST_STATUS_FACTORY(UnavailableError, StatusCode::kUnavailable)
FPGAHOST_STATUS_FACTORY(UnimplementedError, StatusCode::kUnimplemented)
FPGAHOST_STATUS_FACTORY(DataLossError, StatusCode::kDataLoss)
FPGAHOST_STATUS_FACTORY(InternalError, StatusCode::kInternal)
#undef FPGAHOST_STATUS_FACTORY

Status ErrnoError(std::string_view what, int err) {
  std::string message(what);
  message += ": ";
  message += std::strerror(err);  // NOLINT(concurrency-mt-unsafe): glibc's is thread-safe
  return InternalError(std::move(message), "IO_ERROR");
}

}  // namespace fpgahost
