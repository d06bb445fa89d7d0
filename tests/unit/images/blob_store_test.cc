#include "images/blob_store.h"

#include <gtest/gtest.h>

#include "common/files.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::images {
namespace {

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store_.Init().ok()); }
  testing::TempDir dir_;
  BlobStore store_{dir_.path()};
};

TEST_F(BlobStoreTest, CommitNamesContentBySha256AndLeavesNoTemp) {
  auto w = store_.NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("hello ").ok());
  ASSERT_TRUE((*w)->Append("world").ok());
  EXPECT_EQ((*w)->size(), 11u);
  EXPECT_EQ(store_.TempFileCount(), 1u);
  auto sha = (*w)->Commit();
  ASSERT_TRUE(sha.ok()) << sha.status().ToString();
  // sha256("hello world")
  EXPECT_EQ(*sha, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
  EXPECT_TRUE(store_.Contains(*sha));
  EXPECT_EQ(*ReadFile(store_.PathOf(*sha)), "hello world");
  EXPECT_EQ(store_.TempFileCount(), 0u);
}

TEST_F(BlobStoreTest, SameContentTwiceIsOneFile) {
  std::string a, b;
  for (std::string* out : {&a, &b}) {
    auto w = store_.NewWriter();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("same bytes").ok());
    *out = *(*w)->Commit();
  }
  EXPECT_EQ(a, b);
  size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.path() / "sha256")) {
    files += e.is_regular_file();
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(BlobStoreTest, DroppedWriterLeavesNothing) {
  {
    auto w = store_.NewWriter();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("partial").ok());
  }
  EXPECT_EQ(store_.TempFileCount(), 0u);
}

TEST_F(BlobStoreTest, InitRemovesTempFilesACrashLeftBehind) {
  auto w = store_.NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("interrupted").ok());
  BlobStore restarted(dir_.path());
  ASSERT_TRUE(restarted.Init().ok());
  EXPECT_EQ(restarted.TempFileCount(), 0u);
}

TEST_F(BlobStoreTest, RemoveIsIdempotent) {
  auto w = store_.NewWriter();
  ASSERT_TRUE((*w)->Append("x").ok());
  std::string sha = *(*w)->Commit();
  EXPECT_TRUE(store_.Remove(sha).ok());
  EXPECT_FALSE(store_.Contains(sha));
  EXPECT_TRUE(store_.Remove(sha).ok());
}

}  // namespace
}  // namespace fpgahost::images
