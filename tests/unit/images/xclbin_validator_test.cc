#include "images/xclbin_validator.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>

#include "tests/unit/images/xclbin_fixtures.h"
#include "tests/unit/images/xclbin_signing.h"

namespace fpgahost::images {
namespace {

using ::testing::HasSubstr;
using namespace ::fpgahost::images::testing;  // NOLINT(google-build-using-namespace)

const std::filesystem::path kDefaultCatalogue =
    std::filesystem::path(FPGAHOST_SOURCE_DIR) / "images" / "shells.json";

ShellCatalogue DefaultCatalogue() {
  StatusOr<ShellCatalogue> catalogue = LoadShellCatalogue(kDefaultCatalogue);
  EXPECT_TRUE(catalogue.ok()) << catalogue.status().ToString();
  return catalogue.ok() ? *catalogue : ShellCatalogue();
}

XclbinValidationOptions HardwareFleet() {
  XclbinValidationOptions options;
  options.shells = DefaultCatalogue();
  options.allowed_modes = HardwareModes();
  options.signature_policy = SignaturePolicy::kNone;
  return options;
}

XclbinValidationOptions EmulatedFleet() {
  XclbinValidationOptions options = HardwareFleet();
  options.allowed_modes = EmulationModes();
  return options;
}

Status Validate(const std::vector<uint8_t>& bytes, const XclbinValidationOptions& options) {
  return ValidateXclbin(Bytes(bytes), options).status();
}

std::string Message(const Status& s) { return std::string(s.message()); }

class ValidatorTest : public ::testing::Test {
 public:
  // Public: the mutation tables below edit the bytes through lambdas.
  void SetUp() override { SKIP_WITHOUT_SHARED_FIXTURES(); }

  // A fixture and offsets from its layout report.
  void Load(const std::string& name) {
    bytes_ = ReadFixture(name);
    layout_ = LayoutReport(name);
  }
  size_t Header(const std::string& kind_name) {
    return LayoutSection(layout_, kind_name).at("hdr_off").get<size_t>();
  }
  size_t Payload(const std::string& kind_name) {
    return LayoutSection(layout_, kind_name).at("offset").get<size_t>();
  }

