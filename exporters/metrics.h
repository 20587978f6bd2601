#pragma once
/// \file
/// /metrics: the Prometheus text format, built at scrape time from the current
/// Snapshot (so a check removed by a reload leaves no stale series) plus vigie's
/// own registries, serialized by prometheus-cpp's TextSerializer.
///
/// Families and labels are documented in docs/api.md. Probe families carry the
/// labels service, check, group, probe (the kind) and location; names follow
/// blackbox_exporter where the meaning is the same (probe_success, ...).

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "collector/snapshot.h"

namespace vigie {

/// Returns the current snapshot (may be null before the first config). Called on
/// the loop thread at each scrape.
using SnapshotSource = std::function<std::shared_ptr<const Snapshot>()>;

/// Every family of one snapshot: probe_*, vigie_check_*, components, target info,
/// conditions and the SelfStats figures (vigie_checks, vigie_config_*, ...).
/// `version` is vigie's own version, for vigie_build_info. Families without a
/// sample are left out. Label values are valid UTF-8 and at most 256 bytes.
std::vector<prometheus::MetricFamily> snapshotFamilies(const Snapshot& snapshot,
                                                       std::string_view version);

/// A Collectable over a SnapshotSource: each Collect() reads the snapshot of the
/// moment. Without a snapshot, only vigie_build_info is returned.
class SnapshotCollectable : public prometheus::Collectable {
 public:
  SnapshotCollectable(SnapshotSource source, std::string version);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  SnapshotSource source_;
  std::string version_;
};

/// Collects every source in order and serializes them in the text format
/// (version 0.0.4). A family name already produced by an earlier source is
/// dropped from later ones, so the output never holds a family twice.
std::string renderMetrics(const std::vector<const prometheus::Collectable*>& sources);

/// The /metrics body, fast: the snapshot's families are written directly as
/// text, byte for byte what TextSerializer makes of snapshotFamilies() but
/// without building one object per series (50,000 checks, ~1.4 M series, in a
/// fraction of a second), then each of `others` through TextSerializer, minus
/// family names already written. A null snapshot gives only vigie_build_info.
std::string renderSnapshotMetrics(const Snapshot* snapshot, std::string_view version,
                                  const std::vector<const prometheus::Collectable*>& others);
/// As above, with the other families already collected (so that rendering, which
/// reads only the immutable snapshot and `others`, may run on another thread).
std::string renderSnapshotMetricsWith(const Snapshot* snapshot, std::string_view version,
                                      std::vector<prometheus::MetricFamily> others);

/// `families` in the Prometheus text format, as prometheus::TextSerializer writes
/// them (same bytes), without an ostream: several times faster.
void appendTextFormat(const std::vector<prometheus::MetricFamily>& families, std::string& out);

/// /metrics in two parts: the snapshot's families, shared by every answer of that
/// snapshot (sent without a copy: HttpResponse::shared_body), then the others'.
struct MetricsText {
  std::shared_ptr<const std::string> snapshot_part;
  std::string others_part;
  std::string joined() const;
};

/// renderSnapshotMetricsWith() for the /metrics route under load: a snapshot's
/// families are written once (a snapshot never changes), `others` at every call.
/// Thread-safe (the route asks on the loop, renders on its own thread); it does not
/// keep the snapshot alive.
class SnapshotMetricsCache {
 public:
  /// The text, rendering the snapshot's part unless it is the cached one's.
  MetricsText render(const std::shared_ptr<const Snapshot>& snapshot, std::string_view version,
                     std::vector<prometheus::MetricFamily> others);
  /// The text when the snapshot's part is cached (cheap: the others only), else null.
  std::optional<MetricsText> find(const std::shared_ptr<const Snapshot>& snapshot,
                                  std::string_view version,
                                  std::vector<prometheus::MetricFamily>& others) const;

 private:
  struct Entry {
    std::weak_ptr<const Snapshot> snapshot;
    std::string version;
    std::shared_ptr<const std::string> text;
    std::shared_ptr<const std::unordered_set<std::string>> names;
  };
  static MetricsText finish(const Entry& e, std::vector<prometheus::MetricFamily> others);
  mutable std::mutex mu_;
  std::optional<Entry> entry_;  // guarded by mu_
};

/// The /metrics text of one snapshot in pieces, for snapshots too big to hold whole
/// (50,000 checks: 200+ MiB): next() returns the following lines, about
/// `piece_bytes` of them (whole lines), or "" once everything was returned. The
/// pieces joined are renderSnapshotMetricsWith()'s text byte for byte: each family is
/// written over every check (their label blocks made once, at the first piece) before
/// the next family. Holds the snapshot until destroyed. One caller at a time, on any
/// thread (it reads only the immutable snapshot and `others`).
class MetricsStream {
 public:
  MetricsStream(std::shared_ptr<const Snapshot> snapshot, std::string version,
                std::vector<prometheus::MetricFamily> others);
  ~MetricsStream();
  MetricsStream(MetricsStream&&) noexcept;
  MetricsStream& operator=(MetricsStream&&) noexcept;

  std::string next(std::size_t piece_bytes);
  /// True once next() has returned the last piece.
  bool finished() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Content-Type of renderMetrics()'s output.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace vigie
