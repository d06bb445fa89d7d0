#include "host/functions/bundle.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/files.h"
#include "tests/support/temp_dir.h"
#include "tests/support/zip_builder.h"

namespace fpgahost::functions {
namespace {
namespace fs = std::filesystem;

using testing::Bootstrap;
using testing::kDir;
using testing::kFile;
using testing::MakeZip;
using testing::Spec;

// Replaces every occurrence of `from` by `to` (same length): in the local header and the
// central directory alike, so libzip's consistency check still passes.
void Patch(std::string& zip, std::string_view from, std::string_view to) {
  ASSERT_EQ(from.size(), to.size());
  int count = 0;
  for (size_t at = zip.find(from); at != std::string::npos; at = zip.find(from, at + 1)) {
    zip.replace(at, to.size(), to);
    ++count;
  }
  ASSERT_EQ(count, 2) << "expected the name in the local header and the central directory";
}

void Put32(std::string& zip, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) zip[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint16_t Get16(const std::string& zip, size_t at) {
  return static_cast<uint16_t>(static_cast<unsigned char>(zip[at]) |
                               (static_cast<unsigned char>(zip[at + 1]) << 8));
}

// Rewrites the uncompressed size `name` declares, in its local header and its central
// directory record.
void SetDeclaredSize(std::string& zip, std::string_view name, uint32_t size) {
  int patched = 0;
  for (size_t at = 0; at + 46 <= zip.size(); ++at) {
    if (zip.compare(at, 4, "PK\x03\x04") == 0 && Get16(zip, at + 26) == name.size() &&
        zip.compare(at + 30, name.size(), name) == 0) {
      Put32(zip, at + 22, size);
      ++patched;
    }
    if (zip.compare(at, 4, "PK\x01\x02") == 0 && Get16(zip, at + 28) == name.size() &&
        zip.compare(at + 46, name.size(), name) == 0) {
      Put32(zip, at + 24, size);
      ++patched;
    }
  }
  ASSERT_EQ(patched, 2);
}

std::string Base64Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  unsigned char out[64] = {};
  int n = EVP_EncodeBlock(out, digest, sizeof(digest));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

unsigned ModeOf(const fs::path& p) {
  struct stat st;
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::vector<std::string> Listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class BundleTest : public ::testing::Test {
 protected:
  // Refused by both functions with `reason`, and ExtractBundle leaves nothing behind.
  void ExpectRefused(const std::string& zip, std::string_view reason,
                     std::string_view message_part = {}, const BundleLimits& limits = {}) {
    auto inspected = InspectBundle(zip, limits);
    ASSERT_FALSE(inspected.ok());
    EXPECT_EQ(inspected.status().reason(), reason) << inspected.status().ToString();
    EXPECT_NE(inspected.status().message().find(message_part), std::string_view::npos)
        << inspected.status().ToString();
    const StatusCode code =
        reason == kReasonZipTooLarge ? StatusCode::kPayloadTooLarge : StatusCode::kInvalidArgument;
    EXPECT_EQ(inspected.status().code(), code);

    auto extracted = ExtractBundle(zip, dest(), limits);
    ASSERT_FALSE(extracted.ok());
    EXPECT_EQ(extracted.status(), inspected.status());
    EXPECT_FALSE(fs::exists(dest()));
    EXPECT_TRUE(Listing(dir_.path()).empty()) << "left behind: " << Listing(dir_.path())[0];
  }
  fs::path dest() const { return dir_ / "fn"; }

  testing::TempDir dir_;
};

TEST_F(BundleTest, GoodBundleExtractsWithContentsAndModes) {
  const std::string so(100'000, 'x');
  std::string zip = MakeZip({
      Bootstrap(),
      {"lib/x.so", so, kFile | 0644},
      {"share/", "", kDir | 0700},
      {"share/doc/a/b/readme.txt", "hello", kFile | 0600},
      {"bin/tool", "tool", kFile | 06755},  // setuid+setgid dropped
      {"stored.txt", "kept as is", kFile | 01644, ZIP_OPSYS_UNIX, ZIP_CM_STORE},
  });
  ::umask(077);  // modes must not depend on the umask
  auto info = ExtractBundle(zip, dest(), {});
  ::umask(022);
  ASSERT_TRUE(info.ok()) << info.status().ToString();

  EXPECT_EQ(info->zip_bytes, zip.size());
  EXPECT_EQ(info->files, 5u);
  EXPECT_EQ(info->unzipped_bytes, Bootstrap().data.size() + so.size() + 5 + 4 + 10);
  EXPECT_EQ(info->code_sha256_base64, Base64Sha256(zip));
  EXPECT_EQ(info->sha256_hex.size(), 64u);

  auto read = [&](const char* rel) { return ReadFile(dest() / rel).value_or("<missing>"); };
  EXPECT_EQ(read("bootstrap"), Bootstrap().data);
  EXPECT_EQ(read("lib/x.so"), so);
  EXPECT_EQ(read("share/doc/a/b/readme.txt"), "hello");
  EXPECT_EQ(read("stored.txt"), "kept as is");

  EXPECT_EQ(ModeOf(dest()), 0755u);
  EXPECT_EQ(ModeOf(dest() / "bootstrap"), 0755u);
  EXPECT_EQ(ModeOf(dest() / "lib/x.so"), 0644u);
  EXPECT_EQ(ModeOf(dest() / "bin/tool"), 0755u);
  EXPECT_EQ(ModeOf(dest() / "stored.txt"), 0644u);
  EXPECT_EQ(ModeOf(dest() / "share/doc/a/b/readme.txt"), 0644u);
  for (const char* d : {"lib", "bin", "share", "share/doc", "share/doc/a", "share/doc/a/b"}) {
    EXPECT_EQ(ModeOf(dest() / d), 0755u) << d;
  }
  struct stat st;
  ASSERT_EQ(::stat((dest() / "bootstrap").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::getuid());
  EXPECT_EQ(Listing(dir_.path()), std::vector<std::string>{"fn"});

  auto inspected = InspectBundle(zip, {});
  ASSERT_TRUE(inspected.ok()) << inspected.status().ToString();
  EXPECT_EQ(inspected->sha256_hex, info->sha256_hex);
  EXPECT_EQ(inspected->unzipped_bytes, info->unzipped_bytes);
  EXPECT_EQ(inspected->files, info->files);
}

TEST_F(BundleTest, DestinationWithTrailingSlashAndMissingParentIsFine) {
  auto info = ExtractBundle(MakeZip({Bootstrap()}), dir_ / "functions/fn/", {});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(fs::is_regular_file(dir_ / "functions/fn/bootstrap"));
  EXPECT_EQ(Listing(dir_ / "functions"), std::vector<std::string>{"fn"});
}

TEST_F(BundleTest, ExistingDestinationIsLeftUntouched) {
  fs::create_directory(dest());
  ASSERT_TRUE(WriteFileAtomically(dest() / "marker", "mine").ok());
  auto info = ExtractBundle(MakeZip({Bootstrap()}), dest(), {});
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(info.status().reason(), kReasonDestExists);
  EXPECT_EQ(Listing(dest()), std::vector<std::string>{"marker"});
  EXPECT_EQ(ReadFile(dest() / "marker").value_or(""), "mine");
  EXPECT_EQ(Listing(dir_.path()), std::vector<std::string>{"fn"});

  // An empty directory counts too: it is not replaced.
  fs::create_directory(dir_ / "empty");
  EXPECT_EQ(ExtractBundle(MakeZip({Bootstrap()}), dir_ / "empty", {}).status().reason(),
            kReasonDestExists);
  EXPECT_TRUE(fs::is_empty(dir_ / "empty"));
}

TEST_F(BundleTest, NotAZip) {
  ExpectRefused("", kReasonInvalidZip, "empty");
  ExpectRefused("this is not a zip file at all, just some text", kReasonInvalidZip,
                "not a valid zip");
  std::string zip = MakeZip({Bootstrap()});
  ExpectRefused(zip.substr(0, zip.size() / 2), kReasonInvalidZip);
}

TEST_F(BundleTest, SizeAndEntryLimits) {
  std::string zip = MakeZip({Bootstrap(), {"a", std::string(1000, 'a')}, {"b", "b"}});
  BundleLimits limits;
  limits.max_zip_bytes = zip.size() - 1;
  ExpectRefused(zip, kReasonZipTooLarge, "the limit is", limits);

  limits = {};
  limits.max_unzipped_bytes = 1000;
  ExpectRefused(zip, kReasonUnzippedTooLarge, "'a'", limits);

  limits = {};
  limits.max_entries = 2;
  ExpectRefused(zip, kReasonTooManyEntries, "3 entries", limits);

  limits = {};
  limits.max_unzipped_bytes = Bootstrap().data.size() + 1001;
  limits.max_entries = 3;
  EXPECT_TRUE(InspectBundle(zip, limits).ok());
}

TEST_F(BundleTest, CompressionRatioOverTheLimitIsAZipBomb) {
  const std::string zeros(2 << 20, '\0');
  ExpectRefused(MakeZip({Bootstrap(), {"lib/zeros", zeros}}), kReasonZipBomb, "'lib/zeros'");

  // A small file compresses past the ratio harmlessly and is let through.
  EXPECT_TRUE(InspectBundle(MakeZip({Bootstrap(), {"pad", std::string(100'000, '\0')}}), {}).ok());

  // So is a big one when the ratio allows it.
  BundleLimits lax;
  lax.max_ratio = 5000;
  EXPECT_TRUE(InspectBundle(MakeZip({Bootstrap(), {"lib/zeros", zeros}}), lax).ok());
}

TEST_F(BundleTest, DeclaredSizeThatLiesIsStoppedWhileDecompressing) {
  // 4 MiB of zeros that declare 1000 bytes: the up-front checks pass (ratio and totals look
  // small), so only the streaming limit can stop it.
  std::string zip = MakeZip({Bootstrap(), {"lib/liar", std::string(4 << 20, '\0')}});
  SetDeclaredSize(zip, "lib/liar", 1000);
  BundleLimits limits;
  limits.max_unzipped_bytes = 1 << 20;
  ExpectRefused(zip, kReasonZipBomb, "'lib/liar' inflates to more than the 1000 bytes", limits);

  // Declaring more than it holds is a corrupt zip (libzip's size check at the end).
  std::string short_zip = MakeZip({Bootstrap(), {"lib/short", std::string(5000, 'q')}});
  SetDeclaredSize(short_zip, "lib/short", 6000);
  ExpectRefused(short_zip, kReasonInvalidZip, "'lib/short'");
}

TEST_F(BundleTest, CorruptDataIsInvalid) {
  std::string zip = MakeZip(
      {Bootstrap(), {"data", std::string(5000, 'z'), kFile | 0644, ZIP_OPSYS_UNIX, ZIP_CM_STORE}});
  size_t at = zip.find(std::string(100, 'z'));
  ASSERT_NE(at, std::string::npos);
  zip[at + 50] = 'Z';
  ExpectRefused(zip, kReasonInvalidZip, "'data' is corrupt");
}

TEST_F(BundleTest, PathTraversalIsRefused) {
  ExpectRefused(MakeZip({Bootstrap(), {"../evil", "x"}}), kReasonPathTraversal, "'../evil'");
  ExpectRefused(MakeZip({Bootstrap(), {"lib/../../evil", "x"}}), kReasonPathTraversal);
  ExpectRefused(MakeZip({Bootstrap(), {"/etc/evil", "x"}}), kReasonPathTraversal, "absolute");
  ExpectRefused(MakeZip({Bootstrap(), {"..\\evil", "x"}}), kReasonPathTraversal);
  ExpectRefused(MakeZip({Bootstrap(), {"../", ""}}), kReasonPathTraversal);
}

TEST_F(BundleTest, BadEntryNamesAreRefused) {
  ExpectRefused(MakeZip({Bootstrap(), {"lib\\x.so", "x"}}), kReasonInvalidEntryName, "backslash");
  ExpectRefused(MakeZip({Bootstrap(), {"lib//x.so", "x"}}), kReasonInvalidEntryName);
  ExpectRefused(MakeZip({Bootstrap(), {"./x", "x"}}), kReasonInvalidEntryName);
  ExpectRefused(MakeZip({Bootstrap(), {std::string(256, 'n'), "x"}}), kReasonInvalidEntryName,
                "longer than 255");
  ExpectRefused(MakeZip({Bootstrap(), {"", "x"}}), kReasonInvalidEntryName, "empty name");
}

TEST_F(BundleTest, DuplicateNamesAreRefused) {
  std::string zip = MakeZip({Bootstrap(), {"lib/dupA", "1"}, {"lib/dupB", "2"}});
  Patch(zip, "lib/dupB", "lib/dupA");
  ExpectRefused(zip, kReasonInvalidEntryName, "'lib/dupA' appears more than once");

  ExpectRefused(MakeZip({Bootstrap(), {"lib", "file"}, {"lib/", "", kDir | 0755}}),
                kReasonInvalidEntryName, "'lib' appears more than once");
  ExpectRefused(MakeZip({Bootstrap(), {"lib", "file"}, {"lib/x.so", "so"}}),
                kReasonInvalidEntryName, "'lib/x.so' is inside 'lib'");
}

TEST_F(BundleTest, NulInANameCannotTruncateIt) {
  // libzip reads an embedded NUL as a space: "bootstrap\0x" cannot pass for "bootstrap".
  std::string zip = MakeZip({Bootstrap(), {"lib/aXb", "x"}, {"bootstrapQx", "y"}});
  Patch(zip, "lib/aXb", std::string_view("lib/a\0b", 7));
  Patch(zip, "bootstrapQx", std::string_view("bootstrap\0x", 11));
  auto info = ExtractBundle(zip, dest(), {});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(Listing(dest() / "lib"), std::vector<std::string>{"a b"});
  EXPECT_EQ(ReadFile(dest() / "bootstrap").value_or(""), Bootstrap().data);
  EXPECT_EQ(ReadFile(dest() / "bootstrap x").value_or(""), "y");
}

TEST_F(BundleTest, SymlinksAndSpecialFilesAreRefused) {
  ExpectRefused(MakeZip({Bootstrap(), {"lib/link", "/etc/passwd", S_IFLNK | 0777}}),
                kReasonSymlinkNotAllowed, "'lib/link'");
  ExpectRefused(MakeZip({{"bootstrap", "/bin/sh", S_IFLNK | 0777}}), kReasonSymlinkNotAllowed,
                "'bootstrap'");
  ExpectRefused(MakeZip({Bootstrap(), {"dev/null", "", S_IFCHR | 0666}}),
                kReasonSpecialFileNotAllowed, "'dev/null'");
  ExpectRefused(MakeZip({Bootstrap(), {"fifo", "", S_IFIFO | 0644}}), kReasonSpecialFileNotAllowed);
}

TEST_F(BundleTest, EncryptedEntriesAreRefused) {
  if (!zip_encryption_method_supported(ZIP_EM_AES_256, 1)) {
    GTEST_SKIP() << "this libzip cannot write AES-encrypted entries";
  }
  Spec secret{"secret", "payload"};
  secret.password = "hunter2";
  ExpectRefused(MakeZip({Bootstrap(), secret}), kReasonEncryptedEntry, "'secret'");
}

TEST_F(BundleTest, BootstrapMustBeAnExecutableFileAtTheRoot) {
  ExpectRefused(MakeZip({{"handler", "x", kFile | 0755}}), kReasonNoBootstrap,
                "no 'bootstrap' at its root");
  ExpectRefused(MakeZip({{"myfn/bootstrap", "x", kFile | 0755}}), kReasonNoBootstrap,
                "zip the contents of 'myfn'");
  ExpectRefused(MakeZip({{"bootstrap/", "", kDir | 0755}, {"bootstrap/run", "x"}}),
                kReasonNoBootstrap, "directory");
  ExpectRefused(MakeZip({Bootstrap(kFile | 0644)}), kReasonBootstrapNotExecutable,
                "chmod +x bootstrap");
  Spec windows = Bootstrap(0);
  windows.opsys = ZIP_OPSYS_DOS;
  ExpectRefused(MakeZip({windows}), kReasonBootstrapNotExecutable, "chmod +x bootstrap");

  // Execute permission for the owner alone is enough; the file is made 0755.
  ASSERT_TRUE(ExtractBundle(MakeZip({Bootstrap(kFile | 0744)}), dest(), {}).ok());
  EXPECT_EQ(ModeOf(dest() / "bootstrap"), 0755u);
}

TEST_F(BundleTest, RandomByteFlipsNeverCrash) {
  const std::string good = MakeZip({
      Bootstrap(),
      {"lib/x.so", std::string(3000, 's') + "tail"},
      {"share/", "", kDir | 0755},
      {"share/doc/readme", "read me"},
      {"raw", "stored bytes", kFile | 0644, ZIP_OPSYS_UNIX, ZIP_CM_STORE},
  });
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> position(0, good.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> flips(1, 8);
  int accepted = 0;
  for (int i = 0; i < 500; ++i) {
    std::string zip = good;
    for (int n = flips(rng); n > 0; --n) zip[position(rng)] = static_cast<char>(byte(rng));
    auto inspected = InspectBundle(zip, {});
    const fs::path out = dir_ / ("case" + std::to_string(i));
    auto extracted = ExtractBundle(zip, out, {});
    ASSERT_EQ(inspected.ok(), extracted.ok())
        << "case " << i << ": " << inspected.status().ToString() << " vs "
        << extracted.status().ToString();
    if (extracted.ok()) {
      ++accepted;
      EXPECT_TRUE(fs::is_regular_file(out / "bootstrap")) << "case " << i;
      EXPECT_EQ(extracted->sha256_hex, inspected->sha256_hex);
      fs::remove_all(out);
    } else {
      // Hostile bytes are the caller's fault, never an internal error.
      EXPECT_EQ(extracted.status().code(), StatusCode::kInvalidArgument)
          << "case " << i << ": " << extracted.status().ToString();
      EXPECT_FALSE(extracted.status().message().empty());
      EXPECT_FALSE(fs::exists(out)) << "case " << i;
    }
  }
  EXPECT_TRUE(Listing(dir_.path()).empty());
  // Some flips land where they change nothing checked (timestamps, comments): both outcomes
  // must have been exercised.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 500);
}

}  // namespace
}  // namespace fpgahost::functions
