// LibvirtHypervisor against real libvirt: the in-process test driver (test:///default).
#include "vfio/libvirt_hypervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace fpgahost::vfio {
namespace {

using ::testing::HasSubstr;

constexpr char kTestUri[] = "test:///default";

class LibvirtHypervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<LibvirtHypervisor>> hypervisor = LibvirtHypervisor::Connect(kTestUri);
    ASSERT_TRUE(hypervisor.ok()) << hypervisor.status().ToString();
    hv_ = std::move(*hypervisor);
  }

  // test:///default is one set of domains for every connection in the process: names are
  // unique per test.
  static std::string Name(const std::string& suffix = "") {
    return std::string("fpgahost-") +
           ::testing::UnitTest::GetInstance()->current_test_info()->name() + suffix;
  }

  static DomainSpec Spec(const std::string& name, const std::string& instance_id) {
    DomainSpec spec;
    spec.name = name;
    spec.vcpus = 2;
    spec.memory_mib = 2048;
    spec.boot_disk = "/var/lib/fpgahost/disks/" + instance_id + ".qcow2";
    spec.hostdevs = {"0000:11:00.1", "0000:12:00.1"};
    spec.metadata = {
        instance_id,
        "acme & sons",
        "f1.4xlarge",
        {{0, "card-0000-11-00-0", "0000:11:00.1"}, {1, "card-0000-12-00-0", "0000:12:00.1"}}};
    return spec;
  }

  DomainState StateOf(const std::string& name) {
    StatusOr<DomainInfo> info = hv_->Get(name);
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    return info.ok() ? info->state : DomainState::kOther;
  }

  std::unique_ptr<LibvirtHypervisor> hv_;
};

#define EXPECT_OK(expr)                                                                 \
  do {                                                                                  \
    Status expect_ok_status = (expr);                                                   \
    EXPECT_TRUE(expect_ok_status.ok()) << #expr << ": " << expect_ok_status.ToString(); \
  } while (false)
#define ASSERT_OK(expr)                                                                 \
  do {                                                                                  \
    Status assert_ok_status = (expr);                                                   \
    ASSERT_TRUE(assert_ok_status.ok()) << #expr << ": " << assert_ok_status.ToString(); \
  } while (false)

void ExpectNotFound(const Status& status, const std::string& name, const std::string& operation) {
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
  EXPECT_EQ(status.reason(), kReasonDomainNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr(name + ": " + operation));
}

TEST(DomainStateNameTest, Names) {
  EXPECT_EQ(DomainStateName(DomainState::kRunning), "running");
  EXPECT_EQ(DomainStateName(DomainState::kPaused), "paused");
  EXPECT_EQ(DomainStateName(DomainState::kShuttingDown), "shutting_down");
  EXPECT_EQ(DomainStateName(DomainState::kShutoff), "shutoff");
  EXPECT_EQ(DomainStateName(DomainState::kCrashed), "crashed");
  EXPECT_EQ(DomainStateName(DomainState::kOther), "other");
}

TEST(DomainXmlOptionsForTest, DomainTypeFollowsTheDriver) {
  EXPECT_EQ(DomainXmlOptionsFor("test:///default", {}).domain_type, "test");
  EXPECT_EQ(DomainXmlOptionsFor("TEST:///default", {}).domain_type, "test");
  EXPECT_EQ(DomainXmlOptionsFor("qemu:///system", {}).domain_type, "kvm");
  EXPECT_EQ(DomainXmlOptionsFor("qemu+ssh://host/system", {}).domain_type, "kvm");
  LibvirtHypervisorOptions tcg;
  tcg.domain_type = "qemu";
  tcg.machine = "pc";
  tcg.emulator = "/usr/bin/qemu-system-x86_64";
  DomainXmlOptions xml = DomainXmlOptionsFor("qemu:///system", tcg);
  EXPECT_EQ(xml.domain_type, "qemu");
  EXPECT_EQ(xml.machine, "pc");
  EXPECT_EQ(xml.emulator, tcg.emulator);
  EXPECT_EQ(DomainXmlOptionsFor("qemu:///system", {}).machine, "q35");
}

