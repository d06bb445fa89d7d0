#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "images/xclbin.h"
#include "tests/unit/images/xclbin_fixtures.h"

namespace fpgahost::images {
namespace {

using ::testing::HasSubstr;
using namespace ::fpgahost::images::testing;  // NOLINT(google-build-using-namespace)

std::string Undashed(const Uuid& uuid) {
  std::string s = FormatUuid(uuid);
  s.erase(std::remove(s.begin(), s.end(), '-'), s.end());
  return s;
}

// Reads a fixture; the test fails when it does not parse.
Xclbin ParseFixture(const std::vector<uint8_t>& bytes) {
  StatusOr<Xclbin> x = ParseXclbin(Bytes(bytes));
  EXPECT_TRUE(x.ok()) << x.status().ToString();
  return x.ok() ? *std::move(x) : Xclbin{};
}

class FixtureTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_SHARED_FIXTURES();
    bytes_ = ReadFixture(GetParam());
    layout_ = LayoutReport(GetParam());
    mirror_ = MirrorReport(GetParam());
    info_ = InfoReport(GetParam());
    ASSERT_FALSE(bytes_.empty());
    ASSERT_FALSE(layout_.empty()) << "no layout report for " << GetParam();
  }
  std::vector<uint8_t> bytes_;
  Json layout_;
  Json mirror_;
  std::string info_;
};

TEST_P(FixtureTest, HeaderAgreesWithLayoutReport) {
  Xclbin x = ParseFixture(bytes_);
  const AxlfHeader& h = x.header;
  EXPECT_EQ(x.file_size, layout_.at("file_size").get<uint64_t>());
  EXPECT_EQ(h.signature_length, layout_.at("m_signature_length").get<int64_t>());
  EXPECT_EQ(h.reserved_all_ff, layout_.at("reserved_all_ff").get<bool>());
  EXPECT_EQ(h.key_block_all_ff, layout_.at("keyblock_all_ff").get<bool>());
  EXPECT_EQ(h.unique_id, layout_.at("m_uniqueId").get<uint64_t>());
  EXPECT_EQ(h.length, layout_.at("m_length").get<uint64_t>());
  EXPECT_EQ(h.time_stamp, layout_.at("m_timeStamp").get<uint64_t>());
  EXPECT_EQ(h.feature_rom_time_stamp, layout_.at("m_featureRomTimeStamp").get<uint64_t>());
  EXPECT_EQ(h.Version(), layout_.at("version").get<std::string>());
  // "4 (XCLBIN_HW_EMU)": the number and XRT's name for it.
  std::string mode = layout_.at("m_mode");
  EXPECT_EQ(std::to_string(h.mode), mode.substr(0, mode.find(' ')));
  EXPECT_EQ("(" + XclbinModeName(h.mode) + ")", mode.substr(mode.find(' ') + 1));
  EXPECT_EQ(h.action_mask, layout_.at("m_actionMask").get<uint64_t>());
  EXPECT_EQ(Undashed(h.interface_uuid), layout_.at("m_interface_uuid"));
  EXPECT_EQ(h.platform_vbnv, layout_.at("m_platformVBNV"));
  EXPECT_EQ(Undashed(h.uuid), layout_.at("uuid"));
  EXPECT_EQ(h.debug_bin, layout_.at("m_debug_bin"));
  EXPECT_EQ(h.num_sections, layout_.at("m_numSections").get<uint64_t>());
  EXPECT_TRUE(x.unterminated_fields.empty());
}

