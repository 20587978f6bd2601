#pragma once
/// \file
/// What vigie remembers beyond the current state: every state change (of checks,
/// services and clusters) as an event, in a bounded in-memory log served by
/// /api/v1/events, and the interface of a persistent history store
/// (`history.store: postgres`) that keeps results, events and uptime buckets
/// across restarts and replicas.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "collector/snapshot.h"
#include "collector/uptime.h"
#include "probes/probe.h"

namespace vigie {

/// The newest events, at most `capacity` (oldest dropped first). Loop thread only.
class EventLog {
 public:
  explicit EventLog(std::size_t capacity = 10000) : capacity_(capacity) {}
  /// Appends, assigning the next id (> every id before, also across restore()).
  const StateChange& append(StateChange e);
  /// Loads older events (a restart reading its store), oldest first; ids are kept
  /// and the next id continues after the largest.
  void restore(std::vector<StateChange> events);

  /// Newest first: up to `limit` events with id < `before` (0: from the newest)
  /// that `keep` accepts (null: all).
  std::vector<const StateChange*> page(std::uint64_t before, std::size_t limit,
                                       const std::function<bool(const StateChange&)>& keep = {}) const;
  std::size_t size() const { return events_.size(); }
  std::uint64_t lastId() const { return next_id_ - 1; }

 private:
  std::size_t capacity_;
  std::deque<StateChange> events_;  // oldest first
  std::uint64_t next_id_ = 1;
};

/// A persistent store of history. The engine calls the record* functions on the
/// loop: they must not block (queue, and write from the store's own thread).
/// A store that cannot keep up or whose database is away drops (and counts) what
/// it cannot queue; it never stalls probing.
class HistoryStore {
 public:
  virtual ~HistoryStore() = default;

  /// What a restart gets back, read once before the loop starts (may block).
  struct Restored {
    std::vector<StateChange> events;  // oldest first, the newest `EventLog` capacity at most
    /// Per check key: the last results (oldest first, at most kRecentResults) and
    /// the uptime buckets still inside their windows.
    struct Check {
      std::vector<ResultSummary> recent;
      std::vector<UptimeTracker::StoredBucket> uptime;
    };
    std::unordered_map<std::string, Check> checks;
    /// Per service name: its uptime buckets.
    std::unordered_map<std::string, std::vector<UptimeTracker::StoredBucket>> services;
  };
  virtual Restored restore() = 0;

  virtual void recordResult(const std::string& check_key, const ResultSummary& r) = 0;
  virtual void recordChange(const StateChange& e) = 0;
  /// Called about every 10 s with the buckets changed since the last call.
  virtual void recordUptime(const std::string& subject_key, bool is_service,
                            const std::vector<UptimeTracker::StoredBucket>& buckets) = 0;

  /// Figures for metrics: written, dropped, whether the database is reachable now.
  struct Stats {
    std::uint64_t written = 0;
    std::uint64_t dropped = 0;
    std::uint64_t errors = 0;
    bool connected = false;
  };
  virtual Stats stats() const = 0;
};

}  // namespace vigie
