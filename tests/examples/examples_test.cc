// The example designs, run for real: each host program on its build-time xclbin through the
// OpenCL ICD loader (PoCL on this machine), and `fpgahost xclbin pack`, the command that
// makes those xclbins.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/json.h"
#include "images/xclbin.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/images/xclbin_signing.h"

namespace fpgahost {
namespace {

namespace fs = std::filesystem;
using ::fpgahost::testing::BinaryPath;
using ::fpgahost::testing::RunCommand;
using ::fpgahost::testing::RunResult;
using ::fpgahost::testing::TempDir;
using ::testing::HasSubstr;

const char kShell[] = "u250-gen3x16-xdma-4.1";

fs::path ExamplesDir() { return FPGAHOST_EXAMPLES_DIR; }
std::string Xclbin(const std::string& design) {
  return (ExamplesDir() / design / (design + ".xclbin")).string();
}
std::string Host(const std::string& design) {
  return (ExamplesDir() / design / (design + "_host")).string();
}
std::string Cli() { return BinaryPath("fpgahost").string(); }

// Each test gets its own PoCL kernel cache, so nothing is written to $HOME and parallel tests
// do not share one.
class ExamplesTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("POCL_CACHE_DIR", (tmp_ / "pocl-cache").c_str(), 1); }

  // Runs a host program; its stdout must be exactly one JSON object on one line.
  Json RunHost(const std::vector<std::string>& argv, RunResult* result) {
    *result = RunCommand(argv);
    std::string out = result->out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "stdout: " << out;
    StatusOr<Json> json = ParseJson(out);
    EXPECT_TRUE(json.ok()) << "stdout is not JSON: " << out << "\nstderr: " << result->err;
    if (!json.ok() || !json->is_object()) return Json::object();
    for (const char* key : {"design", "platform", "device", "xclbin_uuid", "passed", "tests"}) {
      EXPECT_TRUE(json->contains(key)) << "no \"" << key << "\" in " << out;
    }
    return *json;
  }

  // Packs `source` (written to a file called `file_name`) with the CLI.
  RunResult Pack(const std::string& file_name, const std::string& source, const fs::path& out,
                 std::vector<std::string> extra = {}, const std::string& shell = kShell) {
    fs::path cl = tmp_ / file_name;
    EXPECT_TRUE(WriteFileAtomically(cl, source).ok());
    std::vector<std::string> argv = {Cli(),       "xclbin", "pack",
                                     "--shell",   shell,    "--kernel-source",
                                     cl.string(), "--out",  out.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv);
  }

  TempDir tmp_;
};

std::string UuidOf(const std::string& path) {
  StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return "";
  StatusOr<images::Xclbin> x = images::ParseXclbin(std::string_view(*bytes));
  return x.ok() ? images::FormatUuid(x->header.uuid) : "";
}

