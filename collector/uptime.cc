#include "collector/uptime.h"

#include <algorithm>

namespace vigie {
namespace {

std::int64_t unixSeconds(SystemClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::int64_t unixMillis(SystemClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::int64_t floorDiv(std::int64_t a, std::int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

}  // namespace

UptimeTracker::UptimeTracker() {
  for (std::size_t t = 0; t < tiers_.size(); ++t) tiers_[t].resize(kCounts[t]);
}

void UptimeTracker::add(SystemClock::time_point at, std::uint32_t good, std::uint32_t total) {
  const auto s = unixSeconds(at);
  for (std::size_t t = 0; t < tiers_.size(); ++t) {
    const auto index = static_cast<std::int32_t>(floorDiv(s, kWidthSeconds[t]));
    Bucket& b = tiers_[t][static_cast<std::size_t>(index) % kCounts[t]];
    if (b.index != index) {
      if (b.index > index) continue;  // older than what the slot holds: outside the window
      b = Bucket{index, 0, 0};
    }
    b.good += good;
    b.total += total;
  }
}

void UptimeTracker::addSpan(SystemClock::time_point from, SystemClock::time_point to, bool good) {
  if (to <= from) return;
  const auto end_ms = unixMillis(to);
  // Never account more than the longest window: older time would be dropped anyway.
  auto start_ms = std::max(unixMillis(from), end_ms - kWidthSeconds[3] * 1000 * std::int64_t(kCounts[3]));
  for (std::size_t t = 0; t < tiers_.size(); ++t) {
    const std::int64_t width_ms = kWidthSeconds[t] * 1000;
    for (std::int64_t at = start_ms; at < end_ms;) {
      const std::int64_t index = floorDiv(at, width_ms);
      const std::int64_t bucket_end = (index + 1) * width_ms;
      const std::int64_t until = std::min(bucket_end, end_ms);
      Bucket& b = tiers_[t][static_cast<std::size_t>(index) % kCounts[t]];
      if (b.index != index) {
        if (b.index > index) {
          at = until;
          continue;
        }
        b = Bucket{static_cast<std::int32_t>(index), 0, 0};
      }
      const auto ms = static_cast<std::uint32_t>(until - at);
      b.total += ms;
      if (good) b.good += ms;
      at = until;
    }
  }
}

UptimeRatios UptimeTracker::ratios(SystemClock::time_point now) const {
  UptimeRatios out;
  const auto s = unixSeconds(now);
  for (std::size_t t = 0; t < tiers_.size(); ++t) {
    const auto current = floorDiv(s, kWidthSeconds[t]);
    const auto oldest = current - static_cast<std::int64_t>(kCounts[t]) + 1;
    std::uint64_t good = 0;
    std::uint64_t total = 0;
    for (const Bucket& b : tiers_[t]) {
      if (b.index >= oldest && b.index <= current) {
        good += b.good;
        total += b.total;
      }
    }
    if (total > 0) out[t] = static_cast<double>(good) / static_cast<double>(total);
  }
  return out;
}

std::vector<UptimeTracker::StoredBucket> UptimeTracker::buckets(SystemClock::time_point now) const {
  std::vector<StoredBucket> out;
  const auto s = unixSeconds(now);
  for (std::size_t t = 0; t < tiers_.size(); ++t) {
    const auto oldest = floorDiv(s, kWidthSeconds[t]) - static_cast<std::int64_t>(kCounts[t]) + 1;
    for (const Bucket& b : tiers_[t]) {
      if (b.total > 0 && b.index >= oldest) {
        out.push_back(StoredBucket{static_cast<std::uint8_t>(t), b.index, b.good, b.total});
      }
    }
  }
  return out;
}

std::vector<UptimeTracker::StoredBucket> UptimeTracker::recent(SystemClock::time_point now) const {
  std::vector<StoredBucket> out;
  const auto s = unixSeconds(now);
  for (std::size_t t = 0; t < tiers_.size(); ++t) {
    const auto current = floorDiv(s, kWidthSeconds[t]);
    for (const Bucket& b : tiers_[t]) {
      if (b.total > 0 && b.index >= current - 1) {
        out.push_back(StoredBucket{static_cast<std::uint8_t>(t), b.index, b.good, b.total});
      }
    }
  }
  return out;
}

void UptimeTracker::restore(const std::vector<StoredBucket>& buckets) {
  for (const StoredBucket& sb : buckets) {
    if (sb.tier >= tiers_.size() || sb.index < 0) continue;
    Bucket& b = tiers_[sb.tier][static_cast<std::size_t>(sb.index) % kCounts[sb.tier]];
    if (b.index > sb.index) continue;
    b = Bucket{sb.index, sb.good, sb.total};
  }
}

}  // namespace vigie