TEST_F(LibvirtHypervisorTest, Uri) { EXPECT_EQ(hv_->uri(), kTestUri); }

TEST_F(LibvirtHypervisorTest, Lifecycle) {
  const std::string name = Name();
  const DomainSpec spec = Spec(name, "i-00000000000000001");
  ASSERT_OK(hv_->Define(spec));

  StatusOr<DomainInfo> info = hv_->Get(name);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->name, name);
  EXPECT_EQ(info->uuid.size(), 36u);
  EXPECT_EQ(info->state, DomainState::kShutoff);
  ASSERT_TRUE(info->metadata.has_value());
  EXPECT_EQ(*info->metadata, spec.metadata);

  ASSERT_OK(hv_->Start(name));
  EXPECT_EQ(StateOf(name), DomainState::kRunning);
  EXPECT_OK(hv_->Start(name));  // already running
  EXPECT_EQ(StateOf(name), DomainState::kRunning);

  ASSERT_OK(hv_->Shutdown(name));
  EXPECT_EQ(StateOf(name), DomainState::kShutoff);  // the test driver shuts down at once
  EXPECT_OK(hv_->Shutdown(name));                   // already off

  ASSERT_OK(hv_->Start(name));
  ASSERT_OK(hv_->Destroy(name));
  EXPECT_EQ(StateOf(name), DomainState::kShutoff);
  EXPECT_OK(hv_->Destroy(name));  // already off

  // The UUID stays the domain's across power cycles.
  StatusOr<DomainInfo> again = hv_->Get(name);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->uuid, info->uuid);

  ASSERT_OK(hv_->Undefine(name));
  StatusOr<DomainInfo> gone = hv_->Get(name);
  ASSERT_FALSE(gone.ok());
  ExpectNotFound(gone.status(), name, "get");
  ExpectNotFound(hv_->Undefine(name), name, "undefine");
}

TEST_F(LibvirtHypervisorTest, DefineKeepsTheGivenUuid) {
  const std::string name = Name();
  DomainSpec spec = Spec(name, "i-00000000000000002");
  spec.uuid = "6f1c2b1e-8a4d-4c1b-9e55-0123456789ab";
  ASSERT_OK(hv_->Define(spec));
  StatusOr<DomainInfo> info = hv_->Get(name);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->uuid, spec.uuid);
  EXPECT_OK(hv_->Undefine(name));
}

TEST_F(LibvirtHypervisorTest, ListShowsForeignDomainsWithoutMetadataAndOursWithIt) {
  const std::string name = Name();
  const DomainSpec spec = Spec(name, "i-00000000000000003");
  ASSERT_OK(hv_->Define(spec));
  ASSERT_OK(hv_->Start(name));

  StatusOr<std::vector<DomainInfo>> list = hv_->List();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_TRUE(
      std::is_sorted(list->begin(), list->end(),
                     [](const DomainInfo& a, const DomainInfo& b) { return a.name < b.name; }));
  auto find = [&](const std::string& wanted) -> const DomainInfo* {
    for (const DomainInfo& info : *list) {
      if (info.name == wanted) return &info;
    }
    return nullptr;
  };
  // The test driver's own domain: running, and not fpgahost's.
  const DomainInfo* foreign = find("test");
  ASSERT_NE(foreign, nullptr);
  EXPECT_EQ(foreign->state, DomainState::kRunning);
  EXPECT_FALSE(foreign->metadata.has_value());
  const DomainInfo* ours = find(name);
  ASSERT_NE(ours, nullptr);
  EXPECT_EQ(ours->state, DomainState::kRunning);
  ASSERT_TRUE(ours->metadata.has_value());
  EXPECT_EQ(*ours->metadata, spec.metadata);

  ASSERT_OK(hv_->Destroy(name));
  ASSERT_OK(hv_->Undefine(name));
}