  std::vector<uint8_t> bytes_;
  Json layout_;
};

// What each fixture is on a fleet of real U250/U280/U55C cards (the default catalogue), on the
// emulated fleet, and with no platform checks at all.
TEST_F(ValidatorTest, FixturesOnEachKindOfFleet) {
  XclbinValidationOptions no_platform = HardwareFleet();
  no_platform.shells.reset();
  struct Expected {
    std::string hardware, emulated, no_catalogue;
  };
  const std::map<std::string, Expected> expected = {
      {"01_bitstream_only", {"SHELL_NOT_SUPPORTED", "MODE_NOT_SUPPORTED", "OK"}},
      {"02_full_hw", {"OK", "MODE_NOT_SUPPORTED", "OK"}},
      {"03_clock_freq", {"OK", "MODE_NOT_SUPPORTED", "OK"}},
      {"04_metadata", {"SHELL_NOT_SUPPORTED", "MODE_NOT_SUPPORTED", "BITSTREAM_MISSING"}},
      {"05_signed", {"OK", "MODE_NOT_SUPPORTED", "OK"}},
      {"06_hw_emu", {"MODE_NOT_SUPPORTED", "OK", "MODE_NOT_SUPPORTED"}},
      {"07_sw_emu", {"MODE_NOT_SUPPORTED", "OK", "MODE_NOT_SUPPORTED"}},
      {"08_hw_pr_partial_pdi", {"SHELL_NOT_SUPPORTED", "MODE_NOT_SUPPORTED", "OK"}},
      {"09_tandem_actionmask", {"SHELL_NOT_SUPPORTED", "MODE_NOT_SUPPORTED", "OK"}},
      {"10_empty", {"SHELL_NOT_SUPPORTED", "MODE_NOT_SUPPORTED", "BITSTREAM_MISSING"}},
      {"11_debug_ip_layout", {"SHELL_NOT_SUPPORTED", "MODE_NOT_SUPPORTED", "BITSTREAM_MISSING"}},
      {"12_user_signature", {"SHELL_NOT_SUPPORTED", "MODE_NOT_SUPPORTED", "OK"}},
  };
  ASSERT_EQ(expected.size(), FixtureNames().size());
  for (const std::string& name : FixtureNames()) {
    std::vector<uint8_t> bytes = ReadFixture(name);
    const Expected& e = expected.at(name);
    EXPECT_EQ(Validate(bytes, HardwareFleet()).reason(), e.hardware) << name;
    EXPECT_EQ(Validate(bytes, EmulatedFleet()).reason(), e.emulated) << name;
    EXPECT_EQ(Validate(bytes, no_platform).reason(), e.no_catalogue) << name;
  }
}

TEST_F(ValidatorTest, AcceptedFileNamesItsShell) {
  for (const char* name : {"02_full_hw", "03_clock_freq", "05_signed"}) {
    StatusOr<ValidatedXclbin> v = ValidateXclbin(Bytes(ReadFixture(name)), HardwareFleet());
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    ShellCatalogue catalogue = DefaultCatalogue();
    const ShellSpec* shell =
        catalogue.FindByVbnv(LayoutReport(name).at("m_platformVBNV").get<std::string>());
    ASSERT_NE(shell, nullptr);
    EXPECT_EQ(v->shell, shell->name) << name;
    EXPECT_TRUE(v->warnings.empty());
  }
  StatusOr<ValidatedXclbin> emu = ValidateXclbin(Bytes(ReadFixture("07_sw_emu")), EmulatedFleet());
  ASSERT_TRUE(emu.ok()) << emu.status().ToString();
  EXPECT_FALSE(emu->shell.empty());
}

TEST_F(ValidatorTest, OversizedFileIsRefusedAsPayloadTooLarge) {
  Load("02_full_hw");
  XclbinValidationOptions options = HardwareFleet();
  options.max_size = bytes_.size() - 1;
  Status s = Validate(bytes_, options);
  EXPECT_EQ(s.code(), StatusCode::kPayloadTooLarge);
  EXPECT_EQ(s.reason(), "INPUT_SIZE_ILLEGAL");
  EXPECT_THAT(Message(s), HasSubstr("max_size"));
  options.max_size = bytes_.size();
  EXPECT_TRUE(Validate(bytes_, options).ok());
}

TEST_F(ValidatorTest, StructuralErrorsNameTheField) {
  Load("02_full_hw");
  const Json layout = layout_;
  struct Case {
    std::string what;
    std::function<void(ValidatorTest*)> mutate;
    std::string reason;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"magic", [](ValidatorTest* t) { t->bytes_[3] = 'X'; }, "XCLBIN_BAD_MAGIC", "m_magic"},
      {"cut", [](ValidatorTest* t) { t->bytes_.resize(t->bytes_.size() - 1); }, "XCLBIN_TRUNCATED",
       "m_length"},
      {"trailing garbage",
       [](ValidatorTest* t) { t->bytes_.insert(t->bytes_.end(), 8, uint8_t{0}); },
       "XCLBIN_LENGTH_MISMATCH", "m_length"},
      {"m_length short of the file",
       [](ValidatorTest* t) { PutLe(&t->bytes_, kOffLength, t->bytes_.size() - 8, 8); },
       "XCLBIN_LENGTH_MISMATCH", "m_length"},
      {"m_signature_length 0",
       [](ValidatorTest* t) { PutLe(&t->bytes_, kOffSignatureLength, 0, 4); }, "XCLBIN_BAD_HEADER",
       "m_signature_length"},
      {"VBNV without NUL",
       [](ValidatorTest* t) {
         std::fill(t->bytes_.begin() + kOffPlatformVbnv, t->bytes_.begin() + kOffPlatformVbnv + 64,
                   'x');
       },
       "XCLBIN_BAD_HEADER", "m_platformVBNV"},
      {"section name without NUL",
       [](ValidatorTest* t) {
         size_t at = t->Header("CONNECTIVITY") + kSecName;
         std::fill(t->bytes_.begin() + static_cast<ptrdiff_t>(at),
                   t->bytes_.begin() + static_cast<ptrdiff_t>(at + 16), 'c');
       },
       "XCLBIN_BAD_HEADER", SectionRef(layout, "CONNECTIVITY") + ".m_sectionName"},
      {"unknown kind",
       [](ValidatorTest* t) { PutLe(&t->bytes_, t->Header("MEM_TOPOLOGY") + kSecKind, 999, 4); },
       "SECTION_UNKNOWN_KIND", SectionRef(layout, "MEM_TOPOLOGY") + ".m_sectionKind is 999"},
      {"misaligned",
       [](ValidatorTest* t) {
         size_t h = t->Header("IP_LAYOUT");
         PutLe(&t->bytes_, h + kSecOffset, GetLe(t->bytes_, h + kSecOffset, 8) + 4, 8);
         PutLe(&t->bytes_, h + kSecSize, GetLe(t->bytes_, h + kSecSize, 8) - 4, 8);
       },
       "SECTION_MISALIGNED", SectionLabel(layout, "IP_LAYOUT") + " m_sectionOffset"},
      {"overlap",
       [](ValidatorTest* t) {
         PutLe(&t->bytes_, t->Header("MEM_TOPOLOGY") + kSecOffset, t->Payload("IP_LAYOUT") + 8, 8);
       },
       "SECTION_OVERLAP",
       SectionLabel(layout, "IP_LAYOUT") + " and " + SectionLabel(layout, "MEM_TOPOLOGY")},
      {"into the header",
       [](ValidatorTest* t) { PutLe(&t->bytes_, t->Header("BITSTREAM") + kSecOffset, 8, 8); },
       "SECTION_OUT_OF_BOUNDS", SectionLabel(layout, "BITSTREAM")},
      {"past m_length",
       [](ValidatorTest* t) {
         PutLe(&t->bytes_, t->Header("BITSTREAM") + kSecSize, ~uint64_t{0} - 7, 8);
       },
       "SECTION_OUT_OF_BOUNDS", SectionLabel(layout, "BITSTREAM")},
      {"too many sections for the format",
       [](ValidatorTest* t) { PutLe(&t->bytes_, kOffNumSections, 0x10001, 4); },
       "TOO_MANY_SECTIONS", "m_numSections"},
  };
  for (const Case& c : cases) {
    Load("02_full_hw");
    c.mutate(this);
    Status s = Validate(bytes_, HardwareFleet());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_EQ(s.reason(), c.reason) << c.what << ": " << s.ToString();
    EXPECT_THAT(Message(s), HasSubstr(c.field)) << c.what;
  }
}

TEST_F(ValidatorTest, SectionLimitIsConfigurable) {
  Load("02_full_hw");
  XclbinValidationOptions options = HardwareFleet();
  options.max_sections = static_cast<uint32_t>(layout_.at("m_numSections").get<int>() - 1);
  Status s = Validate(bytes_, options);
  EXPECT_EQ(s.reason(), "TOO_MANY_SECTIONS");
  EXPECT_THAT(Message(s), HasSubstr("max_sections"));
}

TEST_F(ValidatorTest, UserSignatureMayFollowMLengthButNothingElse) {
  Load("12_user_signature");
  XclbinValidationOptions options = HardwareFleet();
  options.shells.reset();
  EXPECT_TRUE(Validate(bytes_, options).ok());
  bytes_.push_back(0);
  Status s = Validate(bytes_, options);
  EXPECT_EQ(s.reason(), "XCLBIN_LENGTH_MISMATCH");
  EXPECT_THAT(Message(s), HasSubstr("user signature block"));
}

TEST_F(ValidatorTest, ModeErrorsSayWhatTheFleetTakes) {
  Load("06_hw_emu");
  Status s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "MODE_NOT_SUPPORTED");
  EXPECT_THAT(Message(s), HasSubstr("m_mode XCLBIN_HW_EMU (4)"));
  EXPECT_THAT(Message(s), HasSubstr("XCLBIN_FLAT"));

