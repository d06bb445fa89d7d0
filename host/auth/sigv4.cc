#include "host/auth/sigv4.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "common/digest.h"

namespace fpgahost::sigv4 {
namespace {

using std::chrono::sys_seconds;

Status Incomplete(std::string message) {
  return UnauthenticatedError(std::move(message), kIncompleteSignature);
}

Status Invalid(std::string message) {
  return UnauthenticatedError(std::move(message), kInvalidSignature);
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

void EncodeTo(std::string_view s, bool keep_slash, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded; a '%' not followed by two hex digits stays as it is, so any input has a
// canonical form (the HTTP server has already refused malformed targets anyway).
std::string Decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexDigit(s[i + 1]), lo = HexDigit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Trimmed, with every run of spaces and tabs inside folded into one space.
std::string FoldedValue(std::string_view value) {
  std::string out;
  bool in_space = false;
  for (char c : Trim(value)) {
    if (IsSpace(c)) {
      in_space = true;
      continue;
    }
    if (in_space) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

std::string Hex(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 0xf]);
  }
  return out;
}

// HMAC-SHA256 of `data` under `key`, raw bytes.
std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len) == nullptr) {
    // HMAC over memory cannot fail unless the library is broken: a broken invariant.
    std::fputs("fatal: OpenSSL HMAC-SHA256 failed\n", stderr);
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int Number(std::string_view digits) {
  int n = 0;
  for (char c : digits) n = n * 10 + (c - '0');
  return n;
}

std::optional<sys_seconds> MakeTime(int year, int month, int day, int hour, int minute,
                                    int second) {
  std::chrono::year_month_day ymd{std::chrono::year(year),
                                  std::chrono::month(static_cast<unsigned>(month)),
                                  std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok() || hour > 23 || minute > 59 || second > 59) return std::nullopt;
  return std::chrono::sys_days(ymd) + std::chrono::hours(hour) + std::chrono::minutes(minute) +
         std::chrono::seconds(second);
}

// "20150830T123600Z".
std::optional<sys_seconds> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z' || !AllDigits(s.substr(0, 8)) ||
      !AllDigits(s.substr(9, 6))) {
    return std::nullopt;
  }
  return MakeTime(Number(s.substr(0, 4)), Number(s.substr(4, 2)), Number(s.substr(6, 2)),
                  Number(s.substr(9, 2)), Number(s.substr(11, 2)), Number(s.substr(13, 2)));
}

// RFC 7231's IMF-fixdate, "Sun, 30 Aug 2015 12:36:00 GMT" (what the Date header holds).
std::optional<sys_seconds> ParseHttpDate(std::string_view s) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29 || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT") {
    return std::nullopt;
  }
  std::string_view day = s.substr(5, 2), year = s.substr(12, 4);
  std::string_view hh = s.substr(17, 2), mm = s.substr(20, 2), ss = s.substr(23, 2);
  if (!AllDigits(day) || !AllDigits(year) || !AllDigits(hh) || !AllDigits(mm) || !AllDigits(ss)) {
    return std::nullopt;
  }
  auto month = std::find(kMonths.begin(), kMonths.end(), s.substr(8, 3));
  if (month == kMonths.end()) return std::nullopt;
  return MakeTime(Number(year), static_cast<int>(month - kMonths.begin()) + 1, Number(day),
                  Number(hh), Number(mm), Number(ss));
}

const std::string* FindHeader(const RequestView& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? nullptr : &it->second;
}

// The three parameters of the Authorization header, as sent.
struct AuthorizationParts {
  std::string_view credential;
  std::string_view signed_headers;
  std::string_view signature;
};

// Reads "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."; on failure, says
// what is missing in the words AWS uses (including a missing date, which AWS reports
// together with the header's own problems).
StatusOr<AuthorizationParts> ParseAuthorization(std::string_view header, bool has_date) {
  std::string_view trimmed = Trim(header);
  std::string_view algorithm = trimmed.substr(0, trimmed.find_first_of(" \t"));
  if (algorithm != kAlgorithm && algorithm.starts_with("AWS4-")) {
    return Incomplete(
        fmt::format("Unsupported AWS 'algorithm': '{}'. Sign with {}.", algorithm, kAlgorithm));
  }
  AuthorizationParts parts;
  bool have_credential = false, have_signed_headers = false, have_signature = false;
  if (algorithm == kAlgorithm) {
    for (std::string_view piece : Split(trimmed.substr(algorithm.size()), ',')) {
      piece = Trim(piece);
      if (piece.empty()) continue;
      size_t eq = piece.find('=');
      if (eq == std::string_view::npos) {
        return Incomplete(fmt::format(
            "'{}' not a valid key=value pair (missing equal-sign) in Authorization header: '{}'.",
            piece, header));
      }
      std::string_view key = Trim(piece.substr(0, eq)), value = Trim(piece.substr(eq + 1));
      auto take = [&](bool& have, std::string_view& into) -> Status {
        if (have) {
          return Incomplete(fmt::format(
              "'{}' appears more than once in Authorization header: '{}'.", key, header));
        }
        have = !value.empty();
        into = value;
        return Status::Ok();
      };
      if (key == "Credential") RETURN_IF_ERROR(take(have_credential, parts.credential));
      if (key == "SignedHeaders") RETURN_IF_ERROR(take(have_signed_headers, parts.signed_headers));
      if (key == "Signature") RETURN_IF_ERROR(take(have_signature, parts.signature));
    }
  }
  std::string missing;
  if (!have_credential) missing += "Authorization header requires 'Credential' parameter. ";
  if (!have_signature) missing += "Authorization header requires 'Signature' parameter. ";
  if (!have_signed_headers) missing += "Authorization header requires 'SignedHeaders' parameter. ";
  if (!has_date) {
    missing +=
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
        "header. ";
  }
  if (!missing.empty()) return Incomplete(fmt::format("{}Authorization={}", missing, header));
  return parts;
}

