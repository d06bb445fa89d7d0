#include "vfio/domain_xml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/files.h"
#include "tests/support/golden.h"

namespace fpgahost::vfio {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Golden outputs live beside this file (tests/support/golden.h).
void ExpectGolden(const std::string& file, const std::string& actual) {
  ::fpgahost::testing::ExpectGolden(
      std::filesystem::path(FPGAHOST_SOURCE_DIR) / "tests" / "unit" / "vfio" / "golden" / file,
      actual);
}

DomainSpec OneSlotSpec() {
  DomainSpec spec;
  spec.name = "fpgahost-i-0123456789abcdef0";
  spec.uuid = "6f1c2b1e-8a4d-4c1b-9e55-0123456789ab";
  spec.vcpus = 4;
  spec.memory_mib = 8192;
  spec.hostdevs = {"0000:11:00.1"};
  spec.metadata = {
      "i-0123456789abcdef0", "acme", "f1.2xlarge", {{0, "card-0000-11-00-0", "0000:11:00.1"}}};
  return spec;
}

DomainSpec TwoSlotSpec() {
  DomainSpec spec;
  spec.name = "fpgahost-i-00000000000000abc";
  spec.vcpus = 8;
  spec.memory_mib = 16384;
  spec.boot_disk = "/var/lib/fpgahost/disks/i-00000000000000abc.qcow2";
  spec.hostdevs = {"0000:11:00.1", "0000:af:1f.7"};
  spec.metadata = {
      "i-00000000000000abc",
      "tenant-b",
      "f1.4xlarge",
      {{0, "card-0000-11-00-0", "0000:11:00.1"}, {1, "card-0000-af-1f-6", "0000:af:1f.7"}}};
  return spec;
}

DomainXmlOptions TestDriver() { return {"test", "", std::nullopt}; }

std::string Xml(const DomainSpec& spec, const DomainXmlOptions& options = TestDriver()) {
  StatusOr<std::string> xml = DomainXml(spec, options);
  EXPECT_TRUE(xml.ok()) << xml.status().ToString();
  return xml.value_or(std::string());
}

TEST(DomainXmlTest, OneSlotWithoutDisk) { ExpectGolden("one_slot_test.xml", Xml(OneSlotSpec())); }

TEST(DomainXmlTest, TwoSlotsWithQcow2Disk) {
  ExpectGolden("two_slots_qcow2_test.xml", Xml(TwoSlotSpec()));
}

TEST(DomainXmlTest, KvmWithQ35AndEmulator) {
  ExpectGolden("kvm_q35.xml", Xml(TwoSlotSpec(), {"kvm", "q35", "/usr/bin/qemu-system-x86_64"}));
}

TEST(DomainXmlTest, HostPassthroughCpuOnlyForKvm) {
  EXPECT_THAT(Xml(OneSlotSpec(), {"kvm", "", std::nullopt}), HasSubstr("host-passthrough"));
  EXPECT_THAT(Xml(OneSlotSpec(), {"test", "", std::nullopt}), Not(HasSubstr("<cpu")));
  EXPECT_THAT(Xml(OneSlotSpec(), {"qemu", "", std::nullopt}), Not(HasSubstr("<cpu")));
}

TEST(DomainXmlTest, DiskFormatFollowsExtension) {
  DomainSpec spec = OneSlotSpec();
  spec.boot_disk = "/disks/a.img";
  EXPECT_THAT(Xml(spec), HasSubstr("type=\"raw\""));
  spec.boot_disk = "/disks/a.QCOW2";
  EXPECT_THAT(Xml(spec), HasSubstr("type=\"qcow2\""));
  spec.boot_disk = "/disks/qcow2";
  EXPECT_THAT(Xml(spec), HasSubstr("type=\"raw\""));
}

TEST(DomainXmlTest, NoUuidLeavesItToTheHypervisor) {
  DomainSpec spec = OneSlotSpec();
  spec.uuid.clear();
  EXPECT_THAT(Xml(spec), Not(HasSubstr("<uuid")));
}

TEST(DomainXmlTest, EscapesEveryString) {
  DomainSpec spec = OneSlotSpec();
  spec.name = "a<b>&\"c'";
  spec.boot_disk = "/disks/x&y'<z>\".qcow2";
  spec.metadata.instance_id = "i-<&>";
  spec.metadata.tenant = "</fpgahost:instance><evil/>";
  spec.metadata.instance_type = "t\"' x='1";
  spec.metadata.slots[0].card_id = "card&amp;";
  DomainXmlOptions options{"kvm", "q35'\"<>&", "/opt/q&e/qemu"};
  std::string xml = Xml(spec, options);
  EXPECT_THAT(xml, HasSubstr("<name>a&lt;b&gt;&amp;&quot;c'</name>"));
  EXPECT_THAT(xml, HasSubstr("file=\"/disks/x&amp;y'&lt;z&gt;&quot;.qcow2\""));
  EXPECT_THAT(xml, HasSubstr("tenant=\"&lt;/fpgahost:instance&gt;&lt;evil/&gt;\""));
  EXPECT_THAT(xml, HasSubstr("card=\"card&amp;amp;\""));
  EXPECT_THAT(xml, HasSubstr("machine=\"q35'&quot;&lt;&gt;&amp;\""));
  EXPECT_THAT(xml, HasSubstr("<emulator>/opt/q&amp;e/qemu</emulator>"));
  EXPECT_THAT(xml, Not(HasSubstr("<evil")));
  // And it reads back as the same strings.
  StatusOr<std::optional<DomainMetadata>> back = ParseDomainMetadata(xml);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, spec.metadata);
}

