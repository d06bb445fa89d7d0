#include "images/xclbin.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "images/axlf_layout.h"

namespace fpgahost::images {
namespace {

using namespace axlf;  // NOLINT(google-build-using-namespace): the layout constants

// xclbinutil's user signature block (XclBinUtilities.h SignatureHeader).
constexpr std::array<uint8_t, 16> kUserSignatureMagic = {
    0x53, 0x49, 0x47, 0x4E, 0x9D, 0xFF, 0x41, 0xC0, 0x8C, 0xCB, 0x82, 0xA7, 0x13, 0x1C, 0xC9, 0xF3};
constexpr size_t kUserSignatureHeaderSize = 44;

// Callers check bounds before reading; these only assemble little-endian values without
// unaligned loads.
uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t Le64(const uint8_t* p) {
  return static_cast<uint64_t>(Le32(p)) | (static_cast<uint64_t>(Le32(p + 4)) << 32);
}

// True when [offset, offset + size) lies inside [0, limit), without overflow.
bool Within(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

// A fixed-size char field: the text up to the first NUL. Records the field when no NUL ends it.
std::string FixedString(const uint8_t* p, size_t size, std::string_view field,
                        std::vector<std::string>* unterminated) {
  const auto* end = std::find(p, p + size, uint8_t{0});
  if (end == p + size) unterminated->emplace_back(field);
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(end - p));
}

bool AllBytes(const uint8_t* p, size_t size, uint8_t value) {
  return std::all_of(p, p + size, [value](uint8_t b) { return b == value; });
}

Uuid ReadUuid(const uint8_t* p) {
  Uuid out;
  std::memcpy(out.data(), p, out.size());
  return out;
}

Status Truncated(std::string message) {
  return InvalidArgumentError(std::move(message), kReasonTruncated);
}
Status Inconsistent(std::string message) {
  return InvalidArgumentError(std::move(message), kReasonMetadataInconsistent);
}

Status TooSmall(std::string_view what, size_t index, size_t size) {
  return Inconsistent(
      fmt::format("{} (m_sections[{}]) is {} bytes, too small for m_count", what, index, size));
}

// Checks that a typed section holds the `count` entries it announces.
Status CheckCount(std::string_view what, size_t index, int64_t count, uint64_t section_size,
                  size_t entries_at, size_t entry_size) {
  if (count < 0) {
    return Inconsistent(fmt::format("{} (m_sections[{}]) m_count is {}", what, index, count));
  }
  if (count == 0) return Status::Ok();
  // count < 2^31 and entry_size < 2^8, so the product cannot overflow 64 bits.
  uint64_t needed = entries_at + static_cast<uint64_t>(count) * entry_size;
  if (needed > section_size) {
    return Inconsistent(
        fmt::format("{} (m_sections[{}]) m_count {} needs {} bytes but the section has {}", what,
                    index, count, needed, section_size));
  }
  return Status::Ok();
}

Status ReadIpLayout(std::span<const uint8_t> p, size_t index, Xclbin* out) {
  if (p.size() < 4) return TooSmall("IP_LAYOUT", index, p.size());
  int32_t count = static_cast<int32_t>(Le32(p.data()));
  RETURN_IF_ERROR(CheckCount("IP_LAYOUT", index, count, p.size(), kIpLayoutEntries, kIpDataSize));
  std::vector<IpData> ips;
  ips.reserve(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    const uint8_t* e = p.data() + kIpLayoutEntries + static_cast<size_t>(i) * kIpDataSize;
    IpData ip;
    ip.type = Le32(e);
    ip.properties = Le32(e + 4);
    ip.base_address = Le64(e + 8);
    ip.name = FixedString(e + 16, kIpNameSize, fmt::format("IP_LAYOUT m_ip_data[{}].m_name", i),
                          &out->unterminated_fields);
    ips.push_back(std::move(ip));
  }
  out->ip_layout = std::move(ips);
  return Status::Ok();
}

Status ReadMemTopology(std::span<const uint8_t> p, size_t index, Xclbin* out) {
  if (p.size() < 4) return TooSmall("MEM_TOPOLOGY", index, p.size());
  int32_t count = static_cast<int32_t>(Le32(p.data()));
  RETURN_IF_ERROR(
      CheckCount("MEM_TOPOLOGY", index, count, p.size(), kMemTopologyEntries, kMemDataSize));
  std::vector<MemData> mems;
  mems.reserve(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    const uint8_t* e = p.data() + kMemTopologyEntries + static_cast<size_t>(i) * kMemDataSize;
    MemData mem;
    mem.type = e[0];
    mem.used = e[1] != 0;
    mem.size_kb = Le64(e + 8);
    mem.base_address = Le64(e + 16);
    mem.tag = FixedString(e + 24, kMemTagSize, fmt::format("MEM_TOPOLOGY m_mem_data[{}].m_tag", i),
                          &out->unterminated_fields);
    mems.push_back(std::move(mem));
  }
  out->mem_topology = std::move(mems);
  return Status::Ok();
}

Status ReadConnectivity(std::span<const uint8_t> p, size_t index, Xclbin* out) {
  if (p.size() < 4) return TooSmall("CONNECTIVITY", index, p.size());
  int32_t count = static_cast<int32_t>(Le32(p.data()));
  RETURN_IF_ERROR(
      CheckCount("CONNECTIVITY", index, count, p.size(), kConnectivityEntries, kConnectionSize));
  std::vector<Connection> connections;
  connections.reserve(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    const uint8_t* e = p.data() + kConnectivityEntries + static_cast<size_t>(i) * kConnectionSize;
    connections.push_back(Connection{static_cast<int32_t>(Le32(e)),
                                     static_cast<int32_t>(Le32(e + 4)),
                                     static_cast<int32_t>(Le32(e + 8))});
  }
  out->connectivity = std::move(connections);
  return Status::Ok();
}

Status ReadClockTopology(std::span<const uint8_t> p, size_t index, Xclbin* out) {
  if (p.size() < 2) return TooSmall("CLOCK_FREQ_TOPOLOGY", index, p.size());
  int16_t count = static_cast<int16_t>(Le16(p.data()));
  RETURN_IF_ERROR(CheckCount("CLOCK_FREQ_TOPOLOGY", index, count, p.size(), kClockTopologyEntries,
                             kClockFreqSize));
  std::vector<ClockFreq> clocks;
  clocks.reserve(static_cast<size_t>(count));
  for (int16_t i = 0; i < count; ++i) {
    const uint8_t* e = p.data() + kClockTopologyEntries + static_cast<size_t>(i) * kClockFreqSize;
    ClockFreq clock;
    clock.freq_mhz = Le16(e);
    clock.type = e[2];
    clock.name = FixedString(e + 8, kClockNameSize,
                             fmt::format("CLOCK_FREQ_TOPOLOGY m_clock_freq[{}].m_name", i),
                             &out->unterminated_fields);
    clocks.push_back(std::move(clock));
  }
  out->clocks = std::move(clocks);
  return Status::Ok();
}

Status ReadDebugIpLayout(std::span<const uint8_t> p, size_t index, Xclbin* out) {
  if (p.size() < 2) return TooSmall("DEBUG_IP_LAYOUT", index, p.size());
  uint16_t count = Le16(p.data());
  RETURN_IF_ERROR(CheckCount("DEBUG_IP_LAYOUT", index, count, p.size(), kDebugIpLayoutEntries,
                             kDebugIpDataSize));
  out->debug_ip_count = count;
  return Status::Ok();
}

std::string AsText(std::span<const uint8_t> p) {
  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
}

}  // namespace

std::optional<UserSignature> FindUserSignature(std::span<const uint8_t> bytes, uint64_t at) {
  if (!Within(at, kUserSignatureHeaderSize, bytes.size())) return std::nullopt;
  const uint8_t* h = bytes.data() + at;
  if (!std::equal(kUserSignatureMagic.begin(), kUserSignatureMagic.end(), h)) {
    return std::nullopt;
  }
  uint64_t available = bytes.size() - at;
  uint32_t signed_by_offset = Le32(h + 24);
  uint32_t signed_by_size = Le32(h + 28);
  uint32_t signature_offset = Le32(h + 32);
  uint32_t signature_size = Le32(h + 36);
  uint32_t total_size = Le32(h + 40);
  // Every piece must lie inside the block, and the block inside the file; otherwise the bytes
  // after m_length are not a signature we can read, and stay unexplained.
  if (total_size < kUserSignatureHeaderSize || total_size > available) return std::nullopt;
  if (!Within(signature_offset, signature_size, total_size)) return std::nullopt;
  if (!Within(signed_by_offset, signed_by_size, total_size)) return std::nullopt;
  UserSignature user;
  user.offset = at;
  user.size = total_size;
  user.signature = AsText(bytes.subspan(at + signature_offset, signature_size));
  user.signed_by = AsText(bytes.subspan(at + signed_by_offset, signed_by_size));
  return user;
}

namespace {

// Finds the XCLBIN_MIRROR_DATA block between the end of the last section and `limit`.
void FindMirror(std::span<const uint8_t> bytes, uint64_t from, uint64_t limit, Xclbin* out) {
  if (from >= limit || limit > bytes.size()) return;
  std::string_view region(reinterpret_cast<const char*>(bytes.data()) + from, limit - from);
  size_t start = region.find(kMirrorStart);
  if (start == std::string_view::npos) return;
  size_t end = region.find(kMirrorEnd, start + kMirrorStart.size());
  if (end == std::string_view::npos) return;
  out->mirror = MirrorData{from + start, from + end, from + end + kMirrorEnd.size()};
}

}  // namespace

std::string FormatUuid(const Uuid& uuid) {
  std::string out;
  out.reserve(36);
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[uuid[i] >> 4]);
    out.push_back(kHex[uuid[i] & 0xF]);
  }
  return out;
}

