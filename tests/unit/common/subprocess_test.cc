#include "common/subprocess.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

namespace fpgahost {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

ProcessOptions Quick() {
  ProcessOptions o;
  o.timeout = std::chrono::seconds(20);
  return o;
}

TEST(SubprocessTest, CapturesStdoutStderrAndExitCode) {
  StatusOr<ProcessResult> r = RunProcess({"sh", "-c", "echo out; echo err >&2; exit 3"}, Quick());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_text, "out\n");
  EXPECT_EQ(r->stderr_text, "err\n");
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->Describe(), "exit status 3");
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  StatusOr<ProcessResult> r = RunProcess({"/nonexistent/tool", "x"}, Quick());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().reason(), kReasonProgramNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("/nonexistent/tool"));
}

TEST(SubprocessTest, TimeoutKillsTheWholeProcessGroup) {
  ProcessOptions o;
  o.timeout = std::chrono::milliseconds(300);
  // The grandchild keeps stdout open; only killing the group ends the read.
  StatusOr<ProcessResult> r = RunProcess({"sh", "-c", "sleep 60 & sleep 60; echo never"}, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_THAT(r->stdout_text, Not(HasSubstr("never")));
  EXPECT_THAT(r->Describe(), HasSubstr("timed out"));
}

TEST(SubprocessTest, OutputKeepsOnlyTheTail) {
  ProcessOptions o = Quick();
  o.max_output_bytes = 10;
  StatusOr<ProcessResult> r = RunProcess({"sh", "-c", "printf 0123456789abcdef"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_text, "6789abcdef");
}

TEST(SubprocessTest, EnvironmentIsAddedToTheDaemons) {
  ProcessOptions o = Quick();
  o.environment = {{"FPGAHOST_TEST_VALUE", "42"}};
  StatusOr<ProcessResult> r =
      RunProcess({"sh", "-c", "echo $FPGAHOST_TEST_VALUE ${PATH:+has-path}"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_text, "42 has-path\n");
}

TEST(SubprocessTest, DaemonDescriptorsAndBlockedSignalsDoNotLeak) {
  // Deliberately without O_CLOEXEC, and numbered above what ls opens for itself.
  int opened = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(opened, 0);
  int fd = ::dup2(opened, 57);
  ::close(opened);
  ASSERT_EQ(fd, 57);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  StatusOr<ProcessResult> fds =
      RunProcess({"sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"}, Quick());
  // With SIGTERM blocked in the child, this would wait for the timeout.
  ProcessOptions o = Quick();
  StatusOr<ProcessResult> term = RunProcess({"sh", "-c", "kill -TERM $$; sleep 30"}, o);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(fd);
  ASSERT_TRUE(fds.ok());
  // 0-2 plus the descriptor ls opens to read the directory.
  EXPECT_THAT(fds->stdout_text, Not(HasSubstr(" " + std::to_string(fd) + " "))) << fds->stdout_text;
  ASSERT_TRUE(term.ok());
  EXPECT_EQ(term->signal, SIGTERM);
  EXPECT_FALSE(term->timed_out);
}

}  // namespace
}  // namespace fpgahost
