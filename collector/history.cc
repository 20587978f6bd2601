#include "collector/history.h"

#include <algorithm>

namespace vigie {

const StateChange& EventLog::append(StateChange e) {
  e.id = next_id_++;
  if (events_.size() >= capacity_) events_.pop_front();
  events_.push_back(std::move(e));
  return events_.back();
}

void EventLog::restore(std::vector<StateChange> events) {
  std::sort(events.begin(), events.end(),
            [](const StateChange& a, const StateChange& b) { return a.id < b.id; });
  std::deque<StateChange> merged;
  for (auto& e : events) {
    if (!events_.empty() && e.id >= events_.front().id) break;  // already here
    merged.push_back(std::move(e));
  }
  for (auto& e : events_) merged.push_back(std::move(e));
  while (merged.size() > capacity_) merged.pop_front();
  events_ = std::move(merged);
  if (!events_.empty()) next_id_ = std::max(next_id_, events_.back().id + 1);
}

std::vector<const StateChange*> EventLog::page(
    std::uint64_t before, std::size_t limit,
    const std::function<bool(const StateChange&)>& keep) const {
  std::vector<const StateChange*> out;
  for (auto it = events_.rbegin(); it != events_.rend() && out.size() < limit; ++it) {
    if (before != 0 && it->id >= before) continue;
    if (keep && !keep(*it)) continue;
    out.push_back(&*it);
  }
  return out;
}

}  // namespace vigie
