// Function code bundles: the zip a user uploads as a function's code, as for AWS Lambda's
// `provided` runtimes. A bundle must hold an executable regular file named `bootstrap` at its
// root; the slot runs it, and it speaks the Lambda Runtime API.
//
// The zip is outside input, possibly hostile. Both functions here check it against
// BundleLimits before trusting anything in it, and enforce the limits again while
// decompressing, because the sizes a zip declares can lie. Memory use is bounded by a fixed
// read chunk whatever the input.
//
// Errors: a Status with a stable reason (the kReason* constants below) that a client can
// switch on and a message that names the offending entry. The code is PayloadTooLarge for
// ZIP_TOO_LARGE and InvalidArgument for every other refusal; failures of the local file
// system while extracting are Internal (IO_ERROR).
//
// On BOOTSTRAP_NOT_EXECUTABLE: Lambda does not check this when the function is created; the
// function then fails at init with a permission error. We refuse it at create, so the user
// learns at once, and the message names the fix (`chmod +x bootstrap` before zipping).
// Zips made on Windows record no Unix modes and so are refused the same way.
//
// Names: libzip replaces a NUL byte inside an entry name with a space when it reads the
// central directory, so a NUL can neither truncate a name nor reach the file system.
//
// Thread-safe: the functions share no state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace fpgahost::functions {

// The zip itself is over max_zip_bytes.
inline constexpr char kReasonZipTooLarge[] = "ZIP_TOO_LARGE";
// Not a zip; corrupt data or a CRC mismatch; a compression method libzip cannot read.
inline constexpr char kReasonInvalidZip[] = "INVALID_ZIP";
// The entries' declared sizes add up to more than max_unzipped_bytes.
inline constexpr char kReasonUnzippedTooLarge[] = "UNZIPPED_TOO_LARGE";
// More than max_entries entries.
inline constexpr char kReasonTooManyEntries[] = "TOO_MANY_ENTRIES";
// An entry declares more than max_ratio times its compressed size, or inflates past the size
// it declares (found while decompressing).
inline constexpr char kReasonZipBomb[] = "ZIP_BOMB";
// An absolute name or a `..` component.
inline constexpr char kReasonPathTraversal[] = "PATH_TRAVERSAL";
// An empty name, an empty or `.` component, a backslash, an overlong name or component, a
// duplicate, or a name used both as a file and as a directory.
inline constexpr char kReasonInvalidEntryName[] = "INVALID_ENTRY_NAME";
inline constexpr char kReasonSymlinkNotAllowed[] = "SYMLINK_NOT_ALLOWED";
// A device, FIFO or socket.
inline constexpr char kReasonSpecialFileNotAllowed[] = "SPECIAL_FILE_NOT_ALLOWED";
// A password-protected entry.
inline constexpr char kReasonEncryptedEntry[] = "ENCRYPTED_ENTRY";
// No `bootstrap` at the root, or it is not a regular file.
inline constexpr char kReasonNoBootstrap[] = "NO_BOOTSTRAP";
// `bootstrap` has no execute permission in the zip (or the zip records no Unix modes).
inline constexpr char kReasonBootstrapNotExecutable[] = "BOOTSTRAP_NOT_EXECUTABLE";
// ExtractBundle: the destination exists already (AlreadyExists).
inline constexpr char kReasonDestExists[] = "DEST_EXISTS";

struct BundleLimits {
  // Lambda's limit for a zip uploaded directly with the request.
  uint64_t max_zip_bytes = 50ull << 20;
  // Lambda's limit for a function's unzipped code.
  uint64_t max_unzipped_bytes = 250ull << 20;
  uint32_t max_entries = 10000;
  // The largest uncompressed:compressed ratio an entry may declare: a zip bomb guard.
  double max_ratio = 200;
  // Entries declaring fewer bytes than this skip the ratio check: a small file of repeated
  // bytes compresses far past any ratio yet cannot hurt, and max_unzipped_bytes still holds.
  uint64_t ratio_check_min_bytes = 1ull << 20;
};

struct BundleInfo {
  // Lowercase hex SHA-256 of the zip bytes.
  std::string sha256_hex;
  // Lambda's CodeSha256: base64 of the same SHA-256 digest.
  std::string code_sha256_base64;
  uint64_t zip_bytes = 0;
  // Bytes of file content after decompression (as actually decompressed, not as declared).
  uint64_t unzipped_bytes = 0;
  // Regular files in the bundle; directories are not counted.
  uint32_t files = 0;
};

// Checks `zip_bytes` as a bundle without writing anything: the limits, every entry's name,
// type and encryption, the bootstrap, and every entry's data (decompressed into a bounded
// buffer and discarded, so corrupt data and lying sizes are found here, not at extraction).
StatusOr<BundleInfo> InspectBundle(std::string_view zip_bytes, const BundleLimits& limits);

// Checks the bundle as InspectBundle does, then extracts it into a new temporary directory
// beside `dest_dir` and renames that to `dest_dir`: other processes see the whole bundle at
// `dest_dir` or nothing. `dest_dir` must not exist (AlreadyExists, reason DEST_EXISTS,
// otherwise; it is left untouched); its parent is created when missing. Files and directories
// are owned by the calling user. Directories get mode 0755; a file gets 0755 when the zip
// gives it any execute bit and 0644 otherwise, so setuid, setgid and sticky bits never reach
// the disk. Directories missing from the zip are created. On failure nothing is left behind.
// Contents are synced to disk before the rename.
StatusOr<BundleInfo> ExtractBundle(std::string_view zip_bytes,
                                   const std::filesystem::path& dest_dir,
                                   const BundleLimits& limits);

}  // namespace fpgahost::functions