TEST_P(FixtureTest, HeaderAgreesWithXclbinutil) {
  Xclbin x = ParseFixture(bytes_);
  const AxlfHeader& h = x.header;
  EXPECT_EQ(InfoValue(info_, "UUID (xclbin):"), FormatUuid(h.uuid));
  EXPECT_EQ(InfoValue(info_, "Static UUID:"), FormatUuid(h.interface_uuid));
  EXPECT_EQ(InfoValue(info_, "Platform VBNV:"),
            h.platform_vbnv.empty() ? "<not defined>" : h.platform_vbnv);
  EXPECT_EQ(InfoValue(info_, "Feature ROM TimeStamp:"), std::to_string(h.feature_rom_time_stamp));
  EXPECT_EQ(InfoValue(info_, "Version:"), h.Version());
  std::optional<std::string> masks = InfoValue(info_, "Action Mask(s):");
  if (h.action_mask == 0) {
    EXPECT_FALSE(masks.has_value());
  } else {
    std::string joined;
    for (const std::string& m : ActionMaskNames(h.action_mask)) {
      joined += (joined.empty() ? "" : " ") + m;
    }
    EXPECT_EQ(masks, joined);
  }
  // The mirror copy xclbinutil embedded says the same.
  const Json& mh = mirror_.at("header");
  EXPECT_EQ(mh.at("XclBinUUID"), Undashed(h.uuid));
  EXPECT_EQ(mh.at("InterfaceUUID"), Undashed(h.interface_uuid));
  EXPECT_EQ(mh.at("PlatformVBNV"), h.platform_vbnv);
  EXPECT_EQ(mh.at("Mode"), std::to_string(h.mode));
  EXPECT_EQ(mh.at("TimeStamp"), std::to_string(h.time_stamp));
  EXPECT_EQ(mh.at("FeatureRomTimeStamp"), std::to_string(h.feature_rom_time_stamp));
}

TEST_P(FixtureTest, SectionTableAgreesWithLayoutReportAndMirror) {
  Xclbin x = ParseFixture(bytes_);
  const Json& sections = layout_.at("sections");
  ASSERT_EQ(x.sections.size(), sections.size());
  for (size_t i = 0; i < x.sections.size(); ++i) {
    SCOPED_TRACE("section " + std::to_string(i));
    const Json& s = sections[i];
    EXPECT_EQ(s.at("index").get<size_t>(), i);
    EXPECT_EQ(x.sections[i].kind, s.at("kind").get<uint32_t>());
    EXPECT_EQ(SectionKindName(x.sections[i].kind), s.at("kind_name"));
    EXPECT_EQ(x.sections[i].name, s.at("name"));
    EXPECT_EQ(x.sections[i].offset, s.at("offset").get<uint64_t>());
    EXPECT_EQ(x.sections[i].size, s.at("size").get<uint64_t>());
    EXPECT_EQ(kAxlfHeaderSize + i * kAxlfSectionHeaderSize, s.at("hdr_off").get<size_t>());
  }
  const Json ms = mirror_.value("section_header", Json::array());
  ASSERT_EQ(x.sections.size(), ms.size());
  for (size_t i = 0; i < x.sections.size(); ++i) {
    EXPECT_EQ(std::to_string(x.sections[i].kind), ms[i].at("Kind"));
    EXPECT_EQ(x.sections[i].name, ms[i].at("Name"));
    EXPECT_EQ(x.sections[i].offset, ReportNumber(ms[i].at("Offset")));
    EXPECT_EQ(x.sections[i].size, ReportNumber(ms[i].at("Size")));
  }
  for (const Json& s : sections) {
    EXPECT_TRUE(x.HasSection(static_cast<SectionKind>(s.at("kind").get<uint32_t>())));
  }
}

