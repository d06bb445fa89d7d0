#include "vfio/vfio_binder.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fpga/discovery.h"
#include "tests/unit/vfio/emulated_fleet.h"
#include "vfio/iommu_group.h"

namespace fpgahost::vfio {
namespace {

namespace fs = std::filesystem;

// A process that dies after `budget` writes: every write to sysfs or the journal counts, and
// once the budget is spent nothing more reaches the kernel or the store (the journal's
// contents survive, as the state store's do).
struct Crash {
  int budget;
  bool Spend() { return budget-- > 0; }
  Status Dead() const { return UnavailableError("crashed", "CRASHED"); }
};

class CrashingSysfs : public fpga::Sysfs {
 public:
  CrashingSysfs(fpga::Sysfs& real, Crash& crash) : real_(real), crash_(crash) {}
  StatusOr<std::string> ReadAttribute(std::string_view path) const override {
    return real_.ReadAttribute(path);
  }
  Status WriteAttribute(std::string_view path, std::string_view value) override {
    return crash_.Spend() ? real_.WriteAttribute(path, value) : crash_.Dead();
  }
  StatusOr<std::vector<std::string>> ListDirectory(std::string_view path) const override {
    return real_.ListDirectory(path);
  }
  StatusOr<std::string> ReadLink(std::string_view path) const override {
    return real_.ReadLink(path);
  }
  bool Exists(std::string_view path) const override { return real_.Exists(path); }

 private:
  fpga::Sysfs& real_;
  Crash& crash_;
};

class CrashingJournal : public BindingJournal {
 public:
  CrashingJournal(BindingJournal& real, Crash& crash) : real_(real), crash_(crash) {}
  Status Put(const BindingJournalEntry& entry) override {
    return crash_.Spend() ? real_.Put(entry) : crash_.Dead();
  }
  Status Erase(std::string_view bdf) override {
    return crash_.Spend() ? real_.Erase(bdf) : crash_.Dead();
  }
  StatusOr<std::optional<BindingJournalEntry>> Get(std::string_view bdf) const override {
    return real_.Get(bdf);
  }
  StatusOr<std::vector<BindingJournalEntry>> List() const override { return real_.List(); }

 private:
  BindingJournal& real_;
  Crash& crash_;
};

class VfioBinderTest : public EmulatedFleetTest {
 protected:
  VfioBinder Binder(fpga::Sysfs& sysfs, BindingJournal& journal) {
    return VfioBinder(sysfs, DevRoot(), journal, VfioBinderOptions{});
  }
  std::vector<BindingJournalEntry> Entries() const {
    return journal_.List().value_or(std::vector<BindingJournalEntry>{});
  }
  void ClearJournal() {
    for (const BindingJournalEntry& entry : Entries()) ASSERT_TRUE(journal_.Erase(entry.bdf).ok());
  }

  // The user PF is the host's again: on xocl (which publishes xclbinuuid), no override, no
  // /dev/vfio node, nothing pending in the journal, and discovery sees it so.
  void ExpectWithTheHost() {
    EXPECT_EQ(Driver(user_), "xocl");
    EXPECT_EQ(Override(user_), "(null)");
    EXPECT_TRUE(sysfs_.Exists("bus/pci/devices/" + user_ + "/xclbinuuid"));
    EXPECT_FALSE(fs::exists(DevRoot() / "vfio" / group_));
    EXPECT_TRUE(Entries().empty());
    StatusOr<fpga::CardInfo> card =
        fpga::SysfsDeviceScanner(sysfs_).ScanCard(fpga::emu::EmulatedMgmtBdf(0));
    ASSERT_TRUE(card.ok()) << card.status().ToString();
    EXPECT_EQ(card->user_driver, "xocl");
  }

