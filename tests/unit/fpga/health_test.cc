#include "fpga/health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fpgahost::fpga {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

images::ShellSpec U250() {
  images::ShellSpec shell;
  shell.name = "u250-gen3x16-xdma-4.1";
  shell.vbnv = "xilinx_u250_gen3x16_xdma_shell_4_1";
  shell.interface_uuid = "12345678-9abc-def0-1122-334455667788";
  shell.limits = {
      .fpga_temp_warn_c = 88, .fpga_temp_max_c = 97, .power_warn_w = 200, .power_max_w = 225};
  return shell;
}

CardInfo GoodCard() {
  CardInfo c;
  c.id = "card-0000-10-00-0";
  c.mgmt_bdf = "0000:10:00.0";
  c.user_bdf = "0000:10:00.1";
  c.mgmt_driver = "xclmgmt";
  c.user_driver = "xocl";
  c.vbnv = "xilinx_u250_gen3x16_xdma_shell_4_1";
  c.interface_uuid = "12345678-9abc-def0-1122-334455667788";
  c.temperature_c = 45;
  c.power_w = 60;
  c.firewall_status = 0;
  return c;
}

std::vector<std::string> Codes(const HealthReport& r) {
  std::vector<std::string> codes;
  for (const auto& reason : r.reasons) codes.push_back(reason.code);
  return codes;
}

TEST(HealthTest, CardWithinLimitsIsHealthy) {
  images::ShellSpec shell = U250();
  HealthReport r = EvaluateCardHealth(GoodCard(), &shell);
  EXPECT_EQ(r.state, HealthState::kHealthy);
  EXPECT_TRUE(r.reasons.empty());
}

TEST(HealthTest, TemperatureAgainstTheShellsLimits) {
  images::ShellSpec shell = U250();
  CardInfo card = GoodCard();
  card.temperature_c = 88;
  HealthReport warm = EvaluateCardHealth(card, &shell);
  EXPECT_EQ(warm.state, HealthState::kDegraded);
  EXPECT_THAT(Codes(warm), ElementsAre("TEMPERATURE_HIGH"));

  card.temperature_c = 105;
  HealthReport hot = EvaluateCardHealth(card, &shell);
  EXPECT_EQ(hot.state, HealthState::kUnhealthy);
  EXPECT_THAT(Codes(hot), ElementsAre("TEMPERATURE_CRITICAL"));
  EXPECT_THAT(hot.reasons[0].message, HasSubstr("105 C"));
  EXPECT_THAT(hot.reasons[0].message, HasSubstr("97 C"));

  // Another shell's limits apply to its cards.
  shell.limits.fpga_temp_max_c = 110;
  shell.limits.fpga_temp_warn_c = 106;
  EXPECT_EQ(EvaluateCardHealth(card, &shell).state, HealthState::kHealthy);
}

TEST(HealthTest, PowerAgainstTheShellsLimits) {
  images::ShellSpec shell = U250();
  CardInfo card = GoodCard();
  card.power_w = 210;
  EXPECT_THAT(Codes(EvaluateCardHealth(card, &shell)), ElementsAre("POWER_HIGH"));
  card.power_w = 225;  // at the maximum is still allowed
  EXPECT_EQ(EvaluateCardHealth(card, &shell).state, HealthState::kDegraded);
  card.power_w = 300;
  HealthReport r = EvaluateCardHealth(card, &shell);
  EXPECT_EQ(r.state, HealthState::kUnhealthy);
  EXPECT_THAT(Codes(r), ElementsAre("POWER_OVER_LIMIT"));
}

TEST(HealthTest, UnreadableSensorsDegrade) {
  images::ShellSpec shell = U250();
  CardInfo card = GoodCard();
  card.temperature_c.reset();
  card.power_w.reset();
  card.problems = {"devices/.../xmc.m.4096/xmc_fpga_temp: not a number: \"garbage\""};
  HealthReport r = EvaluateCardHealth(card, &shell);
  EXPECT_EQ(r.state, HealthState::kDegraded);
  EXPECT_THAT(Codes(r), ElementsAre("SENSOR_UNREADABLE", "SENSOR_UNREADABLE", "SYSFS_PROBLEM"));
  EXPECT_THAT(r.reasons[2].message, HasSubstr("garbage"));
}

TEST(HealthTest, WhatMakesACardUnusable) {
  images::ShellSpec shell = U250();
  CardInfo card = GoodCard();
  EXPECT_THAT(Codes(EvaluateCardHealth(card, nullptr)), ElementsAre("UNKNOWN_SHELL"));

  card.firewall_status = 0x80000;
  HealthReport fw = EvaluateCardHealth(card, &shell);
  EXPECT_EQ(fw.state, HealthState::kUnhealthy);
  EXPECT_THAT(fw.reasons[0].message, HasSubstr("0x80000"));

  card = GoodCard();
  card.mgmt_driver = "vfio-pci";
  EXPECT_THAT(Codes(EvaluateCardHealth(card, &shell)), ElementsAre("MGMT_PF_DRIVER"));

  card = GoodCard();
  card.user_bdf.clear();
  card.user_driver.clear();
  EXPECT_THAT(Codes(EvaluateCardHealth(card, &shell)), ElementsAre("USER_PF_MISSING"));

  card = GoodCard();
  card.user_driver.clear();
  HealthReport unbound = EvaluateCardHealth(card, &shell);
  EXPECT_EQ(unbound.state, HealthState::kDegraded);
  EXPECT_THAT(Codes(unbound), ElementsAre("USER_PF_UNBOUND"));
}

TEST(HealthTest, WorstReasonWins) {
  HealthReport r;
  r.Add("A", "a", HealthState::kDegraded);
  r.Add("B", "b", HealthState::kUnhealthy);
  r.Add("C", "c", HealthState::kDegraded);
  EXPECT_EQ(r.state, HealthState::kUnhealthy);
  EXPECT_EQ(HealthStateName(r.state), "unhealthy");
}

TEST(HealthTest, FindsTheShellByInterfaceUuidThenVbnv) {
  StatusOr<images::ShellCatalogue> catalogue = images::ShellCatalogue::Create({U250()});
  ASSERT_TRUE(catalogue.ok()) << catalogue.status().ToString();
  CardInfo card = GoodCard();
  ASSERT_NE(FindCardShell(card, *catalogue), nullptr);
  EXPECT_EQ(FindCardShell(card, *catalogue)->name, "u250-gen3x16-xdma-4.1");

  card.interface_uuid.reset();  // a 1RP shell: only the VBNV
  ASSERT_NE(FindCardShell(card, *catalogue), nullptr);

  card.vbnv = "xilinx_u200_something";
  EXPECT_EQ(FindCardShell(card, *catalogue), nullptr);
}

}  // namespace
}  // namespace fpgahost::fpga
