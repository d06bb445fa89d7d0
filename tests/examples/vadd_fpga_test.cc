// The vadd-fpga sample function (examples/functions/vadd-fpga), run for real the way fpgahostd
// runs a function of an FPGA image: its zip through the bundle checker, its bootstrap in a
// bubblewrap sandbox (the real launcher) with the image's xclbin bind-mounted read-only at
// /opt/fpga/image.xclbin and the FPGAHOST_* variables of a lent card, on PoCL through the ICD
// loader. Skips only where bwrap cannot create namespaces at all on this machine.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "common/files.h"
#include "common/subprocess.h"
#include "common/thread_pool.h"
#include "host/functions/bundle.h"
#include "host/functions/function_slot.h"
#include "host/functions/runtime_api.h"
#include "host/functions/sandbox_bwrap.h"
#include "host/http/http_server.h"
#include "images/xclbin.h"
#include "tests/support/bwrap.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::functions {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

// Far above what a start or an invocation takes: a wait that ends within it ended early.
constexpr auto kPatience = 60s;
constexpr char kSandboxXclbin[] = "/opt/fpga/image.xclbin";
constexpr char kCardId[] = "card-0000-3b-00";
constexpr char kImageId[] = "img-vadd-test";
constexpr char kUserBdf[] = "0000:3b:00.1";

using testing::BwrapUnusableReason;

fs::path Xclbin(const std::string& design) {
  return fs::path(FPGAHOST_EXAMPLES_DIR) / design / (design + ".xclbin");
}

std::string XclbinUuid(const fs::path& path) {
  StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return "unreadable " + path.string();
  StatusOr<images::Xclbin> xclbin = images::ParseXclbin(std::string_view(*bytes));
  return xclbin.ok() ? images::FormatUuid(xclbin->header.uuid) : "unparsable " + path.string();
}

// The function's documented inputs: a[i] = seed*i + 1, b[i] = 2654435761*i + seed (mod 2^32);
// the checksum is the sum of the n 32-bit sums.
uint64_t Checksum(uint64_t n, uint32_t seed) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) {
    auto a = static_cast<uint32_t>(seed * i + 1);
    auto b = static_cast<uint32_t>(2654435761u * i + seed);
    sum += static_cast<uint32_t>(a + b);
  }
  return sum;
}

class VaddFpgaFunctionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = BwrapUnusableReason(); !why.empty()) GTEST_SKIP() << why;
    fs::path zip_path = fs::path(FPGAHOST_FUNCTIONS_DIR) / "vadd-fpga.zip";
    StatusOr<std::string> zip = ReadFile(zip_path);
    ASSERT_TRUE(zip.ok()) << zip.status().ToString();
    StatusOr<BundleInfo> info = ExtractBundle(*zip, task_ / "task", BundleLimits{});
    ASSERT_TRUE(info.ok()) << zip_path << ": " << info.status().ToString();
    // As root the sandbox runs as nobody on the host, who must be able to read the bundle.
    ::chmod(task_.path().c_str(), 0755);
  }

  // What the invoker gives a slot of a 1024 MiB function lent a card with `xclbin` loaded.
  SandboxSpec Spec(const fs::path& xclbin) {
    static std::atomic<int> counter{0};
    SandboxSpec spec;
    spec.task_dir = task_ / "task";
    spec.argv = {"/var/task/bootstrap"};
    spec.name = "vaddtest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    spec.env = {{"AWS_LAMBDA_FUNCTION_NAME", "vadd-fpga"},
                {"AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"},
                {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"},
                {"_HANDLER", "handler"},
                {"LAMBDA_TASK_ROOT", "/var/task"},
                {"LANG", "en_US.UTF-8"},
                {"TZ", ":UTC"},
                {"PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin"},
                {"LD_LIBRARY_PATH", "/var/task:/var/task/lib:/opt/lib"},
                {"FPGAHOST_FPGA_DEVICE", kUserBdf},
                {"FPGAHOST_XCLBIN", kSandboxXclbin},
                {"FPGAHOST_CARD_ID", kCardId},
                {"FPGAHOST_IMAGE_ID", kImageId},
                {"FPGAHOST_XCLBIN_UUID", XclbinUuid(xclbin)}};
    spec.ro_binds = {{xclbin, kSandboxXclbin}};
    // PoCL compiles the kernel with LLVM inside the slot.
    spec.memory_mib = 1024;
    spec.cpus = 1.0;
    spec.tmp_mib = 128;
    return spec;
  }

  static BwrapSandbox::Options SandboxOptions() {
    BwrapSandbox::Options options;
    options.launcher = FPGAHOST_SLOT_INIT;
    return options;
  }

  std::shared_ptr<FunctionSlot> StartSlot(const SandboxSpec& spec) {
    auto slot = FunctionSlot::Start(sandbox_, spec, io_, blocking_, FunctionSlot::Hooks{});
    EXPECT_TRUE(slot.ok()) << slot.status().ToString();
    return slot.ok() ? *slot : nullptr;
  }

  SlotOutcome Invoke(FunctionSlot& slot, const std::string& id, const std::string& payload) {
    Invocation inv;
    inv.request_id = id;
    inv.payload = payload;
    inv.deadline = std::chrono::system_clock::now() + kPatience;
    inv.function_arn = "arn:aws:lambda:us-east-1:000000000000:function:vadd-fpga";
    std::promise<SlotOutcome> outcome;
    Status s = slot.Invoke(inv, kPatience, [&](SlotOutcome o) { outcome.set_value(std::move(o)); });
    EXPECT_TRUE(s.ok()) << s.ToString();
    auto future = outcome.get_future();
    if (!s.ok() || future.wait_for(kPatience + 5s) != std::future_status::ready) {
      ADD_FAILURE() << id << ": no outcome";
      return SlotOutcome{};
    }
    return future.get();
  }

  // The response of a successful invocation, parsed (null when it was not one).
  static nlohmann::json Response(const SlotOutcome& outcome) {
    const auto* response = std::get_if<InvocationResponse>(&outcome.result);
    if (response == nullptr) return nullptr;
    return nlohmann::json::parse(response->payload, nullptr, false);
  }

  // Destroyed in reverse: the pool first (it closes the Runtime APIs and kills the sandboxes),
  // then the I/O threads, then the bundle.
  testing::TempDir task_;
  http::IoThreads io_{2};
  ThreadPool blocking_{2};
  BwrapSandbox sandbox_{SandboxOptions()};
};

