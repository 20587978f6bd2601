#pragma once
/// \file
/// The per-check state machine: thresholds (Kubernetes probes, Nagios soft/hard
/// states) and the bounded history of results. Pure: time comes from the
/// results themselves, so tests drive it without I/O or clocks.

#include <memory>
#include <vector>

#include "collector/snapshot.h"

namespace vigie {

/// Thresholds as configured for one check.
struct Thresholds {
  int failure = 3;  // consecutive failures before up -> down
  int success = 1;  // consecutive successes before down -> up
};

/// The hard state a single result would give, ignoring thresholds.
CheckState stateOf(Status s);

/// Returns the check's next status after `result`, leaving `prev` untouched
/// (statuses are immutable once published). Rules:
///  - the first result (state unknown) is applied at once;
///  - a failure while up/degraded counts toward `failure` and sets pending
///    until the threshold is reached, then the state is down;
///  - a success while down counts toward `success` likewise;
///  - up <-> degraded (warn) changes at once: both are passing;
///  - an opposite outcome resets the other counter.
/// `state_changes`, `last_change`, the ring of recent results and totals are kept.
/// Also updates flapping (see flapPercent()). Returns a fresh, still mutable
/// object so the engine can add what it keeps outside (uptime, changes) before
/// publishing it.
std::shared_ptr<CheckStatus> applyResult(const CheckStatus& prev, Result result,
                                         Thresholds thresholds);

/// Icinga 2's flapping measure over the last 21 results (20 transitions): each
/// transition whose status differs (ok, warn, fail) weighs from 0.8 (oldest) to
/// 1.2 (newest); the sum over 20 slots, in percent. 0 with fewer than 2 results.
double flapPercent(const std::vector<ResultSummary>& recent);
inline constexpr double kFlapHigh = 30.0;  // starts flapping above
inline constexpr double kFlapLow = 25.0;   // stops flapping below

}  // namespace vigie
