#pragma once
/// \file
/// HAProxy agent-check responders: for each cluster with `agent_listen`, a TCP
/// port that, on every connection, writes one line saying what HAProxy should do
/// with the servers of that cluster, then closes.
///
/// HAProxy side (configuration manual, "agent-check"):
///   server s1 10.0.0.1:80 weight 100 check agent-check agent-addr <vigie> agent-port 9878
///   agent-inter 2s
/// HAProxy connects, reads up to the first '\r' or '\n' and parses words
/// separated by spaces, tabs or commas; a word starting with '#' begins a
/// description (the rest of the line), kept only when a health word is given.
/// The lines vigie sends, from ClusterStatus::state:
///   up          "up ready 100%\n"          health UP, admin READY (ends a drain), full weight
///   degraded    "up ready 50%\n"           still sent traffic, at kDegradedWeightPercent of
///                                          the configured weight (give servers `weight 100`:
///                                          50% of the default weight 1 rounds to 0 = DRAIN)
///   maintenance "drain\n"                  admin DRAIN: no new traffic but persistent
///                                          sessions; health left as last reported
///   down        "down #<reason>\n"         health DOWN; HAProxy shows
///                                          "via agent : down (<reason>)" (last_agt)
///   unknown     "\n"                       no word: HAProxy changes nothing
/// Why unknown keeps HAProxy's state rather than saying down: right after vigie
/// starts (a deploy, a reschedule of its pod) every cluster is unknown until its
/// first results; "down" there would take every cluster out of the front end at
/// once for an interval. Keeping the last state is what HAProxy also does when
/// the agent cannot be reached at all. A cluster newly added is governed by
/// HAProxy's own `check` until vigie knows it.
///
/// Note "ready" on every up answer cancels a DRAIN or MAINT set by hand on
/// HAProxy's CLI: operators drain through a vigie maintenance window, or run
/// `disable agent <backend>/<server>` first.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "collector/config.h"
#include "collector/snapshot.h"
#include "exporters/metrics.h"

namespace vigie {

/// Weight announced for a degraded cluster, in percent of each server's
/// configured weight. A constant for now (not a config option).
inline constexpr int kDegradedWeightPercent = 50;

/// Longest description sent after "down #", in bytes (cut with "..."). HAProxy
/// itself keeps about 110 of them in its check description.
inline constexpr std::size_t kAgentDescriptionMax = 200;

/// The agent line for a cluster (see the table above), newline included. Pure.
std::string haproxyAgentLine(const ClusterStatus& cluster);

/// `text` made fit for an agent description: one line of printable ASCII
/// (CR, LF, tabs and other control bytes become spaces, runs of spaces collapse,
/// bytes >= 0x80 become '?'), trimmed, at most kAgentDescriptionMax bytes. Pure.
std::string agentDescription(std::string_view text);

struct HaproxyAgentOptions {
  /// Connections open at once, all clusters together; beyond, accepting waits
  /// for one to close (the kernel backlog holds the newcomers).
  std::size_t max_connections = 256;
  /// A connection is closed this long after it was accepted, whatever happens.
  std::chrono::milliseconds connection_timeout{2000};
};

struct HaproxyAgentStats {
  std::uint64_t connections_total = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t timeouts = 0;       // closed by connection_timeout
  std::uint64_t accept_pauses = 0;  // times max_connections was reached
};

/// The responders of every cluster with agent_listen. Loop thread only (the
/// thread running `io`): construction, start(), reload(), stop() and the
/// snapshot source calls all happen there. The snapshot source is called once
/// per connection and may return null (answered as unknown).
class HaproxyAgents {
 public:
  HaproxyAgents(boost::asio::io_context& io, SnapshotSource snapshots,
                HaproxyAgentOptions options = {});
  /// Closes every listener and connection (stop()).
  ~HaproxyAgents();
  HaproxyAgents(const HaproxyAgents&) = delete;
  HaproxyAgents& operator=(const HaproxyAgents&) = delete;

  /// Opens one listener per cluster with agent_listen ("host:port", a literal
  /// address as `listen`; port 0 picks a free one). All or nothing: throws
  /// std::runtime_error naming the cluster and the address when one cannot be
  /// bound, leaving none open.
  void start(const Config& config);

  /// After a reload: a listener whose address is unchanged stays open (and
  /// answers for whichever cluster now names it); new addresses are bound, and
  /// those no longer named are closed. An address that cannot be bound is
  /// logged and returned as a problem, and the cluster keeps its old listener
  /// if it had one. Never throws for a bind failure.
  std::vector<std::string> reload(const Config& config);

  /// Closes listeners and open connections. Idempotent.
  void stop();

  /// The local port answering for `cluster`, 0 when it has none.
  unsigned short port(std::string_view cluster) const;

  const HaproxyAgentStats& stats() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace vigie