std::optional<Uuid> ParseUuid(std::string_view text) {
  bool dashed = text.size() == 36;
  if (!dashed && text.size() != 32) return std::nullopt;
  if (dashed && (text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')) {
    return std::nullopt;
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Uuid out{};
  size_t digit = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) continue;
    int v = nibble(text[i]);
    if (v < 0) return std::nullopt;
    out[digit / 2] = static_cast<uint8_t>(out[digit / 2] | (digit % 2 == 0 ? v << 4 : v));
    ++digit;
  }
  return out;
}

bool IsNilUuid(const Uuid& uuid) {
  return std::all_of(uuid.begin(), uuid.end(), [](uint8_t b) { return b == 0; });
}

std::string EscapeForDisplay(std::string_view raw, size_t max_chars) {
  std::string out;
  for (char c : raw) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7F && b != '\\') {
      out.push_back(c);
    } else {
      out += fmt::format("\\x{:02x}", b);
    }
  }
  return out;
}

std::string XclbinModeName(uint16_t mode) {
  static constexpr std::string_view kNames[] = {
      "XCLBIN_FLAT",   "XCLBIN_PR",     "XCLBIN_TANDEM_STAGE2", "XCLBIN_TANDEM_STAGE2_WITH_PR",
      "XCLBIN_HW_EMU", "XCLBIN_SW_EMU", "XCLBIN_HW_EMU_PR"};
  if (mode < std::size(kNames)) return std::string(kNames[mode]);
  return fmt::format("UNKNOWN({})", mode);
}

