#include "common/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

namespace fpgahost {
namespace {
namespace fs = std::filesystem;

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fpgahost-files-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(FilesTest, AtomicWriteReplacesAndLeavesNoTemp) {
  fs::path p = dir_ / "token";
  ASSERT_TRUE(WriteFileAtomically(p, "one", 0600).ok());
  ASSERT_TRUE(WriteFileAtomically(p, "two", 0600).ok());
  EXPECT_EQ(*ReadFile(p), "two");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(FilesTest, EnsureWritableDirCreatesParents) {
  fs::path d = dir_ / "a" / "b";
  ASSERT_TRUE(EnsureWritableDir(d, 0700).ok());
  EXPECT_TRUE(fs::is_directory(d));
}

TEST_F(FilesTest, EnsureWritableDirRejectsAFile) {
  fs::path f = dir_ / "file";
  ASSERT_TRUE(WriteFileAtomically(f, "x").ok());
  Status s = EnsureWritableDir(f);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("is not a directory"), std::string_view::npos);
}

TEST_F(FilesTest, ReadMissingFileNamesIt) {
  auto r = ReadFile(dir_ / "missing");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing: No such file"), std::string_view::npos);
}

}  // namespace
}  // namespace fpgahost