  Load("02_full_hw");
  PutLe(&bytes_, kOffMode, 9, 2);
  s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "MODE_NOT_SUPPORTED");
  EXPECT_THAT(Message(s), HasSubstr("m_mode is 9"));
}

TEST_F(ValidatorTest, PlatformErrorsNameTheField) {
  Load("08_hw_pr_partial_pdi");
  Status s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "SHELL_NOT_SUPPORTED");
  std::string uuid = layout_.at("m_interface_uuid");
  EXPECT_THAT(Message(s), HasSubstr("m_interface_uuid " + uuid.substr(0, 8) + "-"));

  Load("11_debug_ip_layout");
  s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "SHELL_NOT_SUPPORTED");
  EXPECT_THAT(Message(s), HasSubstr("m_platformVBNV '" +
                                    layout_.at("m_platformVBNV").get<std::string>() + "'"));

  Load("01_bitstream_only");
  EXPECT_THAT(Message(Validate(bytes_, HardwareFleet())), HasSubstr("names no platform"));

  // The interface UUID of a shell with the VBNV of none: contradictory.
  Load("02_full_hw");
  std::string vbnv = layout_.at("m_platformVBNV");
  vbnv[0] ^= 0x20;
  bytes_[kOffPlatformVbnv] = static_cast<uint8_t>(vbnv[0]);
  s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "SHELL_NOT_SUPPORTED");
  EXPECT_THAT(Message(s), HasSubstr("m_platformVBNV '" + vbnv + "' does not match shell"));
}

