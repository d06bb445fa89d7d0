#include "images/xclbin_writer.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <set>

#include "images/axlf_layout.h"
#include "images/openssl_util.h"

namespace fpgahost::images {
namespace {

using namespace axlf;  // NOLINT(google-build-using-namespace): the layout constants

using OJson = nlohmann::ordered_json;

Status WriteInvalid(std::string message) {
  return InvalidArgumentError(std::move(message), kReasonXclbinWriteInvalid);
}
Status PackInvalid(std::string message) {
  return InvalidArgumentError(std::move(message), kReasonPackInvalid);
}

void PutLe(std::vector<uint8_t>& out, size_t offset, uint64_t value, size_t width) {
  for (size_t i = 0; i < width; ++i) out[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

// Copies `text` into a NUL-terminated fixed-size field; the field must keep its NUL.
Status PutFixedString(std::vector<uint8_t>& out, size_t offset, size_t size, std::string_view text,
                      std::string_view field) {
  if (text.size() >= size) {
    return WriteInvalid(fmt::format("{} '{}' is {} bytes; the field holds at most {}", field,
                                    EscapeForDisplay(text), text.size(), size - 1));
  }
  if (text.find('\0') != std::string_view::npos) {
    return WriteInvalid(fmt::format("{} contains a NUL byte", field));
  }
  std::memcpy(out.data() + offset, text.data(), text.size());
  return Status::Ok();
}

std::string Hex(uint64_t v) { return fmt::format("0x{:x}", v); }

std::string HexBytes(const uint8_t* p, size_t n) {
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", p[i]);
  return out;
}

Status CheckCount(std::string_view what, size_t count, size_t max) {
  if (count > max) {
    return WriteInvalid(
        fmt::format("{} has {} entries; the format allows at most {}", what, count, max));
  }
  return Status::Ok();
}

XclbinSection NewSection(SectionKind kind, size_t size) {
  XclbinSection s;
  s.kind = static_cast<uint32_t>(kind);
  s.name = DefaultSectionName(s.kind);
  s.payload.assign(size, 0);
  return s;
}

// The mirror data is JSON as Boost.PropertyTree writes it (that is what xclbinutil uses): every
// leaf a string, '/' escaped, repeated "section_header" keys. nlohmann cannot hold repeated
// keys, so the text is assembled here.
void AppendPtreeString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    auto b = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '/':
        out += "\\/";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (b < 0x20 || b >= 0x7F) {
          out += fmt::format("\\u{:04X}", b);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void AppendPtreeJson(std::string& out, const OJson& j) {
  if (j.is_object()) {
    out.push_back('{');
    bool first = true;
    for (const auto& [key, value] : j.items()) {
      if (!first) out.push_back(',');
      first = false;
      AppendPtreeString(out, key);
      out.push_back(':');
      AppendPtreeJson(out, value);
    }
    out.push_back('}');
  } else if (j.is_array()) {
    out.push_back('[');
    for (size_t i = 0; i < j.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendPtreeJson(out, j[i]);
    }
    out.push_back(']');
  } else if (j.is_string()) {
    AppendPtreeString(out, j.get_ref<const std::string&>());
  } else if (j.is_null()) {
    AppendPtreeString(out, "");
  } else {
    AppendPtreeString(out, j.dump());
  }
}

OJson MemDataMirror(const MemData& m) {
  return OJson{{"m_type", MemTypeName(m.type)},
               {"m_used", std::to_string(m.used ? 1 : 0)},
               {"m_sizeKB", Hex(m.size_kb)},
               {"m_tag", m.tag},
               {"m_base_address", Hex(m.base_address)}};
}

OJson ConnectionMirror(const Connection& c) {
  // xclbinutil prints the three as unsigned.
  return OJson{{"arg_index", std::to_string(static_cast<uint32_t>(c.arg_index))},
               {"m_ip_layout_index", std::to_string(static_cast<uint32_t>(c.ip_layout_index))},
               {"mem_data_index", std::to_string(static_cast<uint32_t>(c.mem_data_index))}};
}

StatusOr<std::vector<uint8_t>> MemDataPayload(const std::vector<MemData>& mems,
                                              std::string_view what) {
  RETURN_IF_ERROR(CheckCount(what, mems.size(), INT32_MAX / kMemDataSize));
  std::vector<uint8_t> p(kMemTopologyEntries + mems.size() * kMemDataSize, 0);
  PutLe(p, 0, mems.size(), 4);
  for (size_t i = 0; i < mems.size(); ++i) {
    const MemData& m = mems[i];
    size_t e = kMemTopologyEntries + i * kMemDataSize;
    p[e] = m.type;
    p[e + 1] = m.used ? 1 : 0;
    PutLe(p, e + 8, m.size_kb, 8);
    PutLe(p, e + 16, m.base_address, 8);
    RETURN_IF_ERROR(PutFixedString(p, e + 24, kMemTagSize, m.tag,
                                   fmt::format("{} m_mem_data[{}].m_tag", what, i)));
  }
  return p;
}

StatusOr<std::vector<uint8_t>> ConnectionPayload(const std::vector<Connection>& connections,
                                                 std::string_view what) {
  RETURN_IF_ERROR(CheckCount(what, connections.size(), INT32_MAX / kConnectionSize));
  std::vector<uint8_t> p(kConnectivityEntries + connections.size() * kConnectionSize, 0);
  PutLe(p, 0, connections.size(), 4);
  for (size_t i = 0; i < connections.size(); ++i) {
    size_t e = kConnectivityEntries + i * kConnectionSize;
    PutLe(p, e, static_cast<uint32_t>(connections[i].arg_index), 4);
    PutLe(p, e + 4, static_cast<uint32_t>(connections[i].ip_layout_index), 4);
    PutLe(p, e + 8, static_cast<uint32_t>(connections[i].mem_data_index), 4);
  }
  return p;
}

OJson ConnectivityMirror(std::string_view key, const std::vector<Connection>& connections) {
  OJson list = OJson::array();
  for (const Connection& c : connections) list.push_back(ConnectionMirror(c));
  return OJson{{key, {{"m_count", std::to_string(connections.size())}, {"m_connection", list}}}};
}

OJson MemTopologyMirror(std::string_view key, const std::vector<MemData>& mems) {
  OJson list = OJson::array();
  for (const MemData& m : mems) list.push_back(MemDataMirror(m));
  return OJson{{key, {{"m_count", std::to_string(mems.size())}, {"m_mem_data", list}}}};
}

}  // namespace

std::string DefaultSectionName(uint32_t kind) {
  std::string name = SectionKindName(kind);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name.size() > kSecNameSize - 1) name.resize(kSecNameSize - 1);
  return name;
}

uint32_t KernelIpProperties(bool interrupt_enabled, uint8_t interrupt_id, uint8_t ip_control) {
  return (interrupt_enabled ? 1u : 0u) | ((uint32_t{interrupt_id} & 0x7F) << 1) |
         (uint32_t{ip_control} << 8);
}

StatusOr<XclbinSection> IpLayoutSection(const std::vector<IpData>& ips) {
  RETURN_IF_ERROR(CheckCount("IP_LAYOUT", ips.size(), INT32_MAX / kIpDataSize));
  XclbinSection s = NewSection(SectionKind::kIpLayout, kIpLayoutEntries + ips.size() * kIpDataSize);
  PutLe(s.payload, 0, ips.size(), 4);
  OJson list = OJson::array();
  for (size_t i = 0; i < ips.size(); ++i) {
    const IpData& ip = ips[i];
    size_t e = kIpLayoutEntries + i * kIpDataSize;
    PutLe(s.payload, e, ip.type, 4);
    PutLe(s.payload, e + 4, ip.properties, 4);
    PutLe(s.payload, e + 8, ip.base_address, 8);
    RETURN_IF_ERROR(PutFixedString(s.payload, e + 16, kIpNameSize, ip.name,
                                   fmt::format("IP_LAYOUT m_ip_data[{}].m_name", i)));
    // What xclbinutil's mirror shows for each IP type.
    OJson entry{{"m_type", IpTypeName(ip.type)}};
    if (ip.type >= 4 && ip.type <= 6) {  // IP_MEM_DDR4, IP_MEM_HBM, IP_MEM_HBM_ECC
      entry["m_index"] = std::to_string(ip.properties & 0xFFFF);
      entry["m_pc_index"] = std::to_string((ip.properties >> 16) & 0xFF);
    } else if (ip.type == kIpTypeKernel) {
      entry["m_int_enable"] = std::to_string(ip.interrupt_enabled() ? 1 : 0);
      entry["m_interrupt_id"] = std::to_string(ip.interrupt_id());
      entry["m_ip_control"] = IpControlName(ip.ip_control());
    } else {
      entry["properties"] = Hex(ip.properties);
    }
    entry["m_base_address"] =
        ip.base_address == UINT64_MAX ? std::string("not_used") : Hex(ip.base_address);
    entry["m_name"] = ip.name;
    list.push_back(std::move(entry));
  }
  s.mirror = OJson{{"ip_layout", {{"m_count", std::to_string(ips.size())}, {"m_ip_data", list}}}};
  return s;
}

StatusOr<XclbinSection> MemTopologySection(const std::vector<MemData>& mems) {
  XclbinSection s = NewSection(SectionKind::kMemTopology, 0);
  ASSIGN_OR_RETURN(s.payload, MemDataPayload(mems, "MEM_TOPOLOGY"));
  s.mirror = MemTopologyMirror("mem_topology", mems);
  return s;
}

StatusOr<XclbinSection> ConnectivitySection(const std::vector<Connection>& connections) {
  XclbinSection s = NewSection(SectionKind::kConnectivity, 0);
  ASSIGN_OR_RETURN(s.payload, ConnectionPayload(connections, "CONNECTIVITY"));
  s.mirror = ConnectivityMirror("connectivity", connections);
  return s;
}

StatusOr<XclbinSection> ClockFreqTopologySection(const std::vector<ClockFreq>& clocks) {
  RETURN_IF_ERROR(CheckCount("CLOCK_FREQ_TOPOLOGY", clocks.size(), INT16_MAX));
  XclbinSection s = NewSection(SectionKind::kClockFreqTopology,
                               kClockTopologyEntries + clocks.size() * kClockFreqSize);
  PutLe(s.payload, 0, clocks.size(), 2);
  OJson list = OJson::array();
  for (size_t i = 0; i < clocks.size(); ++i) {
    const ClockFreq& c = clocks[i];
    size_t e = kClockTopologyEntries + i * kClockFreqSize;
    PutLe(s.payload, e, c.freq_mhz, 2);
    s.payload[e + 2] = c.type;
    RETURN_IF_ERROR(PutFixedString(s.payload, e + 8, kClockNameSize, c.name,
                                   fmt::format("CLOCK_FREQ_TOPOLOGY m_clock_freq[{}].m_name", i)));
    list.push_back(OJson{{"m_freq_Mhz", std::to_string(c.freq_mhz)},
                         {"m_type", ClockTypeName(c.type)},
                         {"m_name", c.name}});
  }
  s.mirror = OJson{{"clock_freq_topology",
                    {{"m_count", std::to_string(clocks.size())}, {"m_clock_freq", list}}}};
  return s;
}

StatusOr<std::vector<XclbinSection>> MemoryGroupSections(
    const std::vector<MemData>& mems, const std::vector<Connection>& connections) {
  // xclbinutil (XclBinUtilities.cxx, createMemoryBankGrouping): connections to banks that
  // cannot be grouped keep their order; groupable ones follow, sorted by compute unit,
  // argument and base address; then all connections again.
  struct Working {
    Connection c;
    uint64_t base = 0;
    uint64_t size = 0;
  };
  std::vector<Connection> grouped;
  std::vector<Working> groupable;
  for (size_t i = 0; i < connections.size(); ++i) {
    const Connection& c = connections[i];
    if (c.mem_data_index < 0 || static_cast<size_t>(c.mem_data_index) >= mems.size()) {
      return WriteInvalid(
          fmt::format("CONNECTIVITY m_connection[{}].mem_data_index is {} but MEM_TOPOLOGY has {} "
                      "entries",
                      i, c.mem_data_index, mems.size()));
    }
    const MemData& m = mems[static_cast<size_t>(c.mem_data_index)];
    std::string type = MemTypeName(m.type);
    bool can_group = m.used && (type == "MEM_HBM" || type == "MEM_DDR3" || type == "MEM_DDR4" ||
                                type == "MEM_DRAM");
    if (!can_group) {
      grouped.push_back(c);
    } else {
      groupable.push_back(Working{c, m.base_address, m.size_kb * 1024});
    }
  }
  std::sort(groupable.begin(), groupable.end(), [](const Working& a, const Working& b) {
    if (a.c.ip_layout_index != b.c.ip_layout_index)
      return a.c.ip_layout_index < b.c.ip_layout_index;
    if (a.c.arg_index != b.c.arg_index) return a.c.arg_index < b.c.arg_index;
    return a.base < b.base;
  });
  for (size_t i = 0; i < groupable.size(); ++i) {
    if (i + 1 < groupable.size() &&
        groupable[i].c.ip_layout_index == groupable[i + 1].c.ip_layout_index &&
        groupable[i].c.arg_index == groupable[i + 1].c.arg_index &&
        groupable[i].base + groupable[i].size == groupable[i + 1].base) {
      return WriteInvalid(fmt::format(
          "argument {} of IP_LAYOUT m_ip_data[{}] connects to contiguous banks {} and {}, which "
          "xclbinutil would group; bank grouping is not supported",
          groupable[i].c.arg_index, groupable[i].c.ip_layout_index, groupable[i].c.mem_data_index,
          groupable[i + 1].c.mem_data_index));
    }
    grouped.push_back(groupable[i].c);
  }
  for (const Connection& c : connections) grouped.push_back(c);

  XclbinSection topology = NewSection(SectionKind::kAskGroupTopology, 0);
  topology.name.clear();  // xclbinutil leaves the sections it adds unnamed
  ASSIGN_OR_RETURN(topology.payload, MemDataPayload(mems, "ASK_GROUP_TOPOLOGY"));
  topology.mirror = MemTopologyMirror("group_topology", mems);
  std::vector<XclbinSection> out;
  if (!connections.empty()) {
    XclbinSection connectivity = NewSection(SectionKind::kAskGroupConnectivity, 0);
    connectivity.name.clear();
    ASSIGN_OR_RETURN(connectivity.payload, ConnectionPayload(grouped, "ASK_GROUP_CONNECTIVITY"));
    connectivity.mirror = ConnectivityMirror("group_connectivity", grouped);
    out.push_back(std::move(connectivity));
  }
  // xclbinutil adds GROUP_CONNECTIVITY first, then GROUP_TOPOLOGY.
  out.push_back(std::move(topology));
  return out;
}

XclbinSection DataSection(SectionKind kind, std::string_view payload, std::string name) {
  XclbinSection s;
  s.kind = static_cast<uint32_t>(kind);
  s.name = name.empty() ? DefaultSectionName(s.kind) : std::move(name);
  s.payload.assign(payload.begin(), payload.end());
  return s;
}

XclbinSection JsonSection(SectionKind kind, const nlohmann::ordered_json& json) {
  XclbinSection s = DataSection(kind, json.dump());
  s.mirror = json;
  return s;
}

StatusOr<std::vector<uint8_t>> WriteXclbin(const XclbinHeaderFields& header,
                                           const std::vector<XclbinSection>& sections,
                                           const XclbinWriteOptions& options) {
  if (sections.size() > kAxlfMaxSections) {
    return WriteInvalid(fmt::format("{} sections; the format allows at most {}", sections.size(),
                                    kAxlfMaxSections));
  }
  uint64_t time_stamp =
      header.time_stamp ? *header.time_stamp : static_cast<uint64_t>(std::time(nullptr));
  Uuid uuid{};
  if (header.uuid) {
    uuid = *header.uuid;
  } else {
    if (RAND_bytes(uuid.data(), static_cast<int>(uuid.size())) != 1) {
      return InternalError("RAND_bytes failed: no entropy for the xclbin UUID");
    }
    uuid[6] = static_cast<uint8_t>((uuid[6] & 0x0F) | 0x40);  // RFC 4122 version 4
    uuid[8] = static_cast<uint8_t>((uuid[8] & 0x3F) | 0x80);
  }

  const size_t table_end = kAxlfHeaderSize + sections.size() * kAxlfSectionHeaderSize;
  std::vector<uint8_t> out(table_end, 0);
  std::memcpy(out.data(), "xclbin2", 8);
  PutLe(out, kOffSignatureLength, 0xFFFFFFFFu, 4);
  std::memset(out.data() + kOffReserved, 0xFF, kReservedSize);
  std::memset(out.data() + kOffKeyBlock, 0xFF, kKeyBlockSize);
  PutLe(out, kOffUniqueId, time_stamp, 8);
  PutLe(out, kOffTimeStamp, time_stamp, 8);
  PutLe(out, kOffFeatureRomTimeStamp, header.feature_rom_time_stamp, 8);
  PutLe(out, kOffVersionPatch, header.version_patch, 2);
  out[kOffVersionMajor] = header.version_major;
  out[kOffVersionMinor] = header.version_minor;
  PutLe(out, kOffMode, header.mode, 2);
  PutLe(out, kOffActionMask, header.action_mask, 2);
  std::memcpy(out.data() + kOffInterfaceUuid, header.interface_uuid.data(), 16);
  RETURN_IF_ERROR(
      PutFixedString(out, kOffPlatformVbnv, kVbnvSize, header.platform_vbnv, "m_platformVBNV"));
  std::memcpy(out.data() + kOffUuid, uuid.data(), 16);
  RETURN_IF_ERROR(
      PutFixedString(out, kOffDebugBin, kDebugBinSize, header.debug_bin, "m_debug_bin"));
  PutLe(out, kOffNumSections, sections.size(), 4);

  std::string mirror;
  if (options.mirror_data) {
    OJson head{{"Magic", "xclbin2"},
               {"SignatureLength", "ffffffff"},
               {"KeyBlock", HexBytes(out.data() + kOffKeyBlock, kKeyBlockSize)},
               {"UniqueID", HexBytes(out.data() + kOffUniqueId, 8)},
               {"TimeStamp", std::to_string(time_stamp)},
               {"FeatureRomTimeStamp", std::to_string(header.feature_rom_time_stamp)},
               {"Version", fmt::format("{}.{}.{}", header.version_major, header.version_minor,
                                       header.version_patch)},
               {"Mode", std::to_string(header.mode)},
               {"InterfaceUUID", HexBytes(header.interface_uuid.data(), 16)},
               {"PlatformVBNV", header.platform_vbnv},
               {"XclBinUUID", HexBytes(uuid.data(), 16)},
               {"DebugBin", header.debug_bin}};
    mirror += "{\"schema_version\":{\"major\":\"1\",\"minor\":\"0\",\"patch\":\"0\"},\"header\":";
    AppendPtreeJson(mirror, head);
  }

  for (size_t i = 0; i < sections.size(); ++i) {
    const XclbinSection& s = sections[i];
    // Each payload starts on an 8-byte boundary; the gap is zeros.
    out.resize((out.size() + 7) & ~size_t{7}, 0);
    const size_t offset = out.size();
    const size_t h = kAxlfHeaderSize + i * kAxlfSectionHeaderSize;
    PutLe(out, h, s.kind, 4);
    RETURN_IF_ERROR(PutFixedString(out, h + 4, kSecNameSize, s.name,
                                   fmt::format("m_sections[{}].m_sectionName", i)));
    PutLe(out, h + 24, offset, 8);
    PutLe(out, h + 32, s.payload.size(), 8);
    out.insert(out.end(), s.payload.begin(), s.payload.end());
    if (options.mirror_data) {
      OJson entry{{"Kind", std::to_string(s.kind)},
                  {"Name", s.name},
                  {"Offset", Hex(offset)},
                  {"Size", Hex(s.payload.size())}};
      if (!s.mirror.is_null()) entry["payload"] = s.mirror;
      mirror += ",\"section_header\":";
      AppendPtreeJson(mirror, entry);
    }
  }
  if (options.mirror_data) {
    mirror += "}\n";
    out.insert(out.end(), kMirrorStart.begin(), kMirrorStart.end());
    out.insert(out.end(), mirror.begin(), mirror.end());
    out.insert(out.end(), kMirrorEnd.begin(), kMirrorEnd.end());
  }
  PutLe(out, kOffLength, out.size(), 8);
  return out;
}

using namespace openssl;  // NOLINT(google-build-using-namespace): OpenSSL owners

StatusOr<std::vector<uint8_t>> SignXclbin(std::vector<uint8_t> unsigned_xclbin,
                                          std::string_view private_key_pem,
                                          std::string_view certificate, std::string_view digest) {
  ASSIGN_OR_RETURN(XclbinLayout layout, ParseXclbinLayout(unsigned_xclbin));
  if (layout.header.signature_length != -1) {
    return WriteInvalid(fmt::format("the file is already signed (m_signature_length is {})",
                                    layout.header.signature_length));
  }
  if (layout.header.length != unsigned_xclbin.size()) {
    return WriteInvalid(fmt::format("m_length is {} but the file is {} bytes", layout.header.length,
                                    unsigned_xclbin.size()));
  }
  if (private_key_pem.size() > INT_MAX || certificate.size() > INT_MAX ||
      unsigned_xclbin.size() > INT_MAX) {
    return WriteInvalid("key, certificate or file too large to sign");
  }
  ERR_clear_error();
  BioPtr key_bio = MemBio(private_key_pem);
  KeyPtr key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    return WriteInvalid(
        fmt::format("the signing key is not a readable PEM private key: {}", TakeOpenSslError()));
  }
  BioPtr cert_bio = MemBio(certificate);
  std::unique_ptr<X509, X509Free> cert(
      cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    ERR_clear_error();
    const auto* p = reinterpret_cast<const unsigned char*>(certificate.data());
    cert.reset(d2i_X509(nullptr, &p, static_cast<long>(certificate.size())));
  }
  if (!cert) {
    return WriteInvalid(
        fmt::format("the signing certificate is not a PEM or DER X.509 "
                    "certificate: {}",
                    TakeOpenSslError()));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return WriteInvalid("the signing key does not belong to the signing certificate");
  }
  std::string digest_name(digest);
  const EVP_MD* md = EVP_get_digestbyname(digest_name.c_str());
  if (md == nullptr) {
    return WriteInvalid(fmt::format("unknown digest algorithm '{}'", EscapeForDisplay(digest)));
  }

  // The flags xclbinutil uses (XclBinSignature.cxx): detached, binary, no certificates, no
  // signed attributes, no S/MIME capabilities.
  std::unique_ptr<CMS_ContentInfo, CmsFree> cms(CMS_sign(
      nullptr, nullptr, nullptr, nullptr, CMS_NOCERTS | CMS_PARTIAL | CMS_BINARY | CMS_DETACHED));
  if (!cms) return InternalError(fmt::format("CMS_sign failed: {}", TakeOpenSslError()));
  if (CMS_add1_signer(cms.get(), cert.get(), key.get(), md,
                      CMS_NOCERTS | CMS_BINARY | CMS_NOSMIMECAP | CMS_NOATTR) == nullptr) {
    return WriteInvalid(
        fmt::format("cannot sign with this key and certificate: {}", TakeOpenSslError()));
  }
  BioPtr content(BIO_new_mem_buf(unsigned_xclbin.data(), static_cast<int>(unsigned_xclbin.size())));
  if (!content || CMS_final(cms.get(), content.get(), nullptr, CMS_NOCERTS | CMS_BINARY) != 1) {
    return InternalError(fmt::format("CMS_final failed: {}", TakeOpenSslError()));
  }
  unsigned char* der = nullptr;
  int len = i2d_CMS_ContentInfo(cms.get(), &der);
  if (len <= 0)
    return InternalError(fmt::format("i2d_CMS_ContentInfo failed: {}", TakeOpenSslError()));
  std::vector<uint8_t> out = std::move(unsigned_xclbin);
  PutLe(out, kOffSignatureLength, static_cast<uint32_t>(len), 4);
  PutLe(out, kOffLength, out.size() + static_cast<size_t>(len), 8);
  out.insert(out.end(), der, der + len);
  OPENSSL_free(der);
  return out;
}

// ---- OpenCL C kernels --------------------------------------------------------------------

namespace {

// Blanks comments, string and character literals and preprocessor directives with spaces,
// keeping newlines, so offsets and line numbers stay those of the source.
std::string Blank(std::string_view src) {
  std::string out(src);
  size_t i = 0;
  bool line_start = true;
  auto blank = [&out](size_t from, size_t to) {
    for (size_t k = from; k < to && k < out.size(); ++k) {
      if (out[k] != '\n') out[k] = ' ';
    }
  };
  while (i < src.size()) {
    char c = src[i];
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (line_start && c == '#') {
      size_t j = i;
      while (j < src.size() && !(src[j] == '\n' && (j == 0 || src[j - 1] != '\\'))) {
        // A comment inside a directive may span lines.
        if (src.compare(j, 2, "/*") == 0) {
          size_t end = src.find("*/", j + 2);
          j = end == std::string_view::npos ? src.size() : end + 2;
          continue;
        }
        ++j;
      }
      blank(i, j);
      i = j;
      continue;
    }
    if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') line_start = false;
    if (src.compare(i, 2, "//") == 0) {
      size_t end = src.find('\n', i);
      if (end == std::string_view::npos) end = src.size();
      blank(i, end);
      i = end;
    } else if (src.compare(i, 2, "/*") == 0) {
      size_t end = src.find("*/", i + 2);
      end = end == std::string_view::npos ? src.size() : end + 2;
      blank(i, end);
      i = end;
    } else if (c == '"' || c == '\'') {
      size_t j = i + 1;
      while (j < src.size() && src[j] != c && src[j] != '\n') j += src[j] == '\\' ? 2 : 1;
      size_t end = std::min(src.size(), j + 1);
      blank(i, end);
      i = end;
    } else {
      ++i;
    }
  }
  return out;
}

struct Token {
  std::string text;
  size_t offset = 0;
  bool ident() const {
    return !text.empty() &&
           (std::isalpha(static_cast<unsigned char>(text[0])) != 0 || text[0] == '_');
  }
};

std::vector<Token> Tokenize(const std::string& text) {
  std::vector<Token> out;
  size_t i = 0;
  auto is_ident = [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_';
  };
  while (i < text.size()) {
    char c = text[i];
    if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      ++i;
    } else if (is_ident(c)) {
      size_t j = i;
      while (j < text.size() &&
             (is_ident(text[j]) ||
              (std::isdigit(static_cast<unsigned char>(c)) != 0 && text[j] == '.')))
        ++j;
      out.push_back(Token{text.substr(i, j - i), i});
      i = j;
    } else {
      out.push_back(Token{std::string(1, c), i});
      ++i;
    }
  }
  return out;
}

size_t LineOf(std::string_view src, size_t offset) {
  return 1 + static_cast<size_t>(std::count(
                 src.begin(), src.begin() + static_cast<ptrdiff_t>(std::min(offset, src.size())),
                 '\n'));
}

// Index of the token closing the bracket opened at `open`, or tokens.size().
size_t Matching(const std::vector<Token>& t, size_t open) {
  const std::string& o = t[open].text;
  std::string close = o == "(" ? ")" : o == "[" ? "]" : "}";
  int depth = 0;
  for (size_t i = open; i < t.size(); ++i) {
    if (t[i].text == o) ++depth;
    if (t[i].text == close && --depth == 0) return i;
  }
  return t.size();
}

bool IsKernelKeyword(const std::string& s) { return s == "__kernel" || s == "kernel"; }

std::optional<OpenClAddressSpace> AddressSpaceOf(const std::string& s) {
  if (s == "__global" || s == "global") return OpenClAddressSpace::kGlobal;
  if (s == "__constant" || s == "constant") return OpenClAddressSpace::kConstant;
  if (s == "__local" || s == "local") return OpenClAddressSpace::kLocal;
  if (s == "__private" || s == "private") return OpenClAddressSpace::kPrivate;
  return std::nullopt;
}

bool IsDroppedQualifier(const std::string& s) {
  static const std::set<std::string> kDropped = {
      "const",       "volatile",   "restrict",     "__restrict", "__restrict__", "read_only",
      "__read_only", "write_only", "__write_only", "read_write", "__read_write"};
  return kDropped.count(s) != 0;
}

StatusOr<OpenClKernelArg> ParseParam(const std::vector<Token>& t, size_t from, size_t to,
                                     std::string_view kernel, size_t index) {
  OpenClKernelArg arg;
  std::vector<std::string> type_words;
  std::optional<size_t> name_at;
  for (size_t i = from; i < to; ++i) {
    const std::string& w = t[i].text;
    if (w == "__attribute__" && i + 1 < to && t[i + 1].text == "(") {
      i = Matching(t, i + 1);
      continue;
    }
    if (w == "[") {
      arg.pointer = true;  // `T a[]` decays to a pointer
      i = Matching(t, i);
      continue;
    }
    if (auto space = AddressSpaceOf(w)) {
      arg.address_space = *space;
      continue;
    }
    if (IsDroppedQualifier(w)) continue;
    if (w == "*") {
      arg.pointer = true;
      type_words.push_back("*");
      continue;
    }
    if (t[i].ident()) {
      name_at = type_words.size();
      type_words.push_back(w);
    }
  }
  // The name is the last identifier, and something must come before it.
  if (!name_at || *name_at == 0 || *name_at != type_words.size() - 1) {
    return PackInvalid(fmt::format("argument {} of kernel {} has no name", index, kernel));
  }
  arg.name = type_words.back();
  type_words.pop_back();
  for (const std::string& w : type_words) {
    if (w == "*") {
      arg.type += "*";
    } else {
      if (!arg.type.empty()) arg.type += " ";
      arg.type += w;
    }
  }
  return arg;
}

}  // namespace

StatusOr<std::vector<OpenClKernel>> FindOpenClKernels(std::string_view source,
                                                      std::string_view origin) {
  std::string blanked = Blank(source);
  std::vector<Token> t = Tokenize(blanked);
  std::vector<OpenClKernel> out;
  int depth = 0;  // braces
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].text == "{") ++depth;
    if (t[i].text == "}") --depth;
    if (depth != 0 || !IsKernelKeyword(t[i].text)) continue;
    auto where = [&](size_t at) {
      return fmt::format("{}:{}", origin, LineOf(source, t[at].offset));
    };
    // The name is the identifier before the first '(' that is not an attribute's.
    size_t j = i + 1;
    std::optional<size_t> name_at;
    for (; j < t.size(); ++j) {
      if (t[j].text == "__attribute__" && j + 1 < t.size() && t[j + 1].text == "(") {
        j = Matching(t, j + 1);
        continue;
      }
      if (t[j].text == "(" || t[j].text == ";" || t[j].text == "{") break;
      if (t[j].ident()) name_at = j;
    }
    if (j >= t.size() || t[j].text != "(" || !name_at) {
      return PackInvalid(
          fmt::format("{}: a kernel declaration without a name or parameter list", where(i)));
    }
    size_t close = Matching(t, j);
    if (close >= t.size()) {
      return PackInvalid(fmt::format("{}: the parameter list of kernel {} is not closed", where(j),
                                     t[*name_at].text));
    }
    OpenClKernel kernel;
    kernel.name = t[*name_at].text;
    bool is_void_list = close == j + 2 && t[j + 1].text == "void";
    if (close > j + 1 && !is_void_list) {
      size_t start = j + 1;
      int parens = 0;
      for (size_t k = j + 1; k <= close; ++k) {
        const std::string& w = t[k].text;
        if (w == "(" || w == "[") ++parens;
        if ((w == ")" || w == "]") && k != close) --parens;
        if ((w == "," && parens == 0) || k == close) {
          StatusOr<OpenClKernelArg> arg = ParseParam(t, start, k, kernel.name, kernel.args.size());
          if (!arg.ok()) return arg.status().WithContext(where(start));
          kernel.args.push_back(std::move(*arg));
          start = k + 1;
        }
      }
    }
    // A definition has a body; a prototype ends with ';' and is skipped.
    size_t k = close + 1;
    while (k < t.size() && t[k].text == "__attribute__" && k + 1 < t.size() &&
           t[k + 1].text == "(") {
      k = Matching(t, k + 1) + 1;
    }
    if (k < t.size() && t[k].text == "{") out.push_back(std::move(kernel));
    i = close;
  }
  return out;
}