bool IsKnownXclbinMode(uint16_t mode) {
  return mode <= static_cast<uint16_t>(XclbinMode::kHwEmuPr);
}

bool IsEmulationMode(uint16_t mode) {
  return mode == static_cast<uint16_t>(XclbinMode::kHwEmu) ||
         mode == static_cast<uint16_t>(XclbinMode::kSwEmu) ||
         mode == static_cast<uint16_t>(XclbinMode::kHwEmuPr);
}

std::vector<std::string> ActionMaskNames(uint16_t mask) {
  std::vector<std::string> out;
  for (unsigned bit = 0; bit < 16; ++bit) {
    unsigned value = 1u << bit;
    if ((mask & value) == 0) continue;
    if (value == kActionLoadAie) {
      out.emplace_back("LOAD_AIE");
    } else if (value == kActionLoadPdi) {
      out.emplace_back("LOAD_PDI");
    } else {
      out.push_back(fmt::format("0x{:x}", value));
    }
  }
  return out;
}

std::string SectionKindName(uint32_t kind) {
  static constexpr std::string_view kNames[] = {"BITSTREAM",
                                                "CLEARING_BITSTREAM",
                                                "EMBEDDED_METADATA",
                                                "FIRMWARE",
                                                "DEBUG_DATA",
                                                "SCHED_FIRMWARE",
                                                "MEM_TOPOLOGY",
                                                "CONNECTIVITY",
                                                "IP_LAYOUT",
                                                "DEBUG_IP_LAYOUT",
                                                "DESIGN_CHECK_POINT",
                                                "CLOCK_FREQ_TOPOLOGY",
                                                "MCS",
                                                "BMC",
                                                "BUILD_METADATA",
                                                "KEYVALUE_METADATA",
                                                "USER_METADATA",
                                                "DNA_CERTIFICATE",
                                                "PDI",
                                                "BITSTREAM_PARTIAL_PDI",
                                                "PARTITION_METADATA",
                                                "EMULATION_DATA",
                                                "SYSTEM_METADATA",
                                                "SOFT_KERNEL",
                                                "ASK_FLASH",
                                                "AIE_METADATA",
                                                "ASK_GROUP_TOPOLOGY",
                                                "ASK_GROUP_CONNECTIVITY",
                                                "SMARTNIC",
                                                "AIE_RESOURCES",
                                                "OVERLAY",
                                                "VENDER_METADATA",
                                                "AIE_PARTITION",
                                                "IP_METADATA",
                                                "AIE_RESOURCES_BIN",
                                                "AIE_TRACE_METADATA",
                                                "DTBO"};
  static_assert(std::size(kNames) == static_cast<size_t>(SectionKind::kDtbo) + 1);
  if (kind < std::size(kNames)) return std::string(kNames[kind]);
  return fmt::format("UNKNOWN({})", kind);
}

