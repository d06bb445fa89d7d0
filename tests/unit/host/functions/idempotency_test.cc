#include "host/functions/idempotency.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::functions {
namespace {

using ::testing::HasSubstr;

TEST(IdempotencySpecTest, RoundTripsAndSortsWithoutDuplicates) {
  Json j = Json::parse(R"({"files": ["b/x.csv", "a", "a"], "images": ["img-1"],
                           "functions": ["resize"], "ttl_seconds": 60})");
  StatusOr<IdempotencySpec> spec = IdempotencySpec::FromJson(j);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->files, (std::vector<std::string>{"a", "b/x.csv"}));
  EXPECT_EQ(spec->ttl, std::chrono::seconds(60));
  StatusOr<IdempotencySpec> again = IdempotencySpec::FromJson(spec->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToJson(), spec->ToJson());
  // Everything is optional; the time-to-live defaults to an hour.
  StatusOr<IdempotencySpec> empty = IdempotencySpec::FromJson(Json::object());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->ttl, std::chrono::hours(1));
}

TEST(IdempotencySpecTest, RefusesWhatCouldEscapeOrIsNotAName) {
  std::map<std::string, std::string> cases = {
      {R"({"files": ["/etc/passwd"]})", "files: '/etc/passwd'"},
      {R"({"files": ["a/../../b"]})", "files: 'a/../../b'"},
      {R"({"files": "a"})", "files must be an array"},
      {R"({"files": [""]})", "non-empty strings"},
      {R"({"images": ["ami-1"]})", "images: 'ami-1'"},
      {R"({"functions": ["no/slash"]})", "functions: 'no/slash'"},
      {R"({"ttl_seconds": 0})", "ttl_seconds must be from 1"},
      {R"({"ttl_seconds": "60"})", "ttl_seconds"},
      {R"({"ttl": 60})", "ttl"},
      {R"([])", "JSON object"},
  };
  for (const auto& [text, needle] : cases) {
    StatusOr<IdempotencySpec> spec = IdempotencySpec::FromJson(Json::parse(text));
    ASSERT_FALSE(spec.ok()) << text;
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(spec.status().message(), HasSubstr(needle)) << text;
  }
}

