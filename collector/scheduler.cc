#include "collector/scheduler.h"

#include <algorithm>

namespace vigie {

Scheduler::Scheduler(std::size_t max_in_flight, TimePoint epoch)
    : max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight), epoch_(epoch) {}

Scheduler::Interval Scheduler::offsetFor(std::string_view key, Interval interval) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  const auto ms = static_cast<std::uint64_t>(interval.count());
  return Interval(ms == 0 ? 0 : static_cast<Interval::rep>(h % ms));
}

void Scheduler::add(Id id, std::string_view key, Interval interval, TimePoint now) {
  if (id >= entries_.size()) entries_.resize(id + 1);
  Entry& e = entries_[id];
  if (interval.count() <= 0) interval = Interval(1000);
  e.interval = interval;
  e.alive = true;
  ++e.generation;
  // Next slot epoch + offset + k*interval at or after now.
  auto offset = offsetFor(key, interval);
  const auto step = stepFor(interval);
  e.step_ms = static_cast<std::uint16_t>(std::min<Interval::rep>(step.count(), 65535));
  if (e.step_ms > 1) offset -= offset % Interval(e.step_ms);
  auto first = epoch_ + offset;
  if (first < now) {
    const auto behind = now - first;
    const auto periods = (behind + interval - SteadyClock::duration(1)) / interval;
    first += periods * interval;
  }
  e.next_due = first;
  heap_.push(Due{startAt(first, e), id, e.generation});
}

void Scheduler::remove(Id id) {
  if (id >= entries_.size()) return;
  Entry& e = entries_[id];
  e.alive = false;
  ++e.generation;
  // A waiting check leaves the queue lazily (poll skips dead ids).
}

void Scheduler::startOrQueue(Id id, TimePoint scheduled, TimePoint, std::vector<Start>& out) {
  Entry& e = entries_[id];
  if (e.running || e.waiting) {
    ++skipped_;
    return;
  }
  if (in_flight_ < max_in_flight_) {
    e.running = true;
    ++in_flight_;
    out.push_back(Start{id, scheduled});
  } else {
    e.waiting = true;
    (e.slow ? waiting_slow_ : waiting_).emplace_back(id, scheduled);
  }
}

void Scheduler::poll(TimePoint now, std::vector<Start>& out) {
  // Waiting checks first: they were due before anything in the heap.
  while (in_flight_ < max_in_flight_ && (!waiting_.empty() || !waiting_slow_.empty())) {
    auto& queue = waiting_.empty() ? waiting_slow_ : waiting_;
    auto [id, scheduled] = queue.front();
    queue.pop_front();
    Entry& e = entries_[id];
    e.waiting = false;
    if (!e.alive || e.running) continue;
    e.running = true;
    ++in_flight_;
    out.push_back(Start{id, scheduled});
  }
  while (!heap_.empty() && heap_.top().at <= now) {
    const Due d = heap_.top();
    heap_.pop();
    Entry& e = entries_[d.id];
    if (!e.alive || e.generation != d.generation) continue;
    // The nominal slot, for the lag and the next turn (the heap holds its batched
    // start: the same or up to one step later).
    const TimePoint slot = e.next_due;
    startOrQueue(d.id, slot, now, out);
    // Next turn keeps the phase; turns missed while vigie was behind are dropped.
    auto next = slot + e.interval;
    if (next <= now) {
      const auto periods = (now - next) / e.interval + 1;
      skipped_ += static_cast<std::uint64_t>(periods);
      next += periods * e.interval;
    }
    e.next_due = next;
    heap_.push(Due{startAt(next, e), d.id, e.generation});
  }
}

bool Scheduler::startNow(Id id) {
  if (id >= entries_.size()) return false;
  Entry& e = entries_[id];
  if (!e.alive || e.running) return false;
  // A queued turn is served by this start; its stale queue item is skipped by
  // poll() while the check runs, and costs at most one extra attempt after.
  e.waiting = false;
  e.running = true;
  ++in_flight_;
  return true;
}

void Scheduler::finished(Id id) {
  if (id >= entries_.size()) return;
  Entry& e = entries_[id];
  if (!e.running) return;
  e.running = false;
  --in_flight_;
}

void Scheduler::setSlow(Id id, bool slow) {
  if (id < entries_.size()) entries_[id].slow = slow;
}

Scheduler::Interval Scheduler::stepFor(Interval interval) const {
  if (batch_.count() <= 0 || interval.count() <= 0) return Interval(0);
  const auto bound = std::min(batch_.count(), interval.count() / 8);
  if (bound <= 1) return Interval(1);
  for (auto d = bound; 4 * d >= 3 * bound; --d) {
    if (interval.count() % d == 0) return Interval(d);
  }
  return Interval(bound);
}

Scheduler::TimePoint Scheduler::startAt(TimePoint slot, const Entry& e) const {
  if (e.step_ms <= 1 || slot <= epoch_) return slot;
  const SteadyClock::duration step = Interval(e.step_ms);
  return epoch_ + (slot - epoch_ + step - SteadyClock::duration(1)) / step * step;
}

std::optional<Scheduler::TimePoint> Scheduler::nextWake() const {
  if (waiting() > 0 && in_flight_ < max_in_flight_) return SteadyClock::time_point::min();
  // Stale heap items may make this early; a spurious wake costs one poll.
  if (heap_.empty()) return std::nullopt;
  return heap_.top().at;
}

}  // namespace vigie