// The request's date, and the form of it the string to sign holds.
struct RequestDate {
  sys_seconds time;
  std::string amz_date;
};

StatusOr<RequestDate> ReadDate(const std::string* amz_date, const std::string* http_date) {
  if (amz_date != nullptr) {
    std::optional<sys_seconds> t = ParseAmzDate(*amz_date);
    if (!t) {
      return Incomplete(
          fmt::format("Date must be in ISO-8601 'basic format'. Got '{}'. See "
                      "http://en.wikipedia.org/wiki/ISO_8601",
                      *amz_date));
    }
    return RequestDate{*t, *amz_date};
  }
  std::optional<sys_seconds> t = ParseHttpDate(*http_date);
  if (!t) {
    return Incomplete(fmt::format(
        "Date header '{}' is not an HTTP date such as 'Sun, 30 Aug 2015 12:36:00 GMT'; or send "
        "X-Amz-Date in ISO-8601 basic format (20150830T123600Z)",
        *http_date));
  }
  return RequestDate{*t, FormatAmzDate(*t)};
}

// The credential scope, "<key id>/<YYYYMMDD>/<region>/<service>/aws4_request".
struct Scope {
  std::string_view access_key_id, day, region, service, terminator;
  std::string_view after_key_id;  // "<YYYYMMDD>/.../aws4_request", as the string to sign has it
};

StatusOr<Scope> ReadScope(std::string_view credential, std::string_view service) {
  std::vector<std::string_view> p = Split(credential, '/');
  bool well_formed = p.size() == 5 &&
                     std::none_of(p.begin(), p.end(), [](std::string_view s) { return s.empty(); });
  if (!well_formed) {
    return Incomplete(fmt::format(
        "Credential '{}' is malformed: expecting '<access key id>/<YYYYMMDD>/<region>/{}/"
        "aws4_request'.",
        credential, service));
  }
  return Scope{p[0], p[1], p[2], p[3], p[4], credential.substr(p[0].size() + 1)};
}

StatusOr<std::vector<std::string>> ReadSignedHeaders(std::string_view list) {
  std::vector<std::string> names;
  for (std::string_view name : Split(list, ';')) {
    bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
    if (!ok) {
      return Incomplete(fmt::format(
          "SignedHeaders must be lower-case header names separated by ';', not '{}'.", list));
    }
    names.emplace_back(name);
  }
  return names;
}

Status CheckScope(const Scope& scope, const RequestDate& date, std::string_view service,
                  const std::vector<std::string>& signed_headers) {
  if (scope.terminator != "aws4_request") {
    return Invalid(fmt::format(
        "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
        scope.terminator));
  }
  if (scope.service != service) {
    return Invalid(fmt::format("Credential should be scoped to correct service: '{}'. ", service));
  }
  std::string_view day = std::string_view(date.amz_date).substr(0, 8);
  if (scope.day != day) {
    return Invalid(fmt::format(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '{}' != '{}', from '{}'.",
        scope.day, day, date.amz_date));
  }
  if (std::find(signed_headers.begin(), signed_headers.end(), "host") == signed_headers.end()) {
    return Invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
  return Status::Ok();
}

Status CheckTime(const RequestDate& date, const Clock& clock, std::chrono::seconds max_skew) {
  sys_seconds now = std::chrono::floor<std::chrono::seconds>(clock.Now());
  auto minutes = std::chrono::duration_cast<std::chrono::minutes>(max_skew).count();
  if (date.time < now - max_skew) {
    return Invalid(fmt::format("Signature expired: {} is now earlier than {} ({} - {} min.)",
                               date.amz_date, FormatAmzDate(now - max_skew), FormatAmzDate(now),
                               minutes));
  }
  if (date.time > now + max_skew) {
    return Invalid(
        fmt::format("Signature not yet current: {} is still later than {} ({} + {} min.)",
                    date.amz_date, FormatAmzDate(now + max_skew), FormatAmzDate(now), minutes));
  }
  return Status::Ok();
}

}  // namespace