TEST_F(VaddFpgaFunctionTest, AddsOnTheDeviceAndChecksEveryElement) {
  auto slot = StartSlot(Spec(Xclbin("vadd")));
  ASSERT_TRUE(slot);

  SlotOutcome outcome = Invoke(*slot, "req-4096", R"({"n": 4096, "seed": 7})");
  nlohmann::json r = Response(outcome);
  ASSERT_TRUE(r.is_object()) << outcome.log;
  EXPECT_EQ(r["passed"], true) << r.dump();
  EXPECT_EQ(r["n"], 4096);
  EXPECT_EQ(r["checksum"], Checksum(4096, 7));
  EXPECT_EQ(r["platform"], "Portable Computing Language");
  EXPECT_THAT(r["device"].get<std::string>(), StartsWith("pthread"));
  EXPECT_EQ(r["xclbin_uuid"], XclbinUuid(Xclbin("vadd")));
  EXPECT_EQ(r["card"], kCardId);
  EXPECT_EQ(r["image"], kImageId);
  EXPECT_TRUE(r["kernel_ms"].is_number()) << r.dump();
  EXPECT_THAT(outcome.log, HasSubstr("vadd-fpga: request req-4096 n=4096 seed=7 passed"));
  EXPECT_TRUE(outcome.slot_reusable);
  EXPECT_GT(slot->init_duration().count(), 0);

  // Warm: other sizes (buffers grow), the defaults for an empty object, one log line each.
  const std::vector<std::tuple<std::string, std::string, uint64_t, uint32_t>> events = {
      {"req-1", R"({"n": 1, "seed": 4294967295})", 1, 4294967295u},
      {"req-defaults", "{}", 1024, 1},
      {"req-large", R"({"n": 300000, "seed": 0, "note": "ignored"})", 300000, 0},
  };
  for (const auto& [id, event, n, seed] : events) {
    SCOPED_TRACE(id);
    outcome = Invoke(*slot, id, event);
    r = Response(outcome);
    ASSERT_TRUE(r.is_object()) << outcome.log;
    EXPECT_EQ(r["passed"], true);
    EXPECT_EQ(r["n"], n);
    EXPECT_EQ(r["checksum"], Checksum(n, seed));
    EXPECT_THAT(outcome.log, HasSubstr("vadd-fpga: request " + id + " n="));
  }
}

