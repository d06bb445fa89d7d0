// Reader for xclbin files (the "axlf" container of Xilinx/AMD FPGA images), as written by
// v++ and xclbinutil.
//
// An xclbin is a fixed 456-byte header (magic "xclbin2", signature length, key block,
// unique id, then the axlf_header: length, timestamps, version, mode, interface UUID,
// platform VBNV, xclbin UUID, ...), a table of m_numSections 40-byte section headers
// (kind, name, offset, size), the sections' payloads, an optional XCLBIN_MIRROR_DATA JSON
// copy that xclbinutil appends, and optionally a signature: a PKCS#7 blob inside m_length
// (m_signature_length > 0) or a "user signature" block appended after m_length.
//
// Contract: the functions here never read outside the bytes they are given, whatever those
// bytes are, and have no undefined behaviour for any input (checked by tests/fuzz). They
// read what is needed to present the file faithfully and reject only what cannot be read
// safely; whether a readable file is acceptable (lengths, alignment, overlaps, known kinds,
// platform, mode, signature) is for images/xclbin_validator.h to decide.
//
// Errors: InvalidArgument, with a stable reason (the kReason* constants below) and a
// message naming the offending field ("m_sections[3].m_sectionSize ...").
//
// Thread-safety: free functions are thread-safe; the value types are thread-compatible.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace fpgahost::images {

// Stable reasons of the Status errors of the reader and the validator.
inline constexpr char kReasonTruncated[] = "XCLBIN_TRUNCATED";
inline constexpr char kReasonBadMagic[] = "XCLBIN_BAD_MAGIC";
inline constexpr char kReasonBadHeader[] = "XCLBIN_BAD_HEADER";
inline constexpr char kReasonLengthMismatch[] = "XCLBIN_LENGTH_MISMATCH";
inline constexpr char kReasonSectionOutOfBounds[] = "SECTION_OUT_OF_BOUNDS";
inline constexpr char kReasonSectionOverlap[] = "SECTION_OVERLAP";
inline constexpr char kReasonSectionMisaligned[] = "SECTION_MISALIGNED";
inline constexpr char kReasonSectionUnknownKind[] = "SECTION_UNKNOWN_KIND";
inline constexpr char kReasonTooManySections[] = "TOO_MANY_SECTIONS";
inline constexpr char kReasonMetadataInconsistent[] = "METADATA_INCONSISTENT";

// Sizes of the fixed parts of the format (XRT's xclbin.h).
inline constexpr size_t kAxlfHeaderSize = 456;         // everything before the section table
inline constexpr size_t kAxlfSectionHeaderSize = 40;   // one axlf_section_header
inline constexpr uint32_t kAxlfMaxSections = 0x10000;  // XCLBIN_MAX_NUM_SECTION
inline constexpr std::string_view kXclbinMagic = "xclbin2";

using Uuid = std::array<uint8_t, 16>;

// Lowercase 8-4-4-4-12 ("01234567-89ab-cdef-0123-456789abcdef").
std::string FormatUuid(const Uuid& uuid);
// Accepts 32 hex digits in either case, with or without the four dashes of the 8-4-4-4-12
// form. nullopt for anything else.
std::optional<Uuid> ParseUuid(std::string_view text);
bool IsNilUuid(const Uuid& uuid);

// Renders bytes taken from a file for a message or a terminal: printable ASCII is kept,
// everything else becomes \xNN, and the result is cut at `max_chars` with "...". The
// output is always valid UTF-8, so it can go into JSON.
std::string EscapeForDisplay(std::string_view raw, size_t max_chars = 128);

enum class XclbinMode : uint16_t {
  kFlat = 0,
  kPr = 1,
  kTandemStage2 = 2,
  kTandemStage2WithPr = 3,
  kHwEmu = 4,
  kSwEmu = 5,
  kHwEmuPr = 6,
};
// "XCLBIN_FLAT", ..., or "UNKNOWN(<n>)".
std::string XclbinModeName(uint16_t mode);
bool IsKnownXclbinMode(uint16_t mode);
bool IsEmulationMode(uint16_t mode);

// m_actionMask bits.
inline constexpr uint16_t kActionLoadAie = 0x1;
inline constexpr uint16_t kActionLoadPdi = 0x2;
// "LOAD_AIE", "LOAD_PDI" and "0x<bit>" for bits without a name.
std::vector<std::string> ActionMaskNames(uint16_t mask);