TEST(DomainXmlTest, RefusesStringsXmlCannotCarry) {
  struct Case {
    std::string field;
    void (*spoil)(DomainSpec&);
  };
  const std::vector<Case> cases = {
      {"name", [](DomainSpec& s) { s.name = std::string("a\0b", 3); }},
      {"name", [](DomainSpec& s) { s.name = "tab\there"; }},
      {"name", [](DomainSpec& s) { s.name = ""; }},
      {"metadata.tenant", [](DomainSpec& s) { s.metadata.tenant = "\xff\xfe"; }},
      {"metadata.tenant", [](DomainSpec& s) { s.metadata.tenant = "\xc0\xaf"; }},      // overlong
      {"metadata.tenant", [](DomainSpec& s) { s.metadata.tenant = "\xed\xa0\x80"; }},  // surrogate
      {"metadata.instance_type", [](DomainSpec& s) { s.metadata.instance_type = "\x1b[31m"; }},
      {"metadata.slots[0].card_id", [](DomainSpec& s) { s.metadata.slots[0].card_id = "\n"; }},
      {"metadata.instance_id", [](DomainSpec& s) { s.metadata.instance_id = ""; }},
      {"boot_disk", [](DomainSpec& s) { s.boot_disk = "relative.qcow2"; }},
      {"boot_disk", [](DomainSpec& s) { s.boot_disk = "/a\rb"; }},
      {"uuid", [](DomainSpec& s) { s.uuid = "6f1c2b1e-8a4d-4c1b-9e55-0123456789a"; }},
      {"uuid", [](DomainSpec& s) { s.uuid = "6f1c2b1e+8a4d-4c1b-9e55-0123456789ab"; }},
      {"vcpus", [](DomainSpec& s) { s.vcpus = 0; }},
      {"memory_mib", [](DomainSpec& s) { s.memory_mib = -1; }},
      {"metadata.slots[0].index", [](DomainSpec& s) { s.metadata.slots[0].index = -1; }},
      {"metadata.slots[0].user_bdf", [](DomainSpec& s) { s.metadata.slots[0].user_bdf = ""; }},
  };
  for (const Case& c : cases) {
    DomainSpec spec = OneSlotSpec();
    c.spoil(spec);
    StatusOr<std::string> xml = DomainXml(spec, TestDriver());
    ASSERT_FALSE(xml.ok()) << c.field;
    EXPECT_EQ(xml.status().code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(xml.status().message()), HasSubstr(c.field));
  }
  // Non-ASCII text is fine.
  DomainSpec spec = OneSlotSpec();
  spec.metadata.tenant = "Müller & Söhne 🚀";
  StatusOr<std::optional<DomainMetadata>> back = ParseDomainMetadata(Xml(spec));
  ASSERT_TRUE(back.ok() && back->has_value()) << back.status().ToString();
  EXPECT_EQ((*back)->tenant, spec.metadata.tenant);
}