// One line on stderr, for errors a user reads.
void ExpectOneLine(const std::string& err) {
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST_F(ExamplesTest, HelloWritesHelloWorld) {
  RunResult r;
  Json j = RunHost({Host("hello"), "--xclbin", Xclbin("hello")}, &r);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(j.value("design", ""), "hello");
  EXPECT_EQ(j.value("passed", false), true);
  EXPECT_EQ(j.value("xclbin_uuid", ""), UuidOf(Xclbin("hello")));
  EXPECT_FALSE(j.value("platform", "").empty());
  EXPECT_FALSE(j.value("device", "").empty());
  EXPECT_FALSE(j.contains("error"));
  ASSERT_EQ(j["tests"].size(), 1u);
  const Json& t = j["tests"][0];
  EXPECT_EQ(t.value("name", ""), "hello-world");
  EXPECT_EQ(t.value("passed", false), true);
  EXPECT_EQ(t.value("message", ""), R"(the kernel wrote "Hello World\n")");
}

TEST_F(ExamplesTest, VaddChecksEveryElement) {
  RunResult r;
  Json j = RunHost({Host("vadd"), "--xclbin", Xclbin("vadd"), "--size", "4099"}, &r);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(j.value("passed", false), true);
  ASSERT_EQ(j["tests"].size(), 2u);
  EXPECT_EQ(j["tests"][0].value("name", ""), "vadd");
  EXPECT_EQ(j["tests"][0].value("message", "").rfind("4099 elements correct", 0), 0u);
  EXPECT_EQ(j["tests"][1].value("name", ""), "vadd-partial");
  EXPECT_EQ(j["tests"][1].value("passed", false), true);
}

TEST_F(ExamplesTest, VaddFailsWhenTheKernelComputesWrong) {
  // A vadd whose kernel subtracts: the host must notice, and exit 1, not 0 or 2.
  fs::path wrong = tmp_ / "wrong.xclbin";
  RunResult pack = Pack("vadd.cl",
                        "__kernel void vadd(__global const uint* a, __global const uint* b, "
                        "__global uint* out, const uint n) {\n"
                        "  size_t i = get_global_id(0);\n"
                        "  if (i < n) out[i] = a[i] - b[i];\n}\n",
                        wrong);
  ASSERT_EQ(pack.exit_code, 0) << pack.err;
  RunResult r;
  Json j = RunHost({Host("vadd"), "--xclbin", wrong.string(), "--size", "1000"}, &r);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(j.value("passed", true), false);
  ASSERT_GE(j["tests"].size(), 1u);
  EXPECT_EQ(j["tests"][0].value("passed", true), false);
  EXPECT_THAT(j["tests"][0].value("message", ""), HasSubstr("elements wrong; first element"));
}

TEST_F(ExamplesTest, AnotherDesignsXclbinIsASetUpError) {
  RunResult r;
  Json j = RunHost({Host("vadd"), "--xclbin", Xclbin("hello")}, &r);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(j.value("passed", true), false);
  EXPECT_TRUE(j["tests"].empty());
  EXPECT_THAT(j.value("error", ""),
              HasSubstr("is not a vadd xclbin: it has no kernel 'vadd' (kernels: hello)"));
}

TEST_F(ExamplesTest, KernelThatDoesNotBuildIsASetUpError) {
  fs::path broken = tmp_ / "broken.xclbin";
  RunResult pack = Pack(
      "hello.cl", "__kernel void hello(__global char* out) { this is not OpenCL C }\n", broken);
  ASSERT_EQ(pack.exit_code, 0) << pack.err;
  RunResult r;
  Json j = RunHost({Host("hello"), "--xclbin", broken.string()}, &r);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(j.value("error", ""), HasSubstr("clBuildProgram: CL_BUILD_PROGRAM_FAILURE"));
  // The build log names the file and line the packer recorded with #line.
  EXPECT_THAT(r.err, HasSubstr("hello.cl:1"));
}

TEST_F(ExamplesTest, HardwareXclbinWithoutKernelSourceCannotRunHere) {
  SKIP_WITHOUT_SHARED_FIXTURES();
  // xclbinutil's 02 has a vadd compute unit but no EMULATION_DATA: only XRT could load it.
  std::string vendor = (testing::SharedFixturesDir() / "xclbin" / "02_full_hw.xclbin").string();
  RunResult r;
  Json j = RunHost({Host("vadd"), "--xclbin", vendor}, &r);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(j.value("error", ""), HasSubstr("has no EMULATION_DATA section"));
}

TEST_F(ExamplesTest, UsageErrorsStillPrintTheReport) {
  RunResult r;
  Json j = RunHost({Host("bandwidth")}, &r);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(j.value("error", ""), "--xclbin is required");
  j = RunHost({Host("bandwidth"), "--xclbin", Xclbin("bandwidth"), "--size", "-5"}, &r);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(j.value("error", ""), HasSubstr("--size '-5' is not a positive number"));
  j = RunHost({Host("hello"), "--xclbin", (tmp_ / "missing.xclbin").string()}, &r);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(j.value("error", ""), HasSubstr("missing.xclbin"));
}

TEST_F(ExamplesTest, BandwidthReportsEveryDirectionAndChecksTheData) {
  RunResult r;
  Json j = RunHost({Host("bandwidth"), "--xclbin", Xclbin("bandwidth"), "--size", "1048576"}, &r);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(j.value("passed", false), true);
  std::vector<std::string> names;
  for (const Json& t : j["tests"]) {
    names.push_back(t.value("name", ""));
    EXPECT_EQ(t.value("passed", false), true) << t.dump();
    ASSERT_TRUE(t.contains("bandwidth_mb_s")) << t.dump();
    EXPECT_GT(t["bandwidth_mb_s"].get<double>(), 0.0) << t.dump();
    // Every size is measured: 4 KiB, 64 KiB and the 1 MiB asked for.
    EXPECT_THAT(t.value("message", ""), HasSubstr("4 KiB: "));
    EXPECT_THAT(t.value("message", ""), HasSubstr("1 MiB: "));
  }
  EXPECT_THAT(names, ::testing::ElementsAre("host-to-device", "device-to-host", "kernel-copy"));
  EXPECT_THAT(j["tests"][2].value("message", ""), HasSubstr("data intact"));
}

TEST_F(ExamplesTest, BuiltXclbinsPassTheValidator) {
  for (const char* design : {"hello", "vadd", "bandwidth"}) {
    RunResult r = RunCommand({Cli(), "xclbin", "validate", Xclbin(design), "--modes", "emulation"});
    EXPECT_EQ(r.exit_code, 0) << design << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("valid for shell u250-gen3x16-xdma-4.1 (XCLBIN_SW_EMU)"));
  }
}

