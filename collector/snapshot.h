#pragma once
/// \file
/// The immutable view of everything vigie knows, read by every exporter.
/// Each check's status is its own immutable object, replaced (never mutated) by
/// the loop after each result; a Snapshot is a vector of pointers to them, so
/// taking one costs a pointer copy per check and readers need no lock.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collector/config.h"
#include "collector/uptime.h"
#include "probes/probe.h"

namespace vigie {

/// A check's hard state, after thresholds.
///  unknown: no result yet; up: passing; degraded: passing with a warning
///  (health page "warn"); down: failure_threshold consecutive failures.
enum class CheckState { unknown, up, degraded, down };
std::string_view checkStateName(CheckState s);

/// A compact record of one past result, for bars and charts (16 bytes: a
/// check keeps 60 of them).
struct ResultSummary {
  SystemClock::time_point at{};
  Status status = Status::fail;
  Reason reason = Reason::none;
  float duration = 0;  // seconds
};
static_assert(sizeof(ResultSummary) == 16, "ResultSummary: keep it at 16 bytes");

/// A full result shared by the statuses that show it (each new status of a check
/// points at the same one rather than copying it; a failing result is both the
/// last and the last failure). Reads like std::optional<Result>; assigning a
/// Result allocates it once.
class SharedResult {
 public:
  SharedResult() = default;
  SharedResult(Result r) : p_(std::make_shared<Result>(std::move(r))) {}  // NOLINT
  SharedResult& operator=(Result r) {
    p_ = std::make_shared<Result>(std::move(r));
    return *this;
  }
  explicit operator bool() const { return p_ != nullptr; }
  bool has_value() const { return p_ != nullptr; }
  const Result& operator*() const { return *p_; }
  const Result* operator->() const { return p_.get(); }
  void reset() { p_.reset(); }
  /// A result of this holder's own to change (copied first when shared), for
  /// code that builds statuses by hand (tests, peers).
  Result& edit() {
    if (!p_) {
      p_ = std::make_shared<Result>();
    } else if (p_.use_count() > 1) {
      p_ = std::make_shared<Result>(*p_);
    }
    return const_cast<Result&>(*p_);  // every Result here is made non-const; owned alone
  }

 private:
  std::shared_ptr<const Result> p_;
};

/// One state change of a check, service or cluster (an event of /api/v1/events).
struct StateChange {
  enum class Subject : std::uint8_t { check, service, cluster };
  std::uint64_t id = 0;  // increasing within a process; assigned by EventLog::append
  SystemClock::time_point at{};
  Subject subject = Subject::check;
  std::string name;    // "service/check", "service" or "cluster"
  std::string from;    // state names: unknown, up, degraded, down, maintenance
  std::string to;
  Reason reason = Reason::none;  // checks: the result's; services: that of the failing check
  std::string detail;  // bounded (256 bytes)
  std::string cause;   // a service down because of a dependency: the root service
};
std::string_view subjectName(StateChange::Subject s);  // "check" | "service" | "cluster"

/// The last state changes of one subject, newest last, at most kRecentChanges.
/// Replaced (never mutated) on each change, shared by successive statuses.
using RecentChanges = std::shared_ptr<const std::vector<StateChange>>;
inline constexpr std::size_t kRecentChanges = 20;

struct CheckStatus {
  std::shared_ptr<const CheckConfig> check;     // aliases the Config it belongs to
  std::shared_ptr<const ServiceConfig> service;  // likewise
  CheckState state = CheckState::unknown;
  /// The last results disagree with the hard state but have not reached the
  /// threshold yet (Nagios soft state).
  bool pending = false;
  int consecutive_failures = 0;
  int consecutive_successes = 0;
  SharedResult last;                      // the last full result
  SystemClock::time_point last_change{};  // when `state` last changed (zero: never)
  SystemClock::time_point last_success{};
  SystemClock::time_point last_failure{};
  SharedResult last_failure_result;       // why it last failed (kept after recovery)
  std::vector<ResultSummary> recent;      // oldest first, at most kRecentResults
  std::array<std::uint64_t, 3> results_total{};  // indexed by Status
  std::uint64_t state_changes = 0;

