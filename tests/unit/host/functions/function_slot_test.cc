// Function slots with Lambda external extensions, against the real thing: bwrap, the real
// launcher, a bash runtime and bash extensions from the bundle's extensions/ directory.
// Skips only where bwrap cannot create namespaces at all on this machine.
#include "host/functions/function_slot.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <string>
#include <thread>

#include "common/subprocess.h"
#include "host/functions/sandbox_bwrap.h"
#include "host/http/http_server.h"
#include "tests/support/bash_runtime.h"
#include "tests/support/bwrap.h"
#include "tests/support/sandbox_output.h"
#include "tests/support/temp_dir.h"

namespace fpgahost::functions {
namespace {

using namespace std::chrono_literals;

// Well below the graces the tests give extensions: a wait that ends within it ended early.
constexpr auto kPatience = 60s;

using testing::BwrapUnusableReason;

std::string ReadToEnd(int fd) { return testing::ReadToEnd(fd, kPatience); }
using testing::KeyValues;

class FunctionSlotExtensionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = BwrapUnusableReason(); !why.empty()) GTEST_SKIP() << why;
    // As root the sandbox runs as nobody on the host, who must be able to read the bundle.
    ::chmod(task_.path().c_str(), 0755);
  }

  void Write(const std::string& name, const std::string& contents, mode_t mode = 0755) {
    std::filesystem::path path = task_ / name;
    std::filesystem::create_directories(path.parent_path());
    ::chmod(path.parent_path().c_str(), 0755);
    std::ofstream(path) << contents;
    ::chmod(path.c_str(), mode);
  }
  void WriteRuntime(const std::string& body) {
    Write("bootstrap", std::string(testing::kBashRuntime) + body);
  }
  void WriteExtension(const std::string& name, const std::string& body) {
    Write("extensions/" + name, std::string(testing::kBashExtension) + body);
  }

  SandboxSpec Spec() {
    static std::atomic<int> counter{0};
    SandboxSpec spec;
    spec.task_dir = task_.path();
    spec.argv = {"/var/task/bootstrap"};
    spec.name = "slottest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    spec.env = {{"AWS_LAMBDA_FUNCTION_NAME", "echo"},
                {"AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"},
                {"_HANDLER", "handler"},
                {"PATH", "/usr/bin:/bin"}};
    spec.memory_mib = 128;
    spec.max_pids = 64;
    spec.tmp_mib = 8;
    return spec;
  }

  static BwrapSandbox::Options SandboxOptions() {
    BwrapSandbox::Options options;
    options.launcher = FPGAHOST_SLOT_INIT;
    return options;
  }

  // Starts a slot of the bundle written so far; ready_ and stopped_ follow its hooks.
  std::shared_ptr<FunctionSlot> StartSlot() {
    FunctionSlot::Hooks hooks;
    hooks.on_ready = [this] { ready_.set_value(); };
    hooks.on_stopped = [this] { stopped_.set_value(); };
    auto slot = FunctionSlot::Start(sandbox_, Spec(), io_, blocking_, std::move(hooks));
    EXPECT_TRUE(slot.ok()) << slot.status().ToString();
    return slot.ok() ? *slot : nullptr;
  }

  bool WaitReady() { return ready_future_.wait_for(kPatience) == std::future_status::ready; }
  bool WaitStopped() { return stopped_future_.wait_for(kPatience) == std::future_status::ready; }

  SlotOutcome Invoke(FunctionSlot& slot, const std::string& id) {
    Invocation inv;
    inv.request_id = id;
    inv.payload = "\"" + id + "\"";
    inv.deadline = std::chrono::system_clock::now() + 30s;
    inv.function_arn = "arn:aws:lambda:us-east-1:123456789012:function:echo";
    std::promise<SlotOutcome> outcome;
    Status s = slot.Invoke(inv, 30s, [&](SlotOutcome o) { outcome.set_value(std::move(o)); });
    EXPECT_TRUE(s.ok()) << s.ToString();
    auto future = outcome.get_future();
    if (!s.ok() || future.wait_for(kPatience) != std::future_status::ready) return SlotOutcome{};
    return future.get();
  }

  // Destroyed in reverse: the pool first (it closes the Runtime APIs, kills the sandboxes and
  // calls on_stopped), then the I/O threads, then what the hooks set.
  std::promise<void> ready_;
  std::future<void> ready_future_ = ready_.get_future();
  std::promise<void> stopped_;
  std::future<void> stopped_future_ = stopped_.get_future();
  http::IoThreads io_{2};
  testing::TempDir task_;
  ThreadPool blocking_{2};
  BwrapSandbox sandbox_{SandboxOptions()};
};

