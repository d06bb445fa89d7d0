// Starts the real fpgahostd on a free port with a fresh data dir and talks to it the way a
// user would: over HTTP and through the real fpgahost CLI.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <regex>

#include "common/files.h"
#include "common/json.h"
#include "host/http/http_client.h"
#include "tests/support/daemon_under_test.h"
#include "tests/support/process.h"
#include "tests/support/raw_http.h"
#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

using namespace std::chrono_literals;
using testing::BackgroundProcess;
using testing::BinaryPath;
using testing::RunCommand;

using Daemon = testing::DaemonUnderTest;

Json ErrorOf(const http::ClientResponse& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json() : j["error"];
}

class DaemonTest : public ::testing::Test {
 protected:
  testing::TempDir tmp_;
  std::filesystem::path data_ = tmp_ / "data";
};

TEST_F(DaemonTest, FirstStartCreatesPrivateTokensAndSaysWhere) {
  Daemon d(data_);
  ASSERT_NE(d.port(), 0) << "daemon did not start";
  for (const char* name : {"operator", "demo"}) {
    auto path = data_ / "tokens" / (std::string(name) + ".token");
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
  }
  d.process().WaitForLine("Try:", 5s);
  EXPECT_NE(d.process().output().find((data_ / "tokens" / "operator.token").string()),
            std::string::npos);
  EXPECT_NE(d.process().output().find((data_ / "tokens" / "demo.token").string()),
            std::string::npos);
}

TEST_F(DaemonTest, HealthNeedsNoToken) {
  Daemon d(data_);
  auto r = d.Call("GET", "/v1/health");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(Json::parse(r.body)["status"], "ok");
}

TEST_F(DaemonTest, ProtectedCallsCheckTokenAndRole) {
  Daemon d(data_);
  auto none = d.Call("GET", "/v1/whoami");
  EXPECT_EQ(none.status, 401u);
  EXPECT_EQ(ErrorOf(none)["code"], "MISSING_TOKEN");
  auto wrong = d.Call("GET", "/v1/whoami", "fph_0000");
  EXPECT_EQ(wrong.status, 401u);
  EXPECT_EQ(ErrorOf(wrong)["code"], "INVALID_TOKEN");
  auto demo = d.Call("GET", "/v1/whoami", d.Token("demo"));
  EXPECT_EQ(demo.status, 200u);
  EXPECT_EQ(Json::parse(demo.body)["tenant"], "demo");
  auto forbidden = d.Call("GET", "/v1/tenants", d.Token("demo"));
  EXPECT_EQ(forbidden.status, 403u);
  EXPECT_EQ(ErrorOf(forbidden)["code"], "OPERATOR_ONLY");
  auto allowed = d.Call("GET", "/v1/tenants", d.Token("operator"));
  EXPECT_EQ(allowed.status, 200u);
}

