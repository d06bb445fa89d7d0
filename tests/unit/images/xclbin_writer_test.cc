#include "images/xclbin_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <algorithm>
#include <string>
#include <vector>

#include "images/xclbin.h"
#include "images/xclbin_signature.h"
#include "images/xclbin_validator.h"
#include "tests/unit/images/xclbin_fixtures.h"
#include "tests/unit/images/xclbin_signing.h"

namespace fpgahost::images {
namespace {

namespace t = ::fpgahost::images::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::span<const uint8_t> Bytes(const std::vector<uint8_t>& v) { return v; }

Xclbin Parse(const std::vector<uint8_t>& bytes) {
  StatusOr<Xclbin> x = ParseXclbin(Bytes(bytes));
  EXPECT_TRUE(x.ok()) << x.status().ToString();
  return x.ok() ? *std::move(x) : Xclbin{};
}

template <typename T>
T Unwrap(StatusOr<T> v) {
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *std::move(v) : T{};
}

ShellCatalogue Shells() {
  return Unwrap(LoadShellCatalogue(std::string(FPGAHOST_SOURCE_DIR) + "/images/shells.json"));
}

const ShellSpec& U250(const ShellCatalogue& c) {
  const ShellSpec* s = c.FindByName("u250-gen3x16-xdma-4.1");
  EXPECT_NE(s, nullptr);
  return *s;
}

constexpr Uuid kUuid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

XclbinHeaderFields Header() {
  XclbinHeaderFields h;
  h.mode = static_cast<uint16_t>(XclbinMode::kHwEmu);
  h.action_mask = kActionLoadPdi;
  h.interface_uuid = *ParseUuid("12345678-9abc-def0-1122-334455667788");
  h.platform_vbnv = "xilinx_u250_gen3x16_xdma_shell_4_1";
  h.uuid = kUuid;
  h.time_stamp = 1700000123;
  h.feature_rom_time_stamp = 1600000000;
  h.debug_bin = "dbg";
  return h;
}

XclbinValidationOptions EmulationCheck() {
  XclbinValidationOptions o;
  o.shells = Shells();
  o.allowed_modes = EmulationModes();
  return o;
}

const char kVaddSource[] = R"(
// vadd: out = a + b
#define N 16
/* a comment with __kernel void fake(int x) { } inside */
__kernel void vadd(__global const uint* restrict a, __global const uint* b,
                   __global uint* out, const uint n) {
  const char* s = "kernel void not_a_kernel(";
  size_t i = get_global_id(0);
  if (i < n) out[i] = a[i] + b[i];
}
)";

TEST(XclbinWriterTest, RoundTripsThroughTheReader) {
  std::vector<IpData> ips = {
      {kIpTypeKernel, KernelIpProperties(true, 5, kIpControlChain), 0x1800000, "vadd:vadd_1"},
      {4, 0x00020003, 0x2000000, "ddr4_ctl"}};
  std::vector<MemData> mems = {{1, true, 16777216, 0x4000000000, "DDR[0]"},
                               {2, false, 128, 0x3000000000, "PLRAM[0]"}};
  std::vector<Connection> connections = {{0, 0, 0}, {1, 0, 0}, {2, 0, 0}};
  std::vector<ClockFreq> clocks = {{300, 1, "DATA_CLK"}, {250, 2, "KERNEL_CLK"}};
  std::vector<XclbinSection> sections;
  sections.push_back(Unwrap(IpLayoutSection(ips)));
  sections.push_back(Unwrap(MemTopologySection(mems)));
  sections.push_back(Unwrap(ConnectivitySection(connections)));
  sections.push_back(Unwrap(ClockFreqTopologySection(clocks)));
  sections.push_back(DataSection(SectionKind::kBitstream, "odd", "bits"));  // 3 bytes: padding
  sections.push_back(DataSection(SectionKind::kEmulationData, "__kernel void k() {}\n"));
  sections.push_back(JsonSection(SectionKind::kBuildMetadata, {{"build_metadata", {{"a", "b"}}}}));
  std::vector<uint8_t> bytes = Unwrap(WriteXclbin(Header(), sections));

  Xclbin x = Parse(bytes);
  const AxlfHeader& h = x.header;
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), std::string("xclbin2\0", 8));
  EXPECT_EQ(h.signature_length, -1);
  EXPECT_TRUE(h.reserved_all_ff);
  EXPECT_TRUE(h.key_block_all_ff);
  EXPECT_EQ(h.length, bytes.size());
  EXPECT_EQ(h.time_stamp, 1700000123u);
  EXPECT_EQ(h.unique_id, 1700000123u);  // as xclbinutil: the creation time
  EXPECT_EQ(h.feature_rom_time_stamp, 1600000000u);
  EXPECT_EQ(h.Version(), "2.26.0");
  EXPECT_EQ(h.mode, static_cast<uint16_t>(XclbinMode::kHwEmu));
  EXPECT_EQ(h.action_mask, kActionLoadPdi);
  EXPECT_EQ(FormatUuid(h.interface_uuid), "12345678-9abc-def0-1122-334455667788");
  EXPECT_EQ(h.platform_vbnv, "xilinx_u250_gen3x16_xdma_shell_4_1");
  EXPECT_EQ(h.uuid, kUuid);
  EXPECT_EQ(h.debug_bin, "dbg");
  EXPECT_TRUE(x.unterminated_fields.empty());

  ASSERT_EQ(x.sections.size(), 7u);
  std::vector<std::string> names;
  uint64_t end = kAxlfHeaderSize + 7 * kAxlfSectionHeaderSize;
  for (const SectionHeader& s : x.sections) {
    names.push_back(s.name);
    EXPECT_EQ(s.offset % 8, 0u) << s.name;
    EXPECT_GE(s.offset, end) << s.name << " overlaps the one before";
    EXPECT_LT(s.offset, end + 8) << s.name << " leaves a gap larger than the padding";
    end = s.offset + s.size;
  }
  EXPECT_THAT(names, ElementsAre("ip_layout", "mem_topology", "connectivity", "clock_freq_topo",
                                 "bits", "emulation_data", "build_metadata"));
  // xclbinutil's section sizes: entries after the count and its padding, nothing after.
  EXPECT_EQ(x.sections[0].size, 8u + 2 * 80);
  EXPECT_EQ(x.sections[1].size, 8u + 2 * 40);
  EXPECT_EQ(x.sections[2].size, 4u + 3 * 12);
  EXPECT_EQ(x.sections[3].size, 2u + 2 * 136);
  EXPECT_EQ(x.sections[4].size, 3u);

  ASSERT_TRUE(x.ip_layout.has_value());
  ASSERT_EQ(x.ip_layout->size(), 2u);
  const IpData& cu = (*x.ip_layout)[0];
  EXPECT_EQ(cu.type, kIpTypeKernel);
  EXPECT_TRUE(cu.interrupt_enabled());
  EXPECT_EQ(cu.interrupt_id(), 5u);
  EXPECT_EQ(cu.ip_control(), kIpControlChain);
  EXPECT_EQ(cu.base_address, 0x1800000u);
  EXPECT_EQ(cu.name, "vadd:vadd_1");
  EXPECT_EQ((*x.ip_layout)[1].properties, 0x00020003u);
  ASSERT_TRUE(x.mem_topology.has_value());
  ASSERT_EQ(x.mem_topology->size(), 2u);
  EXPECT_EQ((*x.mem_topology)[0].type, 1);
  EXPECT_TRUE((*x.mem_topology)[0].used);
  EXPECT_EQ((*x.mem_topology)[0].size_kb, 16777216u);
  EXPECT_EQ((*x.mem_topology)[0].base_address, 0x4000000000u);
  EXPECT_EQ((*x.mem_topology)[0].tag, "DDR[0]");
  EXPECT_FALSE((*x.mem_topology)[1].used);
  ASSERT_TRUE(x.connectivity.has_value());
  ASSERT_EQ(x.connectivity->size(), 3u);
  EXPECT_EQ((*x.connectivity)[2].arg_index, 2);
  ASSERT_TRUE(x.clocks.has_value());
  ASSERT_EQ(x.clocks->size(), 2u);
  EXPECT_EQ((*x.clocks)[1].freq_mhz, 250);
  EXPECT_EQ((*x.clocks)[1].type, 2);
  EXPECT_EQ((*x.clocks)[1].name, "KERNEL_CLK");
  ASSERT_TRUE(x.emulation_data.has_value());
  std::span<const uint8_t> emu = Slice(Bytes(bytes), *x.emulation_data);
  EXPECT_EQ(std::string(emu.begin(), emu.end()), "__kernel void k() {}\n");
  EXPECT_EQ(x.build_metadata, R"({"build_metadata":{"a":"b"}})");
  // The mirror block follows the last section and ends the file.
  ASSERT_TRUE(x.mirror.has_value());
  EXPECT_EQ(x.mirror->end, bytes.size());
}