// ---- Packing for the emulated fleet ------------------------------------------------------

namespace {

constexpr uint64_t kFirstCuBase = 0x1800000;
constexpr uint64_t kCuSpan = 0x10000;
constexpr uint64_t kFirstBankBase = 0x4000000000;
constexpr uint32_t kDefaultClockMhz = 300;
constexpr uint32_t kFirstArgOffset = 0x10;

std::optional<uint8_t> MemTypeByName(std::string_view name) {
  for (uint32_t t = 0; t <= kMaxMemType; ++t) {
    if (MemTypeName(t) == name) return static_cast<uint8_t>(t);
  }
  return std::nullopt;
}

// Bytes of an OpenCL C scalar or vector type; 4 for what is not known.
uint32_t ScalarSize(std::string_view type) {
  static const std::map<std::string, uint32_t, std::less<>> kBase = {
      {"bool", 1},     {"char", 1},   {"uchar", 1},          {"unsigned char", 1},
      {"short", 2},    {"ushort", 2}, {"unsigned short", 2}, {"half", 2},
      {"int", 4},      {"uint", 4},   {"unsigned int", 4},   {"unsigned", 4},
      {"float", 4},    {"long", 8},   {"ulong", 8},          {"unsigned long", 8},
      {"double", 8},   {"size_t", 8}, {"ptrdiff_t", 8},      {"intptr_t", 8},
      {"uintptr_t", 8}};
  auto it = kBase.find(type);
  if (it != kBase.end()) return it->second;
  // Vector types: float4, uchar16, ... (a 3-vector takes the room of a 4-vector).
  size_t digits = type.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(type[digits - 1])) != 0) --digits;
  if (digits < type.size() && digits > 0) {
    auto base = kBase.find(type.substr(0, digits));
    if (base != kBase.end()) {
      uint32_t n = static_cast<uint32_t>(std::stoul(std::string(type.substr(digits))));
      if (n == 2 || n == 3 || n == 4 || n == 8 || n == 16) return base->second * (n == 3 ? 4 : n);
    }
  }
  return 4;
}