TEST_P(FixtureTest, MirrorAndSignaturesAgreeWithLayoutReport) {
  Xclbin x = ParseFixture(bytes_);
  ASSERT_TRUE(x.mirror.has_value());
  EXPECT_EQ(x.mirror->start, layout_.at("mirror").at("start").get<uint64_t>());
  EXPECT_EQ(x.mirror->end_marker, layout_.at("mirror").at("end_marker").get<uint64_t>());
  EXPECT_EQ(x.mirror->end, layout_.at("mirror").at("end").get<uint64_t>());

  if (layout_.contains("pkcs_signature")) {
    ASSERT_TRUE(x.signatures.pkcs7.has_value());
    EXPECT_EQ(x.signatures.pkcs7->offset, layout_["pkcs_signature"].at("offset").get<uint64_t>());
    EXPECT_EQ(x.signatures.pkcs7->size, layout_["pkcs_signature"].at("size").get<uint64_t>());
  } else {
    EXPECT_FALSE(x.signatures.pkcs7.has_value());
  }
  if (layout_.contains("user_signature_block_at")) {
    ASSERT_TRUE(x.signatures.user.has_value());
    EXPECT_EQ(x.signatures.user->offset, layout_["user_signature_block_at"].get<uint64_t>());
    EXPECT_EQ(x.signatures.user->offset + x.signatures.user->size, x.file_size);
  } else {
    EXPECT_FALSE(x.signatures.user.has_value());
  }
  EXPECT_EQ(layout_.at("m_length_vs_file") == "equal", x.file_size == x.header.length);

  // xclbinutil: "Present - Signed PKCS - Offset: 0x253b, Size: 0x19f", "Present - <user
  // signature text>" or nothing.
  std::optional<std::string> signature = InfoValue(info_, "Signature:");
  ASSERT_TRUE(signature.has_value());
  if (x.signatures.pkcs7) {
    EXPECT_EQ(*signature, fmt::format("Present - Signed PKCS - Offset: 0x{:x}, Size: 0x{:x}",
                                      x.signatures.pkcs7->offset, x.signatures.pkcs7->size));
  } else if (x.signatures.user) {
    EXPECT_EQ(*signature, "Present - " + x.signatures.user->signature);
  } else {
    EXPECT_EQ(*signature, "");
  }
}