TEST(XclbinWriterTest, WithoutMirrorDataTheFileEndsWithTheLastSection) {
  std::vector<XclbinSection> sections = {DataSection(SectionKind::kBitstream, "12345")};
  std::vector<uint8_t> bytes = Unwrap(WriteXclbin(Header(), sections, {.mirror_data = false}));
  Xclbin x = Parse(bytes);
  EXPECT_FALSE(x.mirror.has_value());
  EXPECT_EQ(bytes.size(), x.sections[0].offset + 5);
}

TEST(XclbinWriterTest, NewFilesGetFreshUuidsAndTheCurrentTime) {
  XclbinHeaderFields h = Header();
  h.uuid.reset();
  h.time_stamp.reset();
  uint64_t before = static_cast<uint64_t>(std::time(nullptr));
  Xclbin a = Parse(Unwrap(WriteXclbin(h, {})));
  Xclbin b = Parse(Unwrap(WriteXclbin(h, {})));
  EXPECT_NE(a.header.uuid, b.header.uuid);
  EXPECT_FALSE(IsNilUuid(a.header.uuid));
  EXPECT_GE(a.header.time_stamp, before);
  EXPECT_LE(a.header.time_stamp, before + 60);
}

TEST(XclbinWriterTest, RefusesWhatDoesNotFitItsField) {
  XclbinHeaderFields h = Header();
  h.platform_vbnv = std::string(64, 'v');
  Status s = WriteXclbin(h, {}).status();
  EXPECT_EQ(s.reason(), kReasonXclbinWriteInvalid);
  EXPECT_THAT(s.message(), HasSubstr("m_platformVBNV"));

  s = WriteXclbin(Header(), {DataSection(SectionKind::kBitstream, "x", std::string(16, 'n'))})
          .status();
  EXPECT_THAT(s.message(), HasSubstr("m_sections[0].m_sectionName"));
  s = IpLayoutSection({{kIpTypeKernel, 0, 0, std::string(64, 'k')}}).status();
  EXPECT_THAT(s.message(), HasSubstr("IP_LAYOUT m_ip_data[0].m_name"));
  s = MemTopologySection({{1, true, 1, 0, "0123456789abcdef"}}).status();
  EXPECT_THAT(s.message(), HasSubstr("MEM_TOPOLOGY m_mem_data[0].m_tag"));
  s = ClockFreqTopologySection({{100, 1, std::string(128, 'c')}}).status();
  EXPECT_THAT(s.message(), HasSubstr("m_clock_freq[0].m_name"));
  // 63 bytes and the NUL fit exactly.
  EXPECT_TRUE(IpLayoutSection({{kIpTypeKernel, 0, 0, std::string(63, 'k')}}).ok());
}