TEST_F(ValidatorTest, ShellWithTheFilesInterfaceAcceptsIt) {
  Load("08_hw_pr_partial_pdi");
  std::vector<ShellSpec> shells = DefaultCatalogue().shells();
  for (ShellSpec& shell : shells) {
    if (shell.vbnv == layout_.at("m_platformVBNV")) {
      shell.interface_uuid = layout_.at("m_interface_uuid");
    }
  }
  XclbinValidationOptions options = HardwareFleet();
  StatusOr<ShellCatalogue> catalogue = ShellCatalogue::Create(shells);
  ASSERT_TRUE(catalogue.ok()) << catalogue.status().ToString();
  options.shells = *catalogue;
  EXPECT_TRUE(Validate(bytes_, options).ok()) << Validate(bytes_, options).ToString();
}

TEST_F(ValidatorTest, MetadataErrorsNameTheField) {
  Load("02_full_hw");
  const Json layout = layout_;
  const Json mirror = MirrorReport("02_full_hw");
  const uint64_t ips = ReportNumber(MirrorPayload(mirror, 8, "ip_layout").at("m_count"));
  const Json mems = MirrorPayload(mirror, 6, "mem_topology").at("m_mem_data");
  size_t unused_bank = 0;
  while (unused_bank < mems.size() && ReportNumber(mems[unused_bank].at("m_used")) != 0) {
    ++unused_bank;
  }
  ASSERT_LT(unused_bank, mems.size()) << "02_full_hw has an unused bank to point at";
  struct Case {
    std::string what;
    std::function<void(ValidatorTest*)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"kernel index past IP_LAYOUT",
       [](ValidatorTest* t) { PutLe(&t->bytes_, t->Payload("CONNECTIVITY") + 4 + 4, 5, 4); },
       fmt::format("CONNECTIVITY m_connection[0].m_ip_layout_index is 5 but IP_LAYOUT has {} "
                   "entries",
                   ips)},
      {"bank index past MEM_TOPOLOGY",
       [](ValidatorTest* t) { PutLe(&t->bytes_, t->Payload("CONNECTIVITY") + 4 + 12 + 8, 9, 4); },
       fmt::format("CONNECTIVITY m_connection[1].mem_data_index is 9 but MEM_TOPOLOGY has {} "
                   "entries",
                   mems.size())},
      {"negative argument",
       [](ValidatorTest* t) {
         PutLe(&t->bytes_, t->Payload("CONNECTIVITY") + 4 + 24, 0xFFFFFFFF, 4);
       },
       "CONNECTIVITY m_connection[2].arg_index is -1"},
      {"unused bank",
       [unused_bank](ValidatorTest* t) {
         PutLe(&t->bytes_, t->Payload("CONNECTIVITY") + 4 + 8, unused_bank, 4);
       },
       fmt::format("points at MEM_TOPOLOGY m_mem_data[{0}] '{1}', which is marked unused",
                   unused_bank, mems[unused_bank].at("m_tag").get<std::string>())},
      {"kernel IP that is not a kernel",
       [](ValidatorTest* t) { PutLe(&t->bytes_, t->Payload("IP_LAYOUT") + 8, 0, 4); },
       "which is IP_MB, not a kernel"},
      {"IP_LAYOUT count past its section",
       [](ValidatorTest* t) { PutLe(&t->bytes_, t->Payload("IP_LAYOUT"), 2, 4); },
       "IP_LAYOUT (" + SectionRef(layout, "IP_LAYOUT") + ") m_count 2"},
      {"unknown memory type",
       [](ValidatorTest* t) { t->bytes_[t->Payload("MEM_TOPOLOGY") + 8] = 200; },
       "MEM_TOPOLOGY m_mem_data[0].m_type is 200"},
      {"CU name without NUL",
       [](ValidatorTest* t) {
         size_t at = t->Payload("IP_LAYOUT") + 8 + 16;
         std::fill(t->bytes_.begin() + static_cast<ptrdiff_t>(at),
                   t->bytes_.begin() + static_cast<ptrdiff_t>(at + 64), 'k');
       },
       "IP_LAYOUT m_ip_data[0].m_name"},
      {"two CONNECTIVITY sections",
       [](ValidatorTest* t) {
         // The group connectivity section has the same layout; relabelled, it is a duplicate.
         PutLe(&t->bytes_, t->Header("ASK_GROUP_CONNECTIVITY") + kSecKind, 7, 4);
       },
       "two CONNECTIVITY sections, " + SectionRef(layout, "CONNECTIVITY") + " and " +
           SectionRef(layout, "ASK_GROUP_CONNECTIVITY")},
  };
  for (const Case& c : cases) {
    Load("02_full_hw");
    c.mutate(this);
    Status s = Validate(bytes_, HardwareFleet());
    EXPECT_EQ(s.reason(), "METADATA_INCONSISTENT") << c.what << ": " << s.ToString();
    EXPECT_THAT(Message(s), HasSubstr(c.field)) << c.what;
  }
}

