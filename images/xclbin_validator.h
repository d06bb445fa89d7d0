// Decides whether an xclbin may be stored and loaded on this fleet's cards, before anything
// touches a card (DESIGN.md, "Validation of images"). The first failed check is returned, as a
// Status whose reason is a stable code and whose message names the offending field.
//
// Checks on the header and section table (also run by CheckXclbinPrefix), in this order:
//   INPUT_SIZE_ILLEGAL      (PayloadTooLarge) the file is over options.max_size.
//   XCLBIN_BAD_MAGIC, XCLBIN_TRUNCATED (shorter than the header, the table or m_length),
//   TOO_MANY_SECTIONS       over options.max_sections (or the format's 65536),
//   XCLBIN_LENGTH_MISMATCH  m_length cannot hold the header and table,
//   XCLBIN_BAD_HEADER       m_signature_length neither -1 nor a size that fits, or a header
//                           or section-table string without its NUL,
//   SECTION_UNKNOWN_KIND, SECTION_MISALIGNED (offsets are 8-byte aligned),
//   SECTION_OUT_OF_BOUNDS   data not between the section table and the PKCS#7 signature (or
//                           m_length); empty sections may sit anywhere before that end,
//   SECTION_OVERLAP,
//   MODE_NOT_SUPPORTED      m_mode unknown or not in options.allowed_modes,
//   SHELL_NOT_SUPPORTED     (with options.shells) a non-nil m_interface_uuid must be a shell's
//                           interface UUID, and a non-empty m_platformVBNV that shell's VBNV;
//                           with a nil interface UUID the VBNV alone must name a shell; a file
//                           naming neither is refused,
//   SIGNATURE_REQUIRED      policy require and m_signature_length is not positive.
// Then, on the whole file:
//   XCLBIN_LENGTH_MISMATCH  bytes after m_length other than one xclbinutil user-signature
//                           block (m_length equals the file size, PKCS#7 signature included),
//   METADATA_INCONSISTENT   a typed section (IP_LAYOUT, MEM_TOPOLOGY, CONNECTIVITY,
//                           CLOCK_FREQ_TOPOLOGY, DEBUG_IP_LAYOUT) too small for its count, two
//                           sections of one typed kind, a CONNECTIVITY index pointing nowhere,
//                           at a non-kernel IP or at an unused bank, an unknown memory or clock
//                           type, a name without its NUL,
//   SHELL_NOT_SUPPORTED     a used MEM_TOPOLOGY bank the shell does not have (by tag, type and
//                           size), when the shell lists its banks,
//   BITSTREAM_MISSING       a hardware mode needs a BITSTREAM, BITSTREAM_PARTIAL_PDI or PDI
//                           section with data; an emulation mode needs something to emulate:
//                           EMULATION_DATA or BITSTREAM data (v++ puts hw_emu models there), or
//                           an IP_LAYOUT with a kernel,
//   CLOCK_ILLEGAL           a CLOCK_FREQ_TOPOLOGY clock above the shell's limit for it, or one
//                           the shell has no limit for when the shell lists limits,
//   signature               by options.signature_policy:
//                             none     nothing is checked;
//                             warn     a PKCS#7 signature must verify (SIGNATURE_INVALID); no
//                                      signature, a user signature only, or no trusted
//                                      certificates to check with give a warning;
//                             require  a PKCS#7 signature that verifies against
//                                      options.trusted_certs (SIGNATURE_INVALID otherwise); a
//                                      user signature proves nothing and does not count.
// All errors are InvalidArgument except INPUT_SIZE_ILLEGAL.
//
// Streaming: an upload can be refused before its payload arrives. Buffer the first
// XclbinPrefixBytesNeeded() bytes (at most 456 + 40 * max_sections), then call
// CheckXclbinPrefix with the announced total size if there is one; stream the rest to disk and
// call ValidateXclbin on the whole file. ValidateXclbin runs the prefix checks first and in the
// same order, so an early refusal always has the reason the full validation would give.
//
// Thread-safety: the functions are thread-safe; options are only read.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "images/shell_catalogue.h"
#include "images/xclbin.h"
#include "images/xclbin_signature.h"

namespace fpgahost::images {

inline constexpr char kReasonInputSizeIllegal[] = "INPUT_SIZE_ILLEGAL";
inline constexpr char kReasonModeNotSupported[] = "MODE_NOT_SUPPORTED";
inline constexpr char kReasonShellNotSupported[] = "SHELL_NOT_SUPPORTED";
inline constexpr char kReasonClockIllegal[] = "CLOCK_ILLEGAL";
inline constexpr char kReasonBitstreamMissing[] = "BITSTREAM_MISSING";
// Warning codes (never errors).
inline constexpr char kWarningSignatureMissing[] = "SIGNATURE_MISSING";
inline constexpr char kWarningSignatureNotVerifiable[] = "SIGNATURE_NOT_VERIFIABLE";
inline constexpr char kWarningSignatureNotChecked[] = "SIGNATURE_NOT_CHECKED";

enum class SignaturePolicy { kNone, kWarn, kRequire };
// "none" | "warn" | "require"
std::optional<SignaturePolicy> ParseSignaturePolicy(std::string_view text);
std::string_view SignaturePolicyName(SignaturePolicy policy);

// Modes a fleet of real cards loads, and modes the emulated fleet loads.
std::vector<XclbinMode> HardwareModes();
std::vector<XclbinMode> EmulationModes();

struct XclbinValidationOptions {
  // nullopt skips the platform and clock checks (inspection tools, tests).
  std::optional<ShellCatalogue> shells;
  std::vector<XclbinMode> allowed_modes = HardwareModes();
  uint64_t max_size = uint64_t{1} << 30;
  uint32_t max_sections = 1024;
  SignaturePolicy signature_policy = SignaturePolicy::kWarn;
  TrustedCerts trusted_certs;
};

struct XclbinWarning {
  std::string code;  // kWarning*
  std::string message;
};

enum class SignatureState {
  kUnsigned,       // no signature at all
  kUserSignature,  // only xclbinutil's unverifiable user signature
  kNotChecked,     // a PKCS#7 signature that was not verified (policy none, or no certs)
  kVerified,       // a PKCS#7 signature that verified against a trusted certificate
};
std::string_view SignatureStateName(SignatureState state);  // "unsigned", ...

// What an accepted file is.
struct ValidatedXclbin {
  Xclbin xclbin;
  std::string shell;  // name of the matching shell; empty when no catalogue was given
  SignatureState signature = SignatureState::kUnsigned;
  std::optional<XclbinSigner> signer;  // when kVerified
  std::vector<XclbinWarning> warnings;
};

// Bytes CheckXclbinPrefix needs (see XclbinLayoutBytesNeeded), bounded by max_sections.
uint64_t XclbinPrefixBytesNeeded(std::span<const uint8_t> prefix,
                                 const XclbinValidationOptions& options);

// Early checks on the start of an upload. `prefix` should hold XclbinPrefixBytesNeeded(prefix)
// bytes, or the whole file if shorter (then it is XCLBIN_TRUNCATED). `total_size` is the
// announced size of the whole file, when known: it is checked against max_size and m_length.
Status CheckXclbinPrefix(std::span<const uint8_t> prefix, std::optional<uint64_t> total_size,
                         const XclbinValidationOptions& options);

// All checks, on a whole file.
StatusOr<ValidatedXclbin> ValidateXclbin(std::span<const uint8_t> bytes,
                                         const XclbinValidationOptions& options);

}  // namespace fpgahost::images
