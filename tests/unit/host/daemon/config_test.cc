#include "host/daemon/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

StatusOr<ParsedCommandLine> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "fpgahostd");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return ParseDaemonCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(ConfigTest, DefaultsAreTheEmbeddedSetup) {
  auto p = Parse({});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->config.listen_address, "127.0.0.1");
  EXPECT_EQ(p->config.listen_port, 8080);
  EXPECT_EQ(p->config.libvirt_uri, "test:///default");
  EXPECT_EQ(p->config.data_dir, DefaultDataDir());
  EXPECT_FALSE(p->help);
}

TEST(ConfigTest, CommandLineSetsEveryKey) {
  auto p =
      Parse({"--data-dir", "/d", "--listen", "[::1]:0", "--libvirt-uri", "qemu:///system",
             "--sysfs-root", "/emu/sys", "--xrt-library", "/x.so", "--log-level", "debug",
             "--http-threads", "4", "--http-max-body-bytes", "2048", "--http-idle-timeout", "5"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->config.data_dir, "/d");
  EXPECT_EQ(p->config.listen_address, "::1");
  EXPECT_EQ(p->config.listen_port, 0);
  EXPECT_EQ(p->config.libvirt_uri, "qemu:///system");
  EXPECT_EQ(p->config.sysfs_root, "/emu/sys");
  EXPECT_EQ(p->config.xrt_library, "/x.so");
  EXPECT_EQ(p->config.log_level, "debug");
  EXPECT_EQ(p->config.http_threads, 4);
  EXPECT_EQ(p->config.max_body_bytes, 2048u);
  EXPECT_EQ(p->config.idle_timeout, std::chrono::seconds(5));
  EXPECT_EQ(Parse({})->config.state_sync_interval, std::chrono::seconds(1));
  EXPECT_EQ(Parse({"--state-sync-interval", "0"})->config.state_sync_interval,
            std::chrono::milliseconds(0));
  EXPECT_EQ(Parse({"--state-sync-interval", "0.25"})->config.state_sync_interval,
            std::chrono::milliseconds(250));
}

TEST(ConfigTest, FileIsReadAndCommandLineWins) {
  testing::TempDir dir;
  std::ofstream(dir / "f.conf") << "# comment\nlisten = 127.0.0.1:9000\nlog-level = warn\n";
  auto p = Parse({"--config", (dir / "f.conf").string(), "--log-level", "error"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->config.listen_port, 9000);
  EXPECT_EQ(p->config.log_level, "error");
}

TEST(ConfigTest, UnknownKeyInFileNamesKeyAndFile) {
  testing::TempDir dir;
  std::ofstream(dir / "f.conf") << "lissten = 127.0.0.1:9000\n";
  auto p = Parse({"--config", (dir / "f.conf").string()});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("lissten"), std::string_view::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("f.conf"), std::string_view::npos);
}

TEST(ConfigTest, UnknownOptionIsNamed) {
  auto p = Parse({"--lsten", "x"});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("lsten"), std::string_view::npos);
}

TEST(ConfigTest, BadValuesNameTheKey) {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  for (const Case& c : std::vector<Case>{
           {{"--listen", "127.0.0.1"}, "listen '127.0.0.1'"},
           {{"--listen", "127.0.0.1:70000"}, "bad port '70000'"},
           {{"--listen", "127.0.0.1:http"}, "bad port 'http'"},
           {{"--log-level", "loud"}, "log-level 'loud'"},
           {{"--http-threads", "0"}, "http-threads = 0"},
           {{"--http-threads", "many"}, "http-threads"},
           {{"--http-idle-timeout", "-1"}, "http-idle-timeout"},
           {{"--function-affinity-wait", "60001"}, "function-affinity-wait = 60001"},
           {{"--state-sync-interval", "-1"}, "state-sync-interval -1 is out of range"},
           {{"--state-sync-interval", "61"}, "state-sync-interval 61 is out of range"},
       }) {
    auto p = Parse(c.args);
    ASSERT_FALSE(p.ok()) << c.args[0];
    EXPECT_NE(p.status().message().find(c.needle), std::string_view::npos) << p.status().message();
  }
}

TEST(ConfigTest, MissingConfigFileIsNamed) {
  auto p = Parse({"--config", "/nonexistent/fpgahostd.conf"});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("/nonexistent/fpgahostd.conf"), std::string_view::npos);
}

TEST(ConfigTest, ExampleConfigInDocsParses) {
  auto p = Parse({"--config", std::string(FPGAHOST_SOURCE_DIR) + "/docs/fpgahostd.conf.example"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
}

TEST(ConfigTest, HelpListsEveryKey) {
  auto p = Parse({"--help"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->help);
  for (const char* key : {"--data-dir", "--listen", "--libvirt-uri", "--sysfs-root",
                          "--xrt-library", "--log-level"}) {
    EXPECT_NE(p->usage.find(key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace fpgahost
