#include "images/xclbin_validator.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

namespace fpgahost::images {
namespace {

Status Rejected(std::string_view reason, std::string message) {
  return InvalidArgumentError(std::move(message), std::string(reason));
}

std::string Quoted(std::string_view raw) { return "'" + EscapeForDisplay(raw) + "'"; }

std::string SectionLabel(const std::vector<SectionHeader>& sections, size_t i) {
  return fmt::format("m_sections[{}] ({} {})", i, SectionKindName(sections[i].kind),
                     Quoted(sections[i].name));
}

std::string ShellNames(const ShellCatalogue& catalogue) {
  std::string out;
  for (const ShellSpec& s : catalogue.shells()) {
    if (!out.empty()) out += ", ";
    out += s.name;
  }
  return out;
}

Status CheckSize(uint64_t size, const XclbinValidationOptions& options) {
  if (size > options.max_size) {
    return PayloadTooLargeError(
        fmt::format("file is {} bytes, over the {}-byte limit for xclbins (max_size)", size,
                    options.max_size),
        kReasonInputSizeIllegal);
  }
  return Status::Ok();
}

// Header and section table rules that the reader tolerates.
Status CheckLayout(const XclbinLayout& layout, std::optional<uint64_t> total_size) {
  const AxlfHeader& h = layout.header;
  if (!layout.unterminated_fields.empty()) {
    return Rejected(kReasonBadHeader, fmt::format("{} fills its field with no terminating NUL",
                                                  layout.unterminated_fields.front()));
  }
  if (h.signature_length == 0) {
    return Rejected(kReasonBadHeader,
                    "m_signature_length is 0; it must be -1 (unsigned) or the signature's size");
  }
  if (total_size && *total_size < h.length) {
    return Rejected(kReasonTruncated,
                    fmt::format("file is {} bytes but m_length says {}", *total_size, h.length));
  }
  const std::vector<SectionHeader>& sections = layout.sections;
  const uint64_t table_end = layout.TableEnd();
  const uint64_t signed_end = layout.SignedEnd();
  std::string data_end = h.signature_length > 0
                             ? fmt::format("the PKCS#7 signature at {}", signed_end)
                             : fmt::format("m_length {}", h.length);
  for (size_t i = 0; i < sections.size(); ++i) {
    const SectionHeader& s = sections[i];
    if (!IsKnownSectionKind(s.kind)) {
      return Rejected(
          kReasonSectionUnknownKind,
          fmt::format("m_sections[{}].m_sectionKind is {}, not a known section kind", i, s.kind));
    }
    // "Not present" sections are written with size 0 and may sit anywhere up to the end.
    if (s.size == 0) {
      if (s.offset > signed_end) {
        return Rejected(kReasonSectionOutOfBounds,
                        fmt::format("{} m_sectionOffset {} is past {}", SectionLabel(sections, i),
                                    s.offset, data_end));
      }
      continue;
    }
    if (s.offset % 8 != 0) {
      return Rejected(kReasonSectionMisaligned,
                      fmt::format("{} m_sectionOffset {} is not a multiple of 8",
                                  SectionLabel(sections, i), s.offset));
    }
    if (s.offset < table_end || s.offset > signed_end || s.size > signed_end - s.offset) {
      return Rejected(
          kReasonSectionOutOfBounds,
          fmt::format("{} (m_sectionOffset {}, m_sectionSize {}) is not between the end of the "
                      "section table at {} and {}",
                      SectionLabel(sections, i), s.offset, s.size, table_end, data_end));
    }
  }
  std::vector<size_t> order;
  for (size_t i = 0; i < sections.size(); ++i) {
    if (sections[i].size > 0) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(sections[a].offset, a) < std::tie(sections[b].offset, b);
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const SectionHeader& prev = sections[order[k - 1]];
    const SectionHeader& cur = sections[order[k]];
    // Both lie inside signed_end (checked above), so the sums cannot overflow.
    if (prev.offset + prev.size > cur.offset) {
      size_t first = std::min(order[k - 1], order[k]);
      size_t second = std::max(order[k - 1], order[k]);
      return Rejected(
          kReasonSectionOverlap,
          fmt::format("{} and {} overlap (bytes {} to {})", SectionLabel(sections, first),
                      SectionLabel(sections, second), cur.offset,
                      std::min(prev.offset + prev.size, cur.offset + cur.size)));
    }
  }
  return Status::Ok();
}

Status CheckMode(const AxlfHeader& h, const XclbinValidationOptions& options) {
  if (!IsKnownXclbinMode(h.mode)) {
    return Rejected(kReasonModeNotSupported,
                    fmt::format("m_mode is {}, not an xclbin mode", h.mode));
  }
  for (XclbinMode m : options.allowed_modes) {
    if (static_cast<uint16_t>(m) == h.mode) return Status::Ok();
  }
  std::string allowed;
  for (XclbinMode m : options.allowed_modes) {
    if (!allowed.empty()) allowed += ", ";
    allowed += XclbinModeName(static_cast<uint16_t>(m));
  }
  return Rejected(
      kReasonModeNotSupported,
      fmt::format("m_mode {} ({}) is not loaded by this fleet, which takes {}",
                  XclbinModeName(h.mode), h.mode, allowed.empty() ? "no mode at all" : allowed));
}

StatusOr<const ShellSpec*> MatchShell(const AxlfHeader& h, const ShellCatalogue& catalogue) {
  if (!IsNilUuid(h.interface_uuid)) {
    const ShellSpec* shell = catalogue.FindByInterfaceUuid(h.interface_uuid);
    if (shell == nullptr) {
      return Rejected(kReasonShellNotSupported,
                      fmt::format("m_interface_uuid {} is the interface of no shell of this fleet "
                                  "({})",
                                  FormatUuid(h.interface_uuid), ShellNames(catalogue)));
    }
    if (!h.platform_vbnv.empty() && h.platform_vbnv != shell->vbnv) {
      return Rejected(
          kReasonShellNotSupported,
          fmt::format("m_platformVBNV {} does not match shell {} (VBNV {}), whose interface UUID "
                      "m_interface_uuid names",
                      Quoted(h.platform_vbnv), shell->name, Quoted(shell->vbnv)));
    }
    return shell;
  }
  if (h.platform_vbnv.empty()) {
    return Rejected(kReasonShellNotSupported,
                    "the file names no platform: m_interface_uuid is nil and m_platformVBNV is "
                    "empty");
  }
  const ShellSpec* shell = catalogue.FindByVbnv(h.platform_vbnv);
  if (shell == nullptr) {
    return Rejected(kReasonShellNotSupported,
                    fmt::format("m_platformVBNV {} is no shell of this fleet ({})",
                                Quoted(h.platform_vbnv), ShellNames(catalogue)));
  }
  return shell;
}

// Under policy require a file without a PKCS#7 signature can be refused from its header.
Status CheckSignaturePresent(const AxlfHeader& h, const XclbinValidationOptions& options,
                             const std::optional<UserSignature>& user) {
  if (options.signature_policy != SignaturePolicy::kRequire || h.signature_length > 0) {
    return Status::Ok();
  }
  std::string message = fmt::format(
      "the file has no PKCS#7 signature (m_signature_length is {}) and this fleet requires one",
      h.signature_length);
  if (user) {
    message += fmt::format("; its user signature {} cannot be verified", Quoted(user->signature));
  }
  return Rejected(kReasonSignatureRequired, std::move(message));
}

struct PrefixVerdict {
  XclbinLayout layout;
  const ShellSpec* shell = nullptr;
};

// The checks that need only the header and the section table, in the order ValidateXclbin
// runs them. `whole` is the whole file when available, for better messages only.
StatusOr<PrefixVerdict> CheckPrefixStages(std::span<const uint8_t> prefix,
                                          std::optional<uint64_t> total_size,
                                          const XclbinValidationOptions& options,
                                          std::span<const uint8_t> whole) {
  if (total_size) RETURN_IF_ERROR(CheckSize(*total_size, options));
  PrefixVerdict out;
  ASSIGN_OR_RETURN(out.layout, ParseXclbinLayout(prefix, options.max_sections));
  RETURN_IF_ERROR(CheckLayout(out.layout, total_size));
  RETURN_IF_ERROR(CheckMode(out.layout.header, options));
  if (options.shells) {
    ASSIGN_OR_RETURN(out.shell, MatchShell(out.layout.header, *options.shells));
  }
  std::optional<UserSignature> user;
  if (!whole.empty()) user = FindUserSignature(whole, out.layout.header.length);
  RETURN_IF_ERROR(CheckSignaturePresent(out.layout.header, options, user));
  return out;
}

// Only an xclbinutil user signature may follow m_length.
Status CheckTrailingBytes(const Xclbin& x) {
  if (x.file_size == x.header.length) return Status::Ok();
  uint64_t extra = x.file_size - x.header.length;
  if (x.signatures.user && x.signatures.user->size == extra) return Status::Ok();
  if (x.signatures.user) {
    return Rejected(kReasonLengthMismatch,
                    fmt::format("file is {} bytes but m_length says {} and the user signature "
                                "block after it is {} bytes",
                                x.file_size, x.header.length, x.signatures.user->size));
  }
  return Rejected(kReasonLengthMismatch,
                  fmt::format("file is {} bytes but m_length says {}; the {} bytes after m_length "
                              "are not a signature block",
                              x.file_size, x.header.length, extra));
}

Status CheckMetadata(const Xclbin& x) {
  // The reader has read every typed section whole; what is left is whether they agree.
  if (!x.unterminated_fields.empty()) {
    return Rejected(
        kReasonMetadataInconsistent,
        fmt::format("{} fills its field with no terminating NUL", x.unterminated_fields.front()));
  }
  static constexpr SectionKind kSingletons[] = {
      SectionKind::kIpLayout,          SectionKind::kMemTopology,   SectionKind::kConnectivity,
      SectionKind::kClockFreqTopology, SectionKind::kDebugIpLayout, SectionKind::kBuildMetadata,
      SectionKind::kKeyValueMetadata,  SectionKind::kEmulationData};
  for (SectionKind kind : kSingletons) {
    std::optional<size_t> first;
    for (size_t i = 0; i < x.sections.size(); ++i) {
      if (x.sections[i].kind != static_cast<uint32_t>(kind)) continue;
      if (!first) {
        first = i;
        continue;
      }
      return Rejected(kReasonMetadataInconsistent,
                      fmt::format("two {} sections, m_sections[{}] and m_sections[{}]; the "
                                  "runtime would use only the first",
                                  SectionKindName(static_cast<uint32_t>(kind)), *first, i));
    }
  }
  if (x.mem_topology) {
    for (size_t i = 0; i < x.mem_topology->size(); ++i) {
      uint32_t type = (*x.mem_topology)[i].type;
      if (type > kMaxMemType) {
        return Rejected(
            kReasonMetadataInconsistent,
            fmt::format("MEM_TOPOLOGY m_mem_data[{}].m_type is {}, not a memory type", i, type));
      }
    }
  }
  if (x.clocks) {
    for (size_t i = 0; i < x.clocks->size(); ++i) {
      uint32_t type = (*x.clocks)[i].type;
      if (type > kMaxClockType) {
        return Rejected(
            kReasonMetadataInconsistent,
            fmt::format("CLOCK_FREQ_TOPOLOGY m_clock_freq[{}].m_type is {}, not a clock type", i,
                        type));
      }
    }
  }
  if (x.connectivity) {
    const size_t ips = x.ip_layout ? x.ip_layout->size() : 0;
    const size_t mems = x.mem_topology ? x.mem_topology->size() : 0;
    for (size_t i = 0; i < x.connectivity->size(); ++i) {
      const Connection& c = (*x.connectivity)[i];
      std::string field = fmt::format("CONNECTIVITY m_connection[{}]", i);
      if (c.arg_index < 0) {
        return Rejected(kReasonMetadataInconsistent,
                        fmt::format("{}.arg_index is {}", field, c.arg_index));
      }
      if (c.ip_layout_index < 0 || static_cast<size_t>(c.ip_layout_index) >= ips) {
        return Rejected(kReasonMetadataInconsistent,
                        fmt::format("{}.m_ip_layout_index is {} but IP_LAYOUT has {} entries",
                                    field, c.ip_layout_index, ips));
      }
      const IpData& ip = (*x.ip_layout)[static_cast<size_t>(c.ip_layout_index)];
      if (!ip.is_kernel()) {
        return Rejected(kReasonMetadataInconsistent,
                        fmt::format("{}.m_ip_layout_index {} points at IP_LAYOUT m_ip_data[{}] "
                                    "{}, which is {}, not a kernel",
                                    field, c.ip_layout_index, c.ip_layout_index, Quoted(ip.name),
                                    IpTypeName(ip.type)));
      }
      if (c.mem_data_index < 0 || static_cast<size_t>(c.mem_data_index) >= mems) {
        return Rejected(kReasonMetadataInconsistent,
                        fmt::format("{}.mem_data_index is {} but MEM_TOPOLOGY has {} entries",
                                    field, c.mem_data_index, mems));
      }
      const MemData& mem = (*x.mem_topology)[static_cast<size_t>(c.mem_data_index)];
      if (!mem.used) {
        return Rejected(kReasonMetadataInconsistent,
                        fmt::format("{}.mem_data_index {} points at MEM_TOPOLOGY m_mem_data[{}] "
                                    "{}, which is marked unused (m_used = 0)",
                                    field, c.mem_data_index, c.mem_data_index, Quoted(mem.tag)));
      }
    }
  }
  return Status::Ok();
}

bool HasData(const Xclbin& x, SectionKind kind) {
  return std::any_of(x.sections.begin(), x.sections.end(), [kind](const SectionHeader& s) {
    return s.kind == static_cast<uint32_t>(kind) && s.size > 0;
  });
}

Status CheckPayload(const Xclbin& x) {
  const uint16_t mode = x.header.mode;
  if (IsEmulationMode(mode)) {
    if (HasData(x, SectionKind::kEmulationData) || HasData(x, SectionKind::kBitstream) ||
        !x.ComputeUnitNames().empty()) {
      return Status::Ok();
    }
    return Rejected(kReasonBitstreamMissing,
                    fmt::format("m_mode {} needs something to emulate: an EMULATION_DATA or "
                                "BITSTREAM section with data, or an IP_LAYOUT with a kernel",
                                XclbinModeName(mode)));
  }
  if (HasData(x, SectionKind::kBitstream) || HasData(x, SectionKind::kBitstreamPartialPdi) ||
      HasData(x, SectionKind::kPdi)) {
    return Status::Ok();
  }
  return Rejected(kReasonBitstreamMissing,
                  fmt::format("m_mode {} needs a BITSTREAM, BITSTREAM_PARTIAL_PDI or PDI section "
                              "with data, and the file has none",
                              XclbinModeName(mode)));
}

bool IsStreamingMemType(uint32_t type) { return type == 3 || type == 9; }

Status CheckMemoryBanks(const Xclbin& x, const ShellSpec& shell) {
  if (shell.memory_banks.empty() || !x.mem_topology) return Status::Ok();
  for (size_t i = 0; i < x.mem_topology->size(); ++i) {
    const MemData& mem = (*x.mem_topology)[i];
    // Unused banks are placeholders, and streaming entries reuse the size field as a route id.
    if (!mem.used || IsStreamingMemType(mem.type)) continue;
    const MemoryBank* bank = shell.FindMemoryBank(mem.tag);
    if (bank == nullptr) {
      return Rejected(kReasonShellNotSupported,
                      fmt::format("MEM_TOPOLOGY m_mem_data[{}].m_tag {} is not a memory bank of "
                                  "shell {}",
                                  i, Quoted(mem.tag), shell.name));
    }
    if (!bank->type.empty() && bank->type != MemTypeName(mem.type)) {
      return Rejected(
          kReasonShellNotSupported,
          fmt::format("MEM_TOPOLOGY m_mem_data[{}].m_type is {} but bank {} of shell "
                      "{} is {}",
                      i, MemTypeName(mem.type), Quoted(mem.tag), shell.name, bank->type));
    }
    if (mem.size_kb > bank->size_kb) {
      return Rejected(kReasonShellNotSupported,
                      fmt::format("MEM_TOPOLOGY m_mem_data[{}].m_size is {} KB but bank {} of "
                                  "shell {} has {} KB",
                                  i, mem.size_kb, Quoted(mem.tag), shell.name, bank->size_kb));
    }
  }
  return Status::Ok();
}

Status CheckClocks(const Xclbin& x, const ShellSpec& shell) {
  if (shell.clocks.empty() || !x.clocks) return Status::Ok();
  for (size_t i = 0; i < x.clocks->size(); ++i) {
    const ClockFreq& clock = (*x.clocks)[i];
    if (clock.type == kClockTypeUnused) continue;
    std::string field =
        fmt::format("CLOCK_FREQ_TOPOLOGY m_clock_freq[{}] {}", i, Quoted(clock.name));
    std::optional<uint32_t> limit = shell.MaxClockMhz(clock.type, clock.name);
    if (!limit) {
      return Rejected(kReasonClockIllegal,
                      fmt::format("{} is a {} clock, for which shell {} sets no limit", field,
                                  ClockTypeName(clock.type), shell.name));
    }
    if (clock.freq_mhz > *limit) {
      return Rejected(
          kReasonClockIllegal,
          fmt::format("{} is {} MHz, above the {} MHz limit of shell {} for {} clocks", field,
                      clock.freq_mhz, *limit, shell.name, ClockTypeName(clock.type)));
    }
  }
  return Status::Ok();
}

Status CheckSignature(std::span<const uint8_t> bytes, const XclbinValidationOptions& options,
                      ValidatedXclbin* out) {
  const XclbinSignatures& sigs = out->xclbin.signatures;
  const SignaturePolicy policy = options.signature_policy;
  if (sigs.pkcs7) {
    out->signature = SignatureState::kNotChecked;
    if (policy == SignaturePolicy::kNone) return Status::Ok();
    if (policy == SignaturePolicy::kWarn && options.trusted_certs.empty()) {
      out->warnings.push_back(
          {kWarningSignatureNotChecked,
           "the file is signed, but no trusted certificates are configured to check it"});
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(XclbinSigner signer, VerifyXclbinSignature(bytes, options.trusted_certs));
    out->signature = SignatureState::kVerified;
    out->signer = std::move(signer);
    return Status::Ok();
  }
  // Under kRequire, CheckSignaturePresent has already refused the file.
  if (sigs.user) {
    out->signature = SignatureState::kUserSignature;
    if (policy == SignaturePolicy::kWarn) {
      out->warnings.push_back(
          {kWarningSignatureNotVerifiable,
           fmt::format("the file carries only a user signature {}, which cannot be verified",
                       Quoted(sigs.user->signature))});
    }
    return Status::Ok();
  }
  out->signature = SignatureState::kUnsigned;
  if (policy == SignaturePolicy::kWarn) {
    out->warnings.push_back({kWarningSignatureMissing, "the file is not signed"});
  }
  return Status::Ok();
}

}  // namespace

std::optional<SignaturePolicy> ParseSignaturePolicy(std::string_view text) {
  if (text == "none") return SignaturePolicy::kNone;
  if (text == "warn") return SignaturePolicy::kWarn;
  if (text == "require") return SignaturePolicy::kRequire;
  return std::nullopt;
}

std::string_view SignaturePolicyName(SignaturePolicy policy) {
  switch (policy) {
    case SignaturePolicy::kNone:
      return "none";
    case SignaturePolicy::kWarn:
      return "warn";
    case SignaturePolicy::kRequire:
      return "require";
  }
  return "unknown";
}

std::string_view SignatureStateName(SignatureState state) {
  switch (state) {
    case SignatureState::kUnsigned:
      return "unsigned";
    case SignatureState::kUserSignature:
      return "user_signature";
    case SignatureState::kNotChecked:
      return "not_checked";
    case SignatureState::kVerified:
      return "verified";
  }
  return "unknown";
}

std::vector<XclbinMode> HardwareModes() {
  return {XclbinMode::kFlat, XclbinMode::kPr, XclbinMode::kTandemStage2,
          XclbinMode::kTandemStage2WithPr};
}

std::vector<XclbinMode> EmulationModes() {
  return {XclbinMode::kHwEmu, XclbinMode::kSwEmu, XclbinMode::kHwEmuPr};
}

uint64_t XclbinPrefixBytesNeeded(std::span<const uint8_t> prefix,
                                 const XclbinValidationOptions& options) {
  return XclbinLayoutBytesNeeded(prefix, options.max_sections);
}

Status CheckXclbinPrefix(std::span<const uint8_t> prefix, std::optional<uint64_t> total_size,
                         const XclbinValidationOptions& options) {
  return CheckPrefixStages(prefix, total_size, options, {}).status();
}

StatusOr<ValidatedXclbin> ValidateXclbin(std::span<const uint8_t> bytes,
                                         const XclbinValidationOptions& options) {
  ASSIGN_OR_RETURN(PrefixVerdict prefix, CheckPrefixStages(bytes, bytes.size(), options, bytes));
  ValidatedXclbin out;
  ASSIGN_OR_RETURN(out.xclbin, ParseXclbin(bytes));
  if (prefix.shell != nullptr) out.shell = prefix.shell->name;
  RETURN_IF_ERROR(CheckTrailingBytes(out.xclbin));
  RETURN_IF_ERROR(CheckMetadata(out.xclbin));
  if (prefix.shell != nullptr) RETURN_IF_ERROR(CheckMemoryBanks(out.xclbin, *prefix.shell));
  RETURN_IF_ERROR(CheckPayload(out.xclbin));
  if (prefix.shell != nullptr) RETURN_IF_ERROR(CheckClocks(out.xclbin, *prefix.shell));
  RETURN_IF_ERROR(CheckSignature(bytes, options, &out));
  return out;
}

}  // namespace fpgahost::images
