// Image uploads against the real fpgahostd: streaming upload, validation off the request
// path, visibility between tenants, permissions, deletion, and what bad input leaves behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <regex>

#include "common/files.h"
#include "common/json.h"
#include "host/http/http_client.h"
#include "host/store/sqlite.h"
#include "tests/support/daemon_under_test.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/raw_http.h"
#include "tests/support/temp_dir.h"

namespace fpgahost {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string Fixture(const std::string& name) {
  auto bytes = ReadFile(testing::SharedFixturesDir() / "xclbin" / (name + ".xclbin"));
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : "";
}

// The 02_full_hw fixture with its first CONNECTIVITY entry pointing at IP_LAYOUT entry 999:
// a file whose header is fine and whose content only the full validation rejects.
std::string BrokenConnectivity() {
  std::string bytes = Fixture("02_full_hw");
  auto report =
      ReadFile(testing::SharedFixturesDir() / "xclbin" / "reports" / "02_full_hw.layout.json");
  EXPECT_TRUE(report.ok());
  Json layout = Json::parse(*report)["02_full_hw.xclbin"];
  for (const auto& s : layout["sections"]) {
    if (s["kind_name"] != "CONNECTIVITY") continue;
    // struct connectivity { int32 m_count; struct connection { int32 arg_index;
    // int32 m_ip_layout_index; int32 mem_data_index; } m_connection[]; }
    size_t at = s["offset"].get<size_t>() + 8;
    bytes[at] = static_cast<char>(0xe7);  // 999, little-endian
    bytes[at + 1] = 0x03;
  }
  return bytes;
}

class ImageUploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_SHARED_FIXTURES();
    daemon_ = std::make_unique<testing::DaemonUnderTest>(
        data_, std::vector<std::string>{"--image-max-bytes", "1048576"});
    ASSERT_NE(daemon_->port(), 0) << "fpgahostd did not start";
    demo_ = daemon_->Token("demo");
    operator_ = daemon_->Token("operator");
    auto acme = Call("POST", "/v1/tenants", operator_, R"({"name": "acme"})");
    ASSERT_EQ(acme.status, 201u) << acme.body;
    acme_ = Json::parse(acme.body)["token"]["secret"];
  }

  http::ClientResponse Call(const std::string& method, const std::string& target,
                            const std::string& token, const std::string& body = "") {
    return daemon_->Call(method, target, token, body);
  }

  Json Upload(const std::string& bytes, const std::string& token, unsigned expect_status = 202,
              const std::string& name = "test") {
    auto r = Call("POST", "/v1/images?name=" + name, token, bytes);
    EXPECT_EQ(r.status, expect_status) << r.body;
    return Json::parse(r.body, nullptr, false);
  }

  // Polls until the image is no longer pending.
  Json WaitSettled(const std::string& id, const std::string& token) {
    for (int i = 0; i < 200; ++i) {
      Json j = Json::parse(Call("GET", "/v1/images/" + id, token).body, nullptr, false);
      if (j.value("state", "") != "pending") return j;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << id << " stayed pending";
    return Json();
  }

  size_t Count(const fs::path& dir) {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(dir, ec)) n += e.is_regular_file();
    return n;
  }
  size_t StoredBlobs() { return Count(data_ / "images" / "sha256"); }
  size_t TempFiles() { return Count(data_ / "images" / "tmp"); }

  testing::TempDir tmp_;
  fs::path data_ = tmp_ / "data";
  std::unique_ptr<testing::DaemonUnderTest> daemon_;
  std::string demo_, operator_, acme_;
};

TEST_F(ImageUploadTest, FixtureBecomesAvailableWithWhatTheFileSays) {
  Json pending = Upload(Fixture("02_full_hw"), demo_);
  EXPECT_EQ(pending["state"], "pending");
  EXPECT_TRUE(std::regex_match(pending["id"].get<std::string>(), std::regex("img-[0-9a-f]{17}")));
  Json image = WaitSettled(pending["id"], demo_);
  EXPECT_EQ(image["state"], "available") << image;
  EXPECT_EQ(image["vbnv"], "xilinx_u250_gen3x16_xdma_shell_4_1");
  EXPECT_EQ(image["interface_uuid"], "12345678-9abc-def0-1122-334455667788");
  EXPECT_EQ(image["xclbin_uuid"], "01234567-89ab-cdef-0123-456789abcdef");
  EXPECT_EQ(image["owner"], "demo");
  EXPECT_EQ(image["size"], Fixture("02_full_hw").size());
  EXPECT_EQ(StoredBlobs(), 1u);
  EXPECT_EQ(TempFiles(), 0u);
}

