// The function registry's placement by CPU features: create scans the code, records what it
// needs, refuses what the host's CPU cannot run and leaves nothing behind when it does.
#include "host/functions/function_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/files.h"
#include "host/store/state_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"
#include "tests/support/zip_builder.h"

namespace fpgahost::functions {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Fixture(const std::string& name) {
  StatusOr<std::string> bytes = ReadFile(fs::path(CPU_FIXTURES) / name);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.value_or("");
}

class FunctionRegistryCpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  std::unique_ptr<FunctionRegistry> Registry(HostCpu cpu) {
    return std::make_unique<FunctionRegistry>(*store_, CodeRoot(), clock_, BundleLimits{},
                                              std::move(cpu));
  }

  fs::path CodeRoot() const { return dir_ / "code"; }

  // What is left under the code root.
  std::vector<std::string> StoredCode() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(CodeRoot(), ec)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

  static FunctionConfig Config(const std::string& name) {
    FunctionConfig f;
    f.tenant = "demo";
    f.name = name;
    f.handler = "handler";
    return f;
  }

  // A bundle whose shell bootstrap loads lib/libavx512.so.
  static std::string Avx512Zip() {
    return testing::MakeZip({testing::Bootstrap(),
                             {"lib/libavx512.so", Fixture("libavx512.so"), testing::kFile | 0755}});
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<StateStore> store_;
};

TEST_F(FunctionRegistryCpuTest, RefusesCodeTheHostCannotRunAndKeepsNothing) {
  auto registry = Registry(HostCpu{{"sse2", "avx", "avx2"}});
  StatusOr<FunctionConfig> f = registry->Create(Config("wide"), Avx512Zip());
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.status().reason(), kInvalidParameterValue);
  EXPECT_THAT(f.status().message(),
              HasSubstr("the function's code uses CPU features this host lacks: avx512f "
                        "(lib/libavx512.so: avx512f)"));
  EXPECT_THAT(StoredCode(), IsEmpty());
  EXPECT_EQ(registry->Get("demo", "wide").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(registry->Find("demo", "wide"), nullptr);
}

TEST_F(FunctionRegistryCpuTest, RecordsTheFeaturesAndKeepsThemAcrossRestarts) {
  HostCpu cpu{{"sse2", "avx", "avx2", "avx512f"}};
  auto registry = Registry(cpu);
  StatusOr<FunctionConfig> f = registry->Create(Config("wide"), Avx512Zip());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_THAT(f->cpu_features, ElementsAre("avx", "avx512f"));
  EXPECT_THAT(StoredCode(), ElementsAre(f->code_sha256_hex));
  Json shown = FunctionConfigurationJson(*f, "us-east-1", "123456789012");
  EXPECT_EQ(shown["CpuFeatures"], Json({"avx", "avx512f"}));
  EXPECT_EQ(shown["Architectures"], Json({"x86_64"}));

  // A plain bundle needs nothing.
  StatusOr<FunctionConfig> plain =
      registry->Create(Config("plain"), testing::MakeZip({testing::Bootstrap()}));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_THAT(plain->cpu_features, IsEmpty());
  EXPECT_EQ(FunctionConfigurationJson(*plain, "us-east-1", "123456789012")["CpuFeatures"],
            Json::array());

  registry.reset();
  auto reopened = Registry(cpu);
  StatusOr<FunctionConfig> got = reopened->Get("demo", "wide");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_THAT(got->cpu_features, ElementsAre("avx", "avx512f"));
  StatusOr<std::vector<FunctionConfig>> all = reopened->List("demo");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_THAT((*all)[1].cpu_features, ElementsAre("avx", "avx512f"));
}

TEST_F(FunctionRegistryCpuTest, SharedCodeStaysForTheFunctionThatHasIt) {
  // Accepted on a host with AVX-512, then the same bytes refused on one without: the code
  // stays, as the first function still uses it.
  auto wide = Registry(HostCpu{{"avx", "avx512f"}});
  StatusOr<FunctionConfig> first = wide->Create(Config("first"), Avx512Zip());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  wide.reset();
  auto narrow = Registry(HostCpu{{"avx"}});
  EXPECT_FALSE(narrow->Create(Config("second"), Avx512Zip()).ok());
  EXPECT_THAT(StoredCode(), ElementsAre(first->code_sha256_hex));
  EXPECT_TRUE(narrow->Get("demo", "first").ok());
}

TEST_F(FunctionRegistryCpuTest, MalformedBinaryIsInvalidParameterValueAndKeepsNothing) {
  std::string elf = Fixture("libavx512.so");
  elf.resize(elf.size() / 2);
  auto registry = Registry(HostCpu{{"avx", "avx512f"}});
  StatusOr<FunctionConfig> f = registry->Create(
      Config("broken"),
      testing::MakeZip({testing::Bootstrap(), {"lib/libx.so", elf, testing::kFile | 0755}}));
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().reason(), kInvalidParameterValue);
  EXPECT_THAT(f.status().message(), HasSubstr("lib/libx.so"));
  EXPECT_THAT(f.status().message(), HasSubstr(kReasonMalformedElf));
  EXPECT_THAT(StoredCode(), IsEmpty());
}

TEST_F(FunctionRegistryCpuTest, DeclaredFeaturesAreCheckedAndRecorded) {
  auto registry = Registry(HostCpu{{"avx", "avx2"}});
  std::string zip =
      testing::MakeZip({testing::Bootstrap(),
                        {"lib/libavx512.so", Fixture("libavx512.so"), testing::kFile | 0755},
                        {kCpuFeaturesFile, "avx2  # AVX-512 only after checking CPUID\n"}});
  StatusOr<FunctionConfig> f = registry->Create(Config("dispatching"), zip);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_THAT(f->cpu_features, ElementsAre("avx2"));

  StatusOr<FunctionConfig> refused = registry->Create(
      Config("tiles"),
      testing::MakeZip({testing::Bootstrap(), {kCpuFeaturesFile, "amx_tile amx_int8\n"}}));
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              HasSubstr("lacks: amx_int8, amx_tile (fpgahost-cpu-features: amx_int8, amx_tile)"));
}

TEST_F(FunctionRegistryCpuTest, RowsWithoutTheRecordReadAsNone) {
  auto registry = Registry(HostCpu{{"avx", "avx512f"}});
  ASSERT_TRUE(registry->Create(Config("old"), Avx512Zip()).ok());
  // As a row written before CPU features were recorded.
  ASSERT_TRUE(store_->db()
                  .Exec("UPDATE functions SET config = json_remove(config, '$.cpu_features')")
                  .ok());
  registry.reset();
  StatusOr<FunctionConfig> got = Registry(HostCpu{})->Get("demo", "old");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_THAT(got->cpu_features, IsEmpty());
}

}  // namespace
}  // namespace fpgahost::functions
