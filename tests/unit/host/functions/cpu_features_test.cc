#include "host/functions/cpu_features.h"

#include <elf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/files.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::functions {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Bytes = std::vector<uint8_t>;

// A binary built from tests/unit/host/functions/cpu_fixtures (see CMakeLists.txt).
fs::path Fixture(const std::string& name) { return fs::path(CPU_FIXTURES) / name; }

Bytes Read(const fs::path& path) {
  StatusOr<std::string> s = ReadFile(path);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? Bytes(s->begin(), s->end()) : Bytes();
}

void Write(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  ASSERT_TRUE(WriteFileAtomically(
                  path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()))
                  .ok());
}

void Write(const fs::path& path, std::string_view text) {
  fs::create_directories(path.parent_path());
  ASSERT_TRUE(WriteFileAtomically(path, text).ok());
}

// The features ScanElf finds in `bytes`, failing the test on an error or a non-ELF.
std::vector<std::string> Features(const Bytes& bytes, const std::string& name = "f") {
  StatusOr<std::optional<FileCpuFeatures>> r = ScanElf(bytes, name);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {"<error>"};
  EXPECT_TRUE(r->has_value()) << name << " was not taken for an ELF64 x86-64 file";
  return r->has_value() ? (*r)->features : std::vector<std::string>{"<not elf>"};
}

template <typename T>
T Get(const Bytes& b, size_t offset) {
  T v;
  std::memcpy(&v, b.data() + offset, sizeof(T));
  return v;
}

template <typename T>
void Put(Bytes& b, size_t offset, T v) {
  std::memcpy(b.data() + offset, &v, sizeof(T));
}

// The offset of the first executable section's header in an intact ELF64 file.
size_t ExecutableSectionHeader(const Bytes& b) {
  auto eh = Get<Elf64_Ehdr>(b, 0);
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    size_t at = eh.e_shoff + i * eh.e_shentsize;
    if (Get<Elf64_Shdr>(b, at).sh_flags & SHF_EXECINSTR) return at;
  }
  ADD_FAILURE() << "no executable section";
  return 0;
}

struct Expected {
  const char* file;
  std::vector<std::string> features;
};

TEST(CpuFeaturesTest, ReportsExactlyTheExtensionsEachBinaryUses) {
  const Expected cases[] = {
      {"libplain.so", {}},
      {"libavx2.so", {"avx", "avx2"}},
      {"libaes.so", {"aes"}},
      {"libsha.so", {"sha_ni"}},
      // VZEROUPPER is AVX; VPADDD zmm needs only the foundation.
      {"libavx512.so", {"avx", "avx512f"}},
      // EVEX on a 128-bit vector: the foundation and the vector-length extension.
      {"libavx512vl.so", {"avx", "avx512f", "avx512vl"}},
      {"libamx.so", {"amx_int8", "amx_tile"}},
      // Linked with libc: crt's startup code and the PLT are baseline.
      {"plain_program", {}},
      {"amx_program", {"amx_int8", "amx_tile"}},
  };
  for (const Expected& c : cases) {
    EXPECT_EQ(Features(Read(Fixture(c.file)), c.file), c.features) << c.file;
  }
}