TEST(XclbinWriterTest, BankGroupingIsRefusedRatherThanWrittenWrong) {
  // Two contiguous DDR banks on one argument: xclbinutil would make a group entry.
  std::vector<MemData> mems = {{1, true, 1024, 0x0, "DDR[0]"}, {1, true, 1024, 0x100000, "DDR[1]"}};
  Status s = MemoryGroupSections(mems, {{0, 0, 0}, {0, 0, 1}}).status();
  EXPECT_EQ(s.reason(), kReasonXclbinWriteInvalid);
  EXPECT_THAT(s.message(), HasSubstr("contiguous banks"));
  // One bank per argument is what xclbinutil copies as it is, then repeats.
  std::vector<XclbinSection> groups = Unwrap(MemoryGroupSections(mems, {{1, 0, 1}, {0, 0, 0}}));
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].kind, static_cast<uint32_t>(SectionKind::kAskGroupConnectivity));
  EXPECT_EQ(groups[0].name, "");
  EXPECT_EQ(groups[1].kind, static_cast<uint32_t>(SectionKind::kAskGroupTopology));
  EXPECT_EQ(groups[1].payload, Unwrap(MemTopologySection(mems)).payload);
}

// The fixtures made by xclbinutil, rebuilt from what the reader reads out of them, come out
// byte for byte the same: header, table, padding, payloads and mirror data. The one difference
// on purpose is the mirror's "Version", where xclbinutil prints the version bytes as characters.
class XclbinutilLayoutTest : public ::testing::TestWithParam<std::string> {};