bool IsKnownSectionKind(uint32_t kind) { return kind <= static_cast<uint32_t>(SectionKind::kDtbo); }

std::string IpTypeName(uint32_t type) {
  static constexpr std::string_view kNames[] = {
      "IP_MB",       "IP_KERNEL",  "IP_DNASC",       "IP_DDR4_CONTROLLER",
      "IP_MEM_DDR4", "IP_MEM_HBM", "IP_MEM_HBM_ECC", "IP_PS_KERNEL"};
  if (type < std::size(kNames)) return std::string(kNames[type]);
  return fmt::format("UNKNOWN({})", type);
}

std::string IpControlName(uint32_t control) {
  static constexpr std::string_view kNames[] = {"AP_CTRL_HS", "AP_CTRL_CHAIN", "AP_CTRL_NONE",
                                                "AP_CTRL_ME", "ACCEL_ADAPTER", "FAST_ADAPTER"};
  if (control < std::size(kNames)) return std::string(kNames[control]);
  return fmt::format("UNKNOWN({})", control);
}

std::string MemTypeName(uint32_t type) {
  static constexpr std::string_view kNames[] = {
      "MEM_DDR3", "MEM_DDR4",     "MEM_DRAM", "MEM_STREAMING", "MEM_PREALLOCATED_GLOB",
      "MEM_ARE",  "MEM_HBM",      "MEM_BRAM", "MEM_URAM",      "MEM_STREAMING_CONNECTION",
      "MEM_HOST", "MEM_PS_KERNEL"};
  static_assert(std::size(kNames) == kMaxMemType + 1);
  if (type < std::size(kNames)) return std::string(kNames[type]);
  return fmt::format("UNKNOWN({})", type);
}

std::string ClockTypeName(uint32_t type) {
  static constexpr std::string_view kNames[] = {"UNUSED", "DATA", "KERNEL", "SYSTEM"};
  static_assert(std::size(kNames) == kMaxClockType + 1);
  if (type < std::size(kNames)) return std::string(kNames[type]);
  return fmt::format("UNKNOWN({})", type);
}

std::string AxlfHeader::Version() const {
  return fmt::format("{}.{}.{}", version_major, version_minor, version_patch);
}

uint64_t XclbinLayout::TableEnd() const {
  return kAxlfHeaderSize + uint64_t{kAxlfSectionHeaderSize} * header.num_sections;
}

uint64_t XclbinLayout::SignedEnd() const {
  // ParseXclbinLayout guarantees signature_length <= length when positive.
  if (header.signature_length > 0) {
    return header.length - static_cast<uint64_t>(header.signature_length);
  }
  return header.length;
}

std::string_view IpData::kernel_name() const {
  std::string_view n = name;
  return n.substr(0, n.find(':'));
}

