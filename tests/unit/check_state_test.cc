// The threshold state machine, driven by sequences of results with their own times.

#include <gtest/gtest.h>

#include <string>

#include "collector/check_state.h"

namespace vigie {
namespace {

Result at(Status s, int second) {
  Result r = s == Status::fail ? Result::failure(Reason::http_status, "got 503") : Result::ok();
  r.status = s;
  if (s == Status::warn) r.reason = Reason::health_warn;
  r.started = SystemClock::time_point(std::chrono::seconds(second));
  r.duration = 0.01;
  return r;
}

Status parse(char c) {
  switch (c) {
    case 'o': return Status::ok;
    case 'w': return Status::warn;
    default: return Status::fail;
  }
}

// One row: thresholds, a sequence of results (o ok, w warn, f fail), and the
// expected state after each result as letters (u up, d down, g degraded) with
// '*' after a letter marking pending.
struct Row {
  const char* name;
  Thresholds thresholds;
  std::string results;
  std::string expected;  // space-separated, one per result
};

std::string render(const CheckStatus& s) {
  std::string out;
  switch (s.state) {
    case CheckState::unknown: out = "?"; break;
    case CheckState::up: out = "u"; break;
    case CheckState::degraded: out = "g"; break;
    case CheckState::down: out = "d"; break;
  }
  if (s.pending) out += "*";
  return out;
}

class ThresholdTable : public ::testing::TestWithParam<Row> {};

TEST_P(ThresholdTable, FollowsTheSequence) {
  const Row& row = GetParam();
  auto status = std::make_shared<const CheckStatus>();
  std::string got;
  int t = 0;
  for (char c : row.results) {
    status = applyResult(*status, at(parse(c), ++t), row.thresholds);
    if (!got.empty()) got += " ";
    got += render(*status);
  }
  EXPECT_EQ(got, row.expected) << row.name;
}

INSTANTIATE_TEST_SUITE_P(
    Sequences, ThresholdTable,
    ::testing::Values(
        Row{"first success applied at once", {3, 1}, "o", "u"},
        Row{"first failure applied at once", {3, 1}, "f", "d"},
        Row{"first warn applied at once", {3, 1}, "w", "g"},
        Row{"three failures to go down", {3, 1}, "offf", "u u* u* d"},
        Row{"a success resets the failure count", {3, 1}, "offoff", "u u* u* u u* u*"},
        Row{"success threshold 2 to come back", {3, 2}, "foofoo", "d d* u u* u u"},
        Row{"a failure resets the success count", {1, 3}, "fooofoo", "d d* d* u d d* d*"},
        Row{"warn is passing: no failure counted", {2, 1}, "owfwf", "u g g* g g*"},
        Row{"up and degraded switch at once", {3, 1}, "owow", "u g u g"},
        Row{"down recovers to degraded on warn", {1, 1}, "ofw", "u d g"},
        Row{"threshold 1 goes down at once", {1, 1}, "ofof", "u d u d"}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (auto& c : n) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

TEST(CheckState, CountsStateChangesAndKeepsTimes) {
  auto s = std::make_shared<const CheckStatus>();
  s = applyResult(*s, at(Status::ok, 10), {2, 1});
  EXPECT_EQ(s->state_changes, 1u);
  EXPECT_EQ(s->last_change, SystemClock::time_point(std::chrono::seconds(10)));
  s = applyResult(*s, at(Status::fail, 20), {2, 1});
  EXPECT_EQ(s->state_changes, 1u);
  s = applyResult(*s, at(Status::fail, 30), {2, 1});
  EXPECT_EQ(s->state, CheckState::down);
  EXPECT_EQ(s->state_changes, 2u);
  EXPECT_EQ(s->last_change, SystemClock::time_point(std::chrono::seconds(30)));
  EXPECT_EQ(s->last_failure, SystemClock::time_point(std::chrono::seconds(30)));
  EXPECT_EQ(s->last_success, SystemClock::time_point(std::chrono::seconds(10)));
  ASSERT_TRUE(s->last_failure_result);
  EXPECT_EQ(s->last_failure_result->reason, Reason::http_status);
  s = applyResult(*s, at(Status::ok, 40), {2, 1});
  EXPECT_EQ(s->state, CheckState::up);
  // Why it last failed is kept after the recovery.
  ASSERT_TRUE(s->last_failure_result);
  EXPECT_EQ(s->last_failure_result->detail, "got 503");
  EXPECT_EQ(s->results_total[0], 2u);
  EXPECT_EQ(s->results_total[2], 2u);
}

TEST(CheckState, RecentResultsAreBounded) {
  auto s = std::make_shared<const CheckStatus>();
  for (int i = 0; i < 200; ++i) s = applyResult(*s, at(i % 7 ? Status::ok : Status::fail, i), {3, 1});
  ASSERT_EQ(s->recent.size(), CheckStatus::kRecentResults);
  EXPECT_EQ(s->recent.back().at, SystemClock::time_point(std::chrono::seconds(199)));
  EXPECT_EQ(s->recent.front().at,
            SystemClock::time_point(std::chrono::seconds(200 - CheckStatus::kRecentResults)));
}

TEST(CheckState, PreviousStatusIsNotModified) {
  auto s0 = std::make_shared<const CheckStatus>();
  auto s1 = applyResult(*s0, at(Status::ok, 1), {3, 1});
  auto s2 = applyResult(*s1, at(Status::fail, 2), {1, 1});
  EXPECT_EQ(s1->state, CheckState::up);
  EXPECT_EQ(s1->recent.size(), 1u);
  EXPECT_EQ(s2->state, CheckState::down);
}

}  // namespace
}  // namespace vigie