struct ArgLayout {
  const OpenClKernelArg* arg;
  uint32_t size;
  uint32_t offset;
  int address_qualifier;  // XRT's: 0 scalar, 1 global, 2 constant, 3 local
  std::string port;
};

// Control-register offsets as Vitis HLS lays them out: from 0x10, each argument's data (a
// pointer is 8 bytes) followed by a 4-byte gap.
std::vector<ArgLayout> LayoutArgs(const OpenClKernel& kernel) {
  std::vector<ArgLayout> out;
  uint32_t offset = kFirstArgOffset;
  for (const OpenClKernelArg& a : kernel.args) {
    ArgLayout l{&a, a.pointer ? 8 : ScalarSize(a.type), offset, 0, "S_AXI_CONTROL"};
    if (a.pointer) {
      switch (a.address_space) {
        case OpenClAddressSpace::kGlobal:
          l.address_qualifier = 1;
          break;
        case OpenClAddressSpace::kConstant:
          l.address_qualifier = 2;
          break;
        case OpenClAddressSpace::kLocal:
          l.address_qualifier = 3;
          break;
        case OpenClAddressSpace::kPrivate:
          break;
      }
    }
    if (a.global_memory()) l.port = "M_AXI_GMEM";
    offset += ((l.size + 3) & ~3u) + 4;
    out.push_back(std::move(l));
  }
  return out;
}