std::string FormatAmzDate(std::chrono::system_clock::time_point t) {
  auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  auto days = std::chrono::floor<std::chrono::days>(seconds);
  std::chrono::year_month_day ymd(days);
  std::chrono::hh_mm_ss hms(seconds - days);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::string CanonicalUri(std::string_view path) {
  // RFC 3986's "remove dot segments", plus dropping empty segments as AWS does for every
  // service but S3.
  std::vector<std::string_view> kept;
  for (std::string_view segment : Split(path, '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!kept.empty()) kept.pop_back();
      continue;
    }
    kept.push_back(segment);
  }
  std::string normalized = "/";
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) normalized += '/';
    normalized += kept[i];
  }
  if (!kept.empty() && path.ends_with('/')) normalized += '/';
  std::string out;
  EncodeTo(normalized, /*keep_slash=*/true, out);
  return out;
}

std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (std::string_view piece : Split(query, '&')) {
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string name, value;
    EncodeTo(Decode(piece.substr(0, eq)), false, name);
    if (eq != std::string_view::npos) EncodeTo(Decode(piece.substr(eq + 1)), false, value);
    pairs.emplace_back(std::move(name), std::move(value));
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [name, value] : pairs) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string CanonicalRequest(const RequestView& request,
                             const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash) {
  size_t q = request.target.find('?');
  std::string_view path = request.target.substr(0, q);
  std::string_view query =
      q == std::string_view::npos ? std::string_view() : request.target.substr(q + 1);
  std::string out;
  out.reserve(256 + request.target.size());
  out.append(request.method).append("\n");
  out.append(CanonicalUri(path)).append("\n");
  out.append(CanonicalQuery(query)).append("\n");
  std::string names;
  for (const std::string& name : signed_headers) {
    const std::string* value = FindHeader(request, name);
    out.append(name).append(":").append(value ? FoldedValue(*value) : "").append("\n");
    if (!names.empty()) names += ';';
    names += name;
  }
  out.append("\n").append(names).append("\n").append(payload_hash);
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  return fmt::format("{}\n{}\n{}\n{}", kAlgorithm, amz_date, scope, Sha256Hex(canonical_request));
}

std::string Signature(std::string_view secret, std::string_view day, std::string_view region,
                      std::string_view service, std::string_view string_to_sign) {
  std::string key = Hmac("AWS4" + std::string(secret), day);
  key = Hmac(key, region);
  key = Hmac(key, service);
  key = Hmac(key, "aws4_request");
  std::string mac = Hmac(key, string_to_sign);
  return Hex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
}

Verification Verify(const RequestView& request, const SecretLookup& secret_for, const Clock& clock,
                    const VerifyOptions& options) {
  Verification v;
  auto fail = [&v](Status s) {
    v.status = std::move(s);
    return std::move(v);
  };
  const std::string* authorization = FindHeader(request, "authorization");
  if (authorization == nullptr) {
    return fail(UnauthenticatedError("Missing Authentication Token", kMissingAuthenticationToken));
  }
  const std::string* amz_date = FindHeader(request, "x-amz-date");
  const std::string* http_date = FindHeader(request, "date");
  StatusOr<AuthorizationParts> parts =
      ParseAuthorization(*authorization, amz_date != nullptr || http_date != nullptr);
  if (!parts.ok()) return fail(parts.status());
  StatusOr<Scope> scope = ReadScope(parts->credential, options.service);
  if (!scope.ok()) return fail(scope.status());
  v.access_key_id = std::string(scope->access_key_id);
  StatusOr<std::vector<std::string>> signed_headers = ReadSignedHeaders(parts->signed_headers);
  if (!signed_headers.ok()) return fail(signed_headers.status());
  StatusOr<RequestDate> date = ReadDate(amz_date, http_date);
  if (!date.ok()) return fail(date.status());
  if (Status s = CheckScope(*scope, *date, options.service, *signed_headers); !s.ok()) {
    return fail(std::move(s));
  }
  if (Status s = CheckTime(*date, clock, options.max_skew); !s.ok()) return fail(std::move(s));

  std::optional<std::string> secret = secret_for(scope->access_key_id);
  if (!secret) return fail(UnauthenticatedError(kUnrecognizedClientMessage, kUnrecognizedClient));

  std::string payload_hash = Sha256Hex(request.body);
  if (const std::string* sent = FindHeader(request, "x-amz-content-sha256");
      sent != nullptr && *sent != payload_hash) {
    return fail(
        Invalid("The provided 'x-amz-content-sha256' header does not match what was "
                "computed."));
  }
  std::string canonical = CanonicalRequest(request, *signed_headers, payload_hash);
  std::string to_sign = StringToSign(date->amz_date, scope->after_key_id, canonical);
  std::string expected = Signature(*secret, scope->day, scope->region, scope->service, to_sign);
  if (!ConstantTimeEquals(expected, parts->signature)) {
    // What we signed, for whoever debugs a client; neither string reveals the secret.
    spdlog::debug("sigv4: signature mismatch for {}; canonical request:\n{}\nstring to sign:\n{}",
                  v.access_key_id, canonical, to_sign);
    return fail(Invalid(kSignatureMismatchMessage));
  }
  return v;
}

}  // namespace fpgahost::sigv4
