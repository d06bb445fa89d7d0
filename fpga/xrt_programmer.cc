#include "fpga/xrt_programmer.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <span>
#include <system_error>
#include <thread>
#include <utility>

#include "common/files.h"
#include "images/xclbin.h"

namespace fpgahost::fpga {
namespace {

constexpr char kOpenByBdf[] = "xrtDeviceOpenByBDF";
constexpr char kClose[] = "xrtDeviceClose";
constexpr char kLoadXclbin[] = "xrtDeviceLoadXclbin";
constexpr char kGetXclbinUuid[] = "xrtDeviceGetXclbinUUID";

std::string ErrnoName(int err) {
  if (err == 0) return "unknown error (XRT set no errno; its own message went to stderr)";
  return fmt::format("{} (errno {})", std::generic_category().message(err), err);
}

// The errno of a failed call that returns int: XRT 2.x returns -1 and sets errno, older
// releases returned the (negative) errno itself.
int ErrorOf(int rc, int saved_errno) {
  if (rc == -1) return saved_errno;
  return rc < 0 ? -rc : rc;
}

Status LoadError(int err, const CardAddress& card, const std::string& what) {
  if (err == ENODEV || err == ENOENT) {
    return NotFoundError(fmt::format("loading {} on {}: the user PF went away ({})", what,
                                     card.user_bdf, ErrnoName(err)),
                         kReasonCardNotFound);
  }
  if (err == EINVAL || err == EOPNOTSUPP) {
    return FailedPreconditionError(
        fmt::format("loading {} on {}: the driver refused it for this card's shell ({}; xocl "
                    "logs \"interface uuids do not match\")",
                    what, card.user_bdf, ErrnoName(err)),
        kReasonXclbinIncompatible);
  }
  return InternalError(
      fmt::format("loading {} on {} through XRT failed: {}", what, card.user_bdf, ErrnoName(err)),
      kReasonLoadFailed);
}

// Everything one load does inside XRT; runs on its own thread and owns what it uses.
Status LoadOnCard(const XrtProgrammer::Api& api, const CardAddress& card,
                  std::span<const uint8_t> bytes, const images::Uuid& expected,
                  const std::string& what) {
  errno = 0;
  void* device = api.open_by_bdf(card.user_bdf.c_str());
  int err = errno;
  if (device == nullptr) {
    // XRT says "no such device" for an absent BDF and for one not bound to xocl alike, and
    // does not always set errno for it.
    if (err == 0 || err == ENODEV || err == ENOENT || err == EINVAL) {
      return NotFoundError(fmt::format("XRT cannot open the user PF {}: no such device bound to "
                                       "xocl ({})",
                                       card.user_bdf, ErrnoName(err)),
                           kReasonCardNotFound);
    }
    return InternalError(
        fmt::format("XRT cannot open the user PF {}: {}", card.user_bdf, ErrnoName(err)),
        kReasonLoadFailed);
  }

  Status result;
  errno = 0;
  int rc = api.load_xclbin(device, bytes.data());
  if (rc != 0) {
    result = LoadError(ErrorOf(rc, errno), card, what);
  } else {
    std::array<unsigned char, 16> loaded{};
    errno = 0;
    rc = api.get_xclbin_uuid(device, loaded.data());
    if (rc != 0) {
      result = InternalError(fmt::format("loaded {} on {}, but reading the UUID back failed: {}",
                                         what, card.user_bdf, ErrnoName(ErrorOf(rc, errno))),
                             kReasonLoadFailed);
    } else if (std::memcmp(loaded.data(), expected.data(), expected.size()) != 0) {
      images::Uuid got;
      std::memcpy(got.data(), loaded.data(), got.size());
      result = InternalError(
          fmt::format("loaded {} on {}, but the card reports xclbin {} "
                      "instead of {}",
                      what, card.user_bdf, images::FormatUuid(got), images::FormatUuid(expected)),
          kReasonLoadFailed);
    }
  }
  api.close(device);
  return result;
}

template <typename Fn>
Fn SymbolAs(void* symbol) {
  // POSIX guarantees dlsym's object pointer converts to a function pointer.
  Fn fn;
  static_assert(sizeof(fn) == sizeof(symbol));
  std::memcpy(&fn, &symbol, sizeof(fn));
  return fn;
}

}  // namespace

XrtProgrammer::XrtProgrammer(std::filesystem::path library_path)
    : library_path_(std::move(library_path)) {}

StatusOr<XrtProgrammer::Api> XrtProgrammer::Resolve() {
  MutexLock lock(mu_);
  if (api_) return *api_;
  void* library = ::dlopen(library_path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = ::dlerror();
    return UnavailableError(fmt::format("cannot open the XRT library {}: {}",
                                        library_path_.string(), why ? why : "unknown error"),
                            kReasonXrtUnavailable);
  }
  void* symbols[4] = {};
  const char* names[4] = {kOpenByBdf, kClose, kLoadXclbin, kGetXclbinUuid};
  for (int i = 0; i < 4; ++i) {
    symbols[i] = ::dlsym(library, names[i]);
    if (symbols[i] == nullptr) {
      ::dlclose(library);
      return UnavailableError(
          fmt::format("the XRT library {} has no {}", library_path_.string(), names[i]),
          kReasonXrtUnavailable);
    }
  }
  // Deliberately never dlclose'd: a load abandoned after its timeout may still run inside.
  api_ = Api{SymbolAs<decltype(Api::open_by_bdf)>(symbols[0]),
             SymbolAs<decltype(Api::close)>(symbols[1]),
             SymbolAs<decltype(Api::load_xclbin)>(symbols[2]),
             SymbolAs<decltype(Api::get_xclbin_uuid)>(symbols[3])};
  return *api_;
}

Status XrtProgrammer::Load(const CardAddress& card, const std::filesystem::path& xclbin,
                           std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(Api api, Resolve());
  StatusOr<MappedFile> mapped = MappedFile::Open(xclbin);
  if (!mapped.ok()) {
    return InternalError(std::string(mapped.status().message()), kReasonLoadFailed);
  }
  auto file = std::make_shared<MappedFile>(std::move(*mapped));
  StatusOr<images::XclbinLayout> layout = images::ParseXclbinLayout(file->bytes());
  if (!layout.ok()) {
    return InternalError(
        fmt::format("{} is not a loadable xclbin: {}", xclbin.string(), layout.status().message()),
        kReasonLoadFailed);
  }
  // The library reads m_length bytes from the buffer it is given, as XRT does.
  if (layout->header.length > file->bytes().size()) {
    return InternalError(fmt::format("{} is truncated: m_length is {} but the file has {} bytes",
                                     xclbin.string(), layout->header.length, file->bytes().size()),
                         kReasonLoadFailed);
  }
  images::Uuid expected = layout->header.uuid;
  std::string what = fmt::format("xclbin {}", images::FormatUuid(expected));

  std::promise<Status> promise;
  std::future<Status> outcome = promise.get_future();
  // The worker owns copies of everything (the mapping through a shared_ptr), so it can outlive
  // this call when the load does not finish in time.
  std::thread worker([api, card, file, expected, what, promise = std::move(promise)]() mutable {
    promise.set_value(LoadOnCard(api, card, file->bytes(), expected, what));
  });
  if (outcome.wait_for(timeout) == std::future_status::ready) {
    worker.join();
    return outcome.get();
  }
  worker.detach();
  return DeadlineExceededError(
      fmt::format("loading {} on {} through XRT did not finish within {} ms; the card's state "
                  "is unknown until a reset",
                  what, card.user_bdf, timeout.count()),
      kReasonLoadTimeout);
}

}  // namespace fpgahost::fpga