TEST_P(FixtureTest, TypedSectionsAgreeWithMirror) {
  Xclbin x = ParseFixture(bytes_);

  Json ip = MirrorPayload(mirror_, 8, "ip_layout");
  ASSERT_EQ(x.ip_layout.has_value(), !ip.is_null());
  if (x.ip_layout) {
    const Json& entries = ip.at("m_ip_data");
    ASSERT_EQ(x.ip_layout->size(), ReportNumber(ip.at("m_count")));
    ASSERT_EQ(x.ip_layout->size(), entries.size());
    std::vector<std::string> kernels, cus;
    for (size_t i = 0; i < entries.size(); ++i) {
      const IpData& d = (*x.ip_layout)[i];
      EXPECT_EQ(IpTypeName(d.type), entries[i].at("m_type"));
      EXPECT_EQ(d.base_address, ReportNumber(entries[i].at("m_base_address")));
      EXPECT_EQ(d.name, entries[i].at("m_name"));
      if (entries[i].at("m_type") == "IP_KERNEL") {
        EXPECT_EQ(d.interrupt_enabled(), ReportNumber(entries[i].at("m_int_enable")) != 0);
        EXPECT_EQ(d.interrupt_id(), ReportNumber(entries[i].at("m_interrupt_id")));
        EXPECT_EQ(IpControlName(d.ip_control()), entries[i].at("m_ip_control"));
        std::string name = entries[i].at("m_name");
        std::string kernel = name.substr(0, name.find(':'));
        if (std::find(kernels.begin(), kernels.end(), kernel) == kernels.end()) {
          kernels.push_back(kernel);
        }
        cus.push_back(name);
      }
    }
    EXPECT_EQ(x.KernelNames(), kernels);
    EXPECT_EQ(x.ComputeUnitNames(), cus);
  }

  Json mem = MirrorPayload(mirror_, 6, "mem_topology");
  ASSERT_EQ(x.mem_topology.has_value(), !mem.is_null());
  if (x.mem_topology) {
    const Json& entries = mem.at("m_mem_data");
    ASSERT_EQ(x.mem_topology->size(), ReportNumber(mem.at("m_count")));
    ASSERT_EQ(x.mem_topology->size(), entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const MemData& m = (*x.mem_topology)[i];
      EXPECT_EQ(MemTypeName(m.type), entries[i].at("m_type"));
      EXPECT_EQ(m.used, ReportNumber(entries[i].at("m_used")) != 0);
      EXPECT_EQ(m.size_kb, ReportNumber(entries[i].at("m_sizeKB")));
      EXPECT_EQ(m.base_address, ReportNumber(entries[i].at("m_base_address")));
      EXPECT_EQ(m.tag, entries[i].at("m_tag"));
    }
  }

  Json conn = MirrorPayload(mirror_, 7, "connectivity");
  ASSERT_EQ(x.connectivity.has_value(), !conn.is_null());
  if (x.connectivity) {
    const Json& entries = conn.at("m_connection");
    ASSERT_EQ(x.connectivity->size(), entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const Connection& c = (*x.connectivity)[i];
      EXPECT_EQ(static_cast<uint64_t>(c.arg_index), ReportNumber(entries[i].at("arg_index")));
      EXPECT_EQ(static_cast<uint64_t>(c.ip_layout_index),
                ReportNumber(entries[i].at("m_ip_layout_index")));
      EXPECT_EQ(static_cast<uint64_t>(c.mem_data_index),
                ReportNumber(entries[i].at("mem_data_index")));
    }
  }

  Json clocks = MirrorPayload(mirror_, 11, "clock_freq_topology");
  ASSERT_EQ(x.clocks.has_value(), !clocks.is_null());
  if (x.clocks) {
    const Json& entries = clocks.at("m_clock_freq");
    ASSERT_EQ(x.clocks->size(), ReportNumber(clocks.at("m_count")));
    ASSERT_EQ(x.clocks->size(), entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const ClockFreq& c = (*x.clocks)[i];
      EXPECT_EQ(c.freq_mhz, ReportNumber(entries[i].at("m_freq_Mhz")));
      EXPECT_EQ(ClockTypeName(c.type), entries[i].at("m_type"));
      EXPECT_EQ(c.name, entries[i].at("m_name"));
    }
  }

  Json debug = MirrorPayload(mirror_, 9, "debug_ip_layout");
  ASSERT_EQ(x.debug_ip_count.has_value(), !debug.is_null());
  if (x.debug_ip_count) {
    EXPECT_EQ(*x.debug_ip_count, ReportNumber(debug.at("m_count")));
    EXPECT_EQ(*x.debug_ip_count, debug.at("m_debug_ip_data").size());
  }

  Json build = MirrorPayload(mirror_, 14, "build_metadata");
  ASSERT_EQ(x.build_metadata.has_value(), !build.is_null());
  if (x.build_metadata) {
    StatusOr<Json> ours = ParseJson(*x.build_metadata);
    ASSERT_TRUE(ours.ok()) << ours.status().ToString();
    EXPECT_EQ(ours->at("build_metadata"), build);
  }
  Json kv = MirrorPayload(mirror_, 15, "keyvalue_metadata");
  ASSERT_EQ(x.keyvalue_metadata.has_value(), !kv.is_null());
  if (x.keyvalue_metadata) {
    StatusOr<Json> ours = ParseJson(*x.keyvalue_metadata);
    ASSERT_TRUE(ours.ok()) << ours.status().ToString();
    EXPECT_EQ(ours->at("key_values"), kv.at("key_values"));
  }
  // USER_METADATA is opaque bytes: the reader hands back exactly the section's bytes.
  if (x.user_metadata) {
    const SectionHeader* s = x.FindSection(SectionKind::kUserMetadata);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(*x.user_metadata,
              std::string(bytes_.begin() + static_cast<ptrdiff_t>(s->offset),
                          bytes_.begin() + static_cast<ptrdiff_t>(s->offset + s->size)));
  }
}

TEST_P(FixtureTest, MemoryAndClocksAgreeWithXclbinutil) {
  Xclbin x = ParseFixture(bytes_);
  std::vector<InfoRecord> mems = InfoRecords(info_, "Memory Configuration");
  ASSERT_EQ(mems.size(), x.mem_topology ? x.mem_topology->size() : 0);
  for (size_t i = 0; i < mems.size(); ++i) {
    const MemData& m = (*x.mem_topology)[i];
    EXPECT_EQ(mems[i]["Name"], m.tag);
    EXPECT_EQ(mems[i]["Index"], std::to_string(i));
    EXPECT_EQ(mems[i]["Type"], MemTypeName(m.type));
    EXPECT_EQ(ReportNumber(mems[i]["Base Address"]), m.base_address);
    EXPECT_EQ(ReportNumber(mems[i]["Address Size"]), m.size_kb * 1024);
    EXPECT_EQ(mems[i]["Bank Used"], m.used ? "Yes" : "No");
  }
  std::vector<InfoRecord> clocks = InfoRecords(info_, "Scalable Clocks");
  ASSERT_EQ(clocks.size(), x.clocks ? x.clocks->size() : 0);
  for (size_t i = 0; i < clocks.size(); ++i) {
    const ClockFreq& c = (*x.clocks)[i];
    EXPECT_EQ(clocks[i]["Name"], c.name);
    EXPECT_EQ(clocks[i]["Index"], std::to_string(i));
    EXPECT_EQ(clocks[i]["Type"], ClockTypeName(c.type));
    EXPECT_EQ(clocks[i]["Frequency"], std::to_string(c.freq_mhz) + " MHz");
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureTest, ::testing::ValuesIn(FixtureNames()),
                         [](const auto& param_info) { return "f" + param_info.param; });

TEST(XclbinReaderTest, AllTwelveFixturesAreListed) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  std::set<std::string> on_disk;
  for (const auto& entry : std::filesystem::directory_iterator(XclbinFixturesDir())) {
    if (entry.path().extension() == ".xclbin") on_disk.insert(entry.path().stem().string());
  }
  EXPECT_EQ(on_disk, std::set<std::string>(FixtureNames().begin(), FixtureNames().end()));
}

