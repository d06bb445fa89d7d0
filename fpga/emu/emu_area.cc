#include "fpga/emu/emu_area.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

#include "common/files.h"
#include "common/json.h"

namespace fpgahost::fpga::emu {
namespace {

namespace fs = std::filesystem;

fs::path StatePath(const fs::path& root, std::string_view mgmt_bdf) {
  return CardDir(root, mgmt_bdf) / "state.json";
}

Status Corrupt(const fs::path& path, std::string_view what) {
  return DataLossError(fmt::format("{}: {}", path.string(), what), kReasonEmuStateCorrupt);
}

StatusOr<Json> ReadJsonFile(const fs::path& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return Corrupt(path, "not a JSON object");
  return json;
}

// A non-negative integer field; `fallback` when absent or null.
StatusOr<int64_t> IntField(const fs::path& path, const Json& object, const char* name,
                           int64_t fallback) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return Corrupt(path, fmt::format("{} is not a non-negative integer", name));
  }
  return it->get<int64_t>();
}

Json StateToJson(const CardState& state) {
  Json faults = {{"load_fail", state.faults.load_fail},
                 {"load_timeout", state.faults.load_timeout},
                 {"load_ms", nullptr}};
  if (state.faults.load_ms) faults["load_ms"] = *state.faults.load_ms;
  return {{"xclbin_uuid", state.xclbin_uuid},
          {"resets", state.resets},
          {"loading", state.loading},
          {"faults", faults}};
}

StatusOr<CardState> StateFromJson(const fs::path& path, const Json& json) {
  CardState state;
  auto uuid = json.find("xclbin_uuid");
  if (uuid == json.end() || !uuid->is_string()) return Corrupt(path, "xclbin_uuid is missing");
  state.xclbin_uuid = uuid->get<std::string>();
  ASSIGN_OR_RETURN(int64_t resets, IntField(path, json, "resets", 0));
  state.resets = static_cast<uint64_t>(resets);
  auto loading = json.find("loading");
  state.loading = loading != json.end() && loading->is_boolean() && loading->get<bool>();
  auto faults = json.find("faults");
  if (faults != json.end() && faults->is_object()) {
    ASSIGN_OR_RETURN(int64_t load_fail, IntField(path, *faults, "load_fail", 0));
    ASSIGN_OR_RETURN(int64_t load_ms, IntField(path, *faults, "load_ms", -1));
    state.faults.load_fail = static_cast<int>(std::min<int64_t>(load_fail, 1'000'000));
    auto timeout = faults->find("load_timeout");
    state.faults.load_timeout =
        timeout != faults->end() && timeout->is_boolean() && timeout->get<bool>();
    if (load_ms >= 0) {
      state.faults.load_ms = static_cast<int>(std::min<int64_t>(load_ms, kMaxLoadMs));
    }
  }
  return state;
}

StatusOr<CardState> ReadStateFile(const fs::path& root, std::string_view mgmt_bdf) {
  fs::path path = StatePath(root, mgmt_bdf);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return NotFoundError(fmt::format("no emulated card {} in {}", mgmt_bdf, root.string()));
  }
  ASSIGN_OR_RETURN(Json json, ReadJsonFile(path));
  return StateFromJson(path, json);
}

}  // namespace

Status ReplaceFile(const fs::path& path, std::string_view contents) {
  // Unique among processes and threads; the rename makes the new contents appear at once.
  static std::atomic<uint64_t> counter{0};
  fs::path tmp = path;
  tmp += fmt::format(".tmp-{}-{}", ::getpid(), counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("creating " + tmp.string(), errno);
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ErrnoError("writing " + tmp.string(), err);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError("replacing " + path.string(), err);
  }
  return Status::Ok();
}

namespace {

StatusOr<int> OpenLockFile(const fs::path& path) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("opening lock " + path.string(), errno);
  return fd;
}

}  // namespace