TEST(DomainXmlTest, HostdevAddresses) {
  DomainSpec spec = OneSlotSpec();
  spec.hostdevs = {"0000:11:00.1", "abcd:ef:1f.7"};
  std::string xml = Xml(spec);
  EXPECT_THAT(xml, HasSubstr("<address domain=\"0x0000\" bus=\"0x11\" slot=\"0x00\" "
                             "function=\"0x1\"/>"));
  EXPECT_THAT(xml, HasSubstr("<address domain=\"0xabcd\" bus=\"0xef\" slot=\"0x1f\" "
                             "function=\"0x7\"/>"));
  EXPECT_THAT(xml, HasSubstr("managed=\"no\""));
}

TEST(DomainXmlTest, RefusesMalformedBdfNamingTheField) {
  for (const std::string bad :
       {"", "0000:11:00", "0000:11:00.8", "0000:11:20.1", "0000:11:00.1 ", " 0000:11:00.1",
        "0000:AF:00.1", "00000:11:00.1", "0000-11-00.1", "zzzz:11:00.1", "0000:11:00:1",
        "+000:11:00.1", "0000:11:0x.1", "0000:11:00.1\n"}) {
    DomainSpec spec = OneSlotSpec();
    spec.hostdevs = {"0000:11:00.1", bad};
    StatusOr<std::string> xml = DomainXml(spec, TestDriver());
    ASSERT_FALSE(xml.ok()) << bad;
    EXPECT_EQ(xml.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(xml.status().message()), HasSubstr("hostdevs[1]")) << bad;
  }
  DomainSpec spec = OneSlotSpec();
  spec.hostdevs = {"0000:11:00.1", "0000:11:00.1"};
  StatusOr<std::string> twice = DomainXml(spec, TestDriver());
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("listed twice"));
}

TEST(DomainXmlTest, ParsePciAddress) {
  StatusOr<PciAddress> address = ParsePciAddress("0001:af:1e.3", "bdf");
  ASSERT_TRUE(address.ok());
  EXPECT_EQ(*address, (PciAddress{1, 0xaf, 0x1e, 3}));
  StatusOr<PciAddress> bad = ParsePciAddress("0001:af:1e", "slots[2].bdf");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "slots[2].bdf: \"0001:af:1e\" is not a PCI address DDDD:BB:SS.F (lower-case hex, "
            "slot <= 1f, function <= 7)");
}

StatusOr<std::optional<DomainMetadata>> Parse(std::string_view xml) {
  return ParseDomainMetadata(xml);
}

void ExpectInvalid(std::string_view xml, std::string_view what) {
  StatusOr<std::optional<DomainMetadata>> parsed = Parse(xml);
  ASSERT_FALSE(parsed.ok()) << xml.substr(0, 200);
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(std::string(what)))
      << xml.substr(0, 200);
}

TEST(DomainMetadataTest, RoundTripsThroughDomainXml) {
  for (const DomainSpec& spec : {OneSlotSpec(), TwoSlotSpec()}) {
    StatusOr<std::optional<DomainMetadata>> back = Parse(Xml(spec));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ASSERT_TRUE(back->has_value());
    EXPECT_EQ(**back, spec.metadata);
  }
  DomainSpec none = OneSlotSpec();
  none.metadata.slots.clear();
  none.hostdevs.clear();
  StatusOr<std::optional<DomainMetadata>> back = Parse(Xml(none));
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_TRUE((*back)->slots.empty());
}

TEST(DomainMetadataTest, ReadsTheElementAsLibvirtReturnsIt) {
  // virDomainGetMetadata(ELEMENT) gives our element with its namespace stripped.
  StatusOr<std::optional<DomainMetadata>> stripped = Parse(
      "<instance id=\"i-1\" tenant=\"t&lt;\" type=\"f1\">\n"
      "  <slot index=\"0\" card=\"c0\" bdf=\"0000:11:00.1\"/>\n"
      "  <slot index=\"1\" card=\"c1\" bdf=\"0000:12:00.1\"/>\n"
      "</instance>\n");
  ASSERT_TRUE(stripped.ok()) << stripped.status().ToString();
  ASSERT_TRUE(stripped->has_value());
  EXPECT_EQ(
      **stripped,
      (DomainMetadata{"i-1", "t<", "f1", {{0, "c0", "0000:11:00.1"}, {1, "c1", "0000:12:00.1"}}}));
  // With a namespace, any prefix (or none) will do, as long as the URI is ours.
  StatusOr<std::optional<DomainMetadata>> other_prefix = Parse(
      "<x:instance xmlns:x=\"https://fpgahost.dev/xmlns/instance/1\" id=\"i-1\" tenant=\"t\" "
      "type=\"f1\"><x:slot index=\"3\" card=\"c\" bdf=\"0000:11:00.1\"/><x:future/></x:instance>");
  ASSERT_TRUE(other_prefix.ok()) << other_prefix.status().ToString();
  ASSERT_EQ((*other_prefix)->slots.size(), 1u);
  EXPECT_EQ((*other_prefix)->slots[0].index, 3);
  StatusOr<std::optional<DomainMetadata>> default_ns = Parse(
      "<instance xmlns=\"https://fpgahost.dev/xmlns/instance/1\" id=\"i-2\" tenant=\"\" "
      "type=\"\"/>");
  ASSERT_TRUE(default_ns.ok()) << default_ns.status().ToString();
  EXPECT_EQ((*default_ns)->instance_id, "i-2");
}