// Every prefix of every fixture is read without reading past it (ASan watches the exact-size
// copies) and refused as truncated while it is shorter than m_length.
TEST(XclbinReaderTest, EveryTruncationIsRefusedAsTruncated) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  for (const std::string& name : FixtureNames()) {
    std::vector<uint8_t> bytes = ReadFixture(name);
    uint64_t length = GetLe(bytes, kOffLength, 8);
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
      StatusOr<Xclbin> x = ParseXclbin(Bytes(prefix));
      if (n < length) {
        ASSERT_FALSE(x.ok()) << name << " cut to " << n;
        ASSERT_EQ(x.status().reason(), "XCLBIN_TRUNCATED") << name << " cut to " << n;
      } else {
        ASSERT_TRUE(x.ok()) << name << " cut to " << n << ": " << x.status().ToString();
      }
    }
  }
}

TEST(XclbinReaderTest, WrongMagicIsNamedEvenWhenShort) {
  std::vector<uint8_t> pdf = {'%', 'P', 'D', 'F'};
  StatusOr<Xclbin> x = ParseXclbin(Bytes(pdf));
  EXPECT_EQ(x.status().reason(), "XCLBIN_BAD_MAGIC");
  EXPECT_THAT(std::string(x.status().message()), HasSubstr("m_magic"));
  EXPECT_THAT(std::string(x.status().message()), HasSubstr("%PDF"));
  EXPECT_EQ(ParseXclbin(std::string_view()).status().reason(), "XCLBIN_TRUNCATED");
  EXPECT_EQ(ParseXclbin(std::string_view("xclbin2")).status().reason(), "XCLBIN_TRUNCATED");
  // "xclbin0", the previous format, is another magic.
  EXPECT_EQ(ParseXclbin(std::string_view("xclbin0\0", 8)).status().reason(), "XCLBIN_BAD_MAGIC");
}

class MutatedFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_SHARED_FIXTURES();
    bytes_ = ReadFixture("02_full_hw");
    layout_ = LayoutReport("02_full_hw");
  }
  size_t HeaderOf(const std::string& kind_name) {
    return LayoutSection(layout_, kind_name).at("hdr_off").get<size_t>();
  }
  size_t PayloadOf(const std::string& kind_name) {
    return LayoutSection(layout_, kind_name).at("offset").get<size_t>();
  }
  Status Parse() { return ParseXclbin(Bytes(bytes_)).status(); }
  std::vector<uint8_t> bytes_;
  Json layout_;
};

TEST_F(MutatedFixtureTest, SectionBeyondTheFileIsOutOfBounds) {
  // A size whose end overflows 64 bits must not wrap around into "inside".
  PutLe(&bytes_, HeaderOf("IP_LAYOUT") + kSecSize, ~uint64_t{0} - 8, 8);
  Status s = Parse();
  EXPECT_EQ(s.reason(), "SECTION_OUT_OF_BOUNDS");
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(SectionRef(layout_, "IP_LAYOUT") + " (IP_LAYOUT)"));

  bytes_ = ReadFixture("02_full_hw");
  PutLe(&bytes_, HeaderOf("BITSTREAM") + kSecOffset, bytes_.size() - 8, 8);
  EXPECT_EQ(Parse().reason(), "SECTION_OUT_OF_BOUNDS");
}

