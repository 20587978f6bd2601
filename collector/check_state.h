#pragma once
/// \file
/// The per-check state machine: thresholds (Kubernetes probes, Nagios soft/hard
/// states) and the bounded history of results. Pure: time comes from the
/// results themselves, so tests drive it without I/O or clocks.

#include <memory>

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
std::shared_ptr<const CheckStatus> applyResult(const CheckStatus& prev, Result result,
                                               Thresholds thresholds);

}  // namespace vigie
