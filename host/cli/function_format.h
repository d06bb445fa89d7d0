// Requests and text for the `function` commands, without I/O: what goes to fpgahostd's
// Lambda-compatible API (CreateFunction's body, the /v1/invocations query) and how its answers
// read on a terminal (configurations, invocation records and their logs, Lambda's errors).
// Unit-tested without a daemon (tests/unit/host/cli/function_format_test.cc).
//
// Every formatter tolerates missing or null fields (printed as "-"): the daemon's answer is
// outside input.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace fpgahost::cli {

// Lambda requires a role ARN at CreateFunction; fpgahost keeps it and does not use it.
inline constexpr char kPlaceholderRole[] = "arn:aws:iam::000000000000:role/fpgahost";
inline constexpr char kDefaultRuntime[] = "provided.al2023";

struct CreateFunctionArgs {
  std::string name;
  std::string zip;  // the zip's bytes
  std::optional<int> memory_mib;
  std::optional<int> timeout_seconds;
  std::vector<std::string> env;  // "KEY=VALUE" as given on the command line
  std::string description;
  std::string handler;
  std::string fpga_image;                    // img-...: an FPGA function
  std::vector<std::string> tenant_sidecars;  // extensions run once per tenant
};

// Lambda's CreateFunction body: Runtime provided.al2023, the placeholder role, Code.ZipFile in
// base64, and only the optional fields that were given. Errors: InvalidArgument (reason USAGE)
// for an --env that is not KEY=VALUE with a non-empty key, or a key given twice.
StatusOr<Json> CreateFunctionBody(const CreateFunctionArgs& args);

// The /v1/invocations target: `function` and `request_id` are left out when empty, `limit`
// when 0; logs=true asks for each invocation's log.
std::string InvocationsTarget(std::string_view function, int limit, bool logs,
                              std::string_view request_id);

// A Lambda API refusal as one Status: reason the exception's name (the x-amzn-ErrorType header
// without any ":..." suffix, else the body's "Type" or "__type"), message the body's "message"
// or "Message" (plus its "Reason" when given). `headers` names are lower-case, as
// http::ClientResponse has them. fpgahost's own {"error": {code, message}}
// envelope (from authentication, before the Lambda routes) is understood too. The code follows
// the HTTP status (404 NotFound, 409 Conflict, 429 ResourceExhausted, ...).
Status LambdaApiError(unsigned http_status, const std::map<std::string, std::string>& headers,
                      std::string_view body);

// A function error reported by Invoke (X-Amz-Function-Error: `kind`, "Unhandled" or
// "Handled"), as a Status whose reason is "function error (<kind>)" and whose message is
// "<errorType>: <errorMessage>" from the payload (just the message, or the payload's first
// line, when the payload is not Lambda's error shape). So the CLI's line reads
// "fpgahost: error: function error (Unhandled): EchoError: asked to fail".
Status FunctionErrorStatus(std::string_view kind, std::string_view payload);

// `function create` and `function describe`: the name, then aligned "key  value" lines (ARN,
// runtime, handler, memory, timeout, code SHA-256 and size, last modified, state,
// description, environment). `concurrency` is GetFunction's Concurrency object, or null.
std::string FormatFunctionConfiguration(const Json& configuration,
                                        const Json& concurrency = nullptr);

// `function list`: NAME RUNTIME MEMORY_MIB TIMEOUT_S CODE_SIZE LAST_MODIFIED DESCRIPTION.
std::string FormatFunctionList(const Json& functions);

// A duration in milliseconds for people: "0.184", "12.3", "1520"; "-" when not a number.
std::string FormatMs(const Json& ms);

// `function invocations`: STARTED REQUEST_ID FUNCTION TYPE START STATE DURATION_MS INIT_MS
// QUEUED_MS ERROR, in the order given (the API sends newest first).
std::string FormatInvocations(const Json& invocations);

// GET /v1/function-slots' slots as a table: name, function, state, calls served, whether
// pre-warmed, init ms, and for FPGA functions the card and whether the image was loaded for the
// slot (with its load time).
std::string FormatFunctionSlots(const Json& slots);

// `function logs`: oldest first, each invocation's header line
//   <started_at>  <request_id>  <cold|warm>  <state>[ <error_type>]  <duration> ms
// (followed by ", init <ms> ms" after a cold start and ", attempt <n>" for an async retry;
// INIT_MS in the table likewise shows "-" for a warm start),
// then its log as the function wrote it (a missing final newline added).
std::string FormatInvocationLogs(const Json& invocations);

}  // namespace fpgahost::cli
