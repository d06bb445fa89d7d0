// A small AWS Signature Version 4 signer for tests, written from AWS's description of the
// algorithm independently of host/auth/sigv4.cc, so the two can check each other (and both
// are checked against AWS's published test-suite vectors).
//
// It signs the way botocore does for services other than S3: every header it is given
// (plus x-amz-date, which it adds) is signed; the path as sent is normalised (dot segments
// resolved, empty segments dropped) and percent-encoded once more; the query is sorted.
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fpgahost::testing {

class SigV4Signer {
 public:
  SigV4Signer(std::string access_key_id, std::string secret_access_key,
              std::string region = "us-east-1", std::string service = "lambda")
      : access_key_id_(std::move(access_key_id)),
        secret_(std::move(secret_access_key)),
        region_(std::move(region)),
        service_(std::move(service)) {}

  // Adds "x-amz-date" for `when` (and "x-amz-content-sha256" when asked) to `headers`
  // (lower-case names; "host" should be among them), then "authorization" signing all of
  // them. `target` is the path and query as they will be sent. Returns the Authorization
  // value.
  std::string Sign(std::string_view method, std::string_view target,
                   std::map<std::string, std::string>& headers, std::string_view body,
                   std::chrono::system_clock::time_point when,
                   bool add_content_sha256 = false) const {
    headers.erase("authorization");
    std::string amz_date = AmzDate(when);
    headers["x-amz-date"] = amz_date;
    std::string body_hash = HexOf(Sha256(body));
    if (add_content_sha256) headers["x-amz-content-sha256"] = body_hash;

    std::string path(target.substr(0, target.find('?')));
    std::string query;
    if (target.find('?') != std::string_view::npos) query = target.substr(target.find('?') + 1);

    std::string canonical_headers, signed_headers;
    for (const auto& [name, value] : headers) {  // std::map: already sorted by name
      canonical_headers += name + ":" + Trimall(value) + "\n";
      signed_headers += (signed_headers.empty() ? "" : ";") + name;
    }
    std::string canonical_request = std::string(method) + "\n" + UriPath(path) + "\n" +
                                    SortedQuery(query) + "\n" + canonical_headers + "\n" +
                                    signed_headers + "\n" + body_hash;
    std::string day = amz_date.substr(0, 8);
    std::string scope = day + "/" + region_ + "/" + service_ + "/aws4_request";
    std::string string_to_sign =
        "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + HexOf(Sha256(canonical_request));
    std::string key = Mac("AWS4" + secret_, day);
    for (const std::string& part : {region_, service_, std::string("aws4_request")}) {
      key = Mac(key, part);
    }
    std::string authorization = "AWS4-HMAC-SHA256 Credential=" + access_key_id_ + "/" + scope +
                                ", SignedHeaders=" + signed_headers +
                                ", Signature=" + HexOf(Mac(key, string_to_sign));
    headers["authorization"] = authorization;
    last_canonical_request_ = canonical_request;
    return authorization;
  }

  // The canonical request of the last Sign, for messages when a test fails.
  const std::string& last_canonical_request() const { return last_canonical_request_; }

  static std::string AmzDate(std::chrono::system_clock::time_point when) {
    auto secs = std::chrono::time_point_cast<std::chrono::seconds>(when);
    auto day = std::chrono::floor<std::chrono::days>(secs);
    std::chrono::year_month_day ymd(day);
    auto s = static_cast<int>((secs - day).count());
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), s / 3600,
                  s / 60 % 60, s % 60);
    return buf;
  }

 private:
  static std::string Sha256(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<char*>(md), len);
  }

  static std::string Mac(std::string_view key, std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
    return std::string(reinterpret_cast<char*>(md), len);
  }

  static std::string HexOf(std::string_view bytes) {
    std::string out;
    char buf[3];
    for (unsigned char c : bytes) {
      std::snprintf(buf, sizeof(buf), "%02x", c);
      out += buf;
    }
    return out;
  }

  // RFC 3986 percent-encoding of everything but the unreserved characters (and '/' if told).
  static std::string Escape(std::string_view s, bool slash_too) {
    std::string out;
    char buf[4];
    for (unsigned char c : s) {
      if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~' ||
          (slash_too && c == '/')) {
        out += static_cast<char>(c);
      } else {
        std::snprintf(buf, sizeof(buf), "%%%02X", c);
        out += buf;
      }
    }
    return out;
  }

  static std::string Unescape(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  }

  static std::string UriPath(const std::string& path) {
    std::vector<std::string> stack;
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      std::string segment = path.substr(start, end - start);
      if (segment == "..") {
        if (!stack.empty()) stack.pop_back();
      } else if (!segment.empty() && segment != ".") {
        stack.push_back(segment);
      }
      start = end + 1;
    }
    std::string out = "/";
    for (size_t i = 0; i < stack.size(); ++i) out += (i ? "/" : "") + stack[i];
    if (!stack.empty() && !path.empty() && path.back() == '/') out += "/";
    return Escape(out, /*slash_too=*/true);
  }

  static std::string SortedQuery(const std::string& query) {
    std::vector<std::pair<std::string, std::string>> params;
    size_t start = 0;
    while (start < query.size()) {
      size_t end = query.find('&', start);
      if (end == std::string::npos) end = query.size();
      std::string pair = query.substr(start, end - start);
      start = end + 1;
      if (pair.empty()) continue;
      size_t eq = pair.find('=');
      std::string value = eq == std::string::npos ? "" : pair.substr(eq + 1);
      params.emplace_back(Escape(Unescape(pair.substr(0, eq)), false),
                          Escape(Unescape(value), false));
    }
    std::sort(params.begin(), params.end());
    std::string out;
    for (const auto& [k, v] : params) out += (out.empty() ? "" : "&") + k + "=" + v;
    return out;
  }

  static std::string Trimall(std::string_view value) {
    std::string out;
    bool pending_space = false;
    for (char c : value) {
      if (c == ' ' || c == '\t') {
        pending_space = !out.empty();
      } else {
        if (pending_space) out += ' ';
        pending_space = false;
        out += c;
      }
    }
    return out;
  }

  std::string access_key_id_, secret_, region_, service_;
  mutable std::string last_canonical_request_;
};

}  // namespace fpgahost::testing
