#include "collector/check_state.h"

#include <algorithm>
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

std::string_view serviceStateName(ServiceState s) {
  switch (s) {
    case ServiceState::unknown: return "unknown";
    case ServiceState::up: return "up";
    case ServiceState::degraded: return "degraded";
    case ServiceState::down: return "down";
    case ServiceState::maintenance: return "maintenance";
  }
  return "unknown";
}

std::string_view subjectName(StateChange::Subject s) {
  switch (s) {
    case StateChange::Subject::check: return "check";
    case StateChange::Subject::service: return "service";
    case StateChange::Subject::cluster: return "cluster";
  }
  return "check";
}

double flapPercent(const std::vector<ResultSummary>& recent) {
  constexpr std::size_t kSlots = 20;
  const std::size_t n = recent.size();
  if (n < 2) return 0;
  const std::size_t transitions = std::min(n - 1, kSlots);
  double sum = 0;
  // Transition k (0 = newest) sits in slot kSlots-1-k of the 20-slot window.
  for (std::size_t k = 0; k < transitions; ++k) {
    const auto& newer = recent[n - 1 - k];
    const auto& older = recent[n - 2 - k];
    if (newer.status != older.status) {
      const double slot = static_cast<double>(kSlots - 1 - k);
      sum += 0.8 + 0.4 * slot / static_cast<double>(kSlots - 1);
    }
  }
  return sum / static_cast<double>(kSlots) * 100.0;
}

CheckState stateOf(Status s) {
  switch (s) {
    case Status::ok: return CheckState::up;
    case Status::warn: return CheckState::degraded;
    case Status::fail: return CheckState::down;
  }
  return CheckState::unknown;
}

std::shared_ptr<CheckStatus> applyResult(const CheckStatus& prev, Result result,
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
  next->flap_percent = flapPercent(ring);
  next->flapping = prev.flapping ? next->flap_percent >= kFlapLow : next->flap_percent > kFlapHigh;

  SharedResult shared(std::move(result));
  if (!passed) next->last_failure_result = shared;
  next->last = std::move(shared);
  return next;
}

}  // namespace vigie
