#include "host/functions/bundle.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "common/base64.h"
#include "common/digest.h"
#include "common/files.h"

namespace fpgahost::functions {
namespace fs = std::filesystem;

namespace {

// Decompressed data passes through a buffer of this size: memory stays bounded whatever
// sizes the zip declares.
constexpr size_t kChunkBytes = 64 << 10;
// Linux's NAME_MAX; PATH_MAX less room for the destination directory.
constexpr size_t kMaxComponentBytes = 255;
constexpr size_t kMaxNameBytes = 3072;

constexpr char kBootstrap[] = "bootstrap";

struct Entry {
  uint64_t index = 0;
  std::string name;  // without a trailing '/'
  bool is_dir = false;
  bool has_mode = false;   // the zip records Unix permissions for it
  uint32_t mode = 0;       // the Unix mode from the zip, when has_mode
  uint64_t size = 0;       // as declared
  uint64_t comp_size = 0;  // as declared
};

struct ZipDiscarder {
  void operator()(zip_t* zip) const { zip_discard(zip); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipDiscarder>;

struct ZipFileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileCloser>;

// Entry names go into messages users read (and logs): control bytes are shown escaped.
std::string Printable(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('\'');
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

std::string Bytes(uint64_t n) {
  if (n != 0 && n % (1ull << 20) == 0) return fmt::format("{} MiB", n >> 20);
  return fmt::format("{} bytes", n);
}

Status Refuse(std::string message, const char* reason) {
  return InvalidArgumentError(std::move(message), reason);
}

std::string ZipErrorString(zip_error_t* error) { return zip_error_strerror(error); }

// Lambda's CodeSha256 is the base64 of the digest's bytes; Sha256 hands us hex.
std::string HexToBytes(std::string_view hex) {
  auto nibble = [](char c) {
    return c <= '9' ? static_cast<unsigned>(c - '0') : static_cast<unsigned>(c - 'a' + 10);
  };
  std::string raw;
  raw.reserve(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    raw.push_back(static_cast<char>((nibble(hex[i]) << 4) | nibble(hex[i + 1])));
  }
  return raw;
}

// Splits on '/' and on '\\' alike, so "..\\x" counts as traversal rather than merely as a
// name with a backslash.
Status CheckName(std::string_view raw, std::string* name, bool* trailing_slash) {
  if (raw.empty())
    return Refuse("the zip has an entry with an empty name", kReasonInvalidEntryName);
  const std::string shown = Printable(raw);
  if (raw.front() == '/' || raw.front() == '\\') {
    return Refuse(fmt::format("entry {} has an absolute path; entries must be relative to the "
                              "zip's root",
                              shown),
                  kReasonPathTraversal);
  }
  *trailing_slash = raw.back() == '/';
  std::string_view body = *trailing_slash ? raw.substr(0, raw.size() - 1) : raw;
  std::vector<std::string_view> components;
  for (size_t start = 0;;) {
    size_t end = body.find_first_of("/\\", start);
    components.push_back(body.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  for (std::string_view c : components) {
    if (c == "..") {
      return Refuse(fmt::format("entry {} has a '..' component, which would place it outside "
                                "the function's directory",
                                shown),
                    kReasonPathTraversal);
    }
  }
  if (body.find('\\') != std::string_view::npos) {
    return Refuse(fmt::format("entry {} contains a backslash; use '/' as the path separator "
                              "(zips made with some Windows tools need re-zipping)",
                              shown),
                  kReasonInvalidEntryName);
  }
  for (std::string_view c : components) {
    if (c.empty() || c == ".") {
      return Refuse(fmt::format("entry {} has an empty or '.' path component", shown),
                    kReasonInvalidEntryName);
    }
    if (c.size() > kMaxComponentBytes) {
      return Refuse(fmt::format("entry {} has a path component longer than {} bytes", shown,
                                kMaxComponentBytes),
                    kReasonInvalidEntryName);
    }
  }
  if (body.size() > kMaxNameBytes) {
    return Refuse(fmt::format("entry {} has a name longer than {} bytes", shown, kMaxNameBytes),
                  kReasonInvalidEntryName);
  }
  *name = std::string(body);
  return Status::Ok();
}

StatusOr<Entry> ReadEntry(zip_t* zip, uint64_t index) {
  zip_stat_t st;
  zip_stat_init(&st);
  constexpr zip_uint64_t kNeeded =
      ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_ENCRYPTION_METHOD;
  if (zip_stat_index(zip, index, 0, &st) != 0 || (st.valid & kNeeded) != kNeeded ||
      st.name == nullptr) {
    return Refuse(fmt::format("the zip's entry #{} cannot be read: {}", index,
                              ZipErrorString(zip_get_error(zip))),
                  kReasonInvalidZip);
  }
  Entry e;
  e.index = index;
  e.size = st.size;
  e.comp_size = st.comp_size;
  bool trailing_slash = false;
  RETURN_IF_ERROR(CheckName(st.name, &e.name, &trailing_slash));
  const std::string shown = Printable(st.name);

  zip_uint8_t opsys = 0;
  zip_uint32_t attributes = 0;
  if (zip_file_get_external_attributes(zip, index, 0, &opsys, &attributes) != 0) {
    return Refuse(fmt::format("the attributes of entry {} cannot be read: {}", shown,
                              ZipErrorString(zip_get_error(zip))),
                  kReasonInvalidZip);
  }
  // Unix zips keep st_mode in the high 16 bits; a zero there means no mode was recorded.
  e.mode = attributes >> 16;
  e.has_mode = opsys == ZIP_OPSYS_UNIX && e.mode != 0;
  const uint32_t type = e.has_mode ? (e.mode & S_IFMT) : 0;
  if (type == S_IFLNK) {
    return Refuse(fmt::format("entry {} is a symbolic link; bundles may not contain links "
                              "(zip the file it points to instead, e.g. without `zip -y`)",
                              shown),
                  kReasonSymlinkNotAllowed);
  }
  if (type != 0 && type != S_IFREG && type != S_IFDIR) {
    return Refuse(fmt::format("entry {} is a device, FIFO or socket; bundles may hold only "
                              "regular files and directories",
                              shown),
                  kReasonSpecialFileNotAllowed);
  }
  e.is_dir = trailing_slash || type == S_IFDIR;
  if (st.encryption_method != ZIP_EM_NONE) {
    return Refuse(fmt::format("entry {} is encrypted; upload a zip made without a password", shown),
                  kReasonEncryptedEntry);
  }
  if (e.is_dir && st.size != 0) {
    return Refuse(fmt::format("directory entry {} has {} bytes of data", shown, st.size),
                  kReasonInvalidZip);
  }
  return e;
}

// Checks everything the zip's directory says, before any data is decompressed.
Status CheckEntries(zip_t* zip, const BundleLimits& limits, std::vector<Entry>* out) {
  zip_int64_t count = zip_get_num_entries(zip, 0);
  if (count < 0) return Refuse("the zip's entries cannot be counted", kReasonInvalidZip);
  if (static_cast<uint64_t>(count) > limits.max_entries) {
    return Refuse(
        fmt::format("the zip has {} entries; at most {} are allowed", count, limits.max_entries),
        kReasonTooManyEntries);
  }
  std::vector<Entry> entries;
  entries.reserve(static_cast<size_t>(count));
  std::set<std::string> names;
  uint64_t total = 0;
  for (uint64_t i = 0; i < static_cast<uint64_t>(count); ++i) {
    ASSIGN_OR_RETURN(Entry e, ReadEntry(zip, i));
    if (!names.insert(e.name).second) {
      return Refuse(fmt::format("entry {} appears more than once in the zip", Printable(e.name)),
                    kReasonInvalidEntryName);
    }
    if (e.size > limits.max_unzipped_bytes - total) {
      return Refuse(fmt::format("the zip unzips to more than {} (the limit), passed at entry {}",
                                Bytes(limits.max_unzipped_bytes), Printable(e.name)),
                    kReasonUnzippedTooLarge);
    }
    total += e.size;
    if (e.size >= limits.ratio_check_min_bytes &&
        static_cast<double>(e.size) > limits.max_ratio * static_cast<double>(e.comp_size)) {
      return Refuse(fmt::format("entry {} declares {} bytes from {} compressed, a ratio over the "
                                "limit of {}:1",
                                Printable(e.name), e.size, e.comp_size, limits.max_ratio),
                    kReasonZipBomb);
    }
    entries.push_back(std::move(e));
  }

  // A name may not be a file and, for another entry, a directory on its path.
  std::set<std::string_view> files;
  for (const Entry& e : entries) {
    if (!e.is_dir) files.insert(e.name);
  }
  for (const Entry& e : entries) {
    for (size_t slash = e.name.find('/'); slash != std::string::npos;
         slash = e.name.find('/', slash + 1)) {
      std::string_view parent = std::string_view(e.name).substr(0, slash);
      if (files.count(parent) != 0) {
        return Refuse(fmt::format("entry {} is inside {}, which the zip also has as a file",
                                  Printable(e.name), Printable(parent)),
                      kReasonInvalidEntryName);
      }
    }
  }

  auto bootstrap = std::find_if(entries.begin(), entries.end(),
                                [](const Entry& e) { return e.name == kBootstrap; });
  if (bootstrap == entries.end()) {
    std::string hint;
    for (const Entry& e : entries) {
      if (!e.is_dir && e.name.size() > 10 && e.name.ends_with("/bootstrap")) {
        std::string_view dir = std::string_view(e.name).substr(0, e.name.size() - 10);
        hint = fmt::format(" (found {}: zip the contents of {}, not the folder itself)",
                           Printable(e.name), Printable(dir));
        break;
      }
    }
    return Refuse(
        "the zip has no 'bootstrap' at its root; a custom runtime needs an executable "
        "file named bootstrap at the top level of the zip" +
            hint,
        kReasonNoBootstrap);
  }
  if (bootstrap->is_dir) {
    return Refuse("'bootstrap' in the zip is a directory; it must be an executable file",
                  kReasonNoBootstrap);
  }
  if (!bootstrap->has_mode) {
    return Refuse(
        "'bootstrap' carries no Unix permissions in the zip (the zip tool did not "
        "record them, as Windows tools do not), so it is not executable; run "
        "`chmod +x bootstrap` and zip it with a tool that keeps permissions",
        kReasonBootstrapNotExecutable);
  }
  if ((bootstrap->mode & 0111) == 0) {
    return Refuse(fmt::format("'bootstrap' is not executable in the zip (mode {:04o}); run "
                              "`chmod +x bootstrap` before zipping",
                              bootstrap->mode & 07777),
                  kReasonBootstrapNotExecutable);
  }
  *out = std::move(entries);
  return Status::Ok();
}

// The open archive and its checked entries.
struct Bundle {
  ZipPtr zip;
  std::vector<Entry> entries;
};

// Under ZIP_CHECKCONS libzip refuses a zip with two entries of one name without saying which.
// Opened without it, libzip keeps both entries, and the name can be found and reported.
Status DuplicateNameError(std::string_view zip_bytes) {
  Status generic = Refuse("the zip has two entries with the same name", kReasonInvalidEntryName);
  zip_source_t* source = zip_source_buffer_create(zip_bytes.data(), zip_bytes.size(), 0, nullptr);
  if (source == nullptr) return generic;
  ZipPtr zip(zip_open_from_source(source, ZIP_RDONLY, nullptr));
  if (!zip) {
    zip_source_free(source);
    return generic;
  }
  std::set<std::string> names;
  zip_int64_t count = zip_get_num_entries(zip.get(), 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    const char* name = zip_get_name(zip.get(), static_cast<zip_uint64_t>(i), 0);
    if (name != nullptr && !names.insert(name).second) {
      return Refuse(fmt::format("entry {} appears more than once in the zip", Printable(name)),
                    kReasonInvalidEntryName);
    }
  }
  return generic;
}

StatusOr<Bundle> OpenBundle(std::string_view zip_bytes, const BundleLimits& limits) {
  if (zip_bytes.size() > limits.max_zip_bytes) {
    return PayloadTooLargeError(fmt::format("the zip is {} bytes; the limit is {}",
                                            zip_bytes.size(), Bytes(limits.max_zip_bytes)),
                                kReasonZipTooLarge);
  }
  // libzip would open zero bytes as an empty archive.
  if (zip_bytes.empty()) return Refuse("the function code is empty, not a zip", kReasonInvalidZip);

  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(zip_bytes.data(), zip_bytes.size(), 0, &error);
  if (source == nullptr) {
    std::string what = ZipErrorString(&error);
    zip_error_fini(&error);
    return InternalError("cannot wrap the zip in a libzip source: " + what);
  }
  // ZIP_CHECKCONS makes libzip compare each local header with the central directory, so two
  // readers cannot be shown different names or sizes for one entry.
  zip_t* zip = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (zip == nullptr) {
    const bool duplicate = zip_error_code_zip(&error) == ZIP_ER_EXISTS;
    std::string what = ZipErrorString(&error);
    zip_error_fini(&error);
    zip_source_free(source);
    if (duplicate) return DuplicateNameError(zip_bytes);
    return Refuse("the function code is not a valid zip file: " + what, kReasonInvalidZip);
  }
  zip_error_fini(&error);
  Bundle bundle{ZipPtr(zip), {}};
  RETURN_IF_ERROR(CheckEntries(zip, limits, &bundle.entries));
  return bundle;
}

// Decompresses one file entry into `sink` a chunk at a time and returns its size. Never
// produces more than the entry's declared size (already checked against the limits): a zip
// whose data inflates past its declared size is stopped one byte after.
StatusOr<uint64_t> StreamEntry(zip_t* zip, const Entry& e, std::vector<char>& buffer,
                               const std::function<Status(std::string_view)>& sink) {
  ZipFilePtr file(zip_fopen_index(zip, e.index, 0));
  if (!file) {
    zip_error_t* error = zip_get_error(zip);
    if (zip_error_code_zip(error) == ZIP_ER_COMPNOTSUPP) {
      return Refuse(fmt::format("entry {} uses a compression method this host cannot read; "
                                "zip it with deflate (the default of common zip tools)",
                                Printable(e.name)),
                    kReasonInvalidZip);
    }
    return Refuse(
        fmt::format("entry {} cannot be read: {}", Printable(e.name), ZipErrorString(error)),
        kReasonInvalidZip);
  }
  uint64_t done = 0;
  while (true) {
    // Ask for at most one byte past the declared size: enough to see a lie, no more.
    uint64_t want = std::min<uint64_t>(buffer.size(), e.size - done + 1);
    zip_int64_t n = zip_fread(file.get(), buffer.data(), want);
    if (n < 0) {
      return Refuse(fmt::format("entry {} is corrupt: {}", Printable(e.name),
                                ZipErrorString(zip_file_get_error(file.get()))),
                    kReasonInvalidZip);
    }
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
    if (done > e.size) {
      return Refuse(fmt::format("entry {} inflates to more than the {} bytes it declares; "
                                "refusing it as a zip bomb",
                                Printable(e.name), e.size),
                    kReasonZipBomb);
    }
    RETURN_IF_ERROR(sink(std::string_view(buffer.data(), static_cast<size_t>(n))));
  }
  // libzip checks size and CRC at the end of the data, except for an entry with no
  // compressed bytes, which it reads as empty whatever size it declares.
  if (done != e.size) {
    return Refuse(
        fmt::format("entry {} holds {} bytes but declares {}", Printable(e.name), done, e.size),
        kReasonInvalidZip);
  }
  return done;
}

BundleInfo Describe(std::string_view zip_bytes) {
  BundleInfo info;
  info.sha256_hex = Sha256Hex(zip_bytes);
  info.code_sha256_base64 = Base64Encode(HexToBytes(info.sha256_hex));
  info.zip_bytes = zip_bytes.size();
  return info;
}

Status WriteAll(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(fmt::format("cannot write {}", path.string()), errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Creates `rel`'s directories under `root` as needed, each 0755 whatever the umask. CheckEntries
// has ruled out a file where a directory goes, so an existing path here is a directory we made.
Status MakeDirs(const fs::path& root, std::string_view rel) {
  fs::path path = root;
  for (size_t start = 0; start <= rel.size();) {
    size_t end = rel.find('/', start);
    if (end == std::string_view::npos) end = rel.size();
    path /= rel.substr(start, end - start);
    if (::mkdir(path.c_str(), 0755) == 0) {
      if (::chmod(path.c_str(), 0755) != 0) {
        return ErrnoError(fmt::format("cannot chmod {}", path.string()), errno);
      }
    } else if (errno != EEXIST) {
      return ErrnoError(fmt::format("cannot create directory {}", path.string()), errno);
    }
    start = end + 1;
  }
  return Status::Ok();
}

Status ExtractFile(zip_t* zip, const Entry& e, const fs::path& root, std::vector<char>& buffer,
                   uint64_t* bytes) {
  size_t slash = e.name.rfind('/');
  if (slash != std::string::npos) RETURN_IF_ERROR(MakeDirs(root, e.name.substr(0, slash)));
  const fs::path path = root / e.name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(fmt::format("cannot create {}", path.string()), errno);
  auto written =
      StreamEntry(zip, e, buffer, [&](std::string_view data) { return WriteAll(fd, data, path); });
  Status status = written.status();
  const mode_t mode = e.has_mode && (e.mode & 0111) != 0 ? 0755 : 0644;
  if (status.ok() && ::fchmod(fd, mode) != 0) {
    status = ErrnoError(fmt::format("cannot chmod {}", path.string()), errno);
  }
  if (::close(fd) != 0 && status.ok()) {
    status = ErrnoError(fmt::format("cannot close {}", path.string()), errno);
  }
  RETURN_IF_ERROR(status);
  *bytes = *written;
  return Status::Ok();
}

Status SyncPath(const fs::path& path, bool whole_filesystem) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(fmt::format("cannot open {}", path.string()), errno);
  // One syncfs flushes every file extracted, instead of an fsync per file.
  int rc = whole_filesystem ? ::syncfs(fd) : ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError(fmt::format("cannot sync {}", path.string()), err);
  return Status::Ok();
}

// Removes the temporary extraction directory unless the extraction got as far as renaming it.
class TempDirCleanup {
 public:
  explicit TempDirCleanup(fs::path path) : path_(std::move(path)) {}
  ~TempDirCleanup() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDirCleanup(const TempDirCleanup&) = delete;
  TempDirCleanup& operator=(const TempDirCleanup&) = delete;
  void Release() { path_.clear(); }

 private:
  fs::path path_;
};

Status DestExists(const fs::path& dest) {
  return AlreadyExistsError(
      fmt::format("cannot extract the bundle to {}: it exists already", dest.string()),
      kReasonDestExists);
}

// Renames without replacing: rename(2) alone would replace an empty directory that appeared
// at `to` since we looked.
Status RenameNoReplace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::Ok();
  }
  int err = errno;
  if (err == EEXIST || err == ENOTEMPTY) return DestExists(to);
  if (err != EINVAL && err != ENOSYS) {
    return ErrnoError(fmt::format("cannot move {} to {}", from.string(), to.string()), err);
  }
  // The file system cannot rename without replacing: check, then rename.
  struct stat st;
  if (::lstat(to.c_str(), &st) == 0) return DestExists(to);
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoError(fmt::format("cannot move {} to {}", from.string(), to.string()), errno);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<BundleInfo> InspectBundle(std::string_view zip_bytes, const BundleLimits& limits) {
  ASSIGN_OR_RETURN(Bundle bundle, OpenBundle(zip_bytes, limits));
  BundleInfo info = Describe(zip_bytes);
  std::vector<char> buffer(kChunkBytes);
  const auto discard = [](std::string_view) { return Status::Ok(); };
  for (const Entry& e : bundle.entries) {
    if (e.is_dir) continue;
    ASSIGN_OR_RETURN(uint64_t bytes, StreamEntry(bundle.zip.get(), e, buffer, discard));
    info.unzipped_bytes += bytes;
    ++info.files;
  }
  return info;
}

StatusOr<BundleInfo> ExtractBundle(std::string_view zip_bytes, const fs::path& dest_dir,
                                   const BundleLimits& limits) {
  // "a/b/" names the directory "a/b".
  fs::path dest = dest_dir.lexically_normal();
  if (!dest.has_filename()) dest = dest.parent_path();
  struct stat st;
  if (::lstat(dest.c_str(), &st) == 0) return DestExists(dest);
  if (errno != ENOENT) return ErrnoError(fmt::format("cannot stat {}", dest.string()), errno);

  ASSIGN_OR_RETURN(Bundle bundle, OpenBundle(zip_bytes, limits));
  BundleInfo info = Describe(zip_bytes);

  fs::path parent = dest.parent_path();
  if (parent.empty()) parent = ".";
  RETURN_IF_ERROR(EnsureWritableDir(parent));
  std::string temp = (parent / fmt::format(".{}.tmp-XXXXXX", dest.filename().string())).string();
  if (::mkdtemp(temp.data()) == nullptr) {
    return ErrnoError(fmt::format("cannot create a temporary directory in {}", parent.string()),
                      errno);
  }
  TempDirCleanup cleanup{fs::path(temp)};

  std::vector<char> buffer(kChunkBytes);
  for (const Entry& e : bundle.entries) {
    if (e.is_dir) {
      RETURN_IF_ERROR(MakeDirs(temp, e.name));
      continue;
    }
    uint64_t bytes = 0;
    RETURN_IF_ERROR(ExtractFile(bundle.zip.get(), e, temp, buffer, &bytes));
    info.unzipped_bytes += bytes;
    ++info.files;
  }
  // mkdtemp made it 0700.
  if (::chmod(temp.c_str(), 0755) != 0) {
    return ErrnoError(fmt::format("cannot chmod {}", temp), errno);
  }
  RETURN_IF_ERROR(SyncPath(temp, /*whole_filesystem=*/true));
  RETURN_IF_ERROR(RenameNoReplace(temp, dest));
  cleanup.Release();
  RETURN_IF_ERROR(SyncPath(parent, /*whole_filesystem=*/false));
  return info;
}

}  // namespace fpgahost::functions