  InMemoryBindingJournal journal_;
};

TEST_F(VfioBinderTest, BindThenReleaseGivesTheUserPfBackToXocl) {
  VfioBinder binder = Binder(sysfs_, journal_);
  StatusOr<BindingRecord> record = binder.Bind(user_);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(*record, (BindingRecord{user_, "xocl", group_, DevRoot() / "vfio" / group_}));
  EXPECT_EQ(Driver(user_), "vfio-pci");
  EXPECT_EQ(Override(user_), "vfio-pci");
  EXPECT_TRUE(fs::exists(record->vfio_device_path));
  EXPECT_EQ(Driver(fpga::emu::EmulatedMgmtBdf(0)), "xclmgmt");  // the host keeps the mgmt PF
  ASSERT_EQ(Entries().size(), 1u);
  EXPECT_TRUE(Entries()[0].complete);
  EXPECT_EQ(Entries()[0].original_driver, "xocl");

  // Binding again is a no-op that returns the same record.
  StatusOr<BindingRecord> again = binder.Bind(user_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *record);

  Status released = binder.Release(*record);
  ASSERT_TRUE(released.ok()) << released.ToString();
  ExpectWithTheHost();
}

TEST_F(VfioBinderTest, BindRefusesANonViableGroupAndTouchesNothing) {
  AddDevice("0000:30:00.0", "0x010802", "nvme", group_);
  VfioBinder binder = Binder(sysfs_, journal_);
  StatusOr<BindingRecord> record = binder.Bind(user_);
  EXPECT_EQ(record.status().reason(), kReasonIommuGroupNotViable);
  EXPECT_NE(record.status().message().find("0000:30:00.0"), std::string_view::npos);
  ExpectWithTheHost();
}

TEST_F(VfioBinderTest, BindWithABridgeInTheGroupWorks) {
  AddDevice("0000:00:01.0", "0x060400", "pcieport", group_);
  VfioBinder binder = Binder(sysfs_, journal_);
  StatusOr<BindingRecord> record = binder.Bind(user_);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(Driver("0000:00:01.0"), "pcieport");
  ASSERT_TRUE(binder.Release(*record).ok());
  ExpectWithTheHost();
}

TEST_F(VfioBinderTest, BindOnAMissingDeviceFailsCleanly) {
  VfioBinder binder = Binder(sysfs_, journal_);
  StatusOr<BindingRecord> record = binder.Bind("0000:99:00.1");
  EXPECT_EQ(record.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(record.status().reason(), kReasonDeviceNotFound);
  EXPECT_NE(record.status().message().find("0000:99:00.1"), std::string_view::npos);
  EXPECT_TRUE(Entries().empty());
  EXPECT_EQ(binder.Release({"0000:99:00.1", "xocl", "9", {}}).code(), StatusCode::kNotFound);
}

TEST_F(VfioBinderTest, BindThatNeverSeesTheVfioNodeTimesOutAndRollsBack) {
  testing::TempDir empty_dev;
  VfioBinder binder(sysfs_, empty_dev.path(), journal_,
                    VfioBinderOptions{std::chrono::milliseconds(50), std::chrono::milliseconds(5)});
  StatusOr<BindingRecord> record = binder.Bind(user_);
  EXPECT_EQ(record.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(record.status().reason(), kReasonVfioBindTimeout);
  EXPECT_NE(record.status().message().find(user_ + ": bind step wait"), std::string_view::npos)
      << record.status().message();
  ExpectWithTheHost();
}

TEST_F(VfioBinderTest, BindRefusesADeviceSomeoneElseGaveToVfio) {
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/xocl/unbind", user_).ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/drivers/vfio-pci/bind", user_).ok());
  VfioBinder binder = Binder(sysfs_, journal_);
  EXPECT_EQ(binder.Bind(user_).status().reason(), kReasonAlreadyBoundToVfio);
  EXPECT_TRUE(Entries().empty());
}

TEST_F(VfioBinderTest, ACrashAtAnyStepOfABindIsRepaired) {
  bool completed = false;
  size_t repairs = 0;
  for (int budget = 0; !completed; ++budget) {
    ASSERT_LT(budget, 20) << "bind never completed";
    SCOPED_TRACE("crash after " + std::to_string(budget) + " writes");
    SetUp();
    ClearJournal();
    Crash crash{budget};
    CrashingSysfs crashing_sysfs(sysfs_, crash);
    CrashingJournal crashing_journal(journal_, crash);
    StatusOr<BindingRecord> record = Binder(crashing_sysfs, crashing_journal).Bind(user_);
    completed = record.ok();

    // The restarted process repairs what the journal says is half-done.
    VfioBinder restarted = Binder(sysfs_, journal_);
    StatusOr<std::vector<std::string>> repaired = restarted.Repair();
    ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
    repairs += repaired->size();
    if (completed) {
      EXPECT_TRUE(repaired->empty());
      EXPECT_EQ(Driver(user_), "vfio-pci");
      ASSERT_TRUE(restarted.Release(*record).ok());
    }
    ExpectWithTheHost();
    // And the device can be bound again.
    StatusOr<BindingRecord> rebound = restarted.Bind(user_);
    ASSERT_TRUE(rebound.ok()) << rebound.status().ToString();
    ASSERT_TRUE(restarted.Release(*rebound).ok());
  }
  EXPECT_GE(repairs, 3u);  // crashes after the intent, the override, the unbind, the probe
}

TEST_F(VfioBinderTest, ACrashAtAnyStepOfAReleaseIsRepaired) {
  bool completed = false;
  size_t repairs = 0;
  for (int budget = 0; !completed; ++budget) {
    ASSERT_LT(budget, 20) << "release never completed";
    SCOPED_TRACE("crash after " + std::to_string(budget) + " writes");
    SetUp();
    ClearJournal();
    StatusOr<BindingRecord> record = Binder(sysfs_, journal_).Bind(user_);
    ASSERT_TRUE(record.ok()) << record.status().ToString();
    Crash crash{budget};
    CrashingSysfs crashing_sysfs(sysfs_, crash);
    CrashingJournal crashing_journal(journal_, crash);
    completed = Binder(crashing_sysfs, crashing_journal).Release(*record).ok();

    StatusOr<std::vector<std::string>> repaired = Binder(sysfs_, journal_).Repair();
    ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
    repairs += repaired->size();
    if (budget == 0) {
      // Died before journaling the release: the bind stands, and releasing finishes the job.
      EXPECT_TRUE(repaired->empty());
      EXPECT_EQ(Driver(user_), "vfio-pci");
      ASSERT_TRUE(Binder(sysfs_, journal_).Release(*record).ok());
    }
    ExpectWithTheHost();
  }
  EXPECT_GE(repairs, 3u);  // crashes after the intent, the override, the unbind, the probe
}

TEST_F(VfioBinderTest, RepairForgetsADeviceThatWasUnplugged) {
  ASSERT_TRUE(
      journal_.Put({user_, BindingJournalEntry::Operation::kBind, "xocl", group_, false}).ok());
  ASSERT_TRUE(sysfs_.WriteAttribute("bus/pci/devices/" + user_ + "/remove", "1").ok());
  StatusOr<std::vector<std::string>> repaired = Binder(sysfs_, journal_).Repair();
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  EXPECT_EQ(*repaired, std::vector<std::string>{user_});
  EXPECT_TRUE(Entries().empty());
}

}  // namespace
}  // namespace fpgahost::vfio
