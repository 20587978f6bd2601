#pragma once
/// \file
/// When each check runs. Pure bookkeeping with time passed in, so it is tested
/// without a loop; the engine drives it from one Asio timer.
///
/// Each check runs every `interval` at a fixed phase inside it (a hash of its
/// key, as Prometheus spreads scrapes), so 10,000 checks at 30 s start evenly.
/// At most `max_in_flight` run at once; a due check beyond that waits in a FIFO
/// and starts as soon as any slot frees (no head-of-line blocking: a slow check
/// holds one slot for at most its timeout). A check still running or still
/// waiting when its next turn comes skips that turn (counted), it never piles up.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

#include "probes/probe.h"

namespace vigie {

class Scheduler {
 public:
  using Id = std::uint32_t;
  using TimePoint = SteadyClock::time_point;
  using Interval = std::chrono::milliseconds;

  /// `epoch` anchors the phases: a check with offset o runs at epoch + o + k*interval.
  Scheduler(std::size_t max_in_flight, TimePoint epoch);

  /// Fixed offset of a key inside its interval: FNV-1a of the key modulo interval.
  static Interval offsetFor(std::string_view key, Interval interval);

  /// Adds (or re-adds, with a new interval) a check; it first runs at its next phase
  /// slot at or after `now`. Ids are small integers chosen by the caller.
  void add(Id id, std::string_view key, Interval interval, TimePoint now);
  /// Forgets a check. If it is running, its slot is freed only by finished().
  void remove(Id id);
  void setMaxInFlight(std::size_t n) { max_in_flight_ = n == 0 ? 1 : n; }
  /// Starts checks in batches: each check starts on a step of its own, counted from
  /// the epoch, so the loop wakes at most once per step to start everything due by
  /// then, and the answers of a batch come back in few wake-ups too (each wake-up of
  /// a sleeping loop costs more CPU than a probe's own work in it). A check's step is
  /// stepFor(its interval): `grid`, or less for an interval shorter than 8 grids. Its
  /// phase sits on its step; when the step divides the interval (stepFor prefers such
  /// a step) every start is on time (lag 0), otherwise a start waits less than one
  /// step. Zero (the default) starts each check at its own millisecond. Set before
  /// add().
  void setBatch(Interval grid) { batch_ = grid.count() < 0 ? Interval(0) : grid; }
  /// The step of a check of this interval: at most the grid and an 8th of the
  /// interval, the largest divisor of the interval down to 3/4 of that bound when
  /// there is one (1,000 ms: 50; 200 ms: 25; 33,333 ms: 41; 667 ms: 50, no divisor);
  /// 0 without batches.
  Interval stepFor(Interval interval) const;

  struct Start {
    Id id;
    TimePoint scheduled;  // when it should have started: lag = now - scheduled
  };
  /// Moves every check due at `now` to running (within the in-flight bound) and
  /// appends them to `out`.
  void poll(TimePoint now, std::vector<Start>& out);
  /// Marks a check running now, out of turn (a heartbeat just pushed), even above
  /// max_in_flight: such attempts are instant. False, and nothing changes, when the
  /// check is unknown or already running. Its regular turns keep their phase.
  bool startNow(Id id);
  /// A running check has finished: frees its slot. Call poll() after it.
  void finished(Id id);
  /// Marks a check slow (its last attempt ran into its timeout, as a hung target's
  /// does) or not. When checks wait for a slot, the others start first: a flood of
  /// hung targets, each holding a slot for its whole timeout, cannot hold back the
  /// checks that answer (each FIFO keeps its order).
  void setSlow(Id id, bool slow);

  /// When poll() next has something to do; nullopt when nothing is scheduled.
  std::optional<TimePoint> nextWake() const;

  std::size_t inFlight() const { return in_flight_; }
  std::size_t waiting() const { return waiting_.size() + waiting_slow_.size(); }
  std::uint64_t skipped() const { return skipped_; }
  bool running(Id id) const { return id < entries_.size() && entries_[id].running; }

 private:
  struct Entry {
    Interval interval{0};
    TimePoint next_due{};  // the next slot (its start may wait for the step: Due::at)
    std::uint32_t generation = 0;  // bumps on add/remove: stale heap items are ignored
    std::uint16_t step_ms = 0;     // stepFor(interval), at most the grid
    bool alive : 1 = false;
    bool running : 1 = false;
    bool waiting : 1 = false;
    bool slow : 1 = false;
  };
  struct Due {
    TimePoint at;  // when to start: the slot (Entry::next_due) up to its next step
    Id id;
    std::uint32_t generation;
    bool operator>(const Due& o) const { return at > o.at; }
  };

  void startOrQueue(Id id, TimePoint scheduled, TimePoint now, std::vector<Start>& out);
  TimePoint startAt(TimePoint slot, const Entry& e) const;

  std::size_t max_in_flight_;
  TimePoint epoch_;
  Interval batch_{0};
  std::vector<Entry> entries_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> heap_;
  std::deque<std::pair<Id, TimePoint>> waiting_;       // FIFO of (id, scheduled)
  std::deque<std::pair<Id, TimePoint>> waiting_slow_;  // likewise, served after waiting_
  std::size_t in_flight_ = 0;
  std::uint64_t skipped_ = 0;
};

}  // namespace vigie