TEST_F(ValidatorTest, MemoryBanksMustExistInTheShell) {
  Load("02_full_hw");
  const Json bank = MirrorPayload(MirrorReport("02_full_hw"), 6, "mem_topology")["m_mem_data"][0];
  ASSERT_EQ(ReportNumber(bank.at("m_used")), 1u) << "the test renames a used bank";
  std::string renamed = bank.at("m_tag");
  renamed[0] = renamed[0] == 'Z' ? 'Y' : 'Z';
  bytes_[Payload("MEM_TOPOLOGY") + 8 + 24] = static_cast<uint8_t>(renamed[0]);  // its m_tag
  Status s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "SHELL_NOT_SUPPORTED");
  EXPECT_THAT(Message(s), HasSubstr("MEM_TOPOLOGY m_mem_data[0].m_tag '" + renamed + "'"));

  Load("02_full_hw");
  PutLe(&bytes_, Payload("MEM_TOPOLOGY") + 8 + 8, uint64_t{1} << 40, 8);  // m_size, in KB
  s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "SHELL_NOT_SUPPORTED");
  EXPECT_THAT(Message(s), HasSubstr("m_mem_data[0].m_size"));
}

TEST_F(ValidatorTest, MissingPayloadDependsOnTheMode) {
  // A hardware file whose only bitstream is relabelled as a clearing bitstream.
  Load("02_full_hw");
  PutLe(&bytes_, Header("BITSTREAM") + kSecKind, 1, 4);
  Status s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "BITSTREAM_MISSING");
  EXPECT_THAT(Message(s), HasSubstr("m_mode XCLBIN_FLAT needs a BITSTREAM"));

  // An empty BITSTREAM section is no bitstream.
  Load("01_bitstream_only");
  PutLe(&bytes_, Header("BITSTREAM") + kSecSize, 0, 8);
  XclbinValidationOptions no_platform = HardwareFleet();
  no_platform.shells.reset();
  EXPECT_EQ(Validate(bytes_, no_platform).reason(), "BITSTREAM_MISSING");

  // An emulation file with nothing to emulate.
  Load("07_sw_emu");
  PutLe(&bytes_, Header("IP_LAYOUT") + kSecKind, 4, 4);  // -> DEBUG_DATA
  s = Validate(bytes_, EmulatedFleet());
  EXPECT_EQ(s.reason(), "BITSTREAM_MISSING");
  EXPECT_THAT(Message(s), HasSubstr("m_mode XCLBIN_SW_EMU needs something to emulate"));
}

