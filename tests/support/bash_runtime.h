// Lambda functions for integration tests, written in bash: a custom runtime's loop over
// /dev/tcp, so a test states its function's behaviour in a few lines of shell.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tests/support/zip_builder.h"

namespace fpgahost::testing {

// `next` fills $id and $event, `respond BODY` and `fail BODY` answer the current invocation.
inline constexpr char kBashRuntime[] = R"(#!/bin/bash
export LC_ALL=C
api=$AWS_LAMBDA_RUNTIME_API; host=${api%:*}; port=${api##*:}
next() {
  exec 3<>"/dev/tcp/$host/$port" || exit 1
  printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
  len=0; id=
  while IFS= read -r l <&3; do
    l=${l%$'\r'}; [ -z "$l" ] && break
    case "${l,,}" in
      content-length:*) len=${l#*: } ;;
      lambda-runtime-aws-request-id:*) id=${l#*: } ;;
    esac
  done
  event=; [ "$len" -gt 0 ] && IFS= read -r -d '' -N "$len" event <&3
  exec 3<&-
}
post() {
  exec 3<>"/dev/tcp/$host/$port" || exit 1
  printf 'POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "$id" "$1" "${#2}" "$2" >&3
  cat <&3 >/dev/null; exec 3<&-
}
respond() { post response "$1"; }
fail() { post error "$1"; }
)";

// A Lambda external extension's side of the Extensions API, for a file in /opt/extensions
// (a bundle's extensions/ directory): `register EVENT...` registers under the file's name and
// sets $ext_id; `next_event` waits for the next event and sets $event (its JSON), $event_type,
// $request_id, $deadline_ms and $shutdown_reason (empty once the slot is gone);
// `exit_error TYPE` posts exit/error.
inline constexpr char kBashExtension[] = R"sh(#!/bin/bash
export LC_ALL=C
api=$AWS_LAMBDA_RUNTIME_API; host=${api%:*}; port=${api##*:}
name=${0##*/}
register() {
  local events; events=$(printf '"%s",' "$@"); local body="{\"events\":[${events%,}]}"
  exec 3<>"/dev/tcp/$host/$port" || exit 1
  printf 'POST /2020-01-01/extension/register HTTP/1.1\r\nHost: x\r\nLambda-Extension-Name: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "$name" "${#body}" "$body" >&3
  ext_id=
  while IFS= read -r l <&3; do
    l=${l%$'\r'}; [ -z "$l" ] && break
    case "${l,,}" in lambda-extension-identifier:*) ext_id=${l#*: } ;; esac
  done
  cat <&3 >/dev/null; exec 3<&-
  [ -n "$ext_id" ] || { echo "$name: registration refused" >&2; exit 1; }
}
field() {
  local re="\"$2\":\"?([^\",}]*)"
  if [[ $event =~ $re ]]; then printf -v "$1" '%s' "${BASH_REMATCH[1]}"; else printf -v "$1" ''; fi
}
next_event() {
  exec 3<>"/dev/tcp/$host/$port" || exit 1
  printf 'GET /2020-01-01/extension/event/next HTTP/1.1\r\nHost: x\r\nLambda-Extension-Identifier: %s\r\nConnection: close\r\n\r\n' "$ext_id" >&3
  len=0
  while IFS= read -r l <&3; do
    l=${l%$'\r'}; [ -z "$l" ] && break
    case "${l,,}" in content-length:*) len=${l#*: } ;; esac
  done
  event=; [ "$len" -gt 0 ] && IFS= read -r -d '' -N "$len" event <&3
  exec 3<&-
  field event_type eventType; field request_id requestId; field deadline_ms deadlineMs
  field shutdown_reason shutdownReason
}
exit_error() {
  exec 3<>"/dev/tcp/$host/$port" || exit 1
  printf 'POST /2020-01-01/extension/exit/error HTTP/1.1\r\nHost: x\r\nLambda-Extension-Identifier: %s\r\nLambda-Extension-Function-Error-Type: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$ext_id" "$1" >&3
  cat <&3 >/dev/null; exec 3<&-
}
)sh";

// A code bundle whose bootstrap is the runtime above followed by `body`, its main loop.
inline std::string Function(const std::string& body) {
  return MakeZip({{"bootstrap", std::string(kBashRuntime) + body, kFile | 0755}});
}

// As Function, with extensions: extensions/<name> is the extension library above followed by
// its body.
inline std::string FunctionWithExtensions(
    const std::string& body, const std::vector<std::pair<std::string, std::string>>& extensions) {
  std::vector<Spec> files = {{"bootstrap", std::string(kBashRuntime) + body, kFile | 0755}};
  for (const auto& [name, extension] : extensions) {
    files.push_back({"extensions/" + name, std::string(kBashExtension) + extension, kFile | 0755});
  }
  return MakeZip(files);
}

}  // namespace fpgahost::testing
