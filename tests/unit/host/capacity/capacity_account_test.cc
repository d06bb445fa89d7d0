#include "host/capacity/capacity_account.h"

#include <gtest/gtest.h>

#include <set>

namespace fpgahost {
namespace {

// Cards "c0".."c<n-1>", each free or held by one owner.
class FakeCardPool : public CardPool {
 public:
  explicit FakeCardPool(int n) {
    for (int i = 0; i < n; ++i) owner_["c" + std::to_string(i)] = "";
  }
  StatusOr<std::vector<Card>> AssignFree(int count, std::string_view owner) override {
    if (CountAssignable() < count) {
      return FailedPreconditionError("not enough cards", kReasonInsufficientCapacity);
    }
    std::vector<Card> given;
    for (auto& [id, held_by] : owner_) {
      if (std::ssize(given) == count) break;
      if (held_by.empty()) {
        held_by = std::string(owner);
        given.push_back({id, "", "", ""});
      }
    }
    return given;
  }
  Status Unassign(std::string_view id, std::string_view owner) override {
    auto it = owner_.find(std::string(id));
    if (it == owner_.end()) return NotFoundError("no card");
    if (it->second != owner) return FailedPreconditionError("not yours");
    it->second.clear();
    return Status::Ok();
  }
  int CountAssignable() const override {
    int n = 0;
    for (const auto& [id, held_by] : owner_) n += held_by.empty() ? 1 : 0;
    return n;
  }
  std::map<std::string, std::string> owner_;
};

TEST(CapacityAccountTest, ReservesWholeOrNothing) {
  FakeCardPool pool(2);
  CapacityAccount account({8, 16384}, pool);
  StatusOr<CapacityAccount::Reservation> a = account.Reserve("instance:a", {4, 8192}, 1);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->cards.size(), 1u);
  // Too many cards: refused, and the vCPUs and memory it would have taken stay free.
  StatusOr<CapacityAccount::Reservation> b = account.Reserve("instance:b", {2, 1024}, 2);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(b.status().reason(), kReasonInsufficientCapacity);
  Json view = account.View();
  EXPECT_EQ(view["vcpus"]["used"], 4);
  EXPECT_EQ(view["fpgas"]["free"], 1);
  // Memory: 8192 of 16384 used, 8193 does not fit; the message says how much is free.
  StatusOr<CapacityAccount::Reservation> c = account.Reserve("instance:c", {1, 8193}, 0);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("8192 of 16384 MiB free"), std::string::npos)
      << c.status().ToString();
  // vCPUs.
  StatusOr<CapacityAccount::Reservation> d = account.Reserve("instance:d", {5, 1}, 0);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("vCPUs"), std::string::npos);
}

TEST(CapacityAccountTest, ReleaseGivesEverythingBack) {
  FakeCardPool pool(2);
  CapacityAccount account({8, 16384}, pool);
  auto a = account.Reserve("instance:a", {8, 16384}, 2);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(account.Reserve("instance:b", {1, 1}, 0).ok());
  EXPECT_EQ(account.Reserve("instance:a", {0, 0}, 0).status().code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(account.Release("instance:a", {"c0", "c1"}).ok());
  Json view = account.View();
  EXPECT_EQ(view["vcpus"]["used"], 0);
  EXPECT_EQ(view["memory_mib"]["used"], 0);
  EXPECT_EQ(view["fpgas"]["free"], 2);
  EXPECT_TRUE(account.Reserve("instance:b", {8, 16384}, 2).ok());
  // Releasing an owner twice, or one that holds nothing, is harmless.
  EXPECT_TRUE(account.Release("instance:a", {}).ok());
  EXPECT_EQ(account.View()["vcpus"]["used"], 8);
}

TEST(CapacityAccountTest, RestoreCountsWhatOwnersAlreadyHold) {
  FakeCardPool pool(1);
  CapacityAccount account({4, 4096}, pool);
  account.Restore("instance:a", {3, 1024});
  account.Restore("instance:a", {3, 1024});  // once per owner
  EXPECT_EQ(account.View()["vcpus"]["used"], 3);
  EXPECT_FALSE(account.Reserve("instance:b", {2, 1024}, 0).ok());
  ASSERT_TRUE(account.Release("instance:a", {}).ok());
  EXPECT_TRUE(account.Reserve("instance:b", {2, 1024}, 1).ok());
}

TEST(CapacityAccountTest, DefaultsFollowNova) {
  ComputeResources d = DefaultComputeCapacity();
  EXPECT_GE(d.vcpus, 4);
  EXPECT_EQ(d.vcpus % 4, 0);
  EXPECT_GT(d.memory_mib, 0);
}

}  // namespace
}  // namespace fpgahost