TEST(CpuFeaturesTest, BundleReportsEachFileAndTheUnionSkippingOtherFiles) {
  testing::TempDir dir;
  Write(dir / "bootstrap", "#!/bin/sh\nexec ./handler\n");
  Write(dir / "lib/libavx2.so", Read(Fixture("libavx2.so")));
  Write(dir / "lib/crypto/libaes.so", Read(Fixture("libaes.so")));
  Write(dir / "handler", Read(Fixture("plain_program")));
  Write(dir / "empty", "");
  Write(dir / "ELF",
        "\x7f"
        "ELF");  // the magic and nothing else: no class, not ours
  fs::create_directories(dir / "empty-dir");

  StatusOr<CpuFeatureReport> r = ScanBundle(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_THAT(r->features, ElementsAre("aes", "avx", "avx2"));
  EXPECT_FALSE(r->declared);
  EXPECT_THAT(r->skipped, IsEmpty());
  ASSERT_EQ(r->files.size(), 3u);
  EXPECT_EQ(r->files[0].path, "handler");
  EXPECT_THAT(r->files[0].features, IsEmpty());
  EXPECT_EQ(r->files[1].path, "lib/crypto/libaes.so");
  EXPECT_THAT(r->files[1].features, ElementsAre("aes"));
  EXPECT_EQ(r->files[2].path, "lib/libavx2.so");
  EXPECT_THAT(r->files[2].features, ElementsAre("avx", "avx2"));
  uint64_t code = 0;
  for (const FileCpuFeatures& f : r->files) {
    EXPECT_GT(f.code_bytes, 0u) << f.path;
    code += f.code_bytes;
  }
  EXPECT_EQ(r->code_bytes, code);
}

TEST(CpuFeaturesTest, NonElfAndElfForOtherClassesAndMachinesAreSkipped) {
  const Bytes elf = Read(Fixture("libavx512.so"));
  auto skipped = [](const Bytes& bytes) {
    StatusOr<std::optional<FileCpuFeatures>> r = ScanElf(bytes, "f");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() && !r->has_value();
  };
  EXPECT_TRUE(skipped({}));
  EXPECT_TRUE(skipped(Bytes{'#', '!', '/', 'b', 'i', 'n', '/', 's', 'h', '\n'}));
  Bytes aarch64 = elf;
  Put<Elf64_Half>(aarch64, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
  EXPECT_TRUE(skipped(aarch64));
  Bytes elf32 = elf;
  elf32[EI_CLASS] = ELFCLASS32;
  EXPECT_TRUE(skipped(elf32));
  Bytes big_endian = elf;
  big_endian[EI_DATA] = ELFDATA2MSB;
  EXPECT_TRUE(skipped(big_endian));
}

TEST(CpuFeaturesTest, TruncatedElfIsAnErrorNamingTheFile) {
  testing::TempDir dir;
  Bytes elf = Read(Fixture("libavx512.so"));
  elf.resize(elf.size() / 2);  // the section header table is at the end
  Write(dir / "lib/libavx512.so", elf);
  StatusOr<CpuFeatureReport> r = ScanBundle(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().reason(), kReasonMalformedElf);
  EXPECT_THAT(r.status().message(), HasSubstr("lib/libavx512.so"));

  // Cut inside the ELF header itself.
  elf.resize(40);
  EXPECT_EQ(ScanElf(elf, "f").status().reason(), kReasonMalformedElf);
  elf.resize(19);
  EXPECT_EQ(ScanElf(elf, "f").status().reason(), kReasonMalformedElf);
}

TEST(CpuFeaturesTest, OutOfBoundsTablesAndSectionsAreErrors) {
  const Bytes elf = Read(Fixture("libavx512.so"));
  const auto eh = Get<Elf64_Ehdr>(elf, 0);
  auto error = [](const Bytes& bytes) {
    StatusOr<std::optional<FileCpuFeatures>> r = ScanElf(bytes, "libx.so");
    EXPECT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("libx.so"));
    return std::string(r.status().reason());
  };

  Bytes b = elf;
  Put<Elf64_Off>(b, ExecutableSectionHeader(b) + offsetof(Elf64_Shdr, sh_offset),
                 0xffffffffffff0000);
  EXPECT_EQ(error(b), kReasonMalformedElf);
  b = elf;
  Put<Elf64_Xword>(b, ExecutableSectionHeader(b) + offsetof(Elf64_Shdr, sh_size),
                   0xffffffffffffff00);
  EXPECT_EQ(error(b), kReasonMalformedElf);
  b = elf;
  Put<Elf64_Off>(b, offsetof(Elf64_Ehdr, e_shoff), elf.size() - 8);
  EXPECT_EQ(error(b), kReasonMalformedElf);
  b = elf;
  Put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shnum), 0xff00);
  EXPECT_EQ(error(b), kReasonMalformedElf);
  b = elf;
  Put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shentsize), 8);
  EXPECT_EQ(error(b), kReasonMalformedElf);
  // Extended numbering: e_shnum 0, the count in section 0's sh_size.
  b = elf;
  Put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shnum), 0);
  Put<Elf64_Xword>(b, eh.e_shoff + offsetof(Elf64_Shdr, sh_size), uint64_t{1} << 60);
  EXPECT_EQ(error(b), kReasonMalformedElf);
  b = elf;
  Put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shnum), 0);
  Put<Elf64_Xword>(b, eh.e_shoff + offsetof(Elf64_Shdr, sh_size), eh.e_shnum);
  EXPECT_THAT(Features(b), ElementsAre("avx", "avx512f"));

  // Without section headers, the program headers are what is checked.
  b = elf;
  Put<Elf64_Off>(b, offsetof(Elf64_Ehdr, e_shoff), 0);
  Put<Elf64_Off>(b, offsetof(Elf64_Ehdr, e_phoff), elf.size());
  EXPECT_EQ(error(b), kReasonMalformedElf);
  b = elf;
  Put<Elf64_Off>(b, offsetof(Elf64_Ehdr, e_shoff), 0);
  for (size_t i = 0; i < eh.e_phnum; ++i) {
    size_t at = eh.e_phoff + i * eh.e_phentsize;
    if (Get<Elf64_Phdr>(b, at).p_flags & PF_X) {
      Put<Elf64_Xword>(b, at + offsetof(Elf64_Phdr, p_filesz), elf.size());
    }
  }
  EXPECT_EQ(error(b), kReasonMalformedElf);
}