TEST_F(ValidatorTest, ClockAboveTheShellsLimitIsIllegal) {
  Load("03_clock_freq");
  // The limit the default catalogue sets for the fixture's KERNEL clock.
  ShellCatalogue catalogue = DefaultCatalogue();
  const ShellSpec* shell = catalogue.FindByVbnv(layout_.at("m_platformVBNV").get<std::string>());
  ASSERT_NE(shell, nullptr);
  Json clocks = MirrorPayload(MirrorReport("03_clock_freq"), 11, "clock_freq_topology");
  size_t index = 0;
  while (clocks.at("m_clock_freq").at(index).at("m_type") != "KERNEL") ++index;
  std::string name = clocks["m_clock_freq"][index]["m_name"];
  std::optional<uint32_t> limit = shell->MaxClockMhz(2, name);
  ASSERT_TRUE(limit.has_value());

  size_t freq_at = Payload("CLOCK_FREQ_TOPOLOGY") + 2 + 136 * index;
  PutLe(&bytes_, freq_at, *limit, 2);
  EXPECT_TRUE(Validate(bytes_, HardwareFleet()).ok());
  PutLe(&bytes_, freq_at, *limit + 1, 2);
  Status s = Validate(bytes_, HardwareFleet());
  EXPECT_EQ(s.reason(), "CLOCK_ILLEGAL");
  EXPECT_THAT(Message(s),
              HasSubstr(fmt::format("m_clock_freq[{}] '{}' is {} MHz", index, name, *limit + 1)));
  EXPECT_THAT(Message(s), HasSubstr(shell->name));
}

TEST_F(ValidatorTest, ClockWithoutALimitIsIllegalWhenTheShellListsLimits) {
  Load("03_clock_freq");
  std::vector<ShellSpec> shells = DefaultCatalogue().shells();
  for (ShellSpec& shell : shells) {
    std::erase_if(shell.clocks, [](const ClockLimit& c) { return c.type == "SYSTEM"; });
  }
  XclbinValidationOptions options = HardwareFleet();
  options.shells = *ShellCatalogue::Create(shells);
  Status s = Validate(bytes_, options);
  EXPECT_EQ(s.reason(), "CLOCK_ILLEGAL");
  EXPECT_THAT(Message(s), HasSubstr("is a SYSTEM clock, for which shell"));
}

TEST_F(ValidatorTest, NamedClockLimitWinsOverTheTypeLimit) {
  Load("03_clock_freq");
  Json clocks = MirrorPayload(MirrorReport("03_clock_freq"), 11, "clock_freq_topology");
  const Json& first = clocks.at("m_clock_freq").at(0);
  std::vector<ShellSpec> shells = DefaultCatalogue().shells();
  for (ShellSpec& shell : shells) {
    shell.clocks.push_back({first.at("m_type").get<std::string>(),
                            first.at("m_name").get<std::string>(),
                            static_cast<uint32_t>(ReportNumber(first.at("m_freq_Mhz")) - 1)});
  }
  XclbinValidationOptions options = HardwareFleet();
  options.shells = *ShellCatalogue::Create(shells);
  Status s = Validate(bytes_, options);
  EXPECT_EQ(s.reason(), "CLOCK_ILLEGAL");
  EXPECT_THAT(Message(s), HasSubstr(first.at("m_name").get<std::string>()));
}

class SignaturePolicyTest : public ValidatorTest {
 protected:
  XclbinValidationOptions Policy(SignaturePolicy policy, bool with_certs) {
    XclbinValidationOptions options = HardwareFleet();
    options.shells.reset();
    options.signature_policy = policy;
    if (with_certs) {
      StatusOr<TrustedCerts> certs = TrustedCerts::Load({XclbinFixturesDir() / "signing_cert.pem"});
      EXPECT_TRUE(certs.ok()) << certs.status().ToString();
      if (certs.ok()) options.trusted_certs = *certs;
    }
    return options;
  }
};

TEST_F(SignaturePolicyTest, RequireAcceptsOnlyVerifiedSignatures) {
  XclbinValidationOptions require = Policy(SignaturePolicy::kRequire, true);
  StatusOr<ValidatedXclbin> v = ValidateXclbin(Bytes(ReadFixture("05_signed")), require);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->signature, SignatureState::kVerified);
  ASSERT_TRUE(v->signer.has_value());
  EXPECT_EQ(v->signer->subject, require.trusted_certs.Subjects().at(0));

  Status unsigned_file = Validate(ReadFixture("02_full_hw"), require);
  EXPECT_EQ(unsigned_file.reason(), "SIGNATURE_REQUIRED");
  EXPECT_THAT(Message(unsigned_file), HasSubstr("m_signature_length is -1"));

  // xclbinutil's user signature is text anyone can append: not a signature to rely on.
  std::string user_signature =
      InfoValue(InfoReport("12_user_signature"), "Signature:")->substr(strlen("Present - "));
  Status user = Validate(ReadFixture("12_user_signature"), require);
  EXPECT_EQ(user.reason(), "SIGNATURE_REQUIRED");
  EXPECT_THAT(Message(user), HasSubstr("user signature '" + user_signature + "'"));

  std::vector<uint8_t> tampered = ReadFixture("05_signed");
  tampered[LayoutSection(LayoutReport("05_signed"), "BITSTREAM").at("offset").get<size_t>()] ^= 1;
  EXPECT_EQ(Validate(tampered, require).reason(), "SIGNATURE_INVALID");

  EXPECT_EQ(Validate(ReadFixture("05_signed"), Policy(SignaturePolicy::kRequire, false)).reason(),
            "SIGNATURE_INVALID");
}

