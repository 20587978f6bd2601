#pragma once
/// \file
/// Uptime over 1 h, 24 h, 7 d and 30 d, kept incrementally in a fixed number of
/// time buckets (no rescans, bounded memory: 94 buckets of two 32-bit counters
/// held inline, 768 bytes per tracker and no heap block). The windows slide by whole buckets: the 1 h figure covers the last
/// 12 five-minute buckets (the current one included), 24 h the last 24 hours,
/// 7 d the last 28 six-hour buckets, 30 d the last 30 days.
///
/// Checks count results (ok and warn are good, fail is not), as Gatus and
/// Uptime Kuma do; services count milliseconds in a state (up and degraded are
/// good; unknown and maintenance are left out of the ratio).
///
/// Threading: none; the owner (the engine, on the loop) serialises access.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "probes/probe.h"

namespace vigie {

/// The four windows, in this order everywhere (API, metrics, page).
inline constexpr std::array<std::string_view, 4> kUptimeWindows{"1h", "24h", "7d", "30d"};
/// A ratio in [0, 1] per window; nullopt when nothing was counted in it.
using UptimeRatios = std::array<std::optional<double>, 4>;

class UptimeTracker {
 public:
  /// Bucket widths and counts of the four tiers, by window.
  static constexpr std::array<std::int64_t, 4> kWidthSeconds{300, 3600, 21600, 86400};
  static constexpr std::array<std::size_t, 4> kCounts{12, 24, 28, 30};

  /// One bucket as persisted by a history store: tier 0..3, index =
  /// floor(unix seconds / width).
  struct StoredBucket {
    std::uint8_t tier = 0;
    std::int32_t index = 0;
    std::uint32_t good = 0;
    std::uint32_t total = 0;
  };

  UptimeTracker();

  /// Counts `total` units at `at`, `good` of them good (a check result: 1 of 1 or 0 of 1).
  void add(SystemClock::time_point at, std::uint32_t good, std::uint32_t total);
  /// Counts the milliseconds of [from, to) as good or not, split across bucket
  /// boundaries. An empty or reversed span counts nothing.
  void addSpan(SystemClock::time_point from, SystemClock::time_point to, bool good);

  /// The ratio per window as seen at `now`.
  UptimeRatios ratios(SystemClock::time_point now) const;

  /// Every non-empty bucket still inside its window at `now` (for a history store).
  std::vector<StoredBucket> buckets(SystemClock::time_point now) const;
  /// The buckets that can still change at `now`: the current and previous one
  /// of each tier (sent to a history store every few seconds).
  std::vector<StoredBucket> recent(SystemClock::time_point now) const;
  /// Merges buckets read back from a store (counts of the same bucket are replaced).
  void restore(const std::vector<StoredBucket>& buckets);

 private:
  static constexpr std::size_t kTotalBuckets = 12 + 24 + 28 + 30;
  static constexpr std::array<std::size_t, 4> kFirst{0, 12, 36, 64};
  struct Counts {
    std::uint32_t good = 0;
    std::uint32_t total = 0;
  };
  // Each tier is a ring of kCounts[t] slots; slot index % count holds bucket
  // `index` for index in (head_[t] - count, head_[t]] (the newest bucket counted
  // so far); moving the head forward clears the slots it passes.
  Counts* slot(std::size_t tier, std::int64_t index);
  const Counts& slot(std::size_t tier, std::int64_t index) const;
  // The slot for `index`, advancing the head if it is newer; null if older than
  // the tier's window behind the head.
  Counts* reach(std::size_t tier, std::int64_t index);

  std::array<Counts, kTotalBuckets> counts_{};
  std::array<std::int32_t, 4> head_;
};

}  // namespace vigie