  /// Flapping (Icinga's rule): the weighted share of state changes among the
  /// last 21 results, in percent; flapping starts above 30 and stops below 25.
  double flap_percent = 0;
  bool flapping = false;
  UptimeRatios uptime;     // as of the last result
  RecentChanges changes;   // may be null: none yet

  static constexpr std::size_t kRecentResults = 60;
};

/// A service's state from its checks.
///  unknown: no check has a result; up: every check with a result passes;
///  degraded: a non-critical check down, or any check degraded (a health page
///  saying warn); down: a critical check down; maintenance: inside a maintenance
///  window (probes still run and are shown; `underlying` says what they found).
enum class ServiceState { unknown, up, degraded, down, maintenance };
std::string_view serviceStateName(ServiceState s);
inline constexpr std::array<ServiceState, 5> kServiceStates{
    ServiceState::unknown, ServiceState::up, ServiceState::degraded, ServiceState::down,
    ServiceState::maintenance};

struct ServiceStatus {
  std::shared_ptr<const ServiceConfig> service;
  ServiceState state = ServiceState::unknown;
  ServiceState underlying = ServiceState::unknown;  // ignoring maintenance
  /// Down (underlying) while a dependency is down: the root service of the
  /// chain (the first in depends_on order), else "". `causes` lists every root.
  std::string cause;
  std::vector<std::string> causes;
  std::string maintenance;  // the window's reason (or "maintenance") while in one
  bool flapping = false;    // a check of the service is flapping
  std::vector<std::size_t> checks;  // indices into Snapshot::checks
  SystemClock::time_point last_change{};  // zero: never
  UptimeRatios uptime;
  RecentChanges changes;
};

/// A group (team) or cluster: the worst state of its services, in the order
/// down > degraded > maintenance > unknown > up.
struct GroupStatus {
  std::string name;
  std::string description;
  ServiceState state = ServiceState::unknown;
  std::array<std::size_t, 5> counts{};  // services per ServiceState
  std::vector<std::size_t> services;    // indices into Snapshot::services
};

struct ClusterStatus {
  std::shared_ptr<const ClusterConfig> cluster;
  ServiceState state = ServiceState::unknown;
  /// Send traffic here: up or degraded.
  bool ready = false;
  /// Why not (or why degraded): "obsportal: down (http_status: got 503)".
  std::string reason;
  std::vector<std::size_t> services;  // indices into Snapshot::services
  SystemClock::time_point last_change{};
  RecentChanges changes;
};

/// Figures about vigie itself, copied into each snapshot.
struct SelfStats {
  SystemClock::time_point started{};
  std::uint64_t probes_in_flight = 0;
  std::uint64_t probes_waiting = 0;      // due but held back by max_in_flight
  bool config_last_reload_successful = true;
  SystemClock::time_point config_last_reload_success{};
  std::uint64_t config_reloads_total = 0;
  std::uint64_t config_reload_failures_total = 0;
  std::string config_file;
};

class EventLog;

struct Snapshot {
  std::shared_ptr<const Config> config;
  std::vector<std::shared_ptr<const CheckStatus>> checks;  // config order: service, then check
  std::vector<ServiceStatus> services;  // config order
  std::vector<GroupStatus> groups;      // config order; a group "" holds services without one
  std::vector<ClusterStatus> clusters;  // config order
  /// The engine's live event log (not a copy): read it on the loop thread only,
  /// like everything the exporters do. May be null (tests).
  std::shared_ptr<const EventLog> events;
  SystemClock::time_point at{};  // when the snapshot was taken
  SelfStats self;
};

}  // namespace vigie
