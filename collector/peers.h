#pragma once
/// \file
/// The whole picture of a sharded deployment (collector/shard.h): a replica reads
/// its peers' /api/v1/checks (which list only the checks each runs), turns each
/// peer check into a CheckStatus bound to the local copy of the full
/// configuration, and merges them with its own checks into one Snapshot for the
/// dashboard and the services API. /metrics and /api/v1/checks stay local, so
/// Prometheus never counts a check twice and peers never read each other's copies.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "collector/config.h"
#include "collector/snapshot.h"

namespace vigie {

class Aggregator;
class EventLog;

/// One peer's /api/v1/checks, parsed: its shard and its checks' statuses by key.
/// The statuses are not bound yet (check and service are null).
struct PeerReport {
  ShardSpec shard;  // 0/1 when the document has no "shard" (an unsharded vigie)
  std::vector<std::pair<std::string, std::shared_ptr<CheckStatus>>> checks;
};

/// Parses a /api/v1/checks document (docs/api.md) into `out`: state, pending,
/// counts, the last result (status, reason, detail, duration, HTTP status and
/// phases, conditions, components, version, info, targets), last success and
/// failure, recent results, totals, flapping, uptime and changes. Unknown
/// fields are ignored; a check without a key is skipped. Returns false with a
/// sentence in `error` when the body is not such a document. Pure; any thread.
bool parsePeerReport(std::string_view body, PeerReport& out, std::string& error);

/// Looks up the status of a check run by another shard ("service/check" ->
/// status bound to the full config), or null when none is known.
using RemoteLookup = std::function<std::shared_ptr<const CheckStatus>(const std::string& key)>;

/// The whole picture: every check of `full`, in config order: the status from
/// `local` when it has that key, else `remote(key)`, else an unknown status with
/// no result. Then services, groups and clusters are aggregated as of `now`
/// (aggregate()); their last_change, uptime and changes are left empty. The
/// self figures, events and time are `local`'s. Pure.
std::shared_ptr<Snapshot> mergeSnapshot(const Snapshot& local, std::shared_ptr<const Config> full,
                                        const RemoteLookup& remote, SystemClock::time_point now);

struct PeerOptions {
  /// "host:port" of each peer (a name, an IPv4 address or a bracketed IPv6 one).
  std::vector<std::string> peers;
  /// "name:port" of a headless Service: every A/AAAA record is a peer, resolved
  /// again at each round. May be used together with `peers`.
  std::string dns;
  std::chrono::milliseconds interval{5000};  // between rounds
  std::chrono::milliseconds timeout{4000};   // one fetch, resolve to last byte
  std::size_t max_body = 256u << 20;         // a larger answer is an error
  /// A shard's checks are shown unknown when its last good answer is older.
  /// Zero: 3 intervals plus the timeout.
  std::chrono::milliseconds stale_after{0};
};

/// What the collector knows of one peer address.
struct PeerInfo {
  std::string address;             // "10.0.0.3:9877"
  std::optional<ShardSpec> shard;  // as the peer said, once it answered
  bool ok = false;                 // the last fetch succeeded
  std::string error;               // why the last fetch failed, or why it is ignored
  SystemClock::time_point last_ok{};
  std::size_t checks = 0;  // in its last good answer
};

/// Polls the peers on the loop (Boost.Beast client: asynchronous resolve,
/// connect, write and read under one deadline, body bounded), keeps the last
/// good report of each other shard, and serves merged snapshots.
///
/// Threading: construct, call and destroy on the loop thread only. Fetches in
/// flight hold shared state, so destroying the collector (or stop()) is safe at
/// any time; their completions then do nothing.
class PeerCollector {
 public:
  /// `full` is the whole configuration with this replica's shard set (its
  /// `shard` field says which checks are local). Throws std::invalid_argument
  /// when a peer address is not host:port.
  PeerCollector(boost::asio::io_context& io, PeerOptions options,
                std::shared_ptr<const Config> full);
  ~PeerCollector();
  PeerCollector(const PeerCollector&) = delete;
  PeerCollector& operator=(const PeerCollector&) = delete;

  /// Starts polling: a round at once, then every interval.
  void start();
  /// Cancels the timer and every fetch. Idempotent.
  void stop();

  /// A new full configuration (after a reload): remote statuses bound to the old
  /// one are dropped and come back at the next round.
  void setConfig(std::shared_ptr<const Config> full);

  /// The merged view of `local` (the engine's snapshot) with the peers' checks,
  /// with service and cluster memory (last change, uptime, changes) kept by the
  /// collector's own Aggregator. Cached until `local`, a peer's report or the
  /// staleness of one changes. Null `local` gives null.
  std::shared_ptr<const Snapshot> view(std::shared_ptr<const Snapshot> local);

  /// "http://host:port" of a live peer that runs shard `index`, or "" when none
  /// is known (or its last answer is stale).
  std::string urlOfShard(unsigned index) const;

  /// Every peer address known, sorted.
  std::vector<PeerInfo> peers() const;

  /// Test hook: called after each fetch completes (loop thread).
  std::function<void(const PeerInfo&)> on_fetch;

  struct State;  // shared with the fetches in flight

 private:
  std::shared_ptr<State> state_;
};

/// Splits "host:port" / "[v6]:port" into host and port; false when malformed.
bool splitHostPort(std::string_view text, std::string& host, std::string& port);

}  // namespace vigie