fs::path EmuDir(const fs::path& root) { return root / kEmuDirName; }
fs::path TreeLockPath(const fs::path& root) { return EmuDir(root) / "tree.lock"; }
fs::path RemovedDir(const fs::path& root) { return EmuDir(root) / "removed"; }
fs::path CardDir(const fs::path& root, std::string_view mgmt_bdf) {
  return EmuDir(root) / "cards" / std::string(mgmt_bdf);
}

std::string MgmtBdfOf(std::string_view bdf) {
  std::string out(bdf);
  if (!out.empty()) out.back() = '0';
  return out;
}
std::string UserBdfOf(std::string_view bdf) {
  std::string out(bdf);
  if (!out.empty()) out.back() = '1';
  return out;
}

StatusOr<FileLock> FileLock::Acquire(const fs::path& path) {
  ASSIGN_OR_RETURN(int fd, OpenLockFile(path));
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int err = errno;
    ::close(fd);
    return ErrnoError("locking " + path.string(), err);
  }
  return FileLock(fd);
}

StatusOr<std::optional<FileLock>> FileLock::TryAcquire(const fs::path& path) {
  ASSIGN_OR_RETURN(int fd, OpenLockFile(path));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return std::optional<FileLock>();
    return ErrnoError("locking " + path.string(), err);
  }
  return std::optional<FileLock>(FileLock(fd));
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  // Closing the last descriptor of the open file releases the flock.
  if (fd_ >= 0) ::close(fd_);
}

StatusOr<FleetConfig> ReadFleetConfig(const fs::path& root) {
  fs::path path = EmuDir(root) / "fleet.json";
  FleetConfig config;
  std::error_code ec;
  if (!fs::exists(path, ec)) return config;
  ASSIGN_OR_RETURN(Json json, ReadJsonFile(path));
  ASSIGN_OR_RETURN(int64_t load_ms, IntField(path, json, "load_ms", kDefaultLoadMs));
  config.load_ms = static_cast<int>(std::min<int64_t>(load_ms, kMaxLoadMs));
  return config;
}

Status WriteFleetConfig(const fs::path& root, const FleetConfig& config) {
  RETURN_IF_ERROR(EnsureWritableDir(EmuDir(root)));
  Json json = {{"load_ms", config.load_ms}};
  return ReplaceFile(EmuDir(root) / "fleet.json", json.dump() + "\n");
}

bool HasCard(const fs::path& root, std::string_view mgmt_bdf) {
  std::error_code ec;
  return !mgmt_bdf.empty() && mgmt_bdf.find('/') == std::string_view::npos &&
         fs::exists(StatePath(root, mgmt_bdf), ec);
}

Status CreateCardState(const fs::path& root, std::string_view mgmt_bdf) {
  RETURN_IF_ERROR(EnsureWritableDir(CardDir(root, mgmt_bdf)));
  return ReplaceFile(StatePath(root, mgmt_bdf), StateToJson(CardState{}).dump() + "\n");
}

StatusOr<CardState> ReadCardState(const fs::path& root, std::string_view mgmt_bdf) {
  // Writers replace the file by rename, so a plain read sees one whole version.
  return ReadStateFile(root, mgmt_bdf);
}

StatusOr<CardState> UpdateCardState(const fs::path& root, std::string_view mgmt_bdf,
                                    const std::function<void(CardState&)>& change) {
  if (!HasCard(root, mgmt_bdf)) {
    return NotFoundError(fmt::format("no emulated card {} in {}", mgmt_bdf, root.string()));
  }
  ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(CardDir(root, mgmt_bdf) / "state.lock"));
  ASSIGN_OR_RETURN(CardState state, ReadStateFile(root, mgmt_bdf));
  change(state);
  RETURN_IF_ERROR(ReplaceFile(StatePath(root, mgmt_bdf), StateToJson(state).dump() + "\n"));
  return state;
}

}  // namespace fpgahost::fpga::emu
