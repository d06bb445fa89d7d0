// The CLI's shape: one Command subclass per verb ("health", "tenant create"), each
// declaring its options for Boost.Program_options and running against a CliContext that
// talks to fpgahostd. A module adds its verbs through an Add...Commands function that
// main.cc calls.
#pragma once

#include <boost/program_options.hpp>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "host/cli/json_text.h"
#include "host/http/http_client.h"

namespace fpgahost::cli {

namespace po = boost::program_options;

enum class OutputFormat { kTable, kJson };

// What every command gets: where the daemon is, who we are, how to print.
class CliContext {
 public:
  CliContext(std::string endpoint, std::string token, OutputFormat output, std::ostream& out)
      : endpoint_(std::move(endpoint)), token_(std::move(token)), output_(output), out_(out) {}

  OutputFormat output() const { return output_; }
  std::ostream& out() { return out_; }

  // Calls the API and returns the JSON body of a 2xx answer. A 4xx/5xx becomes a Status
  // carrying the envelope's code and message; a call that needs a token fails early when
  // none was given. The calls of one command share a kept-alive connection.
  StatusOr<Json> Call(std::string_view method, std::string_view target, const Json* body = nullptr,
                      bool needs_token = true);

  // POSTs a file as the raw body, streamed, with a progress bar on stderr when it is a
  // terminal.
  StatusOr<Json> Upload(std::string_view target, const std::string& file);

  // Sends `request` to the daemon (with the token, when there is one) and returns its answer
  // whatever the HTTP status, headers and body untouched: for the Lambda-compatible API, whose
  // errors and results are not fpgahost's JSON envelope. Errors: Unauthenticated as Call; the
  // transport's (Unavailable, DeadlineExceeded after request.timeout).
  StatusOr<http::ClientResponse> CallRaw(http::ClientRequest request, bool needs_token = true);

 private:
  StatusOr<Json> Decode(const http::ClientResponse& res);

  std::string endpoint_;
  std::string token_;
  OutputFormat output_;
  std::ostream& out_;
  std::unique_ptr<http::Connection> connection_;  // made by the first Call
};

class Command {
 public:
  virtual ~Command() = default;
  // Words that select the command, e.g. "tenant create".
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;
  // Declares the command's options and positional arguments.
  virtual void DefineOptions(po::options_description& /*options*/,
                             po::positional_options_description& /*positional*/) {}
  // Runs the command; main prints a failed Status as one line and exits 1.
  virtual Status Run(CliContext& ctx, const po::variables_map& vm) = 0;
};

// The command groups; main.cc lists them all.
void AddSystemCommands(std::vector<std::unique_ptr<Command>>& out);
void AddImageCommands(std::vector<std::unique_ptr<Command>>& out);
void AddXclbinCommands(std::vector<std::unique_ptr<Command>>& out);
void AddEmuCommands(std::vector<std::unique_ptr<Command>>& out);
void AddCardCommands(std::vector<std::unique_ptr<Command>>& out);

// Prints `value` as JSON (--output json) or as aligned "key  value" lines.
void PrintObject(CliContext& ctx, const Json& value);
// Prints rows of objects as a table with the given columns (or JSON).
void PrintTable(CliContext& ctx, const Json& rows, const std::vector<std::string>& columns);

}  // namespace fpgahost::cli
