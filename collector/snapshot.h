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
#include "probes/probe.h"

namespace vigie {

/// A check's hard state, after thresholds.
///  unknown: no result yet; up: passing; degraded: passing with a warning
///  (health page "warn"); down: failure_threshold consecutive failures.
enum class CheckState { unknown, up, degraded, down };
std::string_view checkStateName(CheckState s);

/// A compact record of one past result, for bars and charts.
struct ResultSummary {
  SystemClock::time_point at{};
  Status status = Status::fail;
  Reason reason = Reason::none;
  float duration = 0;  // seconds
};

struct CheckStatus {
  std::shared_ptr<const CheckConfig> check;     // aliases the Config it belongs to
  std::shared_ptr<const ServiceConfig> service;  // likewise
  CheckState state = CheckState::unknown;
  /// The last results disagree with the hard state but have not reached the
  /// threshold yet (Nagios soft state).
  bool pending = false;
  int consecutive_failures = 0;
  int consecutive_successes = 0;
  std::optional<Result> last;             // the last full result
  SystemClock::time_point last_change{};  // when `state` last changed (zero: never)
  SystemClock::time_point last_success{};
  SystemClock::time_point last_failure{};
  std::optional<Result> last_failure_result;  // why it last failed (kept after recovery)
  std::vector<ResultSummary> recent;      // oldest first, at most kRecentResults
  std::array<std::uint64_t, 3> results_total{};  // indexed by Status
  std::uint64_t state_changes = 0;

  static constexpr std::size_t kRecentResults = 60;
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

struct Snapshot {
  std::shared_ptr<const Config> config;
  std::vector<std::shared_ptr<const CheckStatus>> checks;  // config order: service, then check
  SelfStats self;
};

}  // namespace vigie