TEST_P(XclbinutilLayoutTest, RebuildingAFixtureGivesTheSameBytes) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  std::vector<uint8_t> fixture = t::ReadFixture(GetParam());
  Xclbin x = Parse(fixture);
  XclbinHeaderFields h;
  h.mode = x.header.mode;
  h.action_mask = x.header.action_mask;
  h.interface_uuid = x.header.interface_uuid;
  h.platform_vbnv = x.header.platform_vbnv;
  h.uuid = x.header.uuid;
  h.time_stamp = x.header.time_stamp;
  ASSERT_EQ(x.header.unique_id, x.header.time_stamp);
  h.feature_rom_time_stamp = x.header.feature_rom_time_stamp;
  h.version_major = x.header.version_major;
  h.version_minor = x.header.version_minor;
  h.version_patch = x.header.version_patch;
  h.debug_bin = x.header.debug_bin;

  std::vector<XclbinSection> sections;
  for (const SectionHeader& s : x.sections) {
    std::span<const uint8_t> p = Slice(Bytes(fixture), ByteRange{s.offset, s.size});
    XclbinSection section;
    switch (static_cast<SectionKind>(s.kind)) {
      case SectionKind::kIpLayout:
        section = Unwrap(IpLayoutSection(*x.ip_layout));
        break;
      case SectionKind::kMemTopology:
        section = Unwrap(MemTopologySection(*x.mem_topology));
        break;
      case SectionKind::kConnectivity:
        section = Unwrap(ConnectivitySection(*x.connectivity));
        break;
      case SectionKind::kClockFreqTopology:
        section = Unwrap(ClockFreqTopologySection(*x.clocks));
        break;
      case SectionKind::kAskGroupConnectivity:
        section = Unwrap(MemoryGroupSections(*x.mem_topology, *x.connectivity)).at(0);
        break;
      case SectionKind::kAskGroupTopology:
        section = Unwrap(MemoryGroupSections(*x.mem_topology, *x.connectivity)).at(1);
        break;
      default:
        section = DataSection(static_cast<SectionKind>(s.kind),
                              std::string_view(reinterpret_cast<const char*>(p.data()), p.size()));
    }
    section.name = s.name;
    EXPECT_EQ(section.payload, std::vector<uint8_t>(p.begin(), p.end()))
        << SectionKindName(s.kind) << " payload differs";
    sections.push_back(std::move(section));
  }
  std::vector<uint8_t> ours = Unwrap(WriteXclbin(h, sections));

  std::string expected(fixture.begin(), fixture.end());
  const std::string raw_version = R"("Version":"\u0002.\u001A.0")";
  size_t at = expected.find(raw_version);
  ASSERT_NE(at, std::string::npos);
  expected.replace(at, raw_version.size(), R"("Version":"2.26.0")");
  std::vector<uint8_t> want(expected.begin(), expected.end());
  t::PutLe(&want, t::kOffLength, want.size(), 8);
  ASSERT_EQ(ours.size(), want.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    ASSERT_EQ(ours[i], want[i]) << "first difference at byte " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, XclbinutilLayoutTest,
                         ::testing::Values("01_bitstream_only", "02_full_hw", "03_clock_freq",
                                           "06_hw_emu", "07_sw_emu", "09_tandem_actionmask",
                                           "10_empty"));

std::string KeyToPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