class DependencyDigestTest : public ::testing::Test {
 protected:
  void Write(const std::string& path, const std::string& text) {
    std::filesystem::path p = dir_.path() / "demo" / path;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::string Digest(const IdempotencySpec& spec, const std::string& tenant = "demo") {
    StatusOr<std::string> d = DependencyDigest(spec, tenant, sources_);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : "";
  }

  testing::TempDir dir_;
  std::map<std::string, std::string> images_;
  std::map<std::string, std::string> functions_;
  DependencySources sources_{dir_.path(),
                             [this](std::string_view, std::string_view id) {
                               auto it = images_.find(std::string(id));
                               return it == images_.end() ? std::string() : it->second;
                             },
                             [this](std::string_view, std::string_view name) {
                               auto it = functions_.find(std::string(name));
                               return it == functions_.end() ? std::string() : it->second;
                             }};
};

TEST_F(DependencyDigestTest, ChangesWithEveryKindOfChangeAndOnlyThen) {
  Write("models/a.bin", "weights");
  Write("config.json", "{}");
  images_["img-1"] = "available:abc";
  functions_["resize"] = "sha1:settings1";
  IdempotencySpec spec;
  spec.files = {"config.json", "models"};
  spec.images = {"img-1"};
  spec.functions = {"resize"};

  std::string before = Digest(spec);
  EXPECT_EQ(Digest(spec), before);  // nothing changed

  Write("models/a.bin", "weights, retrained");  // a write
  std::string written = Digest(spec);
  EXPECT_NE(written, before);
  Write("models/b.bin", "more");  // an addition inside a directory
  std::string added = Digest(spec);
  EXPECT_NE(added, written);
  std::filesystem::remove(dir_.path() / "demo" / "models" / "b.bin");  // a removal
  std::string removed = Digest(spec);
  EXPECT_NE(removed, added);
  images_["img-1"] = "deleted:abc";
  std::string image_changed = Digest(spec);
  EXPECT_NE(image_changed, removed);
  functions_["resize"] = "sha2:settings1";
  EXPECT_NE(Digest(spec), image_changed);
}

TEST_F(DependencyDigestTest, MissingDependenciesHaveAStateAndTenantsTheirOwnRoot) {
  IdempotencySpec spec;
  spec.files = {"later.txt"};
  std::string absent = Digest(spec);
  Write("later.txt", "now here");
  EXPECT_NE(Digest(spec), absent);
  // Another tenant's root has no such file.
  EXPECT_EQ(Digest(spec, "other"), absent);
}

TEST(ReuseKeyTest, DependsOnEachPartAndTheirBoundaries) {
  std::string k = ReuseKey("v1", "{\"a\":1}", "d");
  EXPECT_EQ(ReuseKey("v1", "{\"a\":1}", "d"), k);
  EXPECT_NE(ReuseKey("v2", "{\"a\":1}", "d"), k);
  EXPECT_NE(ReuseKey("v1", "{\"a\":2}", "d"), k);
  EXPECT_NE(ReuseKey("v1", "{\"a\":1}", "e"), k);
  EXPECT_NE(ReuseKey("ab", "c", ""), ReuseKey("a", "bc", ""));
}

ReuseCache::Result Ok(const std::string& payload, const std::string& id) {
  ReuseCache::Result r;
  r.payload = payload;
  r.request_id = id;
  return r;
}

TEST(ReuseCacheTest, ASuccessIsReusedUntilItExpires) {
  testing::FakeClock clock;
  ReuseCache cache(clock, {});
  ReuseCache::Result got;
  ASSERT_EQ(cache.Begin("k", &got, nullptr), ReuseCache::Outcome::kRun);
  cache.Complete("k", Ok("42", "req-1"), std::chrono::seconds(60));
  ASSERT_EQ(cache.Begin("k", &got, nullptr), ReuseCache::Outcome::kReused);
  EXPECT_EQ(got.payload, "42");
  EXPECT_EQ(got.request_id, "req-1");
  clock.Advance(std::chrono::seconds(61));
  EXPECT_EQ(cache.Begin("k", &got, nullptr), ReuseCache::Outcome::kRun);
}

TEST(ReuseCacheTest, FailuresAreSharedWithWaitersButNotKept) {
  testing::FakeClock clock;
  ReuseCache cache(clock, {});
  ReuseCache::Result got;
  ASSERT_EQ(cache.Begin("k", &got, nullptr), ReuseCache::Outcome::kRun);
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(cache.Begin("k", &got,
                          [&](const ReuseCache::Result& r) {
                            seen.push_back(r.function_error + ":" + r.request_id);
                          }),
              ReuseCache::Outcome::kJoined);
  }
  ReuseCache::Result failed = Ok("{\"errorType\":\"E\"}", "req-1");
  failed.function_error = "Unhandled";
  cache.Complete("k", failed, std::chrono::seconds(60));
  EXPECT_EQ(seen, std::vector<std::string>(3, "Unhandled:req-1"));
  // Not kept: the next identical call runs.
  EXPECT_EQ(cache.Begin("k", &got, nullptr), ReuseCache::Outcome::kRun);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(ReuseCacheTest, TheOldestResultsGoBeyondTheLimits) {
  testing::FakeClock clock;
  ReuseCache cache(clock, {.max_entries = 2, .max_bytes = 1 << 20});
  ReuseCache::Result got;
  for (const char* k : {"a", "b", "c"}) {
    ASSERT_EQ(cache.Begin(k, &got, nullptr), ReuseCache::Outcome::kRun);
    cache.Complete(k, Ok("1", k), std::chrono::seconds(60));
  }
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Begin("a", &got, nullptr), ReuseCache::Outcome::kRun);
  EXPECT_EQ(cache.Begin("c", &got, nullptr), ReuseCache::Outcome::kReused);

  ReuseCache small(clock, {.max_entries = 10, .max_bytes = 8});
  ASSERT_EQ(small.Begin("big", &got, nullptr), ReuseCache::Outcome::kRun);
  small.Complete("big", Ok("0123456789", "r"), std::chrono::seconds(60));
  EXPECT_EQ(small.size(), 0u);  // larger than the whole cache: not kept
}

}  // namespace
}  // namespace fpgahost::functions