TEST(CpuFeaturesTest, WithoutSectionHeadersTheExecutableSegmentsAreScanned) {
  for (const char* name : {"libavx512.so", "amx_program"}) {
    Bytes b = Read(Fixture(name));
    const Bytes intact = b;
    Put<Elf64_Off>(b, offsetof(Elf64_Ehdr, e_shoff), 0);
    Put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shnum), 0);
    EXPECT_EQ(Features(b, name), Features(intact, name)) << name;
  }
}

// Every prefix of a real file, and seeded random corruptions of it: an answer or an error,
// never a crash or a read out of bounds (the tests run under ASan in CI; each input is its own
// exactly-sized allocation).
TEST(CpuFeaturesTest, PrefixesAndCorruptionsNeverReadOutOfBounds) {
  const Bytes elf = Read(Fixture("libavx512vl.so"));
  for (size_t n = 0; n <= elf.size(); ++n) {
    Bytes prefix(elf.begin(), elf.begin() + static_cast<ptrdiff_t>(n));
    StatusOr<std::optional<FileCpuFeatures>> r = ScanElf(prefix, "f");
    if (!r.ok()) {
      EXPECT_EQ(r.status().reason(), kReasonMalformedElf) << n;
    }
  }
  std::mt19937 rng(7);
  const size_t headers = std::min<size_t>(elf.size(), 4096);
  for (int round = 0; round < 3000; ++round) {
    Bytes b = elf;
    for (int k = 0; k < 4; ++k) {
      // Mostly in the headers, where offsets and sizes live; sometimes in the tables at the end.
      size_t at = round % 2 == 0 ? rng() % headers : rng() % b.size();
      b[at] = static_cast<uint8_t>(rng());
    }
    StatusOr<std::optional<FileCpuFeatures>> r = ScanElf(b, "f");
    if (!r.ok()) {
      EXPECT_EQ(r.status().reason(), kReasonMalformedElf) << round;
    }
  }
}