TEST(XclbinSignTest, SigningTheVendorsContentGivesTheVendorsSignature) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  // 05 is signed by xclbinutil; without its signature, signed again here, it is the same file
  // (RSA PKCS#1 v1.5 signatures over the same bytes are the same).
  std::vector<uint8_t> vendor = t::ReadFixture("05_signed");
  uint64_t signature = t::GetLe(vendor, t::kOffSignatureLength, 4);
  std::vector<uint8_t> unsigned_file(vendor.begin(), vendor.end() - static_cast<long>(signature));
  t::PutLe(&unsigned_file, t::kOffSignatureLength, 0xFFFFFFFF, 4);
  t::PutLe(&unsigned_file, t::kOffLength, unsigned_file.size(), 8);
  std::vector<uint8_t> ours =
      Unwrap(SignXclbin(unsigned_file, t::ReadText(t::XclbinFixturesDir() / "signing_private.key"),
                        t::ReadText(t::XclbinFixturesDir() / "signing_cert.pem")));
  EXPECT_EQ(ours, vendor);
}

TEST(XclbinSignTest, SignedFileVerifiesAndItsContentIsUnchanged) {
  t::KeyPtr key = t::NewRsaKey();
  t::CertPtr cert = t::SelfSignedCert(key.get(), "fpgahost packer test");
  std::vector<XclbinSection> sections = {DataSection(SectionKind::kBitstream, "bits")};
  std::vector<uint8_t> plain = Unwrap(WriteXclbin(Header(), sections));
  std::vector<uint8_t> signed_file =
      Unwrap(SignXclbin(plain, KeyToPem(key.get()), t::CertToPem(cert.get()), "sha256"));
  Xclbin x = Parse(signed_file);
  EXPECT_GT(x.header.signature_length, 0);
  EXPECT_EQ(x.header.length, signed_file.size());
  ASSERT_TRUE(x.signatures.pkcs7.has_value());
  EXPECT_EQ(x.signatures.pkcs7->offset, plain.size());
  EXPECT_TRUE(std::equal(plain.begin() + kAxlfHeaderSize, plain.end(),
                         signed_file.begin() + kAxlfHeaderSize));
  TrustedCerts trusted = Unwrap(TrustedCerts::Parse(t::CertToPem(cert.get()), "test"));
  StatusOr<XclbinSigner> signer = VerifyXclbinSignature(Bytes(signed_file), trusted);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  EXPECT_EQ(signer->digest, "SHA256");
  EXPECT_EQ(signer->subject, "CN=fpgahost packer test");
}

TEST(XclbinSignTest, RefusesWhatCannotBeSigned) {
  t::KeyPtr key = t::NewRsaKey();
  t::KeyPtr other = t::NewRsaKey();
  t::CertPtr cert = t::SelfSignedCert(key.get(), "signer");
  std::string key_pem = KeyToPem(key.get()), cert_pem = t::CertToPem(cert.get());
  std::vector<uint8_t> plain = Unwrap(WriteXclbin(Header(), {}));

  Status s = SignXclbin(plain, "not a key", cert_pem).status();
  EXPECT_EQ(s.reason(), kReasonXclbinWriteInvalid);
  EXPECT_THAT(s.message(), HasSubstr("private key"));
  s = SignXclbin(plain, key_pem, "not a certificate").status();
  EXPECT_THAT(s.message(), HasSubstr("certificate"));
  s = SignXclbin(plain, KeyToPem(other.get()), cert_pem).status();
  EXPECT_THAT(s.message(), HasSubstr("does not belong"));
  s = SignXclbin(plain, key_pem, cert_pem, "no-such-digest").status();
  EXPECT_THAT(s.message(), HasSubstr("digest"));
  std::vector<uint8_t> once = Unwrap(SignXclbin(plain, key_pem, cert_pem));
  s = SignXclbin(once, key_pem, cert_pem).status();
  EXPECT_THAT(s.message(), HasSubstr("already signed"));
  s = SignXclbin({1, 2, 3}, key_pem, cert_pem).status();
  EXPECT_EQ(s.reason(), kReasonBadMagic);
}

TEST(OpenClKernelsTest, FindsKernelsAndTheirArguments) {
  std::vector<OpenClKernel> k = Unwrap(FindOpenClKernels(kVaddSource, "vadd.cl"));
  ASSERT_EQ(k.size(), 1u);
  EXPECT_EQ(k[0].name, "vadd");
  ASSERT_EQ(k[0].args.size(), 4u);
  EXPECT_EQ(k[0].args[0].name, "a");
  EXPECT_EQ(k[0].args[0].type, "uint*");
  EXPECT_EQ(k[0].args[0].address_space, OpenClAddressSpace::kGlobal);
  EXPECT_TRUE(k[0].args[0].global_memory());
  EXPECT_EQ(k[0].args[2].name, "out");
  EXPECT_TRUE(k[0].args[2].global_memory());
  EXPECT_EQ(k[0].args[3].name, "n");
  EXPECT_EQ(k[0].args[3].type, "uint");
  EXPECT_FALSE(k[0].args[3].global_memory());
}