TEST(DomainMetadataTest, FindsTheElementInADomainByNamespaceNotPrefix) {
  StatusOr<std::optional<DomainMetadata>> found = Parse(
      "<domain type='kvm'><name>x</name><metadata>"
      "<fpgahost:instance xmlns:fpgahost='urn:someone-else' id='wrong' tenant='' type=''/>"
      "<other:instance xmlns:other='https://fpgahost.dev/xmlns/instance/1' id='i-9' tenant='t' "
      "type='f1'/></metadata></domain>");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->instance_id, "i-9");
}

TEST(DomainMetadataTest, DomainWithoutOurElementHasNone) {
  for (const char* xml :
       {"<domain type='test'><name>test</name></domain>", "<domain><metadata/></domain>",
        "<domain><metadata><app:instance xmlns:app='urn:app' id='x'/></metadata></domain>",
        // Ours only counts inside <metadata>.
        "<domain><devices><f:instance xmlns:f='https://fpgahost.dev/xmlns/instance/1' id='i' "
        "tenant='' type=''/></devices></domain>"}) {
    StatusOr<std::optional<DomainMetadata>> parsed = Parse(xml);
    ASSERT_TRUE(parsed.ok()) << xml << ": " << parsed.status().ToString();
    EXPECT_FALSE(parsed->has_value()) << xml;
  }
}

TEST(DomainMetadataTest, WrongNamespaceOrRootIsAnError) {
  ExpectInvalid("<x:instance xmlns:x='urn:other' id='i' tenant='' type=''/>", "urn:other");
  ExpectInvalid("<instance xmlns='urn:other' id='i' tenant='' type=''/>", "urn:other");
  ExpectInvalid("<slot index='0' card='' bdf='0000:11:00.1'/>", "root element <slot>");
  ExpectInvalid("<x:instance id='i' tenant='' type=''/>", "namespace prefix");
  ExpectInvalid(
      "<domain><metadata><f:slot xmlns:f='https://fpgahost.dev/xmlns/instance/1'/></metadata>"
      "</domain>",
      "not fpgahost's instance element");
}

TEST(DomainMetadataTest, MissingOrBadAttributesAreErrors) {
  ExpectInvalid("<instance tenant='t' type='f1'/>", "instance has no attribute \"id\"");
  ExpectInvalid("<instance id='' tenant='t' type='f1'/>", "id is empty");
  ExpectInvalid("<instance id='i' type='f1'/>", "no attribute \"tenant\"");
  ExpectInvalid("<instance id='i' tenant='t'/>", "no attribute \"type\"");
  const std::string head = "<instance id='i' tenant='t' type='f1'>";
  ExpectInvalid(head + "<slot card='c' bdf='0000:11:00.1'/></instance>",
                "slot[0] has no attribute \"index\"");
  ExpectInvalid(head +
                    "<slot index='0' card='c' bdf='0000:11:00.1'/><slot index='1' "
                    "bdf='0000:12:00.1'/></instance>",
                "slot[1] has no attribute \"card\"");
  ExpectInvalid(head + "<slot index='0' card='c'/></instance>", "slot[0] has no attribute \"bdf\"");
  ExpectInvalid(head + "<slot index='0' card='c' bdf='11:00.1'/></instance>",
                "slot[0] attribute bdf");
  for (const char* index : {"-1", "1x", "", " 1", "0x1", "99999999999"}) {
    ExpectInvalid(head + "<slot index='" + index + "' card='c' bdf='0000:11:00.1'/></instance>",
                  "slot[0] attribute index");
  }
  // An attribute in another namespace is not ours.
  ExpectInvalid("<instance xmlns:o='urn:o' o:id='i' tenant='t' type='f1'/>", "no attribute \"id\"");
}