TEST(CpuFeaturesTest, CodeLimitBoundsTheScan) {
  const Bytes avx2 = Read(Fixture("libavx2.so"));
  const Bytes aes = Read(Fixture("libaes.so"));
  StatusOr<std::optional<FileCpuFeatures>> one = ScanElf(avx2, "a");
  ASSERT_TRUE(one.ok() && one->has_value());
  const uint64_t code = (*one)->code_bytes;
  ASSERT_GT(code, 0u);
  EXPECT_EQ(ScanElf(avx2, "a", code - 1).status().code(), StatusCode::kResourceExhausted);

  testing::TempDir dir;
  Write(dir / "a.so", avx2);
  Write(dir / "b.so", aes);
  StatusOr<CpuFeatureReport> r = ScanBundle(dir.path(), CpuScanLimits{code});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->files.size(), 1u);
  EXPECT_EQ(r->files[0].path, "a.so");
  EXPECT_THAT(r->skipped, ElementsAre("b.so"));
  EXPECT_THAT(r->features, ElementsAre("avx", "avx2"));
  EXPECT_EQ(r->code_bytes, code);
}

TEST(CpuFeaturesTest, DeclarationFileReplacesTheScan) {
  testing::TempDir dir;
  Write(dir / "libavx512.so", Read(Fixture("libavx512.so")));
  Write(dir / kCpuFeaturesFile, "# checked at run time by the binary itself\navx2  sse4_2\n\navx2");
  StatusOr<CpuFeatureReport> r = ScanBundle(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->declared);
  EXPECT_THAT(r->features, ElementsAre("avx2", "sse4_2"));
  ASSERT_EQ(r->files.size(), 1u);
  EXPECT_EQ(r->files[0].path, kCpuFeaturesFile);

  // Empty: baseline x86-64 only.
  Write(dir / kCpuFeaturesFile, "# nothing beyond x86-64\n");
  r = ScanBundle(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_THAT(r->features, IsEmpty());

  Write(dir / kCpuFeaturesFile, "avx2 AVX-512\n");
  r = ScanBundle(dir.path());
  EXPECT_EQ(r.status().reason(), kReasonInvalidCpuFeaturesFile);
  EXPECT_THAT(r.status().message(), HasSubstr("AVX-512"));
  Write(dir / kCpuFeaturesFile, std::string(5000, 'a'));
  EXPECT_EQ(ScanBundle(dir.path()).status().reason(), kReasonInvalidCpuFeaturesFile);
}

TEST(CpuFeaturesTest, HostCpuIsTheFirstProcessorsFlags) {
  HostCpu cpu = ParseCpuinfo(
      "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2  avx512f\n\n"
      "processor\t: 1\nflags\t\t: fpu sse2 amx_tile\n");
  EXPECT_THAT(cpu.flags, ElementsAre("avx2", "avx512f", "fpu", "sse2"));
  EXPECT_THAT(ParseCpuinfo("processor : 0\nFeatures : fp asimd\n").flags, IsEmpty());

  testing::TempDir dir;
  Write(dir / "cpuinfo", "flags : sse4_2 aes\n");
  StatusOr<HostCpu> read = ReadHostCpu(dir / "cpuinfo");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_THAT(read->flags, ElementsAre("aes", "sse4_2"));
  EXPECT_FALSE(ReadHostCpu(dir / "missing").ok());
  // This machine's: an x86-64 CPU lists at least SSE2.
  EXPECT_EQ(ThisHostCpu().flags.count("sse2"), 1u);
}

TEST(CpuFeaturesTest, MissingFeaturesAreThoseTheHostLacks) {
  HostCpu host{{"avx", "avx2", "aes"}};
  EXPECT_THAT(MissingFeatures({"avx2", "avx512f", "aes", "amx_tile"}, host),
              ElementsAre("amx_tile", "avx512f"));
  EXPECT_THAT(MissingFeatures({}, host), IsEmpty());
  EXPECT_THAT(MissingFeatures({"avx"}, HostCpu{}), ElementsAre("avx"));
}

}  // namespace
}  // namespace fpgahost::functions
