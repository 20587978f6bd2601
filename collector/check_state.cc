#include "collector/check_state.h"

#include <utility>

namespace vigie {

std::string_view checkStateName(CheckState s) {
  switch (s) {
    case CheckState::unknown: return "unknown";
    case CheckState::up: return "up";
    case CheckState::degraded: return "degraded";
    case CheckState::down: return "down";
  }
  return "unknown";
}

CheckState stateOf(Status s) {
  switch (s) {
    case Status::ok: return CheckState::up;
    case Status::warn: return CheckState::degraded;
    case Status::fail: return CheckState::down;
  }
  return CheckState::unknown;
}

std::shared_ptr<const CheckStatus> applyResult(const CheckStatus& prev, Result result,
                                               Thresholds thresholds) {
  auto next = std::make_shared<CheckStatus>(prev);
  const bool passed = result.status != Status::fail;
  const auto at = result.started;

  if (passed) {
    next->consecutive_successes = prev.consecutive_successes + 1;
    next->consecutive_failures = 0;
    next->last_success = at;
  } else {
    next->consecutive_failures = prev.consecutive_failures + 1;
    next->consecutive_successes = 0;
    next->last_failure = at;
  }

  CheckState target = prev.state;
  switch (prev.state) {
    case CheckState::unknown:
      target = stateOf(result.status);
      break;
    case CheckState::up:
    case CheckState::degraded:
      if (passed) {
        target = stateOf(result.status);
      } else if (next->consecutive_failures >= thresholds.failure) {
        target = CheckState::down;
      }
      break;
    case CheckState::down:
      if (passed && next->consecutive_successes >= thresholds.success) {
        target = stateOf(result.status);
      }
      break;
  }
  next->pending = (target == CheckState::down) != !passed;
  if (target != prev.state) {
    next->state = target;
    next->last_change = at;
    ++next->state_changes;
  }

  ++next->results_total[static_cast<std::size_t>(result.status)];
  auto& ring = next->recent;
  if (ring.size() >= CheckStatus::kRecentResults) ring.erase(ring.begin());
  ring.push_back(ResultSummary{at, result.status, result.reason, static_cast<float>(result.duration)});

  if (!passed) next->last_failure_result = result;
  next->last = std::move(result);
  return next;
}

}  // namespace vigie
