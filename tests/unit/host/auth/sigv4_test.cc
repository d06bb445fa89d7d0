#include "host/auth/sigv4.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

#include "tests/support/sigv4_signer.h"

namespace fpgahost::sigv4 {
namespace {

using std::chrono::system_clock;
using ::testing::HasSubstr;

constexpr char kSuiteKeyId[] = "AKIDEXAMPLE";
constexpr char kSuiteSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

class ClockAt final : public Clock {
 public:
  explicit ClockAt(system_clock::time_point t) : t_(t) {}
  system_clock::time_point Now() const override { return t_; }
  std::chrono::steady_clock::time_point SteadyNow() const override { return {}; }
  void Set(system_clock::time_point t) { t_ = t; }

 private:
  system_clock::time_point t_;
};

system_clock::time_point At(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  return std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(mo) /
                               std::chrono::day(d)) +
         std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(s);
}

SecretLookup OnlyKey(std::string id, std::string secret) {
  return [id, secret](std::string_view asked) -> std::optional<std::string> {
    if (asked == id) return secret;
    return std::nullopt;
  };
}

// A request of AWS's SigV4 test suite (service "service", region us-east-1, 2015-08-30
// 12:36:00Z, the suite's example key) and the values the suite publishes for it.
struct SuiteCase {
  const char* name;
  const char* method;
  const char* target;                          // as on the request line
  std::map<std::string, std::string> headers;  // besides host and x-amz-date
  const char* body;
  const char* signed_headers;
  const char* canonical_uri;
  const char* canonical_query;
  const char* signature;
};

const std::vector<SuiteCase>& SuiteCases() {
  static const std::vector<SuiteCase> cases = {
      {"get-vanilla",
       "GET",
       "/",
       {},
       "",
       "host;x-amz-date",
       "/",
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-vanilla-query-order-key-case",
       "GET",
       "/?Param2=value2&Param1=value1",
       {},
       "",
       "host;x-amz-date",
       "/",
       "Param1=value1&Param2=value2",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"get-vanilla-query-order-encoded",
       "GET",
       "/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
       {},
       "",
       "host;x-amz-date",
       "/",
       "%E1%88%B4=Value1&Param=Value2&Param-3=Value3",
       "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"},
      {"get-vanilla-query-unreserved",
       "GET",
       "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       {},
       "",
       "host;x-amz-date",
       "/",
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
      {"get-vanilla-utf8-query",
       "GET",
       "/?\xE1\x88\xB4=bar",
       {},
       "",
       "host;x-amz-date",
       "/",
       "%E1%88%B4=bar",
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"get-vanilla-empty-query-key",
       "GET",
       "/?Param1=value1",
       {},
       "",
       "host;x-amz-date",
       "/",
       "Param1=value1",
       "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
      {"get-unreserved",
       "GET",
       "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       {},
       "",
       "host;x-amz-date",
       "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       "",
       "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-utf8",
       "GET",
       "/\xE1\x88\xB4",
       {},
       "",
       "host;x-amz-date",
       "/%E1%88%B4",
       "",
       "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
      {"get-space",
       "GET",
       "/example space/",
       {},
       "",
       "host;x-amz-date",
       "/example%20space/",
       "",
       "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
      {"get-slash",
       "GET",
       "//",
       {},
       "",
       "host;x-amz-date",
       "/",
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-slashes",
       "GET",
       "//example//",
       {},
       "",
       "host;x-amz-date",
       "/example/",
       "",
       "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
      {"get-slash-dot-slash",
       "GET",
       "/./",
       {},
       "",
       "host;x-amz-date",
       "/",
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-slash-pointless-dot",
       "GET",
       "/./example",
       {},
       "",
       "host;x-amz-date",
       "/example",
       "",
       "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"},
      {"get-relative",
       "GET",
       "/example/..",
       {},
       "",
       "host;x-amz-date",
       "/",
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-relative-relative",
       "GET",
       "/example1/example2/../..",
       {},
       "",
       "host;x-amz-date",
       "/",
       "",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-header-value-trim",
       "GET",
       "/",
       {{"my-header1", " value1"}, {"my-header2", "\"a   b   c\""}},
       "",
       "host;my-header1;my-header2;x-amz-date",
       "/",
       "",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"post-vanilla",
       "POST",
       "/",
       {},
       "",
       "host;x-amz-date",
       "/",
       "",
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"post-vanilla-query",
       "POST",
       "/?Param1=value1",
       {},
       "",
       "host;x-amz-date",
       "/",
       "Param1=value1",
       "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
      {"post-header-key-sort",
       "POST",
       "/",
       {{"my-header1", "value1"}},
       "",
       "host;my-header1;x-amz-date",
       "/",
       "",
       "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
      {"post-header-value-case",
       "POST",
       "/",
       {{"my-header1", "VALUE1"}},
       "",
       "host;my-header1;x-amz-date",
       "/",
       "",
       "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       {{"content-type", "application/x-www-form-urlencoded"},
        {"content-length", "13"},
        {"x-amz-content-sha256",
         "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"}},
       "Param1=value1",
       "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
       "/",
       "",
       "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"},
      {"post-x-www-form-urlencoded-parameters",
       "POST",
       "/",
       {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"},
        {"content-length", "13"},
        {"x-amz-content-sha256",
         "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"}},
       "Param1=value1",
       "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
       "/",
       "",
       "328d1b9eaadca9f5818ef05e8392801e091653bafec24fcab71e7344e7f51422"},
  };
  return cases;
}

std::map<std::string, std::string> SuiteHeaders(const SuiteCase& c) {
  std::map<std::string, std::string> h = c.headers;
  h["host"] = "example.amazonaws.com";
  h["x-amz-date"] = "20150830T123600Z";
  h["authorization"] = fmt::format(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders={}, Signature={}",
      c.signed_headers, c.signature);
  return h;
}

TEST(SigV4SuiteTest, PublishedSignaturesVerify) {
  ClockAt clock(At(2015, 8, 30, 12, 40, 0));
  VerifyOptions options;
  options.service = "service";
  for (const SuiteCase& c : SuiteCases()) {
    SCOPED_TRACE(c.name);
    std::map<std::string, std::string> headers = SuiteHeaders(c);
    Verification v = Verify(RequestView{c.method, c.target, headers, c.body},
                            OnlyKey(kSuiteKeyId, kSuiteSecret), clock, options);
    EXPECT_TRUE(v.status.ok()) << v.status.ToString();
    EXPECT_EQ(v.access_key_id, kSuiteKeyId);

    std::string_view target = c.target;
    size_t q = target.find('?');
    EXPECT_EQ(CanonicalUri(target.substr(0, q)), c.canonical_uri);
    EXPECT_EQ(CanonicalQuery(q == std::string_view::npos ? "" : target.substr(q + 1)),
              c.canonical_query);
  }
}

TEST(SigV4SuiteTest, TestSignerReproducesThePublishedSignatures) {
  testing::SigV4Signer signer(kSuiteKeyId, kSuiteSecret, "us-east-1", "service");
  for (const SuiteCase& c : SuiteCases()) {
    SCOPED_TRACE(c.name);
    std::map<std::string, std::string> headers = c.headers;
    headers.erase("x-amz-content-sha256");
    headers["host"] = "example.amazonaws.com";
    std::string authorization =
        signer.Sign(c.method, c.target, headers, c.body, At(2015, 8, 30, 12, 36, 0),
                    c.headers.count("x-amz-content-sha256") != 0);
    EXPECT_EQ(authorization, SuiteHeaders(c)["authorization"]) << signer.last_canonical_request();
  }
}

TEST(SigV4SuiteTest, IntermediateValuesMatchTheSuite) {
  std::map<std::string, std::string> headers = {{"host", "example.amazonaws.com"},
                                                {"x-amz-date", "20150830T123600Z"}};
  std::string canonical =
      CanonicalRequest(RequestView{"GET", "/", headers, ""}, {"host", "x-amz-date"},
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                       "7852b855");
  EXPECT_EQ(canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::string to_sign =
      StringToSign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", canonical);
  EXPECT_EQ(to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(Signature(kSuiteSecret, "20150830", "us-east-1", "service", to_sign),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

// The 2011 edition of the suite dated requests with the Date header and sorted repeated
// query names by value.
TEST(SigV4SuiteTest, DateHeaderAndRepeatedQueryNames) {
  ClockAt clock(At(2011, 9, 9, 23, 36, 0));
  VerifyOptions options;
  options.service = "host";
  std::map<std::string, std::string> headers = {
      {"host", "host.foo.com"},
      {"date", "Mon, 09 Sep 2011 23:36:00 GMT"},
      {"authorization",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, "
       "SignedHeaders=date;host, "
       "Signature=b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470"}};
  Verification v = Verify(RequestView{"GET", "/", headers, ""}, OnlyKey(kSuiteKeyId, kSuiteSecret),
                          clock, options);
  EXPECT_TRUE(v.status.ok()) << v.status.ToString();

  headers["authorization"] =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, "
      "SignedHeaders=date;host, "
      "Signature=be7148d34ebccdc6423b19085378aa0bee970bdc61d144bd1a8c48c33079ab09";
  v = Verify(RequestView{"GET", "/?foo=Zoo&foo=aha", headers, ""},
             OnlyKey(kSuiteKeyId, kSuiteSecret), clock, options);
  EXPECT_TRUE(v.status.ok()) << v.status.ToString();
  EXPECT_EQ(CanonicalQuery("foo=aha&foo=Zoo"), "foo=Zoo&foo=aha");
}

TEST(SigV4CanonicalTest, PathsAsBotocoreSendsThem) {
  // Lambda's paths: a function name is percent-encoded in the path, and encoded again in
  // the canonical URI; the trailing slash of ListFunctions stays.
  EXPECT_EQ(CanonicalUri("/2015-03-31/functions/my%3Afn/invocations"),
            "/2015-03-31/functions/my%253Afn/invocations");
  EXPECT_EQ(CanonicalUri("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af"),
            "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A1%253Afunction%253Af");
  EXPECT_EQ(CanonicalUri("/2015-03-31/functions/"), "/2015-03-31/functions/");
  EXPECT_EQ(CanonicalUri(""), "/");
  EXPECT_EQ(CanonicalUri("/a/b/../../.."), "/");
  EXPECT_EQ(CanonicalUri("/a+b"), "/a%2Bb");
}

TEST(SigV4CanonicalTest, Queries) {
  EXPECT_EQ(CanonicalQuery(""), "");
  EXPECT_EQ(CanonicalQuery("MaxItems=10&Marker=abc"), "Marker=abc&MaxItems=10");
  EXPECT_EQ(CanonicalQuery("Qualifier=%24LATEST"), "Qualifier=%24LATEST");
  EXPECT_EQ(CanonicalQuery("Qualifier=$LATEST"), "Qualifier=%24LATEST");
  EXPECT_EQ(CanonicalQuery("Param1"), "Param1=");
  EXPECT_EQ(CanonicalQuery("b=2&a=2&a=1&&"), "a=1&a=2&b=2");
  EXPECT_EQ(CanonicalQuery("a=%2b+b"), "a=%2B%2Bb");
  EXPECT_EQ(CanonicalQuery("a=%zz&%"), "%25=&a=%25zz");
}

TEST(SigV4FormatTest, AmzDate) {
  EXPECT_EQ(FormatAmzDate(At(2015, 8, 30, 12, 36, 0)), "20150830T123600Z");
  EXPECT_EQ(FormatAmzDate(At(2026, 11, 28, 23, 59, 59) + std::chrono::milliseconds(999)),
            "20261128T235959Z");
}

// Requests as the AWS CLI sends them to fpgahostd, signed by the test signer.
class SigV4VerifyTest : public ::testing::Test {
 protected:
  static constexpr char kKeyId[] = "AKIAIOSFODNN7EXAMPLE";
  static constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

  SigV4VerifyTest() : clock_(At(2026, 11, 28, 10, 30, 0)) {}

  struct Signed {
    std::string method = "POST";
    std::string target = "/2015-03-31/functions";
    std::map<std::string, std::string> headers;
    std::string body = R"({"FunctionName":"echo","Runtime":"provided.al2023"})";
  };

  Signed Sign(const std::string& method, const std::string& target, const std::string& body,
              system_clock::time_point when, const std::string& service = "lambda",
              const std::string& secret = kSecret) {
    Signed s;
    s.method = method;
    s.target = target;
    s.body = body;
    s.headers = {{"host", "127.0.0.1:9001"}, {"content-type", "application/json"}};
    testing::SigV4Signer(kKeyId, secret, "us-east-1", service)
        .Sign(s.method, s.target, s.headers, s.body, when);
    return s;
  }
  Signed SignNow() { return Sign("POST", "/2015-03-31/functions", Signed().body, clock_.Now()); }

  Verification Check(const Signed& s) {
    return Verify(RequestView{s.method, s.target, s.headers, s.body}, OnlyKey(kKeyId, kSecret),
                  clock_);
  }

  static void ExpectFailure(const Verification& v, std::string_view reason,
                            std::string_view message_part = "") {
    EXPECT_EQ(v.status.code(), StatusCode::kUnauthenticated) << v.status.ToString();
    EXPECT_EQ(v.status.reason(), reason) << v.status.ToString();
    EXPECT_THAT(std::string(v.status.message()), HasSubstr(std::string(message_part)));
  }

  ClockAt clock_;
};

TEST_F(SigV4VerifyTest, SignedRequestsVerify) {
  Verification v = Check(SignNow());
  EXPECT_TRUE(v.status.ok()) << v.status.ToString();
  EXPECT_EQ(v.access_key_id, kKeyId);
  for (const char* target :
       {"/2015-03-31/functions/", "/2015-03-31/functions/?MaxItems=10&Marker=abc",
        "/2015-03-31/functions/my%3Afn?Qualifier=%24LATEST",
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aecho",
        "/2015-03-31/functions/a%20b/invocations", "/2017-10-31/functions/f/concurrency"}) {
    SCOPED_TRACE(target);
    v = Check(Sign("GET", target, "", clock_.Now()));
    EXPECT_TRUE(v.status.ok()) << v.status.ToString();
  }
}

TEST_F(SigV4VerifyTest, HeadersNotSignedMayChange) {
  Signed s = SignNow();
  s.headers["user-agent"] = "aws-cli/2.9.19";
  s.headers["content-length"] = std::to_string(s.body.size());
  EXPECT_TRUE(Check(s).status.ok());
}

TEST_F(SigV4VerifyTest, WrongSecretIsInvalidSignature) {
  Signed s = Sign("POST", "/2015-03-31/functions", "{}", clock_.Now(), "lambda",
                  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ");
  Verification v = Check(s);
  ExpectFailure(v, kInvalidSignature);
  EXPECT_EQ(v.status.message(), kSignatureMismatchMessage);
  EXPECT_EQ(v.access_key_id, kKeyId);
}

TEST_F(SigV4VerifyTest, TamperingIsInvalidSignature) {
  auto tampered = [&](auto change) {
    Signed s = SignNow();
    change(s);
    return Check(s);
  };
  ExpectFailure(tampered([](Signed& s) { s.body += " "; }), kInvalidSignature,
                "does not match the signature you provided");
  ExpectFailure(tampered([](Signed& s) { s.body.clear(); }), kInvalidSignature);
  ExpectFailure(tampered([](Signed& s) { s.headers["content-type"] = "text/plain"; }),
                kInvalidSignature);
  ExpectFailure(tampered([](Signed& s) { s.headers["host"] = "127.0.0.1:9002"; }),
                kInvalidSignature);
  ExpectFailure(tampered([](Signed& s) { s.headers.erase("content-type"); }), kInvalidSignature);
  ExpectFailure(tampered([](Signed& s) { s.method = "PUT"; }), kInvalidSignature);
  ExpectFailure(tampered([](Signed& s) { s.target = "/2015-03-31/functions/x"; }),
                kInvalidSignature);
  ExpectFailure(tampered([](Signed& s) { s.target += "?Qualifier=1"; }), kInvalidSignature);
  ExpectFailure(tampered([](Signed& s) {
                  std::string& a = s.headers["authorization"];
                  a.back() = a.back() == '0' ? '1' : '0';
                }),
                kInvalidSignature);
  // A body hash header that does not match the body.
  ExpectFailure(
      tampered([](Signed& s) { s.headers["x-amz-content-sha256"] = std::string(64, 'a'); }),
      kInvalidSignature, "x-amz-content-sha256");

  Signed q = Sign("GET", "/2015-03-31/functions/?MaxItems=10", "", clock_.Now());
  q.target = "/2015-03-31/functions/?MaxItems=11";
  ExpectFailure(Check(q), kInvalidSignature);
  q = Sign("GET", "/2015-03-31/functions/my%3Afn", "", clock_.Now());
  q.target = "/2015-03-31/functions/my:fn";
  ExpectFailure(Check(q), kInvalidSignature);
}

TEST_F(SigV4VerifyTest, SignedContentSha256Verifies) {
  Signed s;
  s.headers = {{"host", "127.0.0.1:9001"}};
  testing::SigV4Signer(kKeyId, kSecret)
      .Sign(s.method, s.target, s.headers, s.body, clock_.Now(),
            /*add_content_sha256=*/true);
  EXPECT_TRUE(Check(s).status.ok());
  s.body += "x";
  ExpectFailure(Check(s), kInvalidSignature, "x-amz-content-sha256");
}

TEST_F(SigV4VerifyTest, ExpiredAndFutureSignatures) {
  Verification v = Check(Sign("POST", "/2015-03-31/functions", "{}", At(2026, 11, 28, 10, 0, 0)));
  ExpectFailure(v, kInvalidSignature);
  EXPECT_EQ(v.status.message(),
            "Signature expired: 20261128T100000Z is now earlier than 20261128T101500Z "
            "(20261128T103000Z - 15 min.)");
  v = Check(Sign("POST", "/2015-03-31/functions", "{}", At(2026, 11, 28, 10, 46, 0)));
  ExpectFailure(v, kInvalidSignature);
  EXPECT_EQ(v.status.message(),
            "Signature not yet current: 20261128T104600Z is still later than 20261128T104500Z "
            "(20261128T103000Z + 15 min.)");
  // Exactly 15 minutes either way is still accepted.
  EXPECT_TRUE(Check(Sign("POST", "/x", "", At(2026, 11, 28, 10, 15, 0))).status.ok());
  EXPECT_TRUE(Check(Sign("POST", "/x", "", At(2026, 11, 28, 10, 45, 0))).status.ok());
  // A narrower window, as real Lambda has.
  Signed s = Sign("POST", "/x", "", At(2026, 11, 28, 10, 24, 0));
  VerifyOptions five;
  five.max_skew = std::chrono::minutes(5);
  v = Verify(RequestView{s.method, s.target, s.headers, s.body}, OnlyKey(kKeyId, kSecret), clock_,
             five);
  EXPECT_THAT(std::string(v.status.message()), HasSubstr("(20261128T103000Z - 5 min.)"));
}

TEST_F(SigV4VerifyTest, ScopeMustMatchDateServiceAndTerminator) {
  Signed s = SignNow();
  std::string& a = s.headers["authorization"];
  std::string good = a;
  a.replace(a.find("/20261128/"), 10, "/20261127/");
  Verification v = Check(s);
  ExpectFailure(v, kInvalidSignature);
  EXPECT_EQ(v.status.message(),
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
            "HTTP: '20261127' != '20261128', from '20261128T103000Z'.");

  v = Check(Sign("POST", "/2015-03-31/functions", "{}", clock_.Now(), "s3"));
  ExpectFailure(v, kInvalidSignature);
  EXPECT_EQ(v.status.message(), "Credential should be scoped to correct service: 'lambda'. ");

  a = good;
  a.replace(a.find("aws4_request"), 12, "aws4_reqest");
  ExpectFailure(Check(s), kInvalidSignature,
                "Credential should be scoped with a valid terminator: 'aws4_request', not "
                "'aws4_reqest'.");

  // Any region is accepted: the key is not bound to one.
  Signed other;
  other.headers = {{"host", "127.0.0.1:9001"}};
  testing::SigV4Signer(kKeyId, kSecret, "eu-west-3")
      .Sign(other.method, other.target, other.headers, other.body, clock_.Now());
  EXPECT_TRUE(Check(other).status.ok());
}

TEST_F(SigV4VerifyTest, HostMustBeSigned) {
  Signed s;
  s.headers = {{"content-type", "application/json"}};
  testing::SigV4Signer(kKeyId, kSecret).Sign(s.method, s.target, s.headers, s.body, clock_.Now());
  s.headers["host"] = "127.0.0.1:9001";
  Verification v = Check(s);
  ExpectFailure(v, kInvalidSignature);
  EXPECT_EQ(v.status.message(),
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
}

TEST_F(SigV4VerifyTest, UnknownKeyIsUnrecognizedClient) {
  Signed s;
  s.headers = {{"host", "127.0.0.1:9001"}};
  testing::SigV4Signer("AKIAUNKNOWNKEY234567", kSecret)
      .Sign(s.method, s.target, s.headers, s.body, clock_.Now());
  Verification v = Check(s);
  ExpectFailure(v, kUnrecognizedClient);
  EXPECT_EQ(v.status.message(), "The security token included in the request is invalid.");
  EXPECT_EQ(v.access_key_id, "AKIAUNKNOWNKEY234567");
}

TEST_F(SigV4VerifyTest, MalformedHeadersAreIncompleteSignature) {
  Signed s = SignNow();
  std::string good = s.headers["authorization"];
  auto with = [&](const std::string& authorization) {
    s.headers["authorization"] = authorization;
    return Check(s);
  };
  Verification v = with("Basic dXNlcjpwYXNz");
  ExpectFailure(v, kIncompleteSignature,
                "Authorization header requires 'Credential' parameter. Authorization header "
                "requires 'Signature' parameter. Authorization header requires 'SignedHeaders' "
                "parameter. Authorization=Basic dXNlcjpwYXNz");
  v = with("AWS4-HMAC-SHA256 Credential=" + std::string(kKeyId) +
           "/20261128/us-east-1/lambda/aws4_request");
  ExpectFailure(v, kIncompleteSignature, "requires 'Signature' parameter");
  EXPECT_THAT(std::string(v.status.message()), HasSubstr("requires 'SignedHeaders' parameter"));
  EXPECT_THAT(std::string(v.status.message()), ::testing::Not(HasSubstr("'Credential'")));
  ExpectFailure(with("AWS4-HMAC-SHA512 Credential=x"), kIncompleteSignature, "'AWS4-HMAC-SHA512'");
  ExpectFailure(with("AWS4-HMAC-SHA256 Credential=A/20261128/us-east-1/lambda, SignedHeaders=host, "
                     "Signature=00"),
                kIncompleteSignature, "Credential 'A/20261128/us-east-1/lambda' is malformed");
  ExpectFailure(with("AWS4-HMAC-SHA256 Credential " + std::string(kKeyId)), kIncompleteSignature,
                "not a valid key=value pair (missing equal-sign)");
  ExpectFailure(with(good + ", Signature=00"), kIncompleteSignature, "more than once");
  std::string upper = good;
  upper.replace(upper.find("host;"), 5, "Host;");
  ExpectFailure(with(upper), kIncompleteSignature, "SignedHeaders");

  s.headers["authorization"] = good;
  s.headers.erase("x-amz-date");
  ExpectFailure(Check(s), kIncompleteSignature,
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header.");
  s.headers["x-amz-date"] = "2026-11-28T10:30:00Z";
  ExpectFailure(Check(s), kIncompleteSignature,
                "Date must be in ISO-8601 'basic format'. Got '2026-11-28T10:30:00Z'.");
  s.headers["x-amz-date"] = "20261328T103000Z";
  ExpectFailure(Check(s), kIncompleteSignature, "ISO-8601");
  s.headers.erase("x-amz-date");
  s.headers["date"] = "yesterday";
  ExpectFailure(Check(s), kIncompleteSignature, "Date header 'yesterday'");

  s.headers.erase("authorization");
  ExpectFailure(Check(s), kMissingAuthenticationToken, "Missing Authentication Token");
}

// Whatever the bytes of the Authorization header and dates, Verify answers with an error
// (never crashes, never accepts): every prefix of a good header, and random mutations.
TEST_F(SigV4VerifyTest, TruncatedAndMutatedHeadersFailCleanly) {
  Signed s = SignNow();
  const std::string good = s.headers["authorization"];
  const std::string good_date = s.headers["x-amz-date"];
  ASSERT_TRUE(Check(s).status.ok());
  for (size_t n = 0; n < good.size(); ++n) {
    s.headers["authorization"] = good.substr(0, n);
    Verification v = Check(s);
    EXPECT_FALSE(v.status.ok()) << n;
    EXPECT_EQ(v.status.code(), StatusCode::kUnauthenticated);
  }
  std::mt19937 rng(20261128);
  static constexpr char kAlphabet[] =
      "AWS4-HMAC-SHA256 ,;=/%\t\x00\xff"
      "CredentialSignedHeadersSignature0";
  const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);
  int accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string a = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % (a.size() + 1);
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          if (at < a.size()) a[at] = c;
          break;
        case 1:
          a.insert(a.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          if (at < a.size()) a.erase(at, 1 + rng() % 8);
      }
    }
    s.headers["authorization"] = a;
    std::string d = good_date;
    if (i % 7 == 0) d[rng() % d.size()] = alphabet[rng() % alphabet.size()];
    s.headers["x-amz-date"] = d;
    Verification v = Check(s);
    if (v.status.ok()) {
      ++accepted;
      continue;
    }
    EXPECT_EQ(v.status.code(), StatusCode::kUnauthenticated);
    EXPECT_TRUE(v.status.reason().ends_with("Exception")) << v.status.ToString();
  }
  // A mutation may only be accepted when it changed nothing that is signed (e.g. spaces
  // around a separator); it is rare.
  EXPECT_LT(accepted, 250);
}

}  // namespace
}  // namespace fpgahost::sigv4