TEST_F(SignaturePolicyTest, WarnAcceptsWithWarnings) {
  XclbinValidationOptions warn = Policy(SignaturePolicy::kWarn, true);
  StatusOr<ValidatedXclbin> v = ValidateXclbin(Bytes(ReadFixture("02_full_hw")), warn);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->signature, SignatureState::kUnsigned);
  ASSERT_EQ(v->warnings.size(), 1u);
  EXPECT_EQ(v->warnings[0].code, "SIGNATURE_MISSING");

  v = ValidateXclbin(Bytes(ReadFixture("12_user_signature")), warn);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->signature, SignatureState::kUserSignature);
  ASSERT_EQ(v->warnings.size(), 1u);
  EXPECT_EQ(v->warnings[0].code, "SIGNATURE_NOT_VERIFIABLE");

  v = ValidateXclbin(Bytes(ReadFixture("05_signed")), warn);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->signature, SignatureState::kVerified);
  EXPECT_TRUE(v->warnings.empty());

  // Signed, but nothing to check it against.
  v = ValidateXclbin(Bytes(ReadFixture("05_signed")), Policy(SignaturePolicy::kWarn, false));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->signature, SignatureState::kNotChecked);
  ASSERT_EQ(v->warnings.size(), 1u);
  EXPECT_EQ(v->warnings[0].code, "SIGNATURE_NOT_CHECKED");

  // A signature that does not verify is refused even under warn.
  std::vector<uint8_t> tampered = ReadFixture("05_signed");
  tampered[LayoutSection(LayoutReport("05_signed"), "IP_LAYOUT").at("offset").get<size_t>() + 20] ^=
      1;
  EXPECT_EQ(Validate(tampered, warn).reason(), "SIGNATURE_INVALID");
}

TEST_F(SignaturePolicyTest, NoneLooksAtNoSignature) {
  std::vector<uint8_t> tampered = ReadFixture("05_signed");
  tampered[LayoutSection(LayoutReport("05_signed"), "BITSTREAM").at("offset").get<size_t>()] ^= 1;
  StatusOr<ValidatedXclbin> v =
      ValidateXclbin(Bytes(tampered), Policy(SignaturePolicy::kNone, true));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->signature, SignatureState::kNotChecked);
  EXPECT_TRUE(v->warnings.empty());
}

TEST(SignaturePolicyNamesTest, RoundTrip) {
  for (SignaturePolicy p :
       {SignaturePolicy::kNone, SignaturePolicy::kWarn, SignaturePolicy::kRequire}) {
    EXPECT_EQ(ParseSignaturePolicy(SignaturePolicyName(p)), p);
  }
  EXPECT_FALSE(ParseSignaturePolicy("maybe").has_value());
}

// The streaming check refuses uploads from their first bytes.
class PrefixTest : public ValidatorTest {};

TEST_F(PrefixTest, HeaderAndTableAreEnoughForAcceptedFiles) {
  for (const std::string& name : FixtureNames()) {
    std::vector<uint8_t> bytes = ReadFixture(name);
    XclbinValidationOptions options = HardwareFleet();
    uint64_t needed = XclbinPrefixBytesNeeded(std::span(bytes).first(10), options);
    EXPECT_EQ(needed, kAxlfHeaderSize);
    needed = XclbinPrefixBytesNeeded(std::span(bytes).first(needed), options);
    std::span<const uint8_t> prefix = std::span(bytes).first(static_cast<size_t>(needed));
    Status early = CheckXclbinPrefix(prefix, bytes.size(), options);
    Status full = Validate(bytes, options);
    if (full.ok()) {
      EXPECT_TRUE(early.ok()) << name << ": " << early.ToString();
    } else if (!early.ok()) {
      EXPECT_EQ(early.reason(), full.reason()) << name;
    }
  }
}