// The --mode value of `fpgahost xclbin pack` for an emulation mode.
std::string ModeOption(uint16_t mode) {
  switch (static_cast<XclbinMode>(mode)) {
    case XclbinMode::kHwEmu:
      return "hw_emu";
    case XclbinMode::kSwEmu:
      return "sw_emu";
    case XclbinMode::kHwEmuPr:
      return "hw_emu_pr";
    default:
      return XclbinModeName(mode);
  }
}

bool HasGlobalArgs(const OpenClKernel& k) {
  return std::any_of(k.args.begin(), k.args.end(),
                     [](const OpenClKernelArg& a) { return a.global_memory(); });
}

std::string CuName(const OpenClKernel& k) { return k.name + "_1"; }

std::string XmlEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string EmbeddedMetadataXml(const ShellSpec& shell, const EmulationPackOptions& options,
                                const std::vector<OpenClKernel>& kernels, uint32_t kernel_mhz,
                                uint32_t data_mhz) {
  std::string target =
      options.mode == static_cast<uint16_t>(XclbinMode::kSwEmu) ? "sw_em" : "hw_em";
  std::string x;
  x += "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";
  x += fmt::format("<project name=\"{}\">\n", XmlEscape(options.design));
  x += fmt::format(
      "  <platform vendor=\"xilinx\" boardid=\"{}\" name=\"{}\" featureRomTime=\"0\">\n",
      XmlEscape(shell.name), XmlEscape(shell.vbnv));
  x += "    <version major=\"0\" minor=\"0\"/>\n";
  x += "    <device name=\"fpga0\" fpgaDevice=\"\" addrWidth=\"64\">\n";
  x += fmt::format(
      "      <core name=\"OCL_REGION_0\" target=\"{}\" type=\"clc_region\" clockFreq=\"{}MHz\" "
      "numComputeUnits=\"{}\">\n",
      target, kernel_mhz, kernels.size());
  x += "        <kernelClocks>\n";
  x += fmt::format("          <clock port=\"DATA_CLK\" frequency=\"{}.000000MHz\"/>\n", data_mhz);
  x += fmt::format("          <clock port=\"KERNEL_CLK\" frequency=\"{}.000000MHz\"/>\n",
                   kernel_mhz);
  x += "        </kernelClocks>\n";
  for (size_t i = 0; i < kernels.size(); ++i) {
    const OpenClKernel& k = kernels[i];
    x += fmt::format(
        "        <kernel name=\"{0}\" language=\"clc\" vlnv=\"xilinx.com:hls:{0}:1.0\" "
        "preferredWorkGroupSizeMultiple=\"0\" workGroupSize=\"1\" interrupt=\"true\" "
        "hwControlProtocol=\"ap_ctrl_chain\">\n",
        k.name);
    if (HasGlobalArgs(k)) {
      x += "          <port name=\"M_AXI_GMEM\" mode=\"master\" range=\"0xFFFFFFFFFFFFFFFF\" "
           "dataWidth=\"32\" portType=\"addressable\" base=\"0x0\"/>\n";
    }
    x += "          <port name=\"S_AXI_CONTROL\" mode=\"slave\" range=\"0x1000\" dataWidth=\"32\" "
         "portType=\"addressable\" base=\"0x0\"/>\n";
    std::vector<ArgLayout> layout = LayoutArgs(k);
    for (size_t a = 0; a < layout.size(); ++a) {
      const ArgLayout& l = layout[a];
      x += fmt::format(
          "          <arg name=\"{}\" addressQualifier=\"{}\" id=\"{}\" port=\"{}\" "
          "size=\"0x{:X}\" "
          "offset=\"0x{:X}\" hostOffset=\"0x0\" hostSize=\"0x{:X}\" type=\"{}\"/>\n",
          l.arg->name, l.address_qualifier, a, l.port, l.size, l.offset, l.size, l.arg->type);
    }
    x += "          <compileWorkGroupSize x=\"1\" y=\"1\" z=\"1\"/>\n";
    x += "          <maxWorkGroupSize x=\"1\" y=\"1\" z=\"1\"/>\n";
    x += fmt::format("          <instance name=\"{}\">\n", CuName(k));
    x += fmt::format(
        "            <addrRemap base=\"0x{:08X}\" range=\"0x{:X}\" port=\"S_AXI_CONTROL\"/>\n",
        kFirstCuBase + i * kCuSpan, kCuSpan);
    x += "          </instance>\n";
    x += "        </kernel>\n";
  }
  for (const OpenClKernel& k : kernels) {
    x += fmt::format(
        "        <connection srcType=\"core\" srcInst=\"OCL_REGION_0\" srcPort=\"S_AXI_CONTROL\" "
        "dstType=\"kernel\" dstInst=\"{}\" dstPort=\"S_AXI_CONTROL\"/>\n",
        CuName(k));
    if (HasGlobalArgs(k)) {
      x += fmt::format(
          "        <connection srcType=\"core\" srcInst=\"OCL_REGION_0\" srcPort=\"M_AXI_GMEM\" "
          "dstType=\"kernel\" dstInst=\"{}\" dstPort=\"M_AXI_GMEM\"/>\n",
          CuName(k));
    }
  }
  x += "      </core>\n    </device>\n  </platform>\n</project>\n";
  return x;
}