TEST(OpenClKernelsTest, HandlesTheWaysKernelsAreWritten) {
  const char* src = R"(
kernel void plain(global int *x, local float* scratch, constant int* table, int4 v) {}
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void attributed(__global char* restrict out) { { } }
__kernel void prototype(__global int* x);
__kernel void no_args(void) {}
#define MAKE(name) __kernel void name(__global int* p) {}
void helper(__global int* p) { int kernel = 0; }
__kernel void
  split_over_lines(
    __global unsigned int* data,   // trailing comment, with a comma
    unsigned long count) { }
)";
  std::vector<OpenClKernel> k = Unwrap(FindOpenClKernels(src, "k.cl"));
  std::vector<std::string> names;
  for (const auto& kernel : k) names.push_back(kernel.name);
  EXPECT_THAT(names, ElementsAre("plain", "attributed", "no_args", "split_over_lines"));
  ASSERT_EQ(k[0].args.size(), 4u);
  EXPECT_TRUE(k[0].args[0].global_memory());
  EXPECT_EQ(k[0].args[1].address_space, OpenClAddressSpace::kLocal);
  EXPECT_FALSE(k[0].args[1].global_memory());
  EXPECT_TRUE(k[0].args[2].global_memory());
  EXPECT_EQ(k[0].args[3].type, "int4");
  EXPECT_FALSE(k[0].args[3].pointer);
  ASSERT_EQ(k[1].args.size(), 1u);
  EXPECT_EQ(k[1].args[0].name, "out");
  EXPECT_TRUE(k[2].args.empty());
  ASSERT_EQ(k[3].args.size(), 2u);
  EXPECT_EQ(k[3].args[0].type, "unsigned int*");
  EXPECT_EQ(k[3].args[1].type, "unsigned long");
}

TEST(OpenClKernelsTest, UnreadableKernelsAreNamedWithFileAndLine) {
  Status s =
      FindOpenClKernels("\n\n__kernel void broken(__global int* a, int) {}", "bad.cl").status();
  EXPECT_EQ(s.reason(), kReasonPackInvalid);
  EXPECT_THAT(s.message(), HasSubstr("bad.cl:3"));
  EXPECT_THAT(s.message(), HasSubstr("argument 1 of kernel broken has no name"));
  s = FindOpenClKernels("__kernel void open(__global int* a", "open.cl").status();
  EXPECT_THAT(s.message(), HasSubstr("not closed"));
  EXPECT_TRUE(Unwrap(FindOpenClKernels("int main() { return 0; }", "none.cl")).empty());
}