TEST_F(LibvirtHypervisorTest, RedefiningTheSameInstanceUpdatesIt) {
  const std::string name = Name();
  DomainSpec spec = Spec(name, "i-00000000000000004");
  ASSERT_OK(hv_->Define(spec));
  StatusOr<DomainInfo> before = hv_->Get(name);
  ASSERT_TRUE(before.ok());

  spec.metadata.tenant = "new tenant name";
  spec.metadata.slots.pop_back();
  spec.hostdevs.pop_back();
  ASSERT_OK(hv_->Define(spec));  // no UUID in the spec: the domain keeps its own
  StatusOr<DomainInfo> after = hv_->Get(name);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->uuid, before->uuid);
  ASSERT_TRUE(after->metadata.has_value());
  EXPECT_EQ(*after->metadata, spec.metadata);
  EXPECT_OK(hv_->Undefine(name));
}

TEST_F(LibvirtHypervisorTest, DefineOverAnotherInstancesDomainIsDomainExists) {
  const std::string name = Name();
  ASSERT_OK(hv_->Define(Spec(name, "i-00000000000000005")));
  Status second = hv_->Define(Spec(name, "i-00000000000000006"));
  EXPECT_EQ(second.code(), StatusCode::kFailedPrecondition) << second.ToString();
  EXPECT_EQ(second.reason(), kReasonDomainExists);
  EXPECT_THAT(std::string(second.message()), HasSubstr(name));
  EXPECT_THAT(std::string(second.message()), HasSubstr("i-00000000000000005"));
  // The first one is untouched.
  StatusOr<DomainInfo> info = hv_->Get(name);
  ASSERT_TRUE(info.ok() && info->metadata.has_value());
  EXPECT_EQ(info->metadata->instance_id, "i-00000000000000005");
  EXPECT_OK(hv_->Undefine(name));
}

TEST_F(LibvirtHypervisorTest, DefineOverAForeignDomainIsDomainExists) {
  Status status = hv_->Define(Spec("test", "i-00000000000000007"));
  EXPECT_EQ(status.reason(), kReasonDomainExists) << status.ToString();
  EXPECT_THAT(std::string(status.message()), HasSubstr("not defined by fpgahost"));
  StatusOr<DomainInfo> info = hv_->Get("test");
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->metadata.has_value());
}

TEST_F(LibvirtHypervisorTest, OperationsOnAMissingDomainAreDomainNotFound) {
  const std::string name = Name();
  ExpectNotFound(hv_->Start(name), name, "start");
  ExpectNotFound(hv_->Shutdown(name), name, "shutdown");
  ExpectNotFound(hv_->Destroy(name), name, "destroy");
  ExpectNotFound(hv_->Undefine(name), name, "undefine");
  StatusOr<DomainInfo> info = hv_->Get(name);
  ASSERT_FALSE(info.ok());
  ExpectNotFound(info.status(), name, "get");
}

TEST_F(LibvirtHypervisorTest, UndefineRefusesARunningDomain) {
  const std::string name = Name();
  ASSERT_OK(hv_->Define(Spec(name, "i-00000000000000008")));
  ASSERT_OK(hv_->Start(name));
  Status status = hv_->Undefine(name);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
  EXPECT_EQ(status.reason(), kReasonDomainRunning);
  EXPECT_EQ(StateOf(name), DomainState::kRunning);
  ASSERT_OK(hv_->Destroy(name));
  EXPECT_OK(hv_->Undefine(name));
}