OJson BuildMetadata(const ShellSpec& shell, const EmulationPackOptions& options,
                    const std::vector<OpenClKernel>& kernels, uint64_t time_stamp) {
  OJson kernel_list = OJson::array();
  for (const OpenClKernel& k : kernels) {
    OJson ports = OJson::array();
    if (HasGlobalArgs(k)) {
      ports.push_back(OJson{{"name", "M_AXI_GMEM"},
                            {"mode", "master"},
                            {"range", "0xFFFFFFFFFFFFFFFF"},
                            {"data_width", "32"},
                            {"port_type", "addressable"},
                            {"base", "0x0"}});
    }
    ports.push_back(OJson{{"name", "S_AXI_CONTROL"},
                          {"mode", "slave"},
                          {"range", "0x1000"},
                          {"data_width", "32"},
                          {"port_type", "addressable"},
                          {"base", "0x0"}});
    OJson args = OJson::array();
    std::vector<ArgLayout> layout = LayoutArgs(k);
    for (size_t a = 0; a < layout.size(); ++a) {
      const ArgLayout& l = layout[a];
      args.push_back(OJson{{"name", l.arg->name},
                           {"address_qualifier", std::to_string(l.address_qualifier)},
                           {"id", std::to_string(a)},
                           {"port", l.port},
                           {"size", fmt::format("0x{:x}", l.size)},
                           {"offset", fmt::format("0x{:x}", l.offset)},
                           {"host_offset", "0x0"},
                           {"host_size", fmt::format("0x{:x}", l.size)},
                           {"type", l.arg->type}});
    }
    kernel_list.push_back(OJson{{"name", k.name},
                                {"ports", ports},
                                {"arguments", args},
                                {"instances", OJson::array({OJson{{"name", CuName(k)}}})}});
  }
  std::string board = shell.name.substr(0, shell.name.find('-'));
  // xclbinutil prints "Command Line:" as the generator's name followed by this text without
  // its first word, so the text starts with the program.
  std::string command_line =
      fmt::format("fpgahost --shell {} --mode {}", shell.name, ModeOption(options.mode));
  for (const KernelSourceFile& f : options.sources) command_line += " --kernel-source " + f.name;
  std::time_t t = static_cast<std::time_t>(time_stamp);
  std::tm tm{};
  char when[64] = "";
  if (gmtime_r(&t, &tm) != nullptr) {
    std::strftime(when, sizeof(when), "%a %b %e %H:%M:%S UTC %Y", &tm);
  }
  return OJson{{"build_metadata",
                {{"platform",
                  {{"vendor", "xilinx"},
                   {"board_id", board},
                   {"name", shell.name},
                   {"description", shell.description}}},
                 {"xclbin",
                  {{"generated_by",
                    {{"name", options.generator_name},
                     {"version", options.generator_version},
                     {"cl", ""},
                     {"time_stamp", std::string(when)},
                     {"options", command_line}}},
                   {"user_regions", OJson::array({OJson{{"name", "OCL_REGION_0"},
                                                        {"type", "clc_region"},
                                                        {"instance_path", ""},
                                                        {"base_address", ""},
                                                        {"kernels", kernel_list}}})}}}}}};
}

}  // namespace

