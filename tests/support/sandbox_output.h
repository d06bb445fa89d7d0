// Reading what a sandboxed process printed, for the sandbox and slot tests: its output to the
// end and the KEY=value lines the probe scripts print.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <string>

namespace fpgahost::testing {

// Everything `fd` (nonblocking) delivers up to end of file, or until `patience` is over.
inline std::string ReadToEnd(int fd, std::chrono::milliseconds patience) {
  std::string text;
  char buffer[4096];
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
    if (n > 0) text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

// The KEY=value lines of `text`; other lines are skipped.
inline std::map<std::string, std::string> KeyValues(const std::string& text) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    start = end + 1;
  }
  return out;
}

}  // namespace fpgahost::testing
