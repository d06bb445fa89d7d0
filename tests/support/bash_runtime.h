// Lambda functions for integration tests, written in bash: a custom runtime's loop over
// /dev/tcp, so a test states its function's behaviour in a few lines of shell.
#pragma once

#include <string>

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

// A code bundle whose bootstrap is the runtime above followed by `body`, its main loop.
inline std::string Function(const std::string& body) {
  return MakeZip({{"bootstrap", std::string(kBashRuntime) + body, kFile | 0755}});
}

}  // namespace fpgahost::testing