enum class SectionKind : uint32_t {
  kBitstream = 0,
  kClearingBitstream = 1,
  kEmbeddedMetadata = 2,
  kFirmware = 3,
  kDebugData = 4,
  kSchedFirmware = 5,
  kMemTopology = 6,
  kConnectivity = 7,
  kIpLayout = 8,
  kDebugIpLayout = 9,
  kDesignCheckPoint = 10,
  kClockFreqTopology = 11,
  kMcs = 12,
  kBmc = 13,
  kBuildMetadata = 14,
  kKeyValueMetadata = 15,
  kUserMetadata = 16,
  kDnaCertificate = 17,
  kPdi = 18,
  kBitstreamPartialPdi = 19,
  kPartitionMetadata = 20,
  kEmulationData = 21,
  kSystemMetadata = 22,
  kSoftKernel = 23,
  kAskFlash = 24,
  kAieMetadata = 25,
  kAskGroupTopology = 26,
  kAskGroupConnectivity = 27,
  kSmartNic = 28,
  kAieResources = 29,
  kOverlay = 30,
  kVenderMetadata = 31,
  kAiePartition = 32,
  kIpMetadata = 33,
  kAieResourcesBin = 34,
  kAieTraceMetadata = 35,
  kDtbo = 36,
};
// XRT's enum name ("BITSTREAM", "ASK_GROUP_TOPOLOGY", ...) or "UNKNOWN(<n>)".
std::string SectionKindName(uint32_t kind);
bool IsKnownSectionKind(uint32_t kind);

// Names of the enums inside sections, as xclbinutil prints them; "UNKNOWN(<n>)" otherwise.
std::string IpTypeName(uint32_t type);        // "IP_KERNEL", ...
std::string IpControlName(uint32_t control);  // "AP_CTRL_CHAIN", ...
std::string MemTypeName(uint32_t type);       // "MEM_DRAM", ...
std::string ClockTypeName(uint32_t type);     // "DATA", "KERNEL", "SYSTEM", "UNUSED"
inline constexpr uint32_t kIpTypeKernel = 1;
inline constexpr uint32_t kIpTypePsKernel = 7;
inline constexpr uint32_t kMaxMemType = 11;  // MEM_PS_KERNEL
inline constexpr uint32_t kClockTypeUnused = 0;
inline constexpr uint32_t kMaxClockType = 3;  // CT_SYSTEM

// The fixed header, field by field (names follow XRT's struct axlf / axlf_header).
struct AxlfHeader {
  int32_t signature_length = -1;  // m_signature_length; -1: no PKCS#7 signature
  bool reserved_all_ff = false;   // the 28 reserved bytes are all 0xff, as tools write them
  bool key_block_all_ff = false;  // m_keyBlock is all 0xff (unused by current tools)
  uint64_t unique_id = 0;         // m_uniqueId
  uint64_t length = 0;            // m_length: file size, PKCS#7 signature included
  uint64_t time_stamp = 0;
  uint64_t feature_rom_time_stamp = 0;
  uint16_t version_patch = 0;
  uint8_t version_major = 0;
  uint8_t version_minor = 0;
  uint16_t mode = 0;          // XclbinMode, kept raw: unknown values are the validator's call
  uint16_t action_mask = 0;   // kAction* bits
  Uuid interface_uuid{};      // m_interface_uuid (xclbinutil's "Static UUID")
  std::string platform_vbnv;  // m_platformVBNV, up to its first NUL
  Uuid uuid{};                // the xclbin's own UUID
  std::string debug_bin;      // m_debug_bin, up to its first NUL
  uint32_t num_sections = 0;  // m_numSections

  std::string Version() const;  // "2.26.0"
};

struct SectionHeader {
  uint32_t kind = 0;  // SectionKind, kept raw
  std::string name;   // m_sectionName, up to its first NUL
  uint64_t offset = 0;
  uint64_t size = 0;
};

// The header and the section table: all that the first kAxlfHeaderSize + 40 * n bytes say.
struct XclbinLayout {
  AxlfHeader header;
  std::vector<SectionHeader> sections;  // in table order
  // Fixed-size strings that fill their field with no NUL ("m_platformVBNV",
  // "m_sections[2].m_sectionName"). Readable, but the validator rejects them.
  std::vector<std::string> unterminated_fields;

  // Where the section table ends: kAxlfHeaderSize + 40 * m_numSections.
  uint64_t TableEnd() const;
  // Bytes covered by a PKCS#7 signature: m_length minus the signature, or m_length.
  uint64_t SignedEnd() const;
};

struct ByteRange {
  uint64_t offset = 0;
  uint64_t size = 0;
};

// One ip_data of IP_LAYOUT.
struct IpData {
  uint32_t type = 0;        // IP_TYPE
  uint32_t properties = 0;  // raw; for kernels the bits below
  uint64_t base_address = 0;
  std::string name;  // for kernels "kernel:cu"

  bool interrupt_enabled() const { return (properties & 0x1) != 0; }
  uint32_t interrupt_id() const { return (properties & 0xFE) >> 1; }
  uint32_t ip_control() const { return (properties & 0xFF00) >> 8; }
  bool is_kernel() const { return type == kIpTypeKernel || type == kIpTypePsKernel; }
  // For "vadd:vadd_1": "vadd" and "vadd_1"; a name without ':' is both.
  std::string_view kernel_name() const;
  std::string_view cu_name() const;
};

// One mem_data of MEM_TOPOLOGY.
struct MemData {
  uint8_t type = 0;  // MEM_TYPE
  bool used = false;
  uint64_t size_kb = 0;  // for streaming types XRT reuses the field as route_id
  uint64_t base_address = 0;
  std::string tag;  // "bank0", "HOST", ...
};