TEST_F(VaddFpgaFunctionTest, BadEventsAreInputErrorsNamingTheField) {
  auto slot = StartSlot(Spec(Xclbin("vadd")));
  ASSERT_TRUE(slot);
  const std::vector<std::pair<std::string, std::string>> events = {
      {"not json", "event: "},
      {"[1, 2]", "event: "},
      {R"({"n": 0})", "n: "},
      {R"({"n": 16777217})", "n: "},
      {R"({"n": -5})", "n: "},
      {R"({"n": "4096"})", "n: "},
      {R"({"n": 10.5})", "n: "},
      {R"({"n": 16, "seed": -1})", "seed: "},
      {R"({"seed": 4294967296})", "seed: "},
      {R"({"seed": true})", "seed: "},
  };
  int i = 0;
  for (const auto& [event, field] : events) {
    SCOPED_TRACE(event);
    std::string id = "req-bad-" + std::to_string(i++);
    SlotOutcome outcome = Invoke(*slot, id, event);
    const auto* error = std::get_if<FunctionError>(&outcome.result);
    ASSERT_NE(error, nullptr) << outcome.log;
    EXPECT_EQ(error->error_type, "VaddInputError");
    nlohmann::json body = nlohmann::json::parse(error->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << error->body;
    EXPECT_EQ(body["errorType"], "VaddInputError");
    EXPECT_THAT(body["errorMessage"].get<std::string>(), StartsWith(field));
    EXPECT_THAT(outcome.log, HasSubstr("vadd-fpga: request " + id + " VaddInputError: " + field));
    EXPECT_TRUE(outcome.slot_reusable);
  }
  // The runtime carries on.
  SlotOutcome outcome = Invoke(*slot, "req-good", R"({"n": 64, "seed": 3})");
  nlohmann::json r = Response(outcome);
  ASSERT_TRUE(r.is_object()) << outcome.log;
  EXPECT_EQ(r["checksum"], Checksum(64, 3));
}

// An init error never reaches an invocation when it comes first, so the Runtime API is watched
// directly here, as FunctionSlot does.
class VaddFpgaInitTest : public VaddFpgaFunctionTest {
 protected:
  // Starts `spec` and returns what the runtime posted to /runtime/init/error (nullopt when it
  // asked for an event instead), and its exit status.
  std::pair<std::optional<InitError>, StatusOr<int>> InitOutcome(const SandboxSpec& spec) {
    auto process = sandbox_.Start(spec);
    EXPECT_TRUE(process.ok()) << process.status().ToString();
    if (!process.ok()) return {std::nullopt, process.status()};
    auto init_error = std::make_shared<std::promise<std::optional<InitError>>>();
    RuntimeApiOptions options;
    options.io_threads = &io_;
    options.on_init_error = [init_error](const InitError& e) { init_error->set_value(e); };
    options.on_first_next = [init_error] { init_error->set_value(std::nullopt); };
    auto api = RuntimeApi::Adopt(::fcntl((*process)->runtime_api_listen_fd(), F_DUPFD_CLOEXEC, 3),
                                 options);
    EXPECT_TRUE(api.ok()) << api.status().ToString();
    if (!api.ok()) return {std::nullopt, api.status()};
    auto future = init_error->get_future();
    std::optional<InitError> error;
    if (future.wait_for(kPatience) == std::future_status::ready) {
      error = future.get();
    } else {
      ADD_FAILURE() << "the runtime neither failed nor finished its init";
    }
    StatusOr<int> status = (*process)->Wait(error ? 30'000ms : 1ms);
    (*api)->Close();
    (void)(*process)->Kill();
    return {error, status};
  }
};

TEST_F(VaddFpgaInitTest, AnotherDesignsXclbinIsAnInitError) {
  auto [error, status] = InitOutcome(Spec(Xclbin("hello")));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->error_type, "VaddInitError");
  nlohmann::json body = nlohmann::json::parse(error->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << error->body;
  EXPECT_EQ(body["errorType"], "VaddInitError");
  EXPECT_THAT(body["errorMessage"].get<std::string>(),
              HasSubstr("/opt/fpga/image.xclbin is not a vadd xclbin: it has no kernel 'vadd' "
                        "(kernels: hello)"));
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(*status, 1);
}

TEST_F(VaddFpgaInitTest, AnXclbinOtherThanTheLoadedImageIsAnInitError) {
  SandboxSpec spec = Spec(Xclbin("vadd"));
  for (auto& [key, value] : spec.env) {
    if (key == "FPGAHOST_XCLBIN_UUID") value = XclbinUuid(Xclbin("hello"));
  }
  auto [error, status] = InitOutcome(spec);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->error_type, "VaddInitError");
  EXPECT_THAT(error->body, HasSubstr("not FPGAHOST_XCLBIN_UUID " + XclbinUuid(Xclbin("hello"))));
}

TEST_F(VaddFpgaInitTest, WithoutAnImageTheFunctionSaysSo) {
  SandboxSpec spec = Spec(Xclbin("vadd"));
  std::erase_if(spec.env, [](const auto& e) { return e.first.starts_with("FPGAHOST_"); });
  spec.ro_binds.clear();
  auto [error, status] = InitOutcome(spec);
  ASSERT_TRUE(error.has_value());
  EXPECT_THAT(error->body, HasSubstr("FPGAHOST_XCLBIN is not set"));
}

}  // namespace
}  // namespace fpgahost::functions