std::string_view IpData::cu_name() const {
  std::string_view n = name;
  size_t colon = n.find(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

const SectionHeader* Xclbin::FindSection(SectionKind kind) const {
  for (const SectionHeader& s : sections) {
    if (s.kind == static_cast<uint32_t>(kind)) return &s;
  }
  return nullptr;
}

std::vector<std::string> Xclbin::KernelNames() const {
  std::vector<std::string> out;
  if (!ip_layout) return out;
  for (const IpData& ip : *ip_layout) {
    if (!ip.is_kernel()) continue;
    std::string kernel(ip.kernel_name());
    if (std::find(out.begin(), out.end(), kernel) == out.end()) out.push_back(std::move(kernel));
  }
  return out;
}

std::vector<std::string> Xclbin::ComputeUnitNames() const {
  std::vector<std::string> out;
  if (!ip_layout) return out;
  for (const IpData& ip : *ip_layout) {
    if (ip.is_kernel()) out.push_back(ip.name);
  }
  return out;
}

uint64_t XclbinLayoutBytesNeeded(std::span<const uint8_t> prefix, uint32_t max_sections) {
  if (prefix.size() < kAxlfHeaderSize) return kAxlfHeaderSize;
  uint32_t n = Le32(prefix.data() + kOffNumSections);
  if (n > std::min(max_sections, kAxlfMaxSections)) return kAxlfHeaderSize;
  return kAxlfHeaderSize + uint64_t{kAxlfSectionHeaderSize} * n;
}

StatusOr<XclbinLayout> ParseXclbinLayout(std::span<const uint8_t> prefix, uint32_t max_sections) {
  // Check the magic on whatever arrived, so a file of another type is named as such even
  // when it is shorter than the header.
  size_t magic_bytes = std::min<size_t>(prefix.size(), 8);
  if (magic_bytes > 0 && std::memcmp(prefix.data(), "xclbin2\0", magic_bytes) != 0) {
    std::string_view seen(reinterpret_cast<const char*>(prefix.data()), magic_bytes);
    return InvalidArgumentError(
        fmt::format("m_magic is '{}', not 'xclbin2': not an xclbin (axlf) file",
                    EscapeForDisplay(seen)),
        kReasonBadMagic);
  }
  if (prefix.size() < kAxlfHeaderSize) {
    return Truncated(fmt::format("file is {} bytes, shorter than the {}-byte axlf header",
                                 prefix.size(), kAxlfHeaderSize));
  }
  const uint8_t* p = prefix.data();
  XclbinLayout out;
  AxlfHeader& h = out.header;
  h.signature_length = static_cast<int32_t>(Le32(p + kOffSignatureLength));
  h.reserved_all_ff = AllBytes(p + kOffReserved, kReservedSize, 0xFF);
  h.key_block_all_ff = AllBytes(p + kOffKeyBlock, kKeyBlockSize, 0xFF);
  h.unique_id = Le64(p + kOffUniqueId);
  h.length = Le64(p + kOffLength);
  h.time_stamp = Le64(p + kOffTimeStamp);
  h.feature_rom_time_stamp = Le64(p + kOffFeatureRomTimeStamp);
  h.version_patch = Le16(p + kOffVersionPatch);
  h.version_major = p[kOffVersionMajor];
  h.version_minor = p[kOffVersionMinor];
  h.mode = Le16(p + kOffMode);
  h.action_mask = Le16(p + kOffActionMask);
  h.interface_uuid = ReadUuid(p + kOffInterfaceUuid);
  h.platform_vbnv =
      FixedString(p + kOffPlatformVbnv, kVbnvSize, "m_platformVBNV", &out.unterminated_fields);
  h.uuid = ReadUuid(p + kOffUuid);
  h.debug_bin =
      FixedString(p + kOffDebugBin, kDebugBinSize, "m_debug_bin", &out.unterminated_fields);
  h.num_sections = Le32(p + kOffNumSections);

  if (h.num_sections > kAxlfMaxSections) {
    return InvalidArgumentError(fmt::format("m_numSections is {}; the format allows at most {}",
                                            h.num_sections, kAxlfMaxSections),
                                kReasonTooManySections);
  }
  if (h.num_sections > max_sections) {
    return InvalidArgumentError(
        fmt::format("m_numSections is {}; at most {} are accepted (max_sections)", h.num_sections,
                    max_sections),
        kReasonTooManySections);
  }
  uint64_t table_end = out.TableEnd();
  if (prefix.size() < table_end) {
    return Truncated(fmt::format(
        "file is {} bytes, shorter than the header and the section table of m_numSections = {} "
        "({} bytes)",
        prefix.size(), h.num_sections, table_end));
  }
  if (h.length < table_end) {
    return InvalidArgumentError(
        fmt::format("m_length is {}, smaller than the header and the section table ({} bytes)",
                    h.length, table_end),
        kReasonLengthMismatch);
  }
  if (h.signature_length < -1) {
    return InvalidArgumentError(
        fmt::format("m_signature_length is {}; it must be -1 (unsigned) or the signature's size",
                    h.signature_length),
        kReasonBadHeader);
  }
  if (h.signature_length > 0 && static_cast<uint64_t>(h.signature_length) > h.length - table_end) {
    return InvalidArgumentError(
        fmt::format("m_signature_length is {} but m_length {} leaves only {} bytes after the "
                    "section table",
                    h.signature_length, h.length, h.length - table_end),
        kReasonBadHeader);
  }

  out.sections.reserve(h.num_sections);
  for (uint32_t i = 0; i < h.num_sections; ++i) {
    const uint8_t* s = p + kAxlfHeaderSize + size_t{i} * kAxlfSectionHeaderSize;
    SectionHeader section;
    section.kind = Le32(s + kSecOffKind);
    section.name =
        FixedString(s + kSecOffName, kSecNameSize, fmt::format("m_sections[{}].m_sectionName", i),
                    &out.unterminated_fields);
    section.offset = Le64(s + kSecOffOffset);
    section.size = Le64(s + kSecOffSize);
    out.sections.push_back(std::move(section));
  }
  return out;
}

StatusOr<Xclbin> ParseXclbin(std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(XclbinLayout layout, ParseXclbinLayout(bytes));
  const uint64_t file_size = bytes.size();
  if (file_size < layout.header.length) {
    return Truncated(
        fmt::format("file is {} bytes but m_length says {}", file_size, layout.header.length));
  }
  Xclbin out;
  out.file_size = file_size;
  out.header = std::move(layout.header);
  out.sections = std::move(layout.sections);
  out.unterminated_fields = std::move(layout.unterminated_fields);

  uint64_t sections_end = kAxlfHeaderSize + uint64_t{kAxlfSectionHeaderSize} * out.sections.size();
  for (size_t i = 0; i < out.sections.size(); ++i) {
    const SectionHeader& s = out.sections[i];
    if (!Within(s.offset, s.size, file_size)) {
      return InvalidArgumentError(
          fmt::format("m_sections[{}] ({}) spans bytes {}..+{}, outside the {}-byte file", i,
                      SectionKindName(s.kind), s.offset, s.size, file_size),
          kReasonSectionOutOfBounds);
    }
    if (s.size > 0) sections_end = std::max(sections_end, s.offset + s.size);
  }

  if (out.header.signature_length > 0) {
    uint64_t size = static_cast<uint64_t>(out.header.signature_length);
    out.signatures.pkcs7 = ByteRange{out.header.length - size, size};
  }
  if (file_size > out.header.length) {
    out.signatures.user = FindUserSignature(bytes, out.header.length);
  }
  uint64_t signed_end = out.signatures.pkcs7 ? out.signatures.pkcs7->offset : out.header.length;
  FindMirror(bytes, sections_end, signed_end, &out);

  // Typed payloads: the first section of each kind.
  for (size_t i = 0; i < out.sections.size(); ++i) {
    const SectionHeader& s = out.sections[i];
    std::span<const uint8_t> payload = Slice(bytes, ByteRange{s.offset, s.size});
    switch (static_cast<SectionKind>(s.kind)) {
      case SectionKind::kIpLayout:
        if (!out.ip_layout) RETURN_IF_ERROR(ReadIpLayout(payload, i, &out));
        break;
      case SectionKind::kMemTopology:
        if (!out.mem_topology) RETURN_IF_ERROR(ReadMemTopology(payload, i, &out));
        break;
      case SectionKind::kConnectivity:
        if (!out.connectivity) RETURN_IF_ERROR(ReadConnectivity(payload, i, &out));
        break;
      case SectionKind::kClockFreqTopology:
        if (!out.clocks) RETURN_IF_ERROR(ReadClockTopology(payload, i, &out));
        break;
      case SectionKind::kDebugIpLayout:
        if (!out.debug_ip_count) RETURN_IF_ERROR(ReadDebugIpLayout(payload, i, &out));
        break;
      case SectionKind::kBuildMetadata:
        if (!out.build_metadata) out.build_metadata = AsText(payload);
        break;
      case SectionKind::kKeyValueMetadata:
        if (!out.keyvalue_metadata) out.keyvalue_metadata = AsText(payload);
        break;
      case SectionKind::kUserMetadata:
        if (!out.user_metadata) out.user_metadata = AsText(payload);
        break;
      case SectionKind::kEmulationData:
        if (!out.emulation_data) out.emulation_data = ByteRange{s.offset, s.size};
        break;
      default:
        break;
    }
  }
  return out;
}

StatusOr<Xclbin> ParseXclbin(std::string_view bytes) {
  return ParseXclbin(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

std::span<const uint8_t> Slice(std::span<const uint8_t> bytes, ByteRange range) {
  if (!Within(range.offset, range.size, bytes.size())) return {};
  return bytes.subspan(static_cast<size_t>(range.offset), static_cast<size_t>(range.size));
}

}  // namespace fpgahost::images
