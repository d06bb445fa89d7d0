// AWS Signature Version 4: checking the `Authorization: AWS4-HMAC-SHA256 ...` header that
// the AWS CLI and SDKs put on every request, so they can call fpgahost's Lambda-compatible
// API with their own access keys (host/auth/credentials.h).
//
// What is checked, in this order (each failure is an Unauthenticated Status whose reason is
// the exception name AWS Lambda answers with, and whose message is Lambda's wording where it
// is known):
//   1. the header's shape: algorithm AWS4-HMAC-SHA256, Credential, SignedHeaders and
//      Signature present, a request date in X-Amz-Date (ISO 8601 basic, 20150830T123600Z)
//      or else in Date (RFC 1123) -> IncompleteSignatureException;
//   2. the credential scope <key id>/<YYYYMMDD>/<region>/<service>/aws4_request: the service
//      is `VerifyOptions::service`, the day is the request date's, `host` is a signed
//      header -> InvalidSignatureException; any region is accepted;
//   3. the request date is within `VerifyOptions::max_skew` of the clock
//      -> InvalidSignatureException ("Signature expired" / "Signature not yet current");
//   4. the access key id is known -> UnrecognizedClientException;
//   5. X-Amz-Content-SHA256, when sent, is the SHA-256 of the body, and the signature
//      computed with the key's secret equals the one sent (compared in constant time)
//      -> InvalidSignatureException.
// Presigned URLs (the signature in the query string) and session tokens are not accepted.
//
// The canonical request is built as AWS specifies it for services other than S3, which is
// what botocore (the AWS CLI) and the other SDKs sign:
//   - canonical URI: the path exactly as sent (still percent-encoded), with "." and ".."
//     segments resolved and empty segments ("//") removed, a trailing "/" kept, then
//     percent-encoded once more (every byte but A-Z a-z 0-9 - _ . ~ and "/"), so
//     "/2015-03-31/functions/my%3Afn" is signed as "/2015-03-31/functions/my%253Afn". S3
//     alone skips both the normalisation and the second encoding; that is not done here.
//   - canonical query: each name and value percent-decoded ("+" stays "+") and encoded again
//     (all but A-Z a-z 0-9 - _ . ~), "name=" for a name without value, sorted by name then
//     value; duplicates kept.
//   - canonical headers: the signed headers in the order SignedHeaders lists them, names in
//     lower case, values trimmed with inner runs of whitespace folded into one space. The
//     HTTP server keeps one value per header name, so a header sent twice cannot be
//     verified (no AWS client does that).
//   - payload hash: X-Amz-Content-SHA256 if sent (it must match the body), else the SHA-256
//     of the body.
//
// All functions are thread-safe and do no I/O.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace fpgahost::sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

// The exception names AWS gives authentication failures; Status reasons below.
inline constexpr char kMissingAuthenticationToken[] = "MissingAuthenticationTokenException";
inline constexpr char kIncompleteSignature[] = "IncompleteSignatureException";
inline constexpr char kInvalidSignature[] = "InvalidSignatureException";
inline constexpr char kUnrecognizedClient[] = "UnrecognizedClientException";

// Lambda's messages for the failures that have a fixed one.
inline constexpr char kSignatureMismatchMessage[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";
inline constexpr char kUnrecognizedClientMessage[] =
    "The security token included in the request is invalid.";

// The parts of an HTTP request a signature covers. Borrowed: the request outlives the view.
struct RequestView {
  std::string_view method;  // "GET", ...
  std::string_view target;  // path and query exactly as sent on the request line
  const std::map<std::string, std::string>& headers;  // names in lower case
  std::string_view body;
};

struct VerifyOptions {
  std::string service = "lambda";
  // How far the request date may be from the clock, either way.
  std::chrono::seconds max_skew = std::chrono::minutes(15);
};

// The secret access key of an access key id, or nullopt when the id is unknown.
using SecretLookup = std::function<std::optional<std::string>(std::string_view access_key_id)>;

struct Verification {
  // The access key id the Credential names, as soon as it could be read (so failures can be
  // logged against it); empty when the header was too broken to tell.
  std::string access_key_id;
  // OK, or Unauthenticated with one of the exception names above as its reason.
  Status status;
};

// Checks the request's Authorization header (which must be present) as described above.
Verification Verify(const RequestView& request, const SecretLookup& secret_for, const Clock& clock,
                    const VerifyOptions& options = {});

// The building blocks, exposed for tests and for signing requests.

// "/a/b%20c/" -> the canonical URI (see above).
std::string CanonicalUri(std::string_view path_as_sent);
// "b=2&a=1" -> "a=1&b=2" (see above).
std::string CanonicalQuery(std::string_view query_as_sent);
// The whole canonical request for `signed_headers` (lower-case names, in order).
std::string CanonicalRequest(const RequestView& request,
                             const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash);
// "AWS4-HMAC-SHA256\n<date>\n<scope>\n<hex SHA-256 of the canonical request>".
std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);
// The hex HMAC-SHA256 signature of `string_to_sign` with the key derived from `secret` for
// the scope's day (YYYYMMDD), region and service.
std::string Signature(std::string_view secret, std::string_view day, std::string_view region,
                      std::string_view service, std::string_view string_to_sign);

// 2015-08-30T12:36:00Z as "20150830T123600Z".
std::string FormatAmzDate(std::chrono::system_clock::time_point t);

}  // namespace fpgahost::sigv4
