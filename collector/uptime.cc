#include "collector/uptime.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

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

constexpr std::int32_t kNoHead = std::numeric_limits<std::int32_t>::min();

}  // namespace

UptimeTracker::UptimeTracker() { head_.fill(kNoHead); }

std::size_t UptimeTracker::slot(std::size_t tier, std::int64_t index) {
  const auto n = static_cast<std::int64_t>(kCounts[tier]);
  return kFirstBit[tier] + static_cast<std::size_t>(((index % n) + n) % n) * 2 * kBits[tier];
}

// A slot's counters are read and written within the little-endian 64-bit word at
// the slot's first byte (kBytes leaves room for the last one).
namespace {
std::uint64_t read8(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}
void write8(std::uint8_t* p, std::uint64_t v) {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  std::memcpy(p, &v, sizeof v);
}
}  // namespace

UptimeTracker::Counts UptimeTracker::load(std::size_t tier, std::size_t bit) const {
  const std::uint64_t v = read8(bytes_.data() + bit / 8) >> (bit % 8);
  return Counts{static_cast<std::uint32_t>(v & kMax[tier]),
                static_cast<std::uint32_t>((v >> kBits[tier]) & kMax[tier])};
}

void UptimeTracker::store(std::size_t tier, std::size_t bit, Counts c) {
  const std::uint64_t mask = ((std::uint64_t{1} << (2 * kBits[tier])) - 1) << (bit % 8);
  const std::uint64_t v = (std::uint64_t{c.good} | (std::uint64_t{c.total} << kBits[tier]))
                          << (bit % 8);
  std::uint8_t* p = bytes_.data() + bit / 8;
  write8(p, (read8(p) & ~mask) | (v & mask));
}

void UptimeTracker::bump(std::size_t tier, std::size_t at, std::uint32_t good,
                         std::uint32_t total) {
  Counts c = load(tier, at);
  // Saturation: only what still fits under kMax is counted, good first, so the
  // bucket never holds more good than total.
  const std::uint32_t add = std::min(total, kMax[tier] - c.total);
  c.total += add;
  c.good += std::min(good, add);
  store(tier, at, c);
}

std::size_t UptimeTracker::reach(std::size_t tier, std::int64_t index) {
  if (index < 0 || index > std::numeric_limits<std::int32_t>::max()) return kNone;
  const auto n = static_cast<std::int64_t>(kCounts[tier]);
  const std::int64_t head = head_[tier];
  if (head == kNoHead || index >= head + n) {
    // Newer than anything kept: the whole ring is in the past.
    for (std::int64_t i = 0; i < n; ++i) store(tier, slot(tier, i), Counts{});
    head_[tier] = static_cast<std::int32_t>(index);
  } else if (index > head) {
    for (std::int64_t i = head + 1; i <= index; ++i) store(tier, slot(tier, i), Counts{});
    head_[tier] = static_cast<std::int32_t>(index);
  } else if (index <= head - n) {
    return kNone;  // older than the tier's window
  }
  return slot(tier, index);
}

void UptimeTracker::add(SystemClock::time_point at, std::uint32_t good, std::uint32_t total) {
  const auto s = unixSeconds(at);
  for (std::size_t t = 0; t < kCounts.size(); ++t) {
    const std::size_t c = reach(t, floorDiv(s, kWidthSeconds[t]));
    if (c != kNone) bump(t, c, std::min(good, total), total);
  }
}

void UptimeTracker::addSpan(SystemClock::time_point from, SystemClock::time_point to, bool good) {
  if (to <= from) return;
  const auto end_ms = unixMillis(to);
  // Never account more than the longest window: older time would be dropped anyway.
  auto start_ms = std::max(unixMillis(from), end_ms - kWidthSeconds[3] * 1000 * std::int64_t(kCounts[3]));
  for (std::size_t t = 0; t < kCounts.size(); ++t) {
    const std::int64_t width_ms = kWidthSeconds[t] * 1000;
    for (std::int64_t at = start_ms; at < end_ms;) {
      const std::int64_t index = floorDiv(at, width_ms);
      const std::int64_t until = std::min((index + 1) * width_ms, end_ms);
      const std::size_t c = reach(t, index);
      if (c != kNone) {
        const auto ms = static_cast<std::uint32_t>(until - at);
        bump(t, c, good ? ms : 0, ms);
      }
      at = until;
    }
  }
}