// One connection of CONNECTIVITY: kernel argument -> memory bank.
struct Connection {
  int32_t arg_index = 0;
  int32_t ip_layout_index = 0;
  int32_t mem_data_index = 0;
};

// One clock_freq of CLOCK_FREQ_TOPOLOGY.
struct ClockFreq {
  uint16_t freq_mhz = 0;
  uint8_t type = 0;  // CLOCK_TYPE
  std::string name;
};

// The signatures a file carries.
struct UserSignature {
  uint64_t offset = 0;  // where the block starts (at m_length)
  uint64_t size = 0;    // the whole block, header included (its totalSignatureSize)
  std::string signature;
  std::string signed_by;
};
struct XclbinSignatures {
  std::optional<ByteRange> pkcs7;     // m_length - m_signature_length, m_signature_length
  std::optional<UserSignature> user;  // xclbinutil --add-signature block after m_length
};

// Where xclbinutil's XCLBIN_MIRROR_DATA block sits (offsets of the start marker, of the end
// marker and of the byte after it).
struct MirrorData {
  uint64_t start = 0;
  uint64_t end_marker = 0;
  uint64_t end = 0;
};

// A whole file, read. Typed sections come from the first section of their kind; a second one
// is reported by the validator, not hidden here.
struct Xclbin {
  AxlfHeader header;
  std::vector<SectionHeader> sections;
  std::vector<std::string> unterminated_fields;  // as in XclbinLayout, plus payload strings
  uint64_t file_size = 0;
  XclbinSignatures signatures;
  std::optional<MirrorData> mirror;

  std::optional<std::vector<IpData>> ip_layout;
  std::optional<std::vector<MemData>> mem_topology;
  std::optional<std::vector<Connection>> connectivity;
  std::optional<std::vector<ClockFreq>> clocks;
  std::optional<uint32_t> debug_ip_count;        // entries of DEBUG_IP_LAYOUT
  std::optional<std::string> build_metadata;     // JSON text, as stored
  std::optional<std::string> keyvalue_metadata;  // JSON text, as stored
  std::optional<std::string> user_metadata;      // free text, as stored
  std::optional<ByteRange> emulation_data;       // payload of EMULATION_DATA

  // First section of `kind`, or nullptr.
  const SectionHeader* FindSection(SectionKind kind) const;
  bool HasSection(SectionKind kind) const { return FindSection(kind) != nullptr; }
  // Kernel names of IP_LAYOUT's kernel IPs, without repeats, in IP_LAYOUT order.
  std::vector<std::string> KernelNames() const;
  // "kernel:cu" names of IP_LAYOUT's kernel IPs, in IP_LAYOUT order.
  std::vector<std::string> ComputeUnitNames() const;
};

// How many leading bytes ParseXclbinLayout needs: kAxlfHeaderSize until those have arrived,
// then the header plus the section table. When m_numSections exceeds `max_sections` the
// answer stays at kAxlfHeaderSize, since the header alone is then enough to refuse the file;
// so a caller buffering an upload never holds more than
// kAxlfHeaderSize + 40 * min(max_sections, kAxlfMaxSections) bytes.
uint64_t XclbinLayoutBytesNeeded(std::span<const uint8_t> prefix,
                                 uint32_t max_sections = kAxlfMaxSections);

// Reads the header and section table from the first bytes of a file (the rest may not have
// arrived yet). Errors: XCLBIN_BAD_MAGIC; XCLBIN_TRUNCATED when `prefix` is shorter than the
// header or the table; TOO_MANY_SECTIONS over kAxlfMaxSections; XCLBIN_BAD_HEADER when
// m_signature_length is neither -1 nor a length that leaves the header and table unsigned;
// XCLBIN_LENGTH_MISMATCH when m_length cannot hold the header and table.
// `max_sections` lowers the TOO_MANY_SECTIONS limit; it is checked before the table's length,
// so a prefix of kAxlfHeaderSize bytes suffices to refuse an oversized table.
StatusOr<XclbinLayout> ParseXclbinLayout(std::span<const uint8_t> prefix,
                                         uint32_t max_sections = kAxlfMaxSections);

// Reads a whole file. On top of ParseXclbinLayout's errors: XCLBIN_TRUNCATED when the file is
// shorter than m_length; SECTION_OUT_OF_BOUNDS when a section is not inside the file;
// METADATA_INCONSISTENT when a typed section (IP_LAYOUT, MEM_TOPOLOGY, CONNECTIVITY,
// CLOCK_FREQ_TOPOLOGY, DEBUG_IP_LAYOUT) is too small for its own count.
StatusOr<Xclbin> ParseXclbin(std::span<const uint8_t> bytes);
StatusOr<Xclbin> ParseXclbin(std::string_view bytes);

// xclbinutil's user signature block when one starts at offset `at` of `bytes` (normally
// m_length) and lies wholly inside `bytes`; nullopt otherwise.
std::optional<UserSignature> FindUserSignature(std::span<const uint8_t> bytes, uint64_t at);

// The bytes of `range` inside `bytes` (empty when out of range).
std::span<const uint8_t> Slice(std::span<const uint8_t> bytes, ByteRange range);

}  // namespace fpgahost::images