TEST_F(FunctionSlotExtensionsTest, InvocationsWaitForTheExtensionAndShutdownForItsNext) {
  WriteRuntime("while true; do next; respond \"$event\"; done\n");
  // Its post-invocation work takes a while: the invocation is not over before it is done.
  WriteExtension("logger", R"sh(
register INVOKE SHUTDOWN
while true; do
  next_event
  case "$event_type" in
    INVOKE) sleep 0.2; echo "logger: after $request_id" >&2 ;;
    SHUTDOWN) echo "logger: shutdown ($shutdown_reason)" >&2 ;;
    *) exit 0 ;;
  esac
done
)sh");
  auto slot = StartSlot();
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->isolation().extensions, std::vector<std::string>{"logger"});
  ASSERT_TRUE(WaitReady());

  for (const char* id : {"req-1", "req-2"}) {
    SlotOutcome outcome = Invoke(*slot, id);
    ASSERT_TRUE(std::holds_alternative<InvocationResponse>(outcome.result)) << outcome.log;
    EXPECT_EQ(std::get<InvocationResponse>(outcome.result).payload, std::string("\"") + id + "\"");
    EXPECT_TRUE(outcome.slot_reusable);
    // What the extension printed after its work is this invocation's, not the next one's.
    EXPECT_NE(outcome.log.find(std::string("logger: after ") + id), std::string::npos)
        << outcome.log;
    EXPECT_GE(outcome.duration, 200ms);
  }
  auto extensions = slot->extensions();
  ASSERT_EQ(extensions.size(), 1u);
  EXPECT_EQ(extensions[0].name, "logger");
  EXPECT_TRUE(extensions[0].invoke);
  EXPECT_TRUE(extensions[0].shutdown);

  // Two minutes' grace, but the extension asks for its next event at once: the sandbox goes.
  slot->Shutdown(120s);
  EXPECT_EQ(slot->state(), FunctionSlot::State::kRetired);
  EXPECT_EQ(slot->Invoke(Invocation{}, 1s, [](SlotOutcome) {}).reason(), "SLOT_RETIRED");
  ASSERT_TRUE(WaitStopped());
  extensions = slot->extensions();
  ASSERT_EQ(extensions.size(), 1u);
  EXPECT_EQ(extensions[0].state, "Ready");  // asked again after SHUTDOWN
}

TEST_F(FunctionSlotExtensionsTest, ShutdownTellsLambdasReasonAndDeadline) {
  WriteRuntime("while true; do next; respond ok; done\n");
  // Reports what it was told through exit/error, which also ends the wait for it.
  WriteExtension("reporter", R"sh(
register SHUTDOWN
next_event
exit_error "Seen.$event_type.$shutdown_reason.$deadline_ms"
)sh");
  auto slot = StartSlot();
  ASSERT_TRUE(slot);
  ASSERT_TRUE(WaitReady());
  auto before = std::chrono::system_clock::now();
  slot->Shutdown(120s);
  auto after = std::chrono::system_clock::now();
  ASSERT_TRUE(WaitStopped());
  auto extensions = slot->extensions();
  ASSERT_EQ(extensions.size(), 1u);
  EXPECT_EQ(extensions[0].state, "Exited");
  const std::string prefix = "Seen.SHUTDOWN.spindown.";
  ASSERT_EQ(extensions[0].error_type.rfind(prefix, 0), 0u) << extensions[0].error_type;
  auto ms = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  };
  int64_t deadline = std::stoll(extensions[0].error_type.substr(prefix.size()));
  EXPECT_GE(deadline, ms(before + 120s));
  EXPECT_LE(deadline, ms(after + 120s));
}