TEST_F(MutatedFixtureTest, CountBeyondTheSectionIsInconsistent) {
  PutLe(&bytes_, PayloadOf("IP_LAYOUT"), 2, 4);
  Status s = Parse();
  EXPECT_EQ(s.reason(), "METADATA_INCONSISTENT");
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("IP_LAYOUT (" + SectionRef(layout_, "IP_LAYOUT") + ") m_count 2"));

  bytes_ = ReadFixture("02_full_hw");
  PutLe(&bytes_, PayloadOf("MEM_TOPOLOGY"), 0x7FFFFFFF, 4);
  EXPECT_THAT(std::string(Parse().message()),
              HasSubstr("MEM_TOPOLOGY (" + SectionRef(layout_, "MEM_TOPOLOGY") + ") m_count"));

  bytes_ = ReadFixture("02_full_hw");
  PutLe(&bytes_, PayloadOf("CONNECTIVITY"), 0xFFFFFFFF, 4);
  s = Parse();
  EXPECT_EQ(s.reason(), "METADATA_INCONSISTENT");
  EXPECT_THAT(
      std::string(s.message()),
      HasSubstr("CONNECTIVITY (" + SectionRef(layout_, "CONNECTIVITY") + ") m_count is -1"));
}

TEST_F(MutatedFixtureTest, ClockCountBeyondTheSectionIsInconsistent) {
  bytes_ = ReadFixture("03_clock_freq");
  Json layout = LayoutReport("03_clock_freq");
  PutLe(&bytes_, LayoutSection(layout, "CLOCK_FREQ_TOPOLOGY").at("offset").get<size_t>(), 4, 2);
  Status s = Parse();
  EXPECT_EQ(s.reason(), "METADATA_INCONSISTENT");
  EXPECT_THAT(std::string(s.message()), HasSubstr("CLOCK_FREQ_TOPOLOGY"));
}

TEST_F(MutatedFixtureTest, SectionCountOverTheFormatLimit) {
  PutLe(&bytes_, kOffNumSections, kAxlfMaxSections + 1, 4);
  Status s = Parse();
  EXPECT_EQ(s.reason(), "TOO_MANY_SECTIONS");
  EXPECT_THAT(std::string(s.message()), HasSubstr("m_numSections"));
  PutLe(&bytes_, kOffNumSections, 0xFFFFFFFF, 4);
  EXPECT_EQ(Parse().reason(), "TOO_MANY_SECTIONS");
  // Within the format's limit, but more table than file.
  PutLe(&bytes_, kOffNumSections, kAxlfMaxSections, 4);
  EXPECT_EQ(Parse().reason(), "XCLBIN_TRUNCATED");
  // A caller's lower limit is checked from the header alone.
  EXPECT_EQ(ParseXclbinLayout(std::span(bytes_).first(kAxlfHeaderSize), 16).status().reason(),
            "TOO_MANY_SECTIONS");
}

TEST_F(MutatedFixtureTest, BadSignatureLengthIsABadHeader) {
  PutLe(&bytes_, kOffSignatureLength, static_cast<uint32_t>(-2), 4);
  Status s = Parse();
  EXPECT_EQ(s.reason(), "XCLBIN_BAD_HEADER");
  EXPECT_THAT(std::string(s.message()), HasSubstr("m_signature_length is -2"));
  // A signature that would cover the section table.
  PutLe(&bytes_, kOffSignatureLength, bytes_.size(), 4);
  s = Parse();
  EXPECT_EQ(s.reason(), "XCLBIN_BAD_HEADER");
  EXPECT_THAT(std::string(s.message()), HasSubstr("m_signature_length"));
}

TEST_F(MutatedFixtureTest, LengthSmallerThanTheTableIsALengthMismatch) {
  PutLe(&bytes_, kOffLength, 100, 8);
  Status s = Parse();
  EXPECT_EQ(s.reason(), "XCLBIN_LENGTH_MISMATCH");
  EXPECT_THAT(std::string(s.message()), HasSubstr("m_length is 100"));
}