TEST_F(PrefixTest, RefusesEarly) {
  XclbinValidationOptions options = HardwareFleet();
  // Size, from the announced length alone.
  options.max_size = 1000;
  Status s = CheckXclbinPrefix({}, 1001, options);
  EXPECT_EQ(s.reason(), "INPUT_SIZE_ILLEGAL");
  EXPECT_EQ(s.code(), StatusCode::kPayloadTooLarge);
  options = HardwareFleet();

  auto prefix_of = [&](const std::vector<uint8_t>& bytes) {
    uint64_t needed = XclbinPrefixBytesNeeded(std::span(bytes).first(kAxlfHeaderSize), options);
    return std::span(bytes).first(static_cast<size_t>(needed));
  };
  // Mode and platform, from the header.
  std::vector<uint8_t> emu = ReadFixture("06_hw_emu");
  EXPECT_EQ(CheckXclbinPrefix(prefix_of(emu), std::nullopt, options).reason(),
            "MODE_NOT_SUPPORTED");
  std::vector<uint8_t> pr = ReadFixture("08_hw_pr_partial_pdi");
  EXPECT_EQ(CheckXclbinPrefix(prefix_of(pr), std::nullopt, options).reason(),
            "SHELL_NOT_SUPPORTED");
  // A missing signature, under require.
  options.signature_policy = SignaturePolicy::kRequire;
  std::vector<uint8_t> hw = ReadFixture("02_full_hw");
  EXPECT_EQ(CheckXclbinPrefix(prefix_of(hw), std::nullopt, options).reason(), "SIGNATURE_REQUIRED");
  options.signature_policy = SignaturePolicy::kNone;
  // An announced size short of m_length.
  EXPECT_EQ(CheckXclbinPrefix(prefix_of(hw), hw.size() - 1, options).reason(), "XCLBIN_TRUNCATED");
  // A prefix shorter than it needs to be.
  EXPECT_EQ(
      CheckXclbinPrefix(std::span(hw).first(kAxlfHeaderSize + 1), std::nullopt, options).reason(),
      "XCLBIN_TRUNCATED");
  // Too many sections: the header alone is enough, whatever follows.
  options.max_sections = 4;
  EXPECT_EQ(XclbinPrefixBytesNeeded(std::span(hw).first(kAxlfHeaderSize), options),
            kAxlfHeaderSize);
  EXPECT_EQ(CheckXclbinPrefix(std::span(hw).first(kAxlfHeaderSize), std::nullopt, options).reason(),
            "TOO_MANY_SECTIONS");
}

// Whatever the prefix check refuses, the full validation refuses for the same reason: the
// early answer to an upload is never different from the late one.
TEST_F(PrefixTest, EarlyRefusalIsTheFullValidationsRefusal) {
  for (const char* name : {"02_full_hw", "05_signed", "03_clock_freq", "08_hw_pr_partial_pdi"}) {
    std::vector<uint8_t> original = ReadFixture(name);
    for (SignaturePolicy policy : {SignaturePolicy::kNone, SignaturePolicy::kRequire}) {
      XclbinValidationOptions options = HardwareFleet();
      options.signature_policy = policy;
      uint64_t table_end =
          XclbinPrefixBytesNeeded(std::span(original).first(kAxlfHeaderSize), options);
      for (size_t pos = 0; pos < table_end; ++pos) {
        for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x10}, uint8_t{0x80}}) {
          std::vector<uint8_t> bytes = original;
          bytes[pos] ^= mask;
          uint64_t needed =
              XclbinPrefixBytesNeeded(std::span(bytes).first(kAxlfHeaderSize), options);
          needed = std::min<uint64_t>(needed, bytes.size());
          Status early = CheckXclbinPrefix(std::span(bytes).first(static_cast<size_t>(needed)),
                                           bytes.size(), options);
          if (early.ok()) continue;
          Status full = Validate(bytes, options);
          ASSERT_EQ(early.reason(), full.reason())
              << name << " byte " << pos << " ^ " << int{mask} << ": early " << early.ToString()
              << ", full " << full.ToString();
        }
      }
    }
  }
}

}  // namespace
}  // namespace fpgahost::images
