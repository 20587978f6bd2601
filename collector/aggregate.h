#pragma once
/// \file
/// From checks to services, groups and clusters: states, dependency causes,
/// maintenance, flapping (pure), then what needs memory: when each last changed,
/// their uptimes and their state-change events (Aggregator).

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "collector/history.h"
#include "collector/snapshot.h"
#include "collector/uptime.h"

namespace vigie {

/// The maintenance window covering `service` at `now`, or nullptr. A window with
/// no services listed covers every service.
const MaintenanceWindow* maintenanceFor(const Config& cfg, const std::string& service,
                                        SystemClock::time_point now);

/// Fills snap.services, snap.groups and snap.clusters from snap.config and
/// snap.checks (which must be in config order) as of `now`: states, underlying
/// states, causes, maintenance, flapping and indices. Leaves last_change, uptime
/// and changes empty (the Aggregator's part). Pure.
///
/// Dependency rule: a service whose own checks make it down, and one of whose
/// depends_on (directly or through others) is down too, is down *because of*
/// the root of that chain: the first down dependency in depends_on order that
/// is not itself caused by another (its cause otherwise). The root has no cause.
/// A dependency in maintenance counts by its underlying state.
void aggregate(Snapshot& snap, SystemClock::time_point now);

/// Keeps, across snapshots, each service's and cluster's last state, the time it
/// changed, its uptime tracker and recent changes; appends their state changes
/// to the event log (and the history store). Loop thread only.
class Aggregator {
 public:
  /// `log` must outlive the aggregator; `store` may be null.
  Aggregator(EventLog& log, HistoryStore* store) : log_(log), store_(store) {}

  /// Completes `snap` (after aggregate()): last_change, uptime and changes of
  /// services and clusters, accounting the time since the previous update to
  /// the previous states. A service that stays down but whose cause changes (its
  /// own checks failed first, its dependency's a moment later) gets an event
  /// too, so the log says why. Services and clusters are known by name across
  /// reloads; removed ones are forgotten.
  void update(Snapshot& snap, SystemClock::time_point now);

  /// Loads service uptime buckets read back from a history store.
  void restoreService(const std::string& name, const std::vector<UptimeTracker::StoredBucket>& b);

  /// Uptime buckets of every service, for the history store, after counting the
  /// time since the last update to the services' states (update() runs only when
  /// something may have changed, not on a clock).
  std::vector<std::pair<std::string, std::vector<UptimeTracker::StoredBucket>>> serviceBuckets(
      SystemClock::time_point now);

 private:
  struct Memory {
    ServiceState state = ServiceState::unknown;
    std::string cause;                      // while down because of a dependency
    SystemClock::time_point since{};        // last change
    SystemClock::time_point accounted{};    // uptime counted up to here
    UptimeTracker uptime;
    // The ratios last computed from `uptime` and the unix second they were computed
    // at (nullopt: compute at the next update); see update().
    UptimeRatios ratios{};
    std::optional<std::int64_t> ratios_at;
    RecentChanges changes;
    std::uint64_t seen = 0;  // generation of the last update that had it
  };
  void note(Memory& m, StateChange::Subject subject, const std::string& name, ServiceState to,
            Reason reason, const std::string& detail, const std::string& cause,
            SystemClock::time_point now);

  EventLog& log_;
  HistoryStore* store_;
  std::unordered_map<std::string, Memory> services_;
  std::unordered_map<std::string, Memory> clusters_;
  std::uint64_t generation_ = 0;
  // services_ entries in the order of the last snapshot's services, while its config
  // stays the same: no lookup by name per service per second.
  std::vector<Memory*> slots_;
  std::weak_ptr<const Config> slots_config_;
};

}  // namespace vigie
