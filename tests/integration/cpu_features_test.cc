// Placement by CPU features through the real daemon: CreateFunction scans the bundle's
// binaries, shows what they need as the configuration's CpuFeatures, and refuses with 400 a
// function whose code uses features this machine's CPU lacks.
#include "host/functions/cpu_features.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <iterator>
#include <string>

#include "common/base64.h"
#include "common/files.h"
#include "common/json.h"
#include "tests/support/fleet_daemon_test.h"
#include "tests/support/zip_builder.h"

namespace fpgahost {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A binary built from tests/unit/host/functions/cpu_fixtures.
std::string Fixture(const std::string& name) {
  StatusOr<std::string> bytes = ReadFile(fs::path(CPU_FIXTURES) / name);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.value_or("");
}

bool HostHas(const std::string& flag) { return functions::ThisHostCpu().flags.count(flag) > 0; }

class CpuFeaturesApiTest : public testing::FleetDaemonTest {
 protected:
  void SetUp() override {
    FleetDaemonTest::SetUp();
    StartDaemon();
    demo_ = daemon_->Token("demo");
  }

  http::ClientResponse Create(const std::string& name, const std::string& zip) {
    Json body = {{"FunctionName", name},
                 {"Runtime", "provided.al2023"},
                 {"Role", "arn:aws:iam::123456789012:role/lambda"},
                 {"Handler", "function.handler"},
                 {"Code", {{"ZipFile", Base64Encode(zip)}}}};
    return daemon_->Call("POST", "/2015-03-31/functions", demo_, body.dump());
  }

  // Entries under the daemon's function code root.
  size_t StoredCode() const {
    std::error_code ec;
    fs::directory_iterator it(daemon_->data_dir() / "functions" / "code", ec), end;
    return ec ? 0 : static_cast<size_t>(std::distance(it, end));
  }

  std::string demo_;
};

TEST_F(CpuFeaturesApiTest, AmxBootstrapIsRefusedNamingTheMissingFeatures) {
  if (HostHas("amx_tile") && HostHas("amx_int8")) GTEST_SKIP() << "this CPU has AMX";
  std::string zip = testing::MakeZip(
      {{"bootstrap", Fixture("amx_program"), testing::kFile | 0755}, {"function.sh", "echo\n"}});
  http::ClientResponse r = Create("tiles", zip);
  EXPECT_EQ(r.status, 400u) << r.body;
  auto type = r.headers.find("x-amzn-errortype");
  ASSERT_NE(type, r.headers.end());
  EXPECT_EQ(type->second, "InvalidParameterValueException");
  std::string message = Json::parse(r.body, nullptr, false).value("message", "");
  EXPECT_THAT(message, HasSubstr("the function's code uses CPU features this host lacks: "));
  for (const char* flag : {"amx_int8", "amx_tile"}) {
    if (!HostHas(flag)) {
      EXPECT_THAT(message, HasSubstr(flag)) << message;
    }
  }
  EXPECT_THAT(message, HasSubstr("(bootstrap: ")) << message;

  EXPECT_EQ(daemon_->Call("GET", "/2015-03-31/functions/tiles", demo_).status, 404u);
  EXPECT_EQ(StoredCode(), 0u);
}

TEST_F(CpuFeaturesApiTest, AcceptedFunctionShowsItsCpuFeaturesAcrossRestarts) {
  if (!HostHas("avx") || !HostHas("avx2")) GTEST_SKIP() << "this CPU has no AVX2";
  std::string zip =
      testing::MakeZip({{"bootstrap", Fixture("plain_program"), testing::kFile | 0755},
                        {"lib/libavx2.so", Fixture("libavx2.so")}});
  http::ClientResponse r = Create("wide", zip);
  ASSERT_EQ(r.status, 201u) << r.body;
  const Json expected = {"avx", "avx2"};
  EXPECT_EQ(Json::parse(r.body)["CpuFeatures"], expected);

  StartDaemon();
  demo_ = daemon_->Token("demo");
  r = daemon_->Call("GET", "/2015-03-31/functions/wide/configuration", demo_);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(Json::parse(r.body)["CpuFeatures"], expected);
}

}  // namespace
}  // namespace fpgahost
