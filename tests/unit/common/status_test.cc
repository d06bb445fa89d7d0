#include "common/status.h"

#include <gtest/gtest.h>

namespace fpgahost {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ReasonDefaultsToCodeName) {
  Status s = NotFoundError("image img-1 not found");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.reason(), "NOT_FOUND");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: image img-1 not found");
}

TEST(StatusTest, ExplicitReasonIsKept) {
  Status s = InvalidArgumentError("file is 10 bytes, header needs 496", "XCLBIN_TRUNCATED");
  EXPECT_EQ(s.reason(), "XCLBIN_TRUNCATED");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(StatusTest, OkCodeMakesOkStatus) { EXPECT_TRUE(Status(StatusCode::kOk, "ignored").ok()); }

TEST(StatusTest, CopyIsDeepAndEqual) {
  Status a = ConflictError("card busy", "BUSY");
  Status b = a;
  EXPECT_EQ(a, b);
  b = Status::Ok();
  EXPECT_FALSE(a.ok());
  EXPECT_EQ(a.reason(), "BUSY");
}

TEST(StatusTest, WithContextPrefixesMessageKeepsReason) {
  Status s = DataLossError("file is not a database", "STORE_CORRUPT").WithContext("state.db");
  EXPECT_EQ(s.message(), "state.db: file is not a database");
  EXPECT_EQ(s.reason(), "STORE_CORRUPT");
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
}

TEST(StatusTest, ErrnoErrorNamesWhatAndWhy) {
  Status s = ErrnoError("cannot open /x", ENOENT);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(s.message(), "cannot open /x: No such file or directory");
}

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd");
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x).status());
  return Status::Ok();
}

TEST(StatusOrTest, ValueAndErrorPropagate) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Half(3).value_or(-1), -1);
}

TEST(StatusOrTest, OkStatusIsTurnedIntoInternalError) {
  StatusOr<int> s = Status::Ok();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInternal);
}

TEST(StatusOrTest, MoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(7);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> v = std::move(p).value();
  EXPECT_EQ(*v, 7);
}

}  // namespace
}  // namespace fpgahost