TEST_F(ImageUploadTest, ContentThatFailsLateEndsFailedWithItsCode) {
  std::string bytes = BrokenConnectivity();
  Json pending = Upload(bytes, demo_);
  Json image = WaitSettled(pending["id"], demo_);
  EXPECT_EQ(image["state"], "failed");
  EXPECT_EQ(image["error"]["code"], "METADATA_INCONSISTENT");
  EXPECT_NE(image["error"]["message"].get<std::string>().find("m_ip_layout_index"),
            std::string::npos)
      << image;
  // A failed image keeps no bytes (dropped just after the state is recorded).
  for (int i = 0; i < 100 && StoredBlobs() != 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(StoredBlobs(), 0u);
}

TEST_F(ImageUploadTest, BadHeaderIsRefusedDuringUploadAndNothingStays) {
  std::string bytes = Fixture("02_full_hw");
  bytes[0] = 'X';
  Json e = Upload(bytes, demo_, 400);
  EXPECT_EQ(e["error"]["code"], "XCLBIN_BAD_MAGIC");
  EXPECT_EQ(Json::parse(Call("GET", "/v1/images", demo_).body)["images"].size(), 0u);
  EXPECT_EQ(TempFiles(), 0u);
  EXPECT_EQ(StoredBlobs(), 0u);
}

TEST_F(ImageUploadTest, OverTheMaximumIs413AndNothingIsStored) {
  std::string big(2 << 20, 'x');
  auto r = Call("POST", "/v1/images?name=big", demo_, big);
  EXPECT_EQ(r.status, 413u);
  EXPECT_EQ(TempFiles(), 0u);
  EXPECT_EQ(StoredBlobs(), 0u);
}

TEST_F(ImageUploadTest, ClientVanishingMidUploadLeavesNothing) {
  std::string bytes = Fixture("02_full_hw");
  {
    testing::RawConnection c(daemon_->port());
    c.Send("POST /v1/images?name=cut HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + demo_ +
           "\r\nContent-Length: " + std::to_string(bytes.size()) + "\r\n\r\n");
    c.Send(bytes.substr(0, bytes.size() / 2));
    std::this_thread::sleep_for(200ms);
  }
  for (int i = 0; i < 100 && TempFiles() != 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(TempFiles(), 0u);
  EXPECT_EQ(Json::parse(Call("GET", "/v1/images", demo_).body)["images"].size(), 0u);
  EXPECT_EQ(Call("GET", "/v1/health", "").status, 200u);
}

TEST_F(ImageUploadTest, SameBytesTwiceConcurrentlyAreTwoImagesOneObject) {
  std::string bytes = Fixture("02_full_hw");
  auto a = std::async(std::launch::async, [&] { return Upload(bytes, demo_); });
  auto b = std::async(std::launch::async, [&] { return Upload(bytes, acme_); });
  Json ja = a.get(), jb = b.get();
  EXPECT_NE(ja["id"], jb["id"]);
  EXPECT_EQ(WaitSettled(ja["id"], demo_)["state"], "available");
  EXPECT_EQ(WaitSettled(jb["id"], acme_)["state"], "available");
  EXPECT_EQ(StoredBlobs(), 1u);
  // Deleting one keeps the bytes the other still needs; deleting both frees them.
  EXPECT_EQ(Call("DELETE", "/v1/images/" + ja["id"].get<std::string>(), demo_).status, 200u);
  EXPECT_EQ(StoredBlobs(), 1u);
  EXPECT_EQ(Call("DELETE", "/v1/images/" + jb["id"].get<std::string>(), acme_).status, 200u);
  EXPECT_EQ(StoredBlobs(), 0u);
}

TEST_F(ImageUploadTest, PrivateImagesAreInvisibleToOtherTenantsUntilShared) {
  std::string id = Upload(Fixture("02_full_hw"), demo_)["id"];
  WaitSettled(id, demo_);
  auto hidden = Call("GET", "/v1/images/" + id, acme_);
  EXPECT_EQ(hidden.status, 404u);
  EXPECT_EQ(Json::parse(hidden.body)["error"]["code"], "IMAGE_NOT_FOUND");
  EXPECT_EQ(Json::parse(Call("GET", "/v1/images", acme_).body)["images"].size(), 0u);
  EXPECT_EQ(Call("DELETE", "/v1/images/" + id, acme_).status, 404u);

  auto shared = Call("PUT", "/v1/images/" + id + "/permissions", demo_, R"({"tenants": ["acme"]})");
  ASSERT_EQ(shared.status, 200u) << shared.body;
  auto seen = Call("GET", "/v1/images/" + id, acme_);
  EXPECT_EQ(seen.status, 200u);
  EXPECT_FALSE(Json::parse(seen.body).contains("permissions"));  // not the owner's view
  // Sharing lets acme see and load it, not change or delete it.
  EXPECT_EQ(Call("DELETE", "/v1/images/" + id, acme_).status, 403u);
  EXPECT_EQ(Call("PUT", "/v1/images/" + id + "/permissions", acme_, R"({"public": true})").status,
            403u);

  ASSERT_EQ(Call("PUT", "/v1/images/" + id + "/permissions", demo_, R"({"tenants": []})").status,
            200u);
  EXPECT_EQ(Call("GET", "/v1/images/" + id, acme_).status, 404u);
  ASSERT_EQ(Call("PUT", "/v1/images/" + id + "/permissions", demo_, R"({"public": true})").status,
            200u);
  EXPECT_EQ(Call("GET", "/v1/images/" + id, acme_).status, 200u);
}

TEST_F(ImageUploadTest, PermissionsChangeOnlyWhileAvailable) {
  std::string bytes = BrokenConnectivity();
  std::string id = Upload(bytes, demo_)["id"];
  ASSERT_EQ(WaitSettled(id, demo_)["state"], "failed");
  auto r = Call("PUT", "/v1/images/" + id + "/permissions", demo_, R"({"public": true})");
  EXPECT_EQ(r.status, 409u);
  EXPECT_EQ(Json::parse(r.body)["error"]["code"], "IMAGE_NOT_AVAILABLE");
}

TEST_F(ImageUploadTest, BadRequestsNameTheField) {
  auto no_name = Call("POST", "/v1/images", demo_, Fixture("02_full_hw"));
  EXPECT_EQ(no_name.status, 400u);
  EXPECT_NE(Json::parse(no_name.body)["error"]["message"].get<std::string>().find("'name'"),
            std::string::npos);
  auto no_token = Call("POST", "/v1/images?name=x", "", Fixture("02_full_hw"));
  EXPECT_EQ(no_token.status, 401u);
  auto bad_perm =
      Call("PUT", "/v1/images/img-00000000000000000/permissions", demo_, R"({"tenants": "acme"})");
  EXPECT_EQ(bad_perm.status, 400u);
  EXPECT_EQ(Json::parse(bad_perm.body)["error"]["code"], "INVALID_FIELD");
  EXPECT_EQ(TempFiles(), 0u);
}

TEST_F(ImageUploadTest, CliUploadWaitsAndReportsTheFailure) {
  fs::path good = tmp_ / "good.xclbin";
  std::ofstream(good, std::ios::binary) << Fixture("02_full_hw");
  std::string cli = testing::BinaryPath("fpgahost").string();
  std::string token_file = (data_ / "tokens" / "demo.token").string();
  auto ok = testing::RunCommand({cli, "--endpoint", daemon_->endpoint(), "--token-file", token_file,
                                 "image", "upload", good.string(), "--wait", "-o", "json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(Json::parse(ok.out)["state"], "available");

  fs::path bad = tmp_ / "bad.xclbin";
  std::string bytes = Fixture("02_full_hw");
  bytes[0] = 'y';
  std::ofstream(bad, std::ios::binary) << bytes;
  auto refused = testing::RunCommand({cli, "--endpoint", daemon_->endpoint(), "--token-file",
                                      token_file, "image", "upload", bad.string()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(refused.err.starts_with("fpgahost: error: XCLBIN_BAD_MAGIC: ")) << refused.err;

  auto list = testing::RunCommand(
      {cli, "--endpoint", daemon_->endpoint(), "--token-file", token_file, "image", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find("good.xclbin"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("available"), std::string::npos);
}

TEST_F(ImageUploadTest, PendingImageAtRestartIsValidatedAgain) {
  std::string id = Upload(Fixture("02_full_hw"), demo_)["id"];
  WaitSettled(id, demo_);
  daemon_->process().Signal(SIGKILL);
  daemon_->process().Wait();
  // Make it look as if the daemon died between storing the upload and validating it.
  {
    auto db = SqliteDb::Open((data_ / "state.db").string());
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE images SET state='pending' WHERE id='" + id + "'").ok());
  }
  daemon_ =
      std::make_unique<testing::DaemonUnderTest>(data_, std::vector<std::string>{}, "stderr2.log");
  ASSERT_NE(daemon_->port(), 0);
  EXPECT_EQ(WaitSettled(id, demo_)["state"], "available");
}

}  // namespace
}  // namespace fpgahost