TEST_F(LibvirtHypervisorTest, BadSpecIsInvalidArgumentAndDefinesNothing) {
  const std::string name = Name();
  DomainSpec spec = Spec(name, "i-00000000000000009");
  spec.hostdevs[1] = "0000:12:00";
  Status status = hv_->Define(spec);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_THAT(std::string(status.message()), HasSubstr(name + ": define: hostdevs[1]"));
  EXPECT_EQ(hv_->Get(name).status().reason(), kReasonDomainNotFound);

  EXPECT_EQ(hv_->Start("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(hv_->Get(std::string("a\0b", 3)).status().code(), StatusCode::kInvalidArgument);
}

// A domain someone else put our namespace on, wrongly: reading it is an error of its own, and
// Define does not take it over.
TEST_F(LibvirtHypervisorTest, UnreadableMetadataIsDataLoss) {
  const std::string name = Name();
  virConnectPtr raw = virConnectOpen(kTestUri);
  ASSERT_NE(raw, nullptr);
  const std::string xml = "<domain type='test'><name>" + name +
                          "</name><memory unit='MiB'>64</memory><os><type>hvm</type></os>"
                          "<metadata><f:instance xmlns:f='https://fpgahost.dev/xmlns/instance/1'"
                          " tenant='t' type='x'/></metadata></domain>";
  virDomainPtr domain = virDomainDefineXML(raw, xml.c_str());
  ASSERT_NE(domain, nullptr);

  StatusOr<DomainInfo> info = hv_->Get(name);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(info.status().reason(), kReasonBadDomainMetadata);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr(name));
  EXPECT_EQ(hv_->List().status().reason(), kReasonBadDomainMetadata);
  EXPECT_EQ(hv_->Define(Spec(name, "i-0000000000000000a")).reason(), kReasonDomainExists);

  EXPECT_OK(hv_->Undefine(name));
  virDomainFree(domain);
  virConnectClose(raw);
}

TEST_F(LibvirtHypervisorTest, ConnectionsShareTheTestDriversDomains) {
  const std::string name = Name();
  ASSERT_OK(hv_->Define(Spec(name, "i-0000000000000000b")));
  StatusOr<std::unique_ptr<LibvirtHypervisor>> other = LibvirtHypervisor::Connect(kTestUri);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE((*other)->Get(name).ok());
  EXPECT_OK((*other)->Undefine(name));
  EXPECT_EQ(hv_->Get(name).status().reason(), kReasonDomainNotFound);
}

TEST(LibvirtConnectTest, BadUriIsAnErrorNotACrash) {
  StatusOr<std::unique_ptr<LibvirtHypervisor>> bogus = LibvirtHypervisor::Connect("bogus:///x");
  ASSERT_FALSE(bogus.ok());
  EXPECT_EQ(bogus.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(bogus.status().reason(), kReasonHypervisorUnavailable);
  EXPECT_THAT(std::string(bogus.status().message()), HasSubstr("bogus:///x"));

  StatusOr<std::unique_ptr<LibvirtHypervisor>> empty = LibvirtHypervisor::Connect("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);

  StatusOr<std::unique_ptr<LibvirtHypervisor>> junk = LibvirtHypervisor::Connect("::::");
  EXPECT_FALSE(junk.ok());
}

TEST_F(LibvirtHypervisorTest, ConcurrentLifecyclesOnOneConnection) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 5;
  std::atomic<bool> done{false};
  std::vector<std::string> failures[kThreads];
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string name = Name("-" + std::to_string(t));
      char id[32];
      std::snprintf(id, sizeof id, "i-%017x", static_cast<unsigned>(t) + 0x100);
      const DomainSpec spec = Spec(name, id);
      auto check = [&](const char* step, const Status& status) {
        if (!status.ok()) failures[t].push_back(std::string(step) + ": " + status.ToString());
      };
      for (int round = 0; round < kRounds; ++round) {
        check("define", hv_->Define(spec));
        check("start", hv_->Start(name));
        StatusOr<DomainInfo> info = hv_->Get(name);
        check("get", info.status());
        if (info.ok() && info->state != DomainState::kRunning) failures[t].push_back("not running");
        check("destroy", hv_->Destroy(name));
        check("undefine", hv_->Undefine(name));
      }
    });
  }
  // Listing meanwhile sees domains come and go, and must not fail on one that just went.
  std::thread lister([&] {
    while (!done.load()) {
      StatusOr<std::vector<DomainInfo>> list = hv_->List();
      EXPECT_TRUE(list.ok()) << list.status().ToString();
    }
  });
  for (std::thread& thread : threads) thread.join();
  done = true;
  lister.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(failures[t].empty()) << "thread " << t << ": " << failures[t].front();
    EXPECT_EQ(hv_->Get(Name("-" + std::to_string(t))).status().reason(), kReasonDomainNotFound);
  }
}

}  // namespace
}  // namespace fpgahost::vfio
