#pragma once
/// \file
/// The collector: owns every check session, drives the scheduler from one Asio
/// timer, applies results to check states and publishes snapshots. Everything
/// here runs on the one loop thread that runs the io_context: no locks.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "collector/check_state.h"
#include "collector/config.h"
#include "collector/scheduler.h"
#include "collector/snapshot.h"
#include "probes/probe.h"

namespace prometheus {
class Registry;
class Histogram;
class Counter;
class Gauge;
}  // namespace prometheus

namespace vigie {

class CurlDriver;
class WorkerPool;
class HeartbeatBoard;
class HistoryStore;
class EventLog;
class Aggregator;
struct HeartbeatPush;
struct ProbeContext;

class Engine {
 public:
  /// Makes the probe of a check; the default uses probes/registry.h.
  using ProbeFactory = std::function<std::unique_ptr<Probe>(const CheckConfig&)>;

  /// `self` receives vigie's own metrics (scheduler lag, probes per result, ...).
  Engine(boost::asio::io_context& io, std::shared_ptr<prometheus::Registry> self,
         ProbeFactory factory = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Applies a configuration, all or nothing: throws std::invalid_argument (and
  /// changes nothing) when a check's probe cannot be built. Checks whose key and
  /// kind are unchanged keep their state and history; a check running during the
  /// change finishes its attempt (its result is kept) and then uses the new config.
  /// Loop thread only.
  void apply(std::shared_ptr<const Config> config);

  /// A heartbeat push for check `key` ("service/check"), presenting `token`.
  enum class PushOutcome { accepted, unknown_check, not_heartbeat, unauthorized };
  /// Checks the token (constant time), records the push and evaluates the check at
  /// once, so its state reflects the push before this returns (unless the check
  /// is in the middle of an attempt: then at its next turn). A rejected push
  /// changes nothing. Loop thread only.
  PushOutcome push(const std::string& key, std::string_view token, HeartbeatPush push);

  /// Sets the persistent history store (history.store: postgres); call before
  /// apply(). The engine records results, state changes and uptime buckets in
  /// it, without blocking.
  void setHistoryStore(std::unique_ptr<HistoryStore> store);
  /// Reads back what the store kept (events, recent results, uptimes) into the
  /// checks and services of the applied config. Blocking: call after the first
  /// apply() and before the loop runs. No-op without a store.
  void restoreHistory();
  HistoryStore* historyStore() const { return store_.get(); }
  /// The live event log (state changes, newest last).
  const EventLog& events() const { return *events_; }

  /// Records the outcome of a reload for vigie_config_* metrics and the API.
  void noteReload(bool ok, const std::string& file);

  /// The current view; cheap (a pointer copy per check), cached until the next change.
  std::shared_ptr<const Snapshot> snapshot();

  /// True once a config is applied and its checks are scheduled.
  bool ready() const { return config_ != nullptr; }

  /// The file-descriptor limit probes must fit in (default: the process's
  /// RLIMIT_NOFILE when the engine is built). At most probeSlotsFor(limit) probes
  /// run at once whatever max_in_flight says; an attempt that still finds no
  /// descriptor is dropped (the check keeps its state), holds new starts back for a
  /// while and is counted; vigie_fd_limit_reached and one log line per episode say
  /// vigie is at its limit. Loop thread only.
  void setFdLimit(std::size_t limit);
  /// How many probes may run at once now (max_in_flight, lowered by the descriptor
  /// limit and by recent exhaustion).
  std::size_t effectiveMaxInFlight() const;

  /// Cancels every probe and timer so io_context::run() can return.
  void stop();

  std::shared_ptr<prometheus::Registry> selfRegistry() const { return self_; }
  ProbeContext& probeContext();
  std::shared_ptr<const Config> config() const { return config_; }

  /// Test hook: called after each result is applied (loop thread).
  std::function<void(const CheckStatus&)> on_result;

 private:
  struct Session;
  void wake();
  void armWake();
  void startProbe(Session& s, SteadyClock::time_point scheduled);
  /// Applies the result of attempt `attempt` (its low 32 bits are compared) of check
  /// `id`; a result of another attempt is counted as late and dropped.
  void complete(Scheduler::Id id, std::uint64_t attempt, Result result);
  void swapPendingProbe(Session& s);
  void armTick();
  void sweepOverdue(SteadyClock::time_point now);
  void timeOut(Session& s);
  void flushUptime();
  void applyInFlightCap();
  void outOfDescriptors();
  void watchDescriptors();
  Scheduler::Id allocateId();

  boost::asio::io_context& io_;
  std::shared_ptr<prometheus::Registry> self_;
  std::unique_ptr<CurlDriver> curl_;
  std::unique_ptr<WorkerPool> blocking_;  // disk probes; outlives every probe
  std::unique_ptr<WorkerPool> database_;  // postgres probes; likewise
  std::unique_ptr<HeartbeatBoard> heartbeats_;  // pushes, read by heartbeat probes
  std::unique_ptr<ProbeContext> ctx_;
  ProbeFactory factory_;
  Scheduler scheduler_;
  boost::asio::steady_timer wake_timer_;
  std::optional<SteadyClock::time_point> armed_at_;
  bool stopped_ = false;

  std::shared_ptr<const Config> config_;
  std::vector<std::unique_ptr<Session>> sessions_;  // indexed by Scheduler::Id; null = free
  std::unordered_map<std::string, Scheduler::Id> by_key_;
  std::vector<Scheduler::Id> order_;  // config order, for snapshots
  std::vector<Scheduler::Id> retired_;  // removed by a reload, still running
  std::shared_ptr<const Snapshot> cached_;
  std::shared_ptr<EventLog> events_;
  std::unique_ptr<HistoryStore> store_;
  std::unique_ptr<Aggregator> aggregator_;
  boost::asio::steady_timer tick_timer_;  // re-aggregates every second (see armTick)
  unsigned ticks_ = 0;
  // Something the aggregation reads changed since the last one: a check's state or
  // flapping, the config, restored history.
  bool aggregate_due_ = true;
  // Only checks coming up from unknown changed since the last pass (a start, a new
  // check): no service or cluster can have news from that, so the pass waits up to
  // kQuietAggregateEvery ticks (at start-up every check does it once).
  bool aggregate_quiet_due_ = false;
  // Attempts of probes that time themselves (Probe::timesItself), by deadline, swept
  // every second instead of a timer per attempt. One FIFO per timeout: attempts start
  // in time order, so each FIFO is in deadline order too (no heap to keep: at 50,000
  // checks its push and pop were 2-3 % of the loop's CPU). Items of attempts that
  // ended leave when their deadline passes.
  struct Overdue {
    SteadyClock::time_point at;
    Scheduler::Id id;
    std::uint64_t attempt;
  };
  std::map<SteadyClock::duration, std::deque<Overdue>> overdue_;
  std::vector<Scheduler::Id> uptime_dirty_;  // checks with results since the last flush
  SelfStats self_stats_;
  std::vector<Scheduler::Start> starts_;  // reused buffer

  prometheus::Histogram* lag_ = nullptr;
  prometheus::Counter* results_[3] = {};
  prometheus::Counter* late_results_ = nullptr;
  prometheus::Counter* internal_errors_ = nullptr;
  prometheus::Counter* skipped_ = nullptr;
  prometheus::Gauge* blocking_stuck_ = nullptr;
  prometheus::Gauge* database_stuck_ = nullptr;
  std::uint64_t skipped_reported_ = 0;

  // File descriptors (see setFdLimit): the static cap from the limit, and a lower
  // cap after an attempt found none, raised again step by step once they return.
  std::size_t configured_max_in_flight_ = 4096;
  std::size_t fd_limit_ = 0;
  std::size_t fd_slots_ = 0;
  std::size_t exhausted_cap_ = 0;  // 0: none
  SteadyClock::time_point last_exhaustion_{};
  SteadyClock::time_point last_fd_cut_{};
  bool at_fd_limit_ = false;  // the episode being logged
  std::size_t logged_slots_for_ = 0;
  prometheus::Gauge* fd_limit_gauge_ = nullptr;
  prometheus::Gauge* fds_open_ = nullptr;
  prometheus::Gauge* fd_limit_reached_ = nullptr;
  prometheus::Gauge* max_in_flight_gauge_ = nullptr;
  prometheus::Counter* fd_exhaustions_ = nullptr;
};

}  // namespace vigie
