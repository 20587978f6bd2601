#pragma once
/// \file
/// Uptime over 1 h, 24 h, 7 d and 30 d, kept incrementally in a fixed number of
/// time buckets (no rescans, bounded memory: 94 buckets of two counters packed
/// inline, 584 bytes per tracker and no heap block; see kBits for the counters'
/// widths and their bound). The windows slide by whole buckets: the 1 h figure covers the last
/// 12 five-minute buckets (the current one included), 24 h the last 24 hours,
/// 7 d the last 28 six-hour buckets, 30 d the last 30 days.
///
/// Checks count results (ok and warn are good, fail is not), as Gatus and
/// Uptime Kuma do; services count milliseconds in a state (up and degraded are
/// good; unknown and maintenance are left out of the ratio).
///
/// Threading: none; the owner (the engine, on the loop) serialises access.

#include <algorithm>
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
  /// Width in bits of each of a bucket's two counters (good, total), by tier: 19,
  /// 22, 25 and 27, packed (38 to 54 bits a bucket instead of 64). Each holds a
  /// whole bucket's milliseconds (300,000, 3.6 M, 21.6 M, 86.4 M), so service time
  /// is always exact, and check results are exact at any interval of 1 ms or more
  /// (the shortest a config accepts). Past kMax a bucket saturates: what would
  /// push its total over is left out (good and total alike, good first, so the
  /// bucket keeps good <= total and about the ratio of what it counted), and a
  /// restored bucket over kMax (the previous format had 32 bits) is scaled down to
  /// it, ratio kept.
  static constexpr std::array<unsigned, 4> kBits{19, 22, 25, 27};
  static constexpr std::array<std::uint32_t, 4> kMax{
      (1u << kBits[0]) - 1, (1u << kBits[1]) - 1, (1u << kBits[2]) - 1, (1u << kBits[3]) - 1};

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
  struct Counts {
    std::uint32_t good = 0;
    std::uint32_t total = 0;
  };
  static constexpr std::array<std::size_t, 4> kFirstBit{
      0, kCounts[0] * 2 * kBits[0], kCounts[0] * 2 * kBits[0] + kCounts[1] * 2 * kBits[1],
      kCounts[0] * 2 * kBits[0] + kCounts[1] * 2 * kBits[1] + kCounts[2] * 2 * kBits[2]};
  static constexpr std::size_t kTotalBits = kFirstBit[3] + kCounts[3] * 2 * kBits[3];
  // A slot is read and written as the 64-bit word at its first byte: the array
  // reaches 8 bytes past the last slot's first byte.
  static constexpr std::size_t kBytes =
      std::max((kTotalBits + 7) / 8, (kTotalBits - 2 * kBits[3]) / 8 + 8);
  static_assert(2 * kBits[0] + 7 <= 64 && 2 * kBits[1] + 7 <= 64 && 2 * kBits[2] + 7 <= 64 &&
                    2 * kBits[3] + 7 <= 64,
                "a slot fits the 64-bit word read at its first byte");
  static_assert(kMax[0] >= 300'000 && kMax[1] >= 3'600'000 && kMax[2] >= 21'600'000 &&
                    kMax[3] >= 86'400'000,
                "a bucket's counters hold its width in milliseconds");

  // Each tier is a ring of kCounts[t] slots; slot index % count holds bucket
  // `index` for index in (head_[t] - count, head_[t]] (the newest bucket counted
  // so far); moving the head forward clears the slots it passes. A slot is the
  // bit offset of its packed counters in bytes_ (good in the low kBits[tier],
  // total above, little-endian).
  static std::size_t slot(std::size_t tier, std::int64_t index);
  Counts load(std::size_t tier, std::size_t at) const;
  void store(std::size_t tier, std::size_t at, Counts c);
  // Adds to the slot at `at`, saturating at kMax[tier] (see kBits).
  void bump(std::size_t tier, std::size_t at, std::uint32_t good, std::uint32_t total);
  // The slot for `index`, advancing the head if it is newer; kNone if older than
  // the tier's window behind the head.
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t reach(std::size_t tier, std::int64_t index);

  std::array<std::uint8_t, kBytes> bytes_{};
  std::array<std::int32_t, 4> head_;
};

}  // namespace vigie