TEST(PackTest, PackedXclbinPassesTheValidator) {
  ShellCatalogue shells = Shells();
  EmulationPackOptions o;
  o.sources = {{"vadd.cl", kVaddSource}};
  o.uuid = kUuid;
  o.time_stamp = 1700000000;
  std::vector<uint8_t> bytes = Unwrap(PackEmulationXclbin(U250(shells), o));
  StatusOr<ValidatedXclbin> v = ValidateXclbin(Bytes(bytes), EmulationCheck());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->shell, "u250-gen3x16-xdma-4.1");
  EXPECT_EQ(v->signature, SignatureState::kUnsigned);

  const Xclbin& x = v->xclbin;
  EXPECT_EQ(x.header.mode, static_cast<uint16_t>(XclbinMode::kSwEmu));
  EXPECT_EQ(FormatUuid(x.header.interface_uuid), "12345678-9abc-def0-1122-334455667788");
  EXPECT_EQ(x.header.platform_vbnv, "xilinx_u250_gen3x16_xdma_shell_4_1");
  EXPECT_EQ(x.header.uuid, kUuid);
  EXPECT_THAT(x.ComputeUnitNames(), ElementsAre("vadd:vadd_1"));
  EXPECT_EQ((*x.ip_layout)[0].base_address % 0x10000, 0u);
  ASSERT_EQ(x.mem_topology->size(), 1u);
  EXPECT_EQ((*x.mem_topology)[0].tag, "DDR[0]");
  EXPECT_EQ(MemTypeName((*x.mem_topology)[0].type), "MEM_DDR4");
  EXPECT_EQ((*x.mem_topology)[0].size_kb, 16777216u);
  // The three buffers are connected; the scalar n (argument 3) is not.
  std::vector<int32_t> args;
  for (const Connection& c : *x.connectivity) {
    args.push_back(c.arg_index);
    EXPECT_EQ(c.ip_layout_index, 0);
    EXPECT_EQ(c.mem_data_index, 0);
  }
  EXPECT_THAT(args, ElementsAre(0, 1, 2));
  ASSERT_EQ(x.clocks->size(), 2u);
  EXPECT_EQ((*x.clocks)[0].name, "DATA_CLK");
  EXPECT_EQ((*x.clocks)[1].name, "KERNEL_CLK");
  EXPECT_EQ((*x.clocks)[1].freq_mhz, 300);
  std::span<const uint8_t> emu = Slice(Bytes(bytes), *x.emulation_data);
  EXPECT_EQ(std::string(emu.begin(), emu.end()), EmulationSource(o.sources));
  EXPECT_EQ(std::string(emu.begin(), emu.end()).rfind("#line 1 \"vadd.cl\"\n", 0), 0u);
  ASSERT_TRUE(x.build_metadata.has_value());
  EXPECT_THAT(*x.build_metadata, HasSubstr(R"("name":"vadd")"));
  EXPECT_TRUE(x.HasSection(SectionKind::kEmbeddedMetadata));
  EXPECT_TRUE(x.HasSection(SectionKind::kAskGroupTopology));
  EXPECT_TRUE(x.HasSection(SectionKind::kAskGroupConnectivity));
}

TEST(PackTest, SeveralFilesAndKernels) {
  ShellCatalogue shells = Shells();
  EmulationPackOptions o;
  o.sources = {{"a.cl", "__kernel void first(__global int* x) {}"},
               {"b.cl",
                "__kernel void second(int s) {}\n__kernel void third(__global int* y, "
                "__global int* z) {}\n"}};
  o.memory_bank = "DDR[2]";
  o.kernel_clock_mhz = 450;
  o.mode = static_cast<uint16_t>(XclbinMode::kHwEmu);
  std::vector<uint8_t> bytes = Unwrap(PackEmulationXclbin(U250(shells), o));
  StatusOr<ValidatedXclbin> v = ValidateXclbin(Bytes(bytes), EmulationCheck());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const Xclbin& x = v->xclbin;
  EXPECT_THAT(x.KernelNames(), ElementsAre("first", "second", "third"));
  std::vector<uint64_t> bases;
  std::vector<uint32_t> interrupts;
  for (const IpData& ip : *x.ip_layout) {
    bases.push_back(ip.base_address);
    interrupts.push_back(ip.interrupt_id());
  }
  EXPECT_TRUE(std::is_sorted(bases.begin(), bases.end()));
  EXPECT_EQ(std::adjacent_find(bases.begin(), bases.end()), bases.end());
  EXPECT_THAT(interrupts, ElementsAre(0, 1, 2));
  EXPECT_EQ((*x.mem_topology)[0].tag, "DDR[2]");
  std::vector<std::pair<int32_t, int32_t>> conns;
  for (const Connection& c : *x.connectivity) conns.emplace_back(c.ip_layout_index, c.arg_index);
  EXPECT_THAT(conns, ElementsAre(std::pair(0, 0), std::pair(2, 0), std::pair(2, 1)));
  EXPECT_EQ((*x.clocks)[1].freq_mhz, 450);
  EXPECT_EQ(x.header.mode, static_cast<uint16_t>(XclbinMode::kHwEmu));
  std::string emu = EmulationSource(o.sources);
  EXPECT_THAT(emu, HasSubstr("#line 1 \"a.cl\"\n__kernel void first(__global int* x) {}\n#line 1 "
                             "\"b.cl\"\n"));
}