// The invoker lets go of a slot as it retires it: the grace must hold regardless.
TEST_F(FunctionSlotExtensionsTest, TheSlotOutlivesItsOwnerThroughTheGrace) {
  WriteRuntime("while true; do next; respond ok; done\n");
  WriteExtension("flusher", R"sh(
register SHUTDOWN
next_event
sleep 0.3
exit_error Flushed
)sh");
  auto slot = StartSlot();
  ASSERT_TRUE(slot);
  ASSERT_TRUE(WaitReady());
  std::weak_ptr<FunctionSlot> weak = slot;
  slot->Shutdown(120s);
  slot.reset();
  EXPECT_FALSE(weak.expired());  // still there for its extension
  ASSERT_TRUE(WaitStopped());
  for (int i = 0; i < 500 && !weak.expired(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(weak.expired());  // and gone once it is done
}

TEST_F(FunctionSlotExtensionsTest, AnExtensionThatNeverFinishesIsKilledAtTheDeadline) {
  WriteRuntime("while true; do next; respond ok; done\n");
  WriteExtension("stubborn", R"sh(
register SHUTDOWN
next_event
sleep 1000
)sh");
  auto slot = StartSlot();
  ASSERT_TRUE(slot);
  ASSERT_TRUE(WaitReady());
  slot->Shutdown(300ms);
  ASSERT_TRUE(WaitStopped());
  auto extensions = slot->extensions();
  ASSERT_EQ(extensions.size(), 1u);
  EXPECT_EQ(extensions[0].state, "Running");  // still on SHUTDOWN when killed
}

TEST_F(FunctionSlotExtensionsTest, WithoutExtensionsShutdownIsKill) {
  WriteRuntime("while true; do next; respond ok; done\n");
  auto slot = StartSlot();
  ASSERT_TRUE(slot);
  ASSERT_TRUE(WaitReady());
  EXPECT_TRUE(slot->isolation().extensions.empty());
  slot->Shutdown(120s);
  EXPECT_EQ(slot->state(), FunctionSlot::State::kRetired);
  ASSERT_TRUE(WaitStopped());
  EXPECT_TRUE(slot->extensions().empty());
}

// An extension is a process of the runtime's own sandbox: same namespaces, cgroup and user,
// the read-only bundle at /opt/extensions, the sandbox's init as its parent.
TEST_F(FunctionSlotExtensionsTest, ExtensionsRunInTheRuntimesSandbox) {
  const std::string view = R"sh(
view() {
  for ns in pid net mnt ipc uts user cgroup; do echo "$1_$ns=$(readlink /proc/self/ns/$ns)"; done
  echo "$1_uid=$(id -u)"
  echo "$1_cgroup=$(cat /proc/self/cgroup | tr '\n' ' ')"
  echo "$1_ppid=$PPID"
  echo "$1_api=$AWS_LAMBDA_RUNTIME_API"
}
)sh";
  Write("bootstrap", "#!/bin/bash\n" + view + R"sh(
for i in $(seq 500); do [ -e /tmp/probe.done ] && break; sleep 0.02; done
view runtime
cat /tmp/probe.view
)sh");
  Write("extensions/probe", "#!/bin/bash\n" + view + R"sh(
view extension > /tmp/probe.view
touch /opt/extensions/new 2>/dev/null && echo extension_write=ok >> /tmp/probe.view ||
  echo extension_write=refused >> /tmp/probe.view
echo "probe to stderr" >&2
touch /tmp/probe.done
)sh");
  Write("extensions/.hidden", "not an extension", 0644);
  BwrapSandbox sandbox(SandboxOptions());
  auto process = sandbox.Start(Spec());
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  EXPECT_EQ((*process)->isolation().extensions, std::vector<std::string>{"probe"});
  std::string out = ReadToEnd((*process)->stdout_fd());
  std::string err = ReadToEnd((*process)->stderr_fd());
  auto seen = KeyValues(out);
  SCOPED_TRACE(out);
  for (const char* key : {"pid", "net", "mnt", "ipc", "uts", "user", "cgroup", "uid", "api"}) {
    EXPECT_FALSE(seen[std::string("runtime_") + key].empty()) << key;
    EXPECT_EQ(seen[std::string("extension_") + key], seen[std::string("runtime_") + key]) << key;
  }
  EXPECT_EQ(seen["extension_uid"], "993");
  EXPECT_EQ(seen["extension_ppid"], "1");  // adopted by the sandbox's init, not the runtime's
  EXPECT_EQ(seen["extension_write"], "refused");
  EXPECT_NE(err.find("probe to stderr"), std::string::npos) << err;
}

TEST_F(FunctionSlotExtensionsTest, AnExtensionThatCannotRunFailsTheStart) {
  Write("bootstrap", "#!/bin/sh\nexec sleep 1000\n");
  Write("extensions/notes.txt", "not executable\n", 0644);
  BwrapSandbox sandbox(SandboxOptions());
  auto process = sandbox.Start(Spec());
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(process.status().reason(), "EXTENSION_LAUNCH_FAILED");
  EXPECT_NE(process.status().message().find("/opt/extensions/notes.txt"), std::string::npos)
      << process.status().ToString();

  std::filesystem::remove(task_ / "extensions/notes.txt");
  for (int i = 0; i <= 10; ++i) Write("extensions/ext" + std::to_string(i), "#!/bin/sh\n");
  process = sandbox.Start(Spec());
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.status().reason(), "TOO_MANY_EXTENSIONS");
}

}  // namespace
}  // namespace fpgahost::functions
