#include "host/http/router.h"

#include <gtest/gtest.h>

namespace fpgahost::http {
namespace {

Handler Named(std::string* hit, std::string name) {
  return [hit, name](Request&, Responder) { *hit = name; };
}

TEST(RouterTest, MatchesLiteralAndParameterSegments) {
  std::string hit;
  Router r;
  r.Add("GET", "/v1/images", Named(&hit, "list"));
  r.Add("GET", "/v1/images/{id}", Named(&hit, "get"));
  r.Add("PUT", "/v1/images/{id}/permissions", Named(&hit, "perm"));

  auto m = r.Find("GET", "/v1/images/img-1");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("id"), "img-1");
  auto l = r.Find("GET", "/v1/images/");
  ASSERT_NE(l.handler, nullptr);
  EXPECT_TRUE(l.params.empty());
  Request req;
  (*l.handler)(req, nullptr);
  EXPECT_EQ(hit, "list");
  EXPECT_NE(r.Find("PUT", "/v1/images/x/permissions").handler, nullptr);
}

TEST(RouterTest, WrongMethodIsKnownPathUnknownIsNot) {
  Router r;
  r.Add("GET", "/v1/health", [](Request&, Responder) {});
  auto wrong = r.Find("POST", "/v1/health");
  EXPECT_EQ(wrong.handler, nullptr);
  EXPECT_TRUE(wrong.path_known);
  auto none = r.Find("GET", "/v1/healthz");
  EXPECT_EQ(none.handler, nullptr);
  EXPECT_FALSE(none.path_known);
  EXPECT_EQ(r.Find("GET", "/v1/health/extra").handler, nullptr);
}

TEST(RouterTest, SplitTargetDecodesPathAndQuery) {
  std::string path;
  std::map<std::string, std::string> query;
  ASSERT_TRUE(SplitTarget("/v1/images?name=my+image&description=a%2Fb&flag", path, query));
  EXPECT_EQ(path, "/v1/images");
  EXPECT_EQ(query.at("name"), "my image");
  EXPECT_EQ(query.at("description"), "a/b");
  EXPECT_EQ(query.at("flag"), "");
  ASSERT_TRUE(SplitTarget("/a%20b", path, query));
  EXPECT_EQ(path, "/a b");
  EXPECT_FALSE(SplitTarget("/a%2", path, query));
  EXPECT_FALSE(SplitTarget("/a%zz", path, query));
  EXPECT_FALSE(SplitTarget("/a?x=%", path, query));
}

}  // namespace
}  // namespace fpgahost::http