TEST_F(ExamplesTest, PackedFilePassesValidateAndInspect) {
  fs::path out = tmp_ / "two.xclbin";
  RunResult r = Pack("two.cl",
                     "__kernel void scale(__global float* x, float f) { x[get_global_id(0)] *= f; "
                     "}\n__kernel void fill(__global int* y) { y[0] = 1; }\n",
                     out, {"--memory-bank", "DDR[1]", "--clock-mhz", "250", "--mode", "hw_emu"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("kernels scale, fill"));
  r = RunCommand({Cli(), "xclbin", "validate", out.string(), "--modes", "emulation"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("valid for shell u250-gen3x16-xdma-4.1 (XCLBIN_HW_EMU)"));
  r = RunCommand({Cli(), "xclbin", "inspect", out.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("scale:scale_1"));
  EXPECT_THAT(r.out, HasSubstr("DDR[1]"));
}

TEST_F(ExamplesTest, SignedPackVerifiesWithTheCertificate) {
  images::testing::KeyPtr key = images::testing::NewRsaKey();
  images::testing::CertPtr cert = images::testing::SelfSignedCert(key.get(), "example signer");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  ASSERT_TRUE(WriteFileAtomically(tmp_ / "key.pem", std::string_view(data, len), 0600).ok());
  ASSERT_TRUE(WriteFileAtomically(tmp_ / "cert.pem", images::testing::CertToPem(cert.get())).ok());
  fs::path out = tmp_ / "signed.xclbin";
  RunResult r = Pack(
      "k.cl", "__kernel void k(__global int* x) { x[0] = 1; }\n", out,
      {"--sign-key", (tmp_ / "key.pem").string(), "--sign-cert", (tmp_ / "cert.pem").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("verified"));
  r = RunCommand({Cli(), "xclbin", "validate", out.string(), "--modes", "emulation", "--cert",
                  (tmp_ / "cert.pem").string(), "--policy", "require"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("signature verified"));
}

TEST_F(ExamplesTest, PackRefusesBadInputWithOneLine) {
  const std::string good = "__kernel void k(__global int* x) { x[0] = 1; }\n";
  fs::path out = tmp_ / "out.xclbin";
  struct Case {
    std::string source;
    std::vector<std::string> extra;
    std::string message;
    std::string shell = kShell;
  };
  std::vector<Case> cases = {
      {good, {}, "shell 'nope' is not in the shell catalogue", "nope"},
      {"int f(void) { return 0; }\n", {}, "no __kernel function found in bad.cl"},
      {good, {"--memory-bank", "DDR[7]"}, "memory bank 'DDR[7]' is not one of shell"},
      {good, {"--clock-mhz", "900"}, "kernel clock 900 MHz is outside 1..500 MHz"},
      {good, {"--mode", "hw"}, "--mode 'hw' is not sw_emu, hw_emu or hw_emu_pr"},
      {good, {"--sign-key", "k.pem"}, "--sign-key and --sign-cert go together"},
      {good, {"--kernel-source", (tmp_ / "absent.cl").string()}, "absent.cl"},
  };
  for (const Case& c : cases) {
    RunResult r = Pack("bad.cl", c.source, out, c.extra, c.shell);
    EXPECT_EQ(r.exit_code, 1) << c.message << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    ExpectOneLine(r.err);
    EXPECT_FALSE(fs::exists(out)) << c.message;
  }
}

}  // namespace
}  // namespace fpgahost