TEST(DomainMetadataTest, GarbageIsAnErrorNotACrash) {
  ExpectInvalid("", "not well-formed");
  ExpectInvalid("not xml at all", "not well-formed");
  ExpectInvalid("<", "not well-formed");
  ExpectInvalid("<instance id='i' tenant='t' type='f1'>", "not well-formed");
  ExpectInvalid("<instance id='i' id='j' tenant='t' type='f1'/>", "not well-formed");
  ExpectInvalid("<instance id='&bogus;' tenant='t' type='f1'/>", "not well-formed");
  ExpectInvalid("<instance id='&#0;' tenant='t' type='f1'/>", "not well-formed");
  static constexpr char kNul[] = "<instance id='a\0b' tenant='t' type='f1'/>";
  ExpectInvalid(std::string(kNul, sizeof(kNul) - 1), "not well-formed");
  ExpectInvalid("\xff\xfe<\x00i\x00", "not well-formed");
  ExpectInvalid("<instance id='\xff' tenant='t' type='f1'/>", "not well-formed");
}

TEST(DomainMetadataTest, DtdsAndEntityBombsAreRefused) {
  ExpectInvalid(
      "<?xml version='1.0'?><!DOCTYPE i [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;"
      "&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]>"
      "<instance id='&c;' tenant='t' type='f1'/>",
      "DOCTYPE");
  ExpectInvalid(
      "<!DOCTYPE i [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><instance id='&x;' tenant='t' "
      "type='f1'/>",
      "DOCTYPE");
  // Not hidden by another encoding either: the input is UTF-8, whatever it declares.
  std::string utf16;
  for (char c : std::string("<!DOCTYPE i [<!ENTITY a 'a'>]><instance id='&a;' tenant='t' "
                            "type='f1'/>")) {
    utf16 += c;
    utf16 += '\0';
  }
  ExpectInvalid(std::string("\xff\xfe", 2) + utf16, "not well-formed");
  ExpectInvalid(
      "<?xml version='1.0' encoding='UTF-7'?>+ADw-+ACE-DOCTYPE i +AFs-+ADw-+ACE-ENTITY a 'x'+AD4-"
      "+AF0-+AD4-<instance id='i' tenant='t' type='f1'/>",
      "not well-formed");
}

TEST(DomainMetadataTest, HugeInputIsRefused) {
  std::string huge =
      "<instance id='i' tenant='" + std::string(kMaxDomainXmlBytes, 'a') + "' type='f1'/>";
  ExpectInvalid(huge, "over the limit");
  // Deep nesting within the size limit: libxml2's depth limit, not our stack, says no.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  ExpectInvalid(deep, "not well-formed");
  // Big but allowed.
  std::string big =
      "<instance id='i' tenant='" + std::string(kMaxDomainXmlBytes / 2, 'b') + "' type='f1'/>";
  StatusOr<std::optional<DomainMetadata>> parsed = Parse(big);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ((*parsed)->tenant.size(), kMaxDomainXmlBytes / 2);
}

// Seeded mutations of a valid document: every result is a value or InvalidArgument (and ASan
// and UBSan watch the rest). The fuzz corpus is the place for more.
TEST(DomainMetadataTest, MutatedDocumentsNeverCrash) {
  const std::string valid = Xml(TwoSlotSpec());
  std::mt19937 random(20240611);
  static constexpr char kAlphabet[] = "<>/='\"&;:# \n\0\xff\xc3x";
  const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);
  for (int round = 0; round < 1000; ++round) {
    std::string doc = valid;
    int edits = 1 + static_cast<int>(random() % 8);
    for (int e = 0; e < edits && !doc.empty(); ++e) {
      size_t at = random() % doc.size();
      switch (random() % 4) {
        case 0:
          doc[at] = alphabet[random() % alphabet.size()];
          break;
        case 1:
          doc.erase(at, 1 + random() % 16);
          break;
        case 2:
          doc.insert(at, 1, alphabet[random() % alphabet.size()]);
          break;
        default:
          doc.insert(at, doc.substr(random() % doc.size(), random() % 64));
          break;
      }
    }
    StatusOr<std::optional<DomainMetadata>> parsed = Parse(doc);
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << doc;
    }
  }
}

}  // namespace
}  // namespace fpgahost::vfio