TEST_F(DaemonTest, MalformedRequestsGet4xxWithEnvelopeAndDaemonSurvives) {
  Daemon d(data_);
  auto bad_json = d.Call("POST", "/v1/tenants", d.Token("operator"), "{\"name\": ");
  EXPECT_EQ(bad_json.status, 400u);
  Json e = ErrorOf(bad_json);
  EXPECT_EQ(e["code"], "MALFORMED_JSON");
  EXPECT_EQ(e["request_id"], bad_json.headers["x-request-id"]);
  EXPECT_FALSE(e["message"].get<std::string>().empty());

  {
    testing::RawConnection c(d.port());
    c.Send("NOT HTTP AT ALL\r\n\r\n");
    EXPECT_TRUE(c.Read(5s).starts_with("HTTP/1.1 400"));
  }
  {
    testing::RawConnection c(d.port());
    c.Send("GET /v1/health HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
    EXPECT_TRUE(c.Read(5s).starts_with("HTTP/1.1 431"));
  }
  auto big = d.Call("POST", "/v1/tenants", d.Token("operator"), std::string(2 << 20, ' '));
  EXPECT_EQ(big.status, 413u);
  EXPECT_EQ(ErrorOf(big)["code"], "BODY_TOO_LARGE");

  EXPECT_EQ(d.Call("GET", "/v1/health").status, 200u);
}

TEST_F(DaemonTest, CliTalksToTheDaemon) {
  Daemon d(data_);
  std::string cli = BinaryPath("fpgahost").string();
  auto health = RunCommand({cli, "--endpoint", d.endpoint(), "health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_TRUE(std::regex_search(health.out, std::regex(R"(status\s+ok)"))) << health.out;

  auto json = RunCommand({cli, "version", "--endpoint", d.endpoint(), "--output", "json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(Json::parse(json.out)["api"], "v1");

  std::string demo_file = (data_ / "tokens" / "demo.token").string();
  auto who = RunCommand({cli, "--endpoint", d.endpoint(), "--token-file", demo_file, "whoami"});
  EXPECT_EQ(who.exit_code, 0) << who.err;
  EXPECT_TRUE(std::regex_search(who.out, std::regex(R"(tenant\s+demo)"))) << who.out;

  auto denied =
      RunCommand({cli, "--endpoint", d.endpoint(), "--token-file", demo_file, "tenant", "list"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_EQ(denied.err,
            "fpgahost: error: OPERATOR_ONLY: GET /v1/tenants needs an operator token\n");
}

TEST_F(DaemonTest, CliErrorsAreOneLineAndNonZero) {
  std::string cli = BinaryPath("fpgahost").string();
  // Nothing listens on port 1.
  auto down = RunCommand({cli, "--endpoint", "http://127.0.0.1:1", "health"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_EQ(std::count(down.err.begin(), down.err.end(), '\n'), 1) << down.err;
  EXPECT_NE(down.err.find("cannot connect to 127.0.0.1:1"), std::string::npos);

  auto unknown = RunCommand({cli, "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.err, "fpgahost: unknown command 'frobnicate' (see fpgahost --help)\n");

  auto bad_output = RunCommand({cli, "health", "--output", "yaml"});
  EXPECT_EQ(bad_output.exit_code, 2);

  auto help = RunCommand({cli, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("tenant create"), std::string::npos);
  auto sub_help = RunCommand({cli, "tenant", "create", "--help"});
  EXPECT_EQ(sub_help.exit_code, 0);
  EXPECT_NE(sub_help.out.find("--name"), std::string::npos);
}

TEST_F(DaemonTest, EmuInitWritesAFleetThatDiscoveryFinds) {
  std::string cli = BinaryPath("fpgahost").string();
  auto fleet = tmp_ / "fleet";
  auto made = RunCommand({cli, "emu", "init", fleet.string(), "--cards", "3", "-o", "json"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Json cards = Json::parse(made.out);
  ASSERT_EQ(cards.size(), 3u);
  for (const Json& c : cards) {
    EXPECT_EQ(c["vbnv"], "xilinx_u250_gen3x16_xdma_shell_4_1");
    EXPECT_EQ(c["problems"], 0);
  }
  EXPECT_NE(cards[0]["id"], cards[1]["id"]);

  std::filesystem::create_directories(tmp_ / "busy");
  std::ofstream(tmp_ / "busy" / "keep.txt") << "mine";
  auto refused = RunCommand({cli, "emu", "init", (tmp_ / "busy").string()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(refused.err.starts_with("fpgahost: error: NOT_AN_EMULATED_FLEET: ")) << refused.err;
  EXPECT_TRUE(std::filesystem::exists(tmp_ / "busy" / "keep.txt"));

  auto too_many = RunCommand({cli, "emu", "init", (tmp_ / "big").string(), "--cards", "65"});
  EXPECT_EQ(too_many.exit_code, 1);
  EXPECT_NE(too_many.err.find("65"), std::string::npos) << too_many.err;
}

TEST_F(DaemonTest, RestartKeepsTokensAndSigtermExitsCleanly) {
  std::string demo;
  {
    Daemon d(data_);
    demo = d.Token("demo");
    ASSERT_FALSE(demo.empty());
    d.process().Signal(SIGTERM);
    EXPECT_EQ(d.process().Wait(), 0);
  }
  Daemon again(data_);
  EXPECT_EQ(again.Token("demo"), demo);
  EXPECT_EQ(again.Call("GET", "/v1/whoami", demo).status, 200u);
  again.process().Signal(SIGINT);
  EXPECT_EQ(again.process().Wait(), 0);
}

TEST_F(DaemonTest, PortInUseFailsBeforeWritingAnything) {
  Daemon first(data_);
  ASSERT_NE(first.port(), 0);
  auto other = tmp_ / "other";
  auto r = RunCommand({BinaryPath("fpgahostd").string(), "--data-dir", other.string(), "--listen",
                       "127.0.0.1:" + std::to_string(first.port())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "fpgahostd: cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                       ": the port is already in use\n");
  EXPECT_FALSE(std::filesystem::exists(other));
}

TEST_F(DaemonTest, BadStartsSayWhyInOneLine) {
  std::string bin = BinaryPath("fpgahostd").string();
  std::filesystem::create_directories(data_);
  std::ofstream(data_ / "state.db") << std::string(4096, 'x');
  auto corrupt = RunCommand({bin, "--data-dir", data_.string(), "--listen", "127.0.0.1:0"});
  EXPECT_EQ(corrupt.exit_code, 1);
  EXPECT_NE(corrupt.err.find("is corrupt or not a database"), std::string::npos) << corrupt.err;
  EXPECT_FALSE(std::filesystem::exists(data_ / "tokens"));

  std::ofstream(tmp_ / "bad.conf") << "lissten = 127.0.0.1:0\n";
  auto key = RunCommand({bin, "--config", (tmp_ / "bad.conf").string()});
  EXPECT_EQ(key.exit_code, 2);
  EXPECT_NE(key.err.find("lissten"), std::string::npos);
  EXPECT_EQ(std::count(key.err.begin(), key.err.end(), '\n'), 1) << key.err;

  auto file_as_dir =
      RunCommand({bin, "--data-dir", (tmp_ / "bad.conf").string(), "--listen", "127.0.0.1:0"});
  EXPECT_EQ(file_as_dir.exit_code, 1);
  EXPECT_NE(file_as_dir.err.find("is not a directory"), std::string::npos) << file_as_dir.err;
}

TEST_F(DaemonTest, SecondDaemonOnSameDataDirIsRefused) {
  Daemon first(data_);
  ASSERT_NE(first.port(), 0);
  auto r = RunCommand(
      {BinaryPath("fpgahostd").string(), "--data-dir", data_.string(), "--listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("another fpgahostd is already using data dir"), std::string::npos);
}

}  // namespace
}  // namespace fpgahost