TEST(PackTest, SignedPackVerifies) {
  ShellCatalogue shells = Shells();
  EmulationPackOptions o;
  o.sources = {{"vadd.cl", kVaddSource}};
  t::KeyPtr key = t::NewRsaKey();
  t::CertPtr cert = t::SelfSignedCert(key.get(), "fleet operator");
  std::vector<uint8_t> bytes = Unwrap(SignXclbin(Unwrap(PackEmulationXclbin(U250(shells), o)),
                                                 KeyToPem(key.get()), t::CertToPem(cert.get())));
  XclbinValidationOptions check = EmulationCheck();
  check.signature_policy = SignaturePolicy::kRequire;
  check.trusted_certs = Unwrap(TrustedCerts::Parse(t::CertToPem(cert.get()), "test"));
  StatusOr<ValidatedXclbin> v = ValidateXclbin(Bytes(bytes), check);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->signature, SignatureState::kVerified);
  EXPECT_EQ(v->signer->digest, "SHA512");
}

TEST(PackTest, DefaultBankIsTheFirstDdrElseHbm) {
  ShellCatalogue shells = Shells();
  EXPECT_EQ(DefaultMemoryBank(U250(shells))->tag, "DDR[0]");
  const ShellSpec* u55c = shells.FindByName("u55c-gen3x16-xdma-3");
  ASSERT_NE(u55c, nullptr);
  EXPECT_EQ(DefaultMemoryBank(*u55c)->tag, "HBM[0]");
  EmulationPackOptions o;
  o.sources = {{"vadd.cl", kVaddSource}};
  std::vector<uint8_t> bytes = Unwrap(PackEmulationXclbin(*u55c, o));
  StatusOr<ValidatedXclbin> v = ValidateXclbin(Bytes(bytes), EmulationCheck());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->shell, "u55c-gen3x16-xdma-3");
  ShellSpec no_banks = U250(shells);
  no_banks.memory_banks.clear();
  EXPECT_EQ(DefaultMemoryBank(no_banks), nullptr);
  EXPECT_THAT(PackEmulationXclbin(no_banks, o).status().message(), HasSubstr("--memory-bank"));
}

TEST(PackTest, BadInputsAreRefusedWithTheReason) {
  ShellCatalogue shells = Shells();
  const ShellSpec& u250 = U250(shells);
  auto refused = [&](EmulationPackOptions o, const std::string& needle) {
    if (o.sources.empty() && needle != "no kernel source") o.sources = {{"vadd.cl", kVaddSource}};
    Status s = PackEmulationXclbin(u250, o).status();
    EXPECT_EQ(s.reason(), kReasonPackInvalid) << needle;
    EXPECT_THAT(s.message(), HasSubstr(needle));
  };
  refused({}, "no kernel source");
  EmulationPackOptions o;
  o.sources = {{"empty.cl", "int f(void) { return 1; }"}};
  refused(o, "no __kernel function found in empty.cl");
  o.sources = {{"a.cl", kVaddSource}, {"b.cl", kVaddSource}};
  refused(o, "b.cl: kernel vadd is defined twice");
  o = {};
  o.memory_bank = "DDR[9]";
  refused(o, "memory bank 'DDR[9]' is not one of shell u250-gen3x16-xdma-4.1's banks");
  o = {};
  o.kernel_clock_mhz = 501;
  refused(o, "kernel clock 501 MHz is outside 1..500 MHz");
  o.kernel_clock_mhz = 0;
  refused(o, "kernel clock 0 MHz");
  o = {};
  o.mode = static_cast<uint16_t>(XclbinMode::kFlat);
  refused(o, "not an emulation mode");
  o = {};
  std::string long_name(31, 'k');
  o.sources = {{"long.cl", "__kernel void " + long_name + "(__global int* x) {}"}};
  refused(o, "IP_LAYOUT");
  // 29 characters make "<29>:<29>_1", 61 bytes: that fits.
  o.sources = {{"ok.cl", "__kernel void " + std::string(29, 'k') + "(__global int* x) {}"}};
  EXPECT_TRUE(PackEmulationXclbin(u250, o).ok());
  ShellSpec no_kernel_limit = u250;
  no_kernel_limit.clocks = {{"DATA", "", 500}};
  o = {};
  o.sources = {{"vadd.cl", kVaddSource}};
  EXPECT_THAT(PackEmulationXclbin(no_kernel_limit, o).status().message(),
              HasSubstr("sets no limit for KERNEL clocks"));
}

}  // namespace
}  // namespace fpgahost::images