TEST_F(MutatedFixtureTest, UnterminatedStringsAreReadToTheirFieldEnd) {
  std::fill(bytes_.begin() + kOffPlatformVbnv, bytes_.begin() + kOffPlatformVbnv + 64, 'v');
  size_t name_at = HeaderOf("IP_LAYOUT") + kSecName;
  std::fill(bytes_.begin() + static_cast<ptrdiff_t>(name_at),
            bytes_.begin() + static_cast<ptrdiff_t>(name_at + 16), 'n');
  StatusOr<Xclbin> x = ParseXclbin(Bytes(bytes_));
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  EXPECT_EQ(x->header.platform_vbnv, std::string(64, 'v'));
  size_t index = LayoutSection(layout_, "IP_LAYOUT").at("index").get<size_t>();
  EXPECT_EQ(x->sections[index].name, std::string(16, 'n'));
  EXPECT_THAT(x->unterminated_fields,
              ::testing::ElementsAre("m_platformVBNV",
                                     SectionRef(layout_, "IP_LAYOUT") + ".m_sectionName"));
}

TEST_F(MutatedFixtureTest, BytesNeededCoversHeaderThenTable) {
  uint64_t table_end =
      layout_.at("sections").back().at("hdr_off").get<uint64_t>() + kAxlfSectionHeaderSize;
  EXPECT_EQ(XclbinLayoutBytesNeeded(std::span(bytes_).first(100)), kAxlfHeaderSize);
  EXPECT_EQ(XclbinLayoutBytesNeeded(std::span(bytes_).first(kAxlfHeaderSize)), table_end);
  EXPECT_EQ(XclbinLayoutBytesNeeded(Bytes(bytes_), 3), kAxlfHeaderSize);
  StatusOr<XclbinLayout> layout =
      ParseXclbinLayout(std::span(bytes_).first(static_cast<size_t>(table_end)));
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  EXPECT_EQ(layout->sections.size(), layout_.at("sections").size());
  EXPECT_EQ(layout->TableEnd(), table_end);
}

TEST(UuidTest, FormatsLowercaseWithDashesAndParsesBothForms) {
  Uuid uuid = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
               0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
  EXPECT_EQ(FormatUuid(uuid), "12345678-9abc-def0-1122-334455667788");
  EXPECT_EQ(ParseUuid("12345678-9ABC-def0-1122-334455667788"), uuid);
  EXPECT_EQ(ParseUuid("123456789abcdef01122334455667788"), uuid);
  EXPECT_FALSE(ParseUuid("12345678-9abc-def0-1122-33445566778").has_value());
  EXPECT_FALSE(ParseUuid("12345678+9abc-def0-1122-334455667788").has_value());
  EXPECT_FALSE(ParseUuid("g2345678-9abc-def0-1122-334455667788").has_value());
  EXPECT_TRUE(IsNilUuid(Uuid{}));
  EXPECT_FALSE(IsNilUuid(uuid));
}

TEST(EscapeTest, KeepsPrintableAsciiAndEscapesTheRest) {
  EXPECT_EQ(EscapeForDisplay("vadd:vadd_1"), "vadd:vadd_1");
  EXPECT_EQ(EscapeForDisplay(std::string_view("a\0\x1b[2J\xff\\", 8)), "a\\x00\\x1b[2J\\xff\\x5c");
  EXPECT_EQ(EscapeForDisplay(std::string(10, 'x'), 4), "xxxx...");
}

TEST(NamesTest, UnknownValuesAreShownAsNumbers) {
  EXPECT_EQ(SectionKindName(0), "BITSTREAM");
  EXPECT_EQ(SectionKindName(36), "DTBO");
  EXPECT_EQ(SectionKindName(37), "UNKNOWN(37)");
  EXPECT_EQ(XclbinModeName(7), "UNKNOWN(7)");
  EXPECT_THAT(ActionMaskNames(0x3), ::testing::ElementsAre("LOAD_AIE", "LOAD_PDI"));
  EXPECT_THAT(ActionMaskNames(0x8000), ::testing::ElementsAre("0x8000"));
}

}  // namespace
}  // namespace fpgahost::images
