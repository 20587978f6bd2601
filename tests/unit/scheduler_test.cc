// The scheduler with time passed in by hand: spreading, bounding, skipping.

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "collector/scheduler.h"

namespace vigie {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
const SteadyClock::time_point kEpoch{seconds(1000)};

// Drives `s` as the engine does until `end`: sleeps until nextWake(), starts what is
// due, and finishes each start right after `on_start(start, now)`.
template <typename OnStart>
void driveUntil(Scheduler& s, SteadyClock::time_point end, OnStart on_start) {
  std::vector<Scheduler::Start> out;
  while (true) {
    const auto next = s.nextWake();
    ASSERT_TRUE(next);
    if (*next >= end) return;
    out.clear();
    s.poll(*next, out);
    for (const auto& st : out) {
      on_start(st, *next);
      s.finished(st.id);
    }
  }
}

TEST(Scheduler, OffsetIsStableAndInsideTheInterval) {
  const auto a = Scheduler::offsetFor("obsportal/health", milliseconds(30000));
  EXPECT_EQ(a, Scheduler::offsetFor("obsportal/health", milliseconds(30000)));
  EXPECT_GE(a.count(), 0);
  EXPECT_LT(a.count(), 30000);
  EXPECT_NE(a, Scheduler::offsetFor("obsportal/database", milliseconds(30000)));
}

TEST(Scheduler, SpreadsTenThousandChecksEvenly) {
  Scheduler s(100000, kEpoch);
  for (Scheduler::Id i = 0; i < 10000; ++i) {
    s.add(i, fmt::format("service-{}/health", i), milliseconds(30000), kEpoch);
  }
  // Walk one interval in 1 s steps and count starts per second.
  std::vector<Scheduler::Start> out;
  std::vector<std::size_t> per_second;
  for (int sec = 1; sec <= 30; ++sec) {
    out.clear();
    s.poll(kEpoch + seconds(sec) - milliseconds(1), out);
    per_second.push_back(out.size());
    for (const auto& st : out) s.finished(st.id);
  }
  std::size_t total = 0;
  for (auto n : per_second) total += n;
  EXPECT_EQ(total, 10000u);
  const auto [lo, hi] = std::minmax_element(per_second.begin(), per_second.end());
  // 333 per second on average; an even hash keeps every second within 25 %.
  EXPECT_GT(*lo, 250u) << "busiest second " << *hi;
  EXPECT_LT(*hi, 420u) << "quietest second " << *lo;
}

TEST(Scheduler, EachCheckRunsOncePerInterval) {
  Scheduler s(100, kEpoch);
  s.add(0, "a/b", milliseconds(1000), kEpoch);
  std::vector<Scheduler::Start> out;
  std::map<Scheduler::Id, int> runs;
  for (int ms = 0; ms <= 10000; ms += 10) {
    out.clear();
    s.poll(kEpoch + milliseconds(ms), out);
    for (const auto& st : out) {
      ++runs[st.id];
      EXPECT_LE(kEpoch + milliseconds(ms) - st.scheduled, milliseconds(10));
      s.finished(st.id);
    }
  }
  EXPECT_GE(runs[0], 10);
  EXPECT_LE(runs[0], 11);
}

TEST(Scheduler, BoundsInFlightAndStartsWaitersInOrder) {
  Scheduler s(10, kEpoch);
  for (Scheduler::Id i = 0; i < 100; ++i) s.add(i, fmt::format("s/{}", i), milliseconds(60000), kEpoch);
  std::vector<Scheduler::Start> out;
  s.poll(kEpoch + milliseconds(60000), out);  // everyone is due
  ASSERT_EQ(out.size(), 10u);
  EXPECT_EQ(s.inFlight(), 10u);
  EXPECT_EQ(s.waiting(), 90u);
  // Waiters are queued in due order: the next to start is the earliest due.
  auto first_scheduled_waiting = out.back().scheduled;
  s.finished(out[3].id);
  out.clear();
  s.poll(kEpoch + milliseconds(60001), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_GE(out[0].scheduled, first_scheduled_waiting);
  EXPECT_EQ(s.inFlight(), 10u);
  EXPECT_EQ(s.waiting(), 89u);
  // nextWake says "now" while a slot is free and someone waits.
  s.finished(out[0].id);
  ASSERT_TRUE(s.nextWake());
  EXPECT_EQ(*s.nextWake(), SteadyClock::time_point::min());
}

TEST(Scheduler, ASlowCheckDoesNotBlockOthers) {
  // One slot held by a slow check for its whole timeout; the others share the rest.
  Scheduler s(2, kEpoch);
  s.add(0, "slow/check", milliseconds(1000), kEpoch);
  for (Scheduler::Id i = 1; i <= 5; ++i) s.add(i, fmt::format("fast/{}", i), milliseconds(1000), kEpoch);
  std::vector<Scheduler::Start> out;
  std::map<Scheduler::Id, int> runs;
  bool slow_running = false;
  for (int ms = 0; ms <= 5000; ms += 5) {
    out.clear();
    s.poll(kEpoch + milliseconds(ms), out);
    for (const auto& st : out) {
      ++runs[st.id];
      if (st.id == 0) {
        slow_running = true;
      } else {
        s.finished(st.id);  // fast checks finish at once
      }
    }
  }
  EXPECT_TRUE(slow_running);
  EXPECT_EQ(runs[0], 1);  // still running: its later turns are skipped, not queued
  for (Scheduler::Id i = 1; i <= 5; ++i) EXPECT_GE(runs[i], 5) << i;
  EXPECT_GE(s.skipped(), 4u);
}

TEST(Scheduler, WaitingChecksThatAnswerStartBeforeSlowOnes) {
  // 100 hung checks (slow: their last attempt timed out) and 2 that answer, for 10
  // slots: once everyone waits, a freed slot goes to a check that answers first.
  Scheduler s(10, kEpoch);
  for (Scheduler::Id i = 0; i < 102; ++i) {
    s.add(i, fmt::format("s/{}", i), milliseconds(60000), kEpoch);
    s.setSlow(i, i >= 2);
  }
  std::vector<Scheduler::Start> out;
  s.poll(kEpoch + milliseconds(60000), out);
  ASSERT_EQ(out.size(), 10u);
  std::vector<Scheduler::Id> fast_started;
  for (const auto& st : out) {
    if (st.id < 2) fast_started.push_back(st.id);
  }
  EXPECT_EQ(s.waiting(), 92u);
  // Free slots one at a time: the fast checks still waiting come first, then the
  // slow ones in due order.
  Scheduler::Id running = out.back().id;
  for (std::size_t k = 0; k < 2 - fast_started.size(); ++k) {
    s.finished(running);
    out.clear();
    s.poll(kEpoch + milliseconds(60001), out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_LT(out[0].id, 2u) << "a slow check started before a fast one";
    running = out[0].id;
  }
  s.finished(running);
  out.clear();
  s.poll(kEpoch + milliseconds(60002), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_GE(out[0].id, 2u);
  EXPECT_EQ(s.waiting(), 89u + fast_started.size());
}

TEST(Scheduler, RemovedChecksStopRunning) {
  Scheduler s(10, kEpoch);
  s.add(0, "a/b", milliseconds(100), kEpoch);
  s.add(1, "a/c", milliseconds(100), kEpoch);
  s.remove(0);
  std::vector<Scheduler::Start> out;
  for (int ms = 0; ms <= 1000; ms += 10) {
    s.poll(kEpoch + milliseconds(ms), out);
    for (const auto& st : out) s.finished(st.id);
  }
  for (const auto& st : out) EXPECT_EQ(st.id, 1u);
  EXPECT_FALSE(out.empty());
}

TEST(Scheduler, BatchedStartsWakeOncePerGridStep) {
  // 1,500 checks a second: without batches the loop wakes at nearly every millisecond.
  for (const int batch_ms : {0, 10, 50}) {
    Scheduler s(100000, kEpoch);
    s.setBatch(milliseconds(batch_ms));
    for (Scheduler::Id i = 0; i < 1000; ++i) {
      s.add(i, fmt::format("service-{}/health", i), milliseconds(667), kEpoch);
    }
    // Drive it as the engine does: sleep until nextWake(), start what is due.
    auto now = kEpoch;
    std::size_t wakes = 0;
    std::size_t started = 0;
    SteadyClock::duration max_lag{};
    std::vector<Scheduler::Start> out;
    while (now < kEpoch + seconds(10)) {
      const auto next = s.nextWake();
      ASSERT_TRUE(next);
      ASSERT_GE(*next, now);
      now = *next;
      if (batch_ms > 0) {
        EXPECT_EQ((now - kEpoch) % milliseconds(batch_ms), SteadyClock::duration(0));
      }
      out.clear();
      s.poll(now, out);
      ++wakes;
      started += out.size();
      for (const auto& st : out) {
        max_lag = std::max(max_lag, now - st.scheduled);
        s.finished(st.id);
      }
    }
    // Each check once per interval either way; with batches one wake a step, each
    // start less than one step late (no step of 10 or 50 ms divides 667 ms).
    EXPECT_NEAR(static_cast<double>(started), 10000.0 * 1000 / 667, 1000.0) << batch_ms;
    if (batch_ms == 0) {
      EXPECT_GT(wakes, 5000u);
      EXPECT_EQ(max_lag, SteadyClock::duration(0));
    } else {
      EXPECT_LE(wakes, 10000u / static_cast<unsigned>(batch_ms) + 1) << batch_ms;
      EXPECT_LT(max_lag, milliseconds(batch_ms)) << batch_ms;
      EXPECT_GT(max_lag, milliseconds(0)) << batch_ms;
    }
  }
}

TEST(Scheduler, AStepIsAtMostAnEighthOfTheIntervalAndPrefersADivisor) {
  Scheduler s(10, kEpoch);
  EXPECT_EQ(s.stepFor(milliseconds(1000)), milliseconds(0));  // no batches
  s.setBatch(milliseconds(50));
  EXPECT_EQ(s.stepFor(milliseconds(30000)), milliseconds(50));
  EXPECT_EQ(s.stepFor(milliseconds(1000)), milliseconds(50));
  EXPECT_EQ(s.stepFor(milliseconds(33333)), milliseconds(41));  // 3 x 41 x 271
  EXPECT_EQ(s.stepFor(milliseconds(667)), milliseconds(50));    // 23 x 29: no divisor near 50
  EXPECT_EQ(s.stepFor(milliseconds(200)), milliseconds(25));
  EXPECT_EQ(s.stepFor(milliseconds(100)), milliseconds(10));  // bound 12, divisor 10
  EXPECT_EQ(s.stepFor(milliseconds(20)), milliseconds(2));
  EXPECT_EQ(s.stepFor(milliseconds(5)), milliseconds(1));  // its own millisecond
}

TEST(Scheduler, AShortIntervalIsNotHeldBackByTheStepOfLongOnes) {
  // Long checks wake the loop on 50 ms steps; a 90 ms check beside them keeps its
  // own 10 ms step: every one of its starts is on time, once per interval.
  Scheduler s(100000, kEpoch);
  s.setBatch(milliseconds(50));
  for (Scheduler::Id i = 0; i < 2000; ++i) {
    s.add(i, fmt::format("service-{}/health", i), milliseconds(30000), kEpoch);
  }
  const Scheduler::Id fast = 2000;
  s.add(fast, "fast/health", milliseconds(90), kEpoch);
  std::size_t fast_starts = 0, long_starts = 0;
  driveUntil(s, kEpoch + seconds(30), [&](const Scheduler::Start& st, auto now) {
    EXPECT_EQ(st.scheduled, now) << "check " << st.id;
    ++(st.id == fast ? fast_starts : long_starts);
  });
  EXPECT_EQ(long_starts, 2000u);
  EXPECT_NEAR(static_cast<double>(fast_starts), 30000.0 / 90, 1.0);
  EXPECT_EQ(s.skipped(), 0u);
}

TEST(Scheduler, BatchedPhasesOfLongIntervalsSitOnTheGrid) {
  Scheduler s(100000, kEpoch);
  s.setBatch(milliseconds(50));
  for (Scheduler::Id i = 0; i < 3000; ++i) {
    s.add(i, fmt::format("service-{}/health", i), milliseconds(30000), kEpoch);
  }
  // Still spread over the interval, and each start exactly at its slot: no lag.
  std::vector<std::size_t> per_second(30);
  driveUntil(s, kEpoch + seconds(30), [&](const Scheduler::Start& st, auto now) {
    EXPECT_EQ(st.scheduled, now);
    ++per_second[static_cast<std::size_t>((now - kEpoch) / seconds(1))];
  });
  std::size_t total = 0;
  for (auto n : per_second) total += n;
  EXPECT_EQ(total, 3000u);
  const auto [lo, hi] = std::minmax_element(per_second.begin(), per_second.end());
  EXPECT_GT(*lo, 60u) << "busiest second " << *hi;
  EXPECT_LT(*hi, 140u) << "quietest second " << *lo;
}

TEST(Scheduler, FallingBehindDropsMissedTurns) {
  Scheduler s(10, kEpoch);
  s.add(0, "a/b", milliseconds(100), kEpoch);
  std::vector<Scheduler::Start> out;
  s.poll(kEpoch + seconds(10), out);  // vigie was stalled for 10 s
  ASSERT_EQ(out.size(), 1u);
  s.finished(0);
  out.clear();
  s.poll(kEpoch + seconds(10), out);
  EXPECT_TRUE(out.empty());  // no burst of 100 catch-up runs
  EXPECT_GE(s.skipped(), 90u);
}

}  // namespace
}  // namespace vigie