UptimeRatios UptimeTracker::ratios(SystemClock::time_point now) const {
  UptimeRatios out;
  const auto s = unixSeconds(now);
  for (std::size_t t = 0; t < kCounts.size(); ++t) {
    if (head_[t] == kNoHead) continue;
    const auto n = static_cast<std::int64_t>(kCounts[t]);
    const auto current = floorDiv(s, kWidthSeconds[t]);
    const auto from = std::max(current - n + 1, std::int64_t{head_[t]} - n + 1);
    const auto to = std::min(current, std::int64_t{head_[t]});
    std::uint64_t good = 0;
    std::uint64_t total = 0;
    for (auto i = from; i <= to; ++i) {
      const Counts c = load(t, slot(t, i));
      good += c.good;
      total += c.total;
    }
    if (total > 0) out[t] = static_cast<double>(good) / static_cast<double>(total);
  }
  return out;
}

std::vector<UptimeTracker::StoredBucket> UptimeTracker::buckets(SystemClock::time_point now) const {
  std::vector<StoredBucket> out;
  const auto s = unixSeconds(now);
  for (std::size_t t = 0; t < kCounts.size(); ++t) {
    if (head_[t] == kNoHead) continue;
    const auto n = static_cast<std::int64_t>(kCounts[t]);
    const auto oldest = floorDiv(s, kWidthSeconds[t]) - n + 1;
    for (auto i = std::max(oldest, std::int64_t{head_[t]} - n + 1); i <= head_[t]; ++i) {
      const Counts c = load(t, slot(t, i));
      if (c.total > 0) {
        out.push_back(StoredBucket{static_cast<std::uint8_t>(t), static_cast<std::int32_t>(i),
                                   c.good, c.total});
      }
    }
  }
  return out;
}

std::vector<UptimeTracker::StoredBucket> UptimeTracker::recent(SystemClock::time_point now) const {
  std::vector<StoredBucket> out;
  const auto s = unixSeconds(now);
  for (std::size_t t = 0; t < kCounts.size(); ++t) {
    if (head_[t] == kNoHead) continue;
    const auto n = static_cast<std::int64_t>(kCounts[t]);
    const auto current = floorDiv(s, kWidthSeconds[t]);
    for (auto i = std::max(current - 1, std::int64_t{head_[t]} - n + 1); i <= head_[t]; ++i) {
      const Counts c = load(t, slot(t, i));
      if (c.total > 0) {
        out.push_back(StoredBucket{static_cast<std::uint8_t>(t), static_cast<std::int32_t>(i),
                                   c.good, c.total});
      }
    }
  }
  return out;
}

void UptimeTracker::restore(const std::vector<StoredBucket>& buckets) {
  for (const StoredBucket& sb : buckets) {
    if (sb.tier >= kCounts.size() || sb.index < 0) continue;
    const std::size_t c = reach(sb.tier, sb.index);
    if (c == kNone) continue;
    // Counts the previous 32-bit buckets held past kMax (only from a rate of more
    // than one result a millisecond) come back scaled to it, ratio kept.
    const std::uint64_t max = kMax[sb.tier];
    std::uint64_t total = sb.total;
    std::uint64_t good = std::min<std::uint64_t>(sb.good, total);
    if (total > max) {
      good = good * max / total;
      total = max;
    }
    store(sb.tier, c, Counts{static_cast<std::uint32_t>(good), static_cast<std::uint32_t>(total)});
  }
}

}  // namespace vigie