const MemoryBank* DefaultMemoryBank(const ShellSpec& shell) {
  for (const char* type : {"MEM_DDR4", "MEM_DDR3", "MEM_HBM"}) {
    for (const MemoryBank& b : shell.memory_banks) {
      if (b.type == type) return &b;
    }
  }
  for (const MemoryBank& b : shell.memory_banks) {
    if (!b.type.empty()) return &b;
  }
  return nullptr;
}

std::string EmulationSource(const std::vector<KernelSourceFile>& sources) {
  std::string out;
  for (const KernelSourceFile& f : sources) {
    std::string name;
    for (char c : f.name) {
      if (c == '"' || c == '\\') name.push_back('\\');
      if (c != '\n') name.push_back(c);
    }
    out += fmt::format("#line 1 \"{}\"\n", name);
    out += f.text;
    if (!out.empty() && out.back() != '\n') out.push_back('\n');
  }
  return out;
}

StatusOr<std::vector<uint8_t>> PackEmulationXclbin(const ShellSpec& shell,
                                                   const EmulationPackOptions& options) {
  if (!IsEmulationMode(options.mode)) {
    return PackInvalid(fmt::format("mode {} is not an emulation mode (hw_emu, sw_emu, hw_emu_pr)",
                                   XclbinModeName(options.mode)));
  }
  if (options.sources.empty()) return PackInvalid("no kernel source given");

  // Kernels, in source order, one name once.
  std::vector<OpenClKernel> kernels;
  for (const KernelSourceFile& f : options.sources) {
    ASSIGN_OR_RETURN(std::vector<OpenClKernel> found, FindOpenClKernels(f.text, f.name));
    for (OpenClKernel& k : found) {
      for (const OpenClKernel& seen : kernels) {
        if (seen.name == k.name) {
          return PackInvalid(fmt::format("{}: kernel {} is defined twice", f.name, k.name));
        }
      }
      // "<kernel>:<kernel>_1" must fit IP_LAYOUT's 64-byte m_name with its NUL.
      if (2 * k.name.size() + 3 > kIpNameSize - 1) {
        return PackInvalid(fmt::format(
            "{}: kernel name {} is {} characters; IP_LAYOUT's compute unit name \"{}:{}_1\" "
            "allows kernel names of at most {}",
            f.name, k.name, k.name.size(), k.name, k.name, (kIpNameSize - 1 - 3) / 2));
      }
      kernels.push_back(std::move(k));
    }
  }
  if (kernels.empty()) {
    std::string files;
    for (const KernelSourceFile& f : options.sources) files += (files.empty() ? "" : ", ") + f.name;
    return PackInvalid(fmt::format("no __kernel function found in {}", files));
  }

  // Memory bank.
  const MemoryBank* bank = nullptr;
  if (options.memory_bank.empty()) {
    bank = DefaultMemoryBank(shell);
    if (bank == nullptr) {
      return PackInvalid(
          fmt::format("shell {} lists no memory bank with a type; name one with "
                      "--memory-bank",
                      shell.name));
    }
  } else {
    bank = shell.FindMemoryBank(options.memory_bank);
    if (bank == nullptr) {
      std::string tags;
      for (const MemoryBank& b : shell.memory_banks) tags += (tags.empty() ? "" : ", ") + b.tag;
      return PackInvalid(fmt::format("memory bank '{}' is not one of shell {}'s banks ({})",
                                     EscapeForDisplay(options.memory_bank), shell.name, tags));
    }
  }
  size_t bank_index = static_cast<size_t>(bank - shell.memory_banks.data());
  std::optional<uint8_t> mem_type =
      bank->type.empty() ? std::optional<uint8_t>(bank->tag.starts_with("HOST") ? 10 : 2)
                         : MemTypeByName(bank->type);
  if (!mem_type) {
    return PackInvalid(
        fmt::format("memory bank {} of shell {} has type {}, which the format does "
                    "not know",
                    bank->tag, shell.name, bank->type));
  }
  uint64_t bank_base = kFirstBankBase;
  for (size_t i = 0; i < bank_index; ++i) bank_base += shell.memory_banks[i].size_kb * 1024;
  std::vector<MemData> mems = {MemData{*mem_type, true, bank->size_kb, bank_base, bank->tag}};

  // Clocks: a limit the shell sets for the clock's name or type; the validator refuses a clock
  // type the shell has limits for none of, so such a shell cannot take this design.
  auto limit = [&shell](uint32_t type, std::string_view name) -> StatusOr<uint32_t> {
    if (shell.clocks.empty()) return uint32_t{UINT16_MAX};
    std::optional<uint32_t> max = shell.MaxClockMhz(type, name);
    if (!max) {
      return PackInvalid(
          fmt::format("shell {} sets no limit for {} clocks", shell.name, ClockTypeName(type)));
    }
    return std::min<uint32_t>(*max, UINT16_MAX);
  };
  constexpr uint8_t kData = 1, kKernel = 2;
  ASSIGN_OR_RETURN(uint32_t kernel_max, limit(kKernel, "KERNEL_CLK"));
  ASSIGN_OR_RETURN(uint32_t data_max, limit(kData, "DATA_CLK"));
  uint32_t kernel_mhz = options.kernel_clock_mhz.value_or(std::min(kDefaultClockMhz, kernel_max));
  if (kernel_mhz == 0 || kernel_mhz > kernel_max) {
    return PackInvalid(
        fmt::format("kernel clock {} MHz is outside 1..{} MHz, the limit of shell {}", kernel_mhz,
                    kernel_max, shell.name));
  }
  uint32_t data_mhz = std::min(kDefaultClockMhz, data_max);
  std::vector<ClockFreq> clocks = {
      ClockFreq{static_cast<uint16_t>(data_mhz), kData, "DATA_CLK"},
      ClockFreq{static_cast<uint16_t>(kernel_mhz), kKernel, "KERNEL_CLK"}};

  // Compute units and their buffers' bank.
  std::vector<IpData> ips;
  std::vector<Connection> connections;
  for (size_t i = 0; i < kernels.size(); ++i) {
    const OpenClKernel& k = kernels[i];
    ips.push_back(IpData{kIpTypeKernel,
                         KernelIpProperties(true, static_cast<uint8_t>(i % 128), kIpControlChain),
                         kFirstCuBase + i * kCuSpan, fmt::format("{}:{}", k.name, CuName(k))});
    for (size_t a = 0; a < k.args.size(); ++a) {
      if (k.args[a].global_memory()) {
        connections.push_back(Connection{static_cast<int32_t>(a), static_cast<int32_t>(i), 0});
      }
    }
  }

  XclbinHeaderFields header;
  if (!shell.interface_uuid.empty()) {
    std::optional<Uuid> u = ParseUuid(shell.interface_uuid);
    if (!u) return PackInvalid(fmt::format("shell {} has a malformed interface UUID", shell.name));
    header.interface_uuid = *u;
  }
  header.mode = options.mode;
  header.platform_vbnv = shell.vbnv;
  header.uuid = options.uuid;
  header.time_stamp =
      options.time_stamp ? *options.time_stamp : static_cast<uint64_t>(std::time(nullptr));

  EmulationPackOptions named = options;
  if (named.design.empty()) named.design = kernels.front().name;

  // The order v++ uses: memory, connectivity, compute units, clocks, then metadata and payload.
  std::vector<XclbinSection> sections;
  ASSIGN_OR_RETURN(XclbinSection mem_section, MemTopologySection(mems));
  sections.push_back(std::move(mem_section));
  ASSIGN_OR_RETURN(XclbinSection conn_section, ConnectivitySection(connections));
  sections.push_back(std::move(conn_section));
  ASSIGN_OR_RETURN(XclbinSection ip_section, IpLayoutSection(ips));
  sections.push_back(std::move(ip_section));
  ASSIGN_OR_RETURN(XclbinSection clock_section, ClockFreqTopologySection(clocks));
  sections.push_back(std::move(clock_section));
  sections.push_back(JsonSection(SectionKind::kBuildMetadata,
                                 BuildMetadata(shell, named, kernels, *header.time_stamp)));
  sections.push_back(DataSection(SectionKind::kEmbeddedMetadata,
                                 EmbeddedMetadataXml(shell, named, kernels, kernel_mhz, data_mhz)));
  sections.push_back(DataSection(SectionKind::kEmulationData, EmulationSource(options.sources)));
  ASSIGN_OR_RETURN(std::vector<XclbinSection> groups, MemoryGroupSections(mems, connections));
  for (XclbinSection& s : groups) sections.push_back(std::move(s));
  return WriteXclbin(header, sections);
}

}  // namespace fpgahost::images
