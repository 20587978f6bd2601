#include "collector/engine.h"

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <stdexcept>

#include "collector/curl_driver.h"
#include "collector/aggregate.h"
#include "collector/fd_limit.h"
#include "collector/history.h"
#include "collector/worker_pool.h"
#include "probes/heartbeat_probe.h"
#include "probes/registry.h"

namespace vigie {

struct Engine::Session {
  Session(boost::asio::io_context& io, Scheduler::Id i) : id(i), deadline(io) {}
  Scheduler::Id id;
  std::shared_ptr<const CheckConfig> check;
  std::shared_ptr<const ServiceConfig> service;
  std::unique_ptr<Probe> probe;
  std::shared_ptr<const CheckStatus> status;
  boost::asio::steady_timer deadline;  // armed only for probes that do not time themselves
  bool deadline_armed = false;
  std::uint64_t attempt = 0;
  bool running = false;
  SystemClock::time_point started_wall{};
  SteadyClock::time_point started_steady{};
  // A reload that lands while an attempt runs is applied when it ends.
  std::shared_ptr<const CheckConfig> next_check;
  std::shared_ptr<const ServiceConfig> next_service;
  std::unique_ptr<Probe> next_probe;
  bool retired = false;
  UptimeTracker uptime;
  RecentChanges changes;
  bool uptime_dirty = false;
};

namespace {

// A completion later than the deadline by this much is ignored; a small grace
// lets a probe that stops at the deadline by itself report its own, more
// precise timeout detail (which phase it was in).
constexpr auto kDeadlineGrace = std::chrono::milliseconds(30);
// Checks due within one step start together (Scheduler::setBatch): at 1,500 probes/s
// the loop wakes 20 times a second to start them instead of 1,000 times. Measured at
// 1,000 checks every 667 ms (1,500 probes/s, bench's page, alternating runs): CPU per
// probe 79 -> 64 us against a 10 ms step (wrk -c16 Connection: close, same runs: 50).
constexpr auto kStartBatch = std::chrono::milliseconds(50);
// Ticks (seconds) an aggregation may wait when only checks came up from unknown: at
// start-up with 50,000 checks, a pass a second (50-100 ms each) was most of the loop.
constexpr unsigned kQuietAggregateEvery = 10;

// Threads for blocking probes (disk); a hung mount can hold at most this many.
constexpr std::size_t kBlockingThreads = 8;
// Threads for libpqxx (blocking connect and query); separate from the disk pool so
// a hung mount never holds back database checks, nor the reverse.
constexpr std::size_t kDatabaseThreads = 8;
// A worker busy on one job for longer than this is counted as stuck.
constexpr auto kBlockingStuckAfter = std::chrono::seconds(10);
// After an attempt found no file descriptor, probes in flight are capped at 7/8 of
// what ran then (at most once a second, never below kMinFdCap); once none has been
// short of one for kFdBackoff, the cap grows by an eighth a second until it is gone.
constexpr auto kFdBackoff = std::chrono::seconds(3);
constexpr auto kFdCutEvery = std::chrono::seconds(1);
constexpr std::size_t kMinFdCap = 8;

std::string describeDuration(Duration d) {
  if (d.count() % 1000 == 0) return fmt::format("{}s", d.count() / 1000);
  return fmt::format("{}ms", d.count());
}

}  // namespace

Engine::Engine(boost::asio::io_context& io, std::shared_ptr<prometheus::Registry> self,
               ProbeFactory factory)
    : io_(io),
      self_(std::move(self)),
      curl_(std::make_unique<CurlDriver>(io)),
      blocking_(std::make_unique<WorkerPool>(io, kBlockingThreads, "vigie-blocking")),
      database_(std::make_unique<WorkerPool>(io, kDatabaseThreads, "vigie-database")),
      heartbeats_(std::make_unique<HeartbeatBoard>()),
      ctx_(std::make_unique<ProbeContext>(
          ProbeContext{io, *curl_, "", blocking_.get(), database_.get(), heartbeats_.get()})),
      factory_(std::move(factory)),
      scheduler_(4096, SteadyClock::now()),
      wake_timer_(io),
      events_(std::make_shared<EventLog>()),
      aggregator_(std::make_unique<Aggregator>(*events_, nullptr)),
      tick_timer_(io) {
  scheduler_.setBatch(kStartBatch);
  self_stats_.started = SystemClock::now();
  auto& lag = prometheus::BuildHistogram()
                  .Name("vigie_scheduler_lag_seconds")
                  .Help("Delay between a probe's scheduled start and its actual start "
                        "(waiting for a free slot included). High values mean vigie is "
                        "overloaded, not that targets are slow.")
                  .Register(*self_);
  lag_ = &lag.Add({}, prometheus::Histogram::BucketBoundaries{
                          0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                          2.5, 5, 10});
  auto& results = prometheus::BuildCounter()
                      .Name("vigie_probes_total")
                      .Help("Probe attempts completed, by result (ok, warn, fail).")
                      .Register(*self_);
  for (int s = 0; s < 3; ++s) {
    results_[s] = &results.Add({{"result", std::string(statusName(static_cast<Status>(s)))}});
  }
  late_results_ = &prometheus::BuildCounter()
                       .Name("vigie_probe_late_completions_total")
                       .Help("Probe completions that arrived after their check had timed out "
                             "and were ignored.")
                       .Register(*self_)
                       .Add({});
  internal_errors_ = &prometheus::BuildCounter()
                          .Name("vigie_internal_errors_total")
                          .Help("Faults inside vigie itself (a probe that threw, ...).")
                          .Register(*self_)
                          .Add({});
  skipped_ = &prometheus::BuildCounter()
                  .Name("vigie_probes_skipped_total")
                  .Help("Scheduled turns skipped because the check's previous attempt was "
                        "still running or waiting for a slot, or vigie was behind.")
                  .Register(*self_)
                  .Add({});
  auto& stuck = prometheus::BuildGauge()
                    .Name("vigie_blocking_workers_stuck")
                    .Help("Threads of a blocking pool (pool=disk: disk probes, pool=database: "
                          "PostgreSQL probes) busy on one job for more than 10 s, as on a hung "
                          "mount. Each pool has at most 8 threads.")
                    .Register(*self_);
  blocking_stuck_ = &stuck.Add({{"pool", "disk"}});
  database_stuck_ = &stuck.Add({{"pool", "database"}});
  fd_limit_gauge_ = &prometheus::BuildGauge()
                         .Name("vigie_fd_limit")
                         .Help("File descriptors vigie may open (soft RLIMIT_NOFILE, ulimit -n).")
                         .Register(*self_)
                         .Add({});
  fds_open_ = &prometheus::BuildGauge()
                   .Name("vigie_fds_open")
                   .Help("File descriptors open in vigie (sampled every second).")
                   .Register(*self_)
                   .Add({});
  fd_limit_reached_ =
      &prometheus::BuildGauge()
           .Name("vigie_fd_limit_reached")
           .Help("1 while vigie is at its file-descriptor limit: probes wait for a descriptor "
                 "(the limit caps probes in flight below max_in_flight) or an attempt found "
                 "none in the last 3 s.")
           .Register(*self_)
           .Add({});
  max_in_flight_gauge_ =
      &prometheus::BuildGauge()
           .Name("vigie_probes_max_in_flight")
           .Help("Probes allowed to run at once now: max_in_flight, lowered to fit the "
                 "file-descriptor limit.")
           .Register(*self_)
           .Add({});
  fd_exhaustions_ = &prometheus::BuildCounter()
                         .Name("vigie_fd_exhaustions_total")
                         .Help("Probe attempts that found no file descriptor (EMFILE, ENFILE) "
                               "and were dropped; their checks keep their state.")
                         .Register(*self_)
                         .Add({});
  setFdLimit(fdLimit());
}

void Engine::setFdLimit(std::size_t limit) {
  fd_limit_ = limit;
  fd_slots_ = probeSlotsFor(limit);
  fd_limit_gauge_->Set(static_cast<double>(limit));
  applyInFlightCap();
}

std::size_t Engine::effectiveMaxInFlight() const {
  std::size_t n = std::min(configured_max_in_flight_, fd_slots_);
  if (exhausted_cap_ != 0) n = std::min(n, exhausted_cap_);
  return std::max<std::size_t>(n, 1);
}

void Engine::applyInFlightCap() {
  const std::size_t n = effectiveMaxInFlight();
  scheduler_.setMaxInFlight(n);
  max_in_flight_gauge_->Set(static_cast<double>(n));
  // Said once per limit, when the cap can matter (more checks than slots).
  if (config_ && configured_max_in_flight_ > fd_slots_ && order_.size() > fd_slots_ &&
      logged_slots_for_ != fd_limit_) {
    logged_slots_for_ = fd_limit_;
    spdlog::warn("max_in_flight {} does not fit the file-descriptor limit of {} (ulimit -n): "
                 "at most {} probes run at once",
                 configured_max_in_flight_, fd_limit_, fd_slots_);
  }
}

// An attempt found no descriptor: what runs now is what fits, less a margin.
void Engine::outOfDescriptors() {
  fd_exhaustions_->Increment();
  const auto now = SteadyClock::now();
  last_exhaustion_ = now;
  if (now - last_fd_cut_ < kFdCutEvery) return;
  last_fd_cut_ = now;
  const std::size_t running = scheduler_.inFlight() + 1;  // this attempt's slot included
  const std::size_t cap = std::max(running - running / 8, kMinFdCap);
  if (exhausted_cap_ == 0 || cap < exhausted_cap_) exhausted_cap_ = cap;
  applyInFlightCap();
  if (!at_fd_limit_) watchDescriptors();  // says so now, once per episode
}

// Every second (and on exhaustion): the gauges, the cap's recovery and the log.
void Engine::watchDescriptors() {
  const auto now = SteadyClock::now();
  const bool recent = last_exhaustion_ != SteadyClock::time_point{} &&
                      now - last_exhaustion_ < kFdBackoff;
  if (exhausted_cap_ != 0 && !recent) {
    exhausted_cap_ += std::max<std::size_t>(exhausted_cap_ / 8, kMinFdCap);
    if (exhausted_cap_ >= fd_slots_) exhausted_cap_ = 0;
    applyInFlightCap();
    armWake();
  }
  const std::size_t open = openFds();
  fds_open_->Set(static_cast<double>(open));
  const bool capped = effectiveMaxInFlight() < configured_max_in_flight_;
  const bool reached = recent || (capped && scheduler_.waiting() > 0);
  fd_limit_reached_->Set(reached ? 1 : 0);
  if (reached && !at_fd_limit_) {
    spdlog::warn("at the file-descriptor limit: {} open of {} (ulimit -n); {} probes run at "
                 "once (max_in_flight {}), {} wait{}; raise the limit (LimitNOFILE=) or lower "
                 "max_in_flight",
                 open, fd_limit_, effectiveMaxInFlight(), configured_max_in_flight_,
                 scheduler_.waiting(), recent ? "; an attempt found no descriptor" : "");
  } else if (!reached && at_fd_limit_) {
    spdlog::info("below the file-descriptor limit again: {} open of {}", open, fd_limit_);
  }
  at_fd_limit_ = reached;
}

Engine::~Engine() { stop(); }

ProbeContext& Engine::probeContext() { return *ctx_; }

Scheduler::Id Engine::allocateId() {
  for (Scheduler::Id i = 0; i < sessions_.size(); ++i) {
    if (!sessions_[i]) return i;
  }
  sessions_.emplace_back();
  return static_cast<Scheduler::Id>(sessions_.size() - 1);
}

void Engine::apply(std::shared_ptr<const Config> config) {
  if (!config) throw std::invalid_argument("no configuration");
  ctx_->location = config->location;

  // Build every probe first: a failure here leaves the running config untouched.
  struct Planned {
    std::shared_ptr<const CheckConfig> check;
    std::shared_ptr<const ServiceConfig> service;
    std::unique_ptr<Probe> probe;
  };
  std::vector<Planned> planned;
  for (const auto& svc : config->services) {
    std::shared_ptr<const ServiceConfig> service(config, &svc);
    for (const auto& chk : svc.checks) {
      std::shared_ptr<const CheckConfig> check(config, &chk);
      std::unique_ptr<Probe> probe;
      try {
        // The default probes share the check's settings with the Config.
        probe = factory_ ? factory_(chk) : makeProbe(*ctx_, check);
      } catch (const std::exception& e) {
        throw std::invalid_argument(fmt::format("{}: {}", chk.key, e.what()));
      }
      planned.push_back(Planned{std::move(check), service, std::move(probe)});
    }
  }

  const auto now = SteadyClock::now();
  configured_max_in_flight_ = static_cast<std::size_t>(std::max(config->max_in_flight, 1));
  std::unordered_map<std::string, Scheduler::Id> old_keys;
  old_keys.swap(by_key_);
  order_.clear();
  order_.reserve(planned.size());
  for (auto& p : planned) {
    auto it = old_keys.find(p.check->key);
    if (it != old_keys.end()) {
      Session& s = *sessions_[it->second];
      const bool same_kind = s.check->spec.index() == p.check->spec.index();
      const bool same_interval = s.check->interval == p.check->interval;
      if (!same_kind) {
        auto fresh = std::make_shared<CheckStatus>();
        fresh->check = p.check;
        fresh->service = p.service;
        s.status = std::move(fresh);
      }
      if (s.running) {
        s.next_check = p.check;
        s.next_service = p.service;
        s.next_probe = std::move(p.probe);
      } else {
        s.check = p.check;
        s.service = p.service;
        s.probe = std::move(p.probe);
      }
      if (same_kind) {
        auto st = std::make_shared<CheckStatus>(*s.status);
        st->check = p.check;
        st->service = p.service;
        s.status = std::move(st);
      }
      if (!same_interval) scheduler_.add(s.id, p.check->key, p.check->interval, now);
      by_key_[p.check->key] = s.id;
      order_.push_back(s.id);
      old_keys.erase(it);
      continue;
    }
    const auto id = allocateId();
    auto s = std::make_unique<Session>(io_, id);
    s->check = p.check;
    s->service = p.service;
    s->probe = std::move(p.probe);
    auto st = std::make_shared<CheckStatus>();
    st->check = p.check;
    st->service = p.service;
    s->status = std::move(st);
    sessions_[id] = std::move(s);
    scheduler_.add(id, p.check->key, p.check->interval, now);
    by_key_[p.check->key] = id;
    order_.push_back(id);
  }
  // What is left was removed from the config.
  for (auto& [key, id] : old_keys) {
    heartbeats_->forget(key);
    scheduler_.remove(id);
    Session& s = *sessions_[id];
    if (s.running) {
      s.retired = true;  // its result is dropped; the slot frees when it ends
    } else {
      sessions_[id].reset();
    }
  }
  const bool first = config_ == nullptr;
  config_ = std::move(config);
  applyInFlightCap();
  cached_.reset();
  aggregate_due_ = true;
  armWake();
  if (first) armTick();
}

void Engine::noteReload(bool ok, const std::string& file) {
  self_stats_.config_file = file;
  self_stats_.config_last_reload_successful = ok;
  ++self_stats_.config_reloads_total;
  if (ok) {
    self_stats_.config_last_reload_success = SystemClock::now();
  } else {
    ++self_stats_.config_reload_failures_total;
  }
  cached_.reset();
}

void Engine::armWake() {
  if (stopped_) return;
  auto next = scheduler_.nextWake();
  if (!next) return;
  if (armed_at_ && *armed_at_ <= *next) return;  // an earlier wake is already set
  armed_at_ = *next;
  wake_timer_.expires_at(*next == SteadyClock::time_point::min() ? SteadyClock::now() : *next);
  wake_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    armed_at_.reset();
    wake();
  });
}

void Engine::wake() {
  const auto now = SteadyClock::now();
  starts_.clear();
  scheduler_.poll(now, starts_);
  for (const auto& st : starts_) {
    Session* s = sessions_[st.id].get();
    if (!s) {
      scheduler_.finished(st.id);
      continue;
    }
    lag_->Observe(std::chrono::duration<double>(now - st.scheduled).count());
    startProbe(*s, st.scheduled);
  }
  const auto skipped = scheduler_.skipped();
  if (skipped > skipped_reported_) {
    skipped_->Increment(static_cast<double>(skipped - skipped_reported_));
    skipped_reported_ = skipped;
  }
  armWake();
}

void Engine::startProbe(Session& s, SteadyClock::time_point) {
  s.running = true;
  const auto attempt = ++s.attempt;
  s.started_wall = SystemClock::now();
  s.started_steady = SteadyClock::now();
  const auto deadline = s.started_steady + s.check->timeout;
  const auto id = s.id;
  if (s.probe->timesItself()) {
    // No timer per attempt: the probe answers by its deadline; sweepOverdue() is
    // the safety net (timers were 3-4 % of the loop's CPU at 1,500 probes/s).
    overdue_[s.check->timeout].push_back(Overdue{deadline + kDeadlineGrace, id, attempt});
  } else {
    s.deadline_armed = true;
    s.deadline.expires_at(deadline + kDeadlineGrace);
    s.deadline.async_wait([this, id, attempt](const boost::system::error_code& ec) {
      if (ec) return;
      Session* sp = id < sessions_.size() ? sessions_[id].get() : nullptr;
      if (!sp || !sp->running || sp->attempt != attempt) return;
      sp->deadline_armed = false;
      timeOut(*sp);
    });
  }
  try {
    // complete() is safe inside the probe's own callback, even a synchronous one:
    // it never destroys the probe on the stack (see complete()).
    // 16 bytes, trivially copyable: std::function keeps it inline, no allocation per
    // attempt (the low 32 bits of the attempt number are enough to tell it is stale).
    const auto attempt32 = static_cast<std::uint32_t>(attempt);
    s.probe->start(deadline, [this, id, attempt32](Result r) {
      complete(id, attempt32, std::move(r));
    });
  } catch (const std::exception& e) {
    internal_errors_->Increment();
    spdlog::error("check {}: probe threw: {}", s.check->key, e.what());
    complete(id, attempt, Result::failure(Reason::internal, e.what()));
  }
}

void Engine::timeOut(Session& s) {
  s.probe->cancel();
  complete(s.id, s.attempt,
           Result::failure(Reason::timeout, fmt::format("no result within the timeout of {}",
                                                        describeDuration(s.check->timeout))));
}

void Engine::sweepOverdue(SteadyClock::time_point now) {
  for (auto q = overdue_.begin(); q != overdue_.end();) {
    auto& items = q->second;
    while (!items.empty() && items.front().at <= now) {
      const Overdue o = items.front();
      items.pop_front();
      Session* s = o.id < sessions_.size() ? sessions_[o.id].get() : nullptr;
      if (!s || !s->running || s->attempt != o.attempt) continue;  // it answered
      // A reload may have given the id to a new check whose attempt has the same
      // number: its own item, with its own deadline, is in a FIFO too.
      if (s->started_steady + s->check->timeout + kDeadlineGrace > now) continue;
      spdlog::warn("check {}: the probe did not answer by its deadline; timed out by the engine",
                   s->check->key);
      timeOut(*s);
    }
    q = items.empty() ? overdue_.erase(q) : std::next(q);
  }
}

void Engine::complete(Scheduler::Id id, std::uint64_t attempt, Result result) {
  Session* s = id < sessions_.size() ? sessions_[id].get() : nullptr;
  if (!s || !s->running ||
      static_cast<std::uint32_t>(s->attempt) != static_cast<std::uint32_t>(attempt)) {
    late_results_->Increment();
    return;
  }
  s->running = false;
  if (s->deadline_armed) {
    s->deadline_armed = false;
    s->deadline.cancel();
  }
  scheduler_.finished(id);
  scheduler_.setSlow(id, result.reason == Reason::timeout);

  if (s->retired) {
    // Removed by a reload while it ran: drop it, and never inside the probe's own
    // callback (the probe is still on the stack).
    auto owned = std::move(sessions_[id]);
    boost::asio::post(io_, [owned = std::shared_ptr<Session>(std::move(owned))] {});
    armWake();
    return;
  }

  if (result.out_of_descriptors) {
    // vigie's limit, not the target's: no result; fewer probes start for a while.
    swapPendingProbe(*s);
    outOfDescriptors();
    armWake();
    return;
  }
  if (result.inconclusive) {
    // Nothing to say yet (a heartbeat before its first push is due): no state change.
    swapPendingProbe(*s);
    armWake();
    return;
  }
  if (result.started == SystemClock::time_point{}) result.started = s->started_wall;
  if (result.duration <= 0) {
    result.duration = std::chrono::duration<double>(SteadyClock::now() - s->started_steady).count();
  }
  results_[static_cast<int>(result.status)]->Increment();

  const auto prev_state = s->status->state;
  const auto at = result.started;
  const ResultSummary summary{at, result.status, result.reason,
                              static_cast<float>(result.duration)};
  auto next = applyResult(*s->status, std::move(result),
                          Thresholds{s->check->failure_threshold, s->check->success_threshold});
  const bool good = summary.status != Status::fail;
  s->uptime.add(at, good ? 1 : 0, 1);
  // Every window exactly 1 (or 0) stays so with one more good (failed) result, as the
  // windows slide too: no need to sum 94 buckets (1.5-1.8 % of the loop's CPU).
  const double same = good ? 1.0 : 0.0;
  if (!std::all_of(next->uptime.begin(), next->uptime.end(),
                   [same](const auto& v) { return v && *v == same; })) {
    next->uptime = s->uptime.ratios(at);
  }
  if (!s->uptime_dirty) {
    s->uptime_dirty = true;
    uptime_dirty_.push_back(s->id);
  }
  if (store_) store_->recordResult(s->check->key, summary);
  // Coming up from unknown (a start, a new check) is not news; anything else is.
  if (next->state != prev_state &&
      !(prev_state == CheckState::unknown && next->state == CheckState::up)) {
    StateChange e;
    e.at = at;
    e.subject = StateChange::Subject::check;
    e.name = s->check->key;
    e.from = std::string(checkStateName(prev_state));
    e.to = std::string(checkStateName(next->state));
    e.reason = next->last->status == Status::warn ? Reason::health_warn : next->last->reason;
    e.detail = next->last->detail.substr(0, 256);
    const StateChange& stored = events_->append(std::move(e));
    if (store_) store_->recordChange(stored);
    auto changes = std::make_shared<std::vector<StateChange>>();
    if (s->changes) {
      const auto& old = *s->changes;
      const std::size_t keep = std::min(old.size(), kRecentChanges - 1);
      changes->assign(old.end() - static_cast<std::ptrdiff_t>(keep), old.end());
    }
    changes->push_back(stored);
    s->changes = std::move(changes);
  }
  next->changes = s->changes;
  if (next->state != prev_state) {
    const auto& last = *next->last;
    if (last.status == Status::ok) {
      spdlog::info("check {}: {} -> {}", s->check->key, checkStateName(prev_state),
                   checkStateName(next->state));
    } else {
      spdlog::warn("check {}: {} -> {} ({}: {})", s->check->key, checkStateName(prev_state),
                   checkStateName(next->state),
                   last.status == Status::warn ? "health_warn" : reasonName(last.reason),
                   last.detail);
    }
  }
  if (next->flapping != s->status->flapping ||
      (next->state != prev_state && prev_state != CheckState::unknown)) {
    aggregate_due_ = true;
  } else if (next->state != prev_state) {
    // From unknown, a check can only take its service (and cluster) from unknown,
    // which is not news (see aggregate()): the pass can wait.
    (next->state == CheckState::up ? aggregate_quiet_due_ : aggregate_due_) = true;
  }
  s->status = std::move(next);
  cached_.reset();
  if (on_result) on_result(*s->status);

  swapPendingProbe(*s);
  // A slot freed: start whoever waits for one.
  if (scheduler_.waiting() > 0) {
    boost::asio::post(io_, [this] {
      if (!stopped_) wake();
    });
  }
}

void Engine::swapPendingProbe(Session& s) {
  if (!s.next_probe) return;
  // The probe that just finished may still be on the stack: free it later.
  boost::asio::post(io_, [old = std::shared_ptr<Probe>(std::move(s.probe))] {});
  s.probe = std::move(s.next_probe);
  s.check = std::move(s.next_check);
  s.service = std::move(s.next_service);
}

Engine::PushOutcome Engine::push(const std::string& key, std::string_view token,
                                 HeartbeatPush push) {
  auto it = by_key_.find(key);
  if (it == by_key_.end() || !sessions_[it->second]) return PushOutcome::unknown_check;
  Session& s = *sessions_[it->second];
  // A reload waiting for the end of an attempt already carries the newest token.
  const CheckConfig& current = s.next_check ? *s.next_check : *s.check;
  const auto* spec = std::get_if<HeartbeatSpec>(&current.spec);
  if (!spec) return PushOutcome::not_heartbeat;
  if (!tokenMatches(spec->token, token)) return PushOutcome::unauthorized;
  if (push.steady == SteadyClock::time_point{}) push.steady = SteadyClock::now();
  if (push.at == SystemClock::time_point{}) push.at = SystemClock::now();
  heartbeats_->record(key, std::move(push));
  if (!stopped_ && scheduler_.startNow(s.id)) startProbe(s, SteadyClock::now());
  return PushOutcome::accepted;
}

std::shared_ptr<const Snapshot> Engine::snapshot() {
  blocking_stuck_->Set(static_cast<double>(blocking_->stuck(kBlockingStuckAfter)));
  database_stuck_->Set(static_cast<double>(database_->stuck(kBlockingStuckAfter)));
  if (cached_ && cached_->self.probes_in_flight == scheduler_.inFlight()) return cached_;
  auto snap = std::make_shared<Snapshot>();
  snap->config = config_;
  snap->checks.reserve(order_.size());
  for (auto id : order_) snap->checks.push_back(sessions_[id]->status);
  snap->at = SystemClock::now();
  snap->events = events_;
  aggregate(*snap, snap->at);
  aggregator_->update(*snap, snap->at);
  aggregate_due_ = false;
  aggregate_quiet_due_ = false;
  snap->self = self_stats_;
  snap->self.probes_in_flight = scheduler_.inFlight();
  snap->self.probes_waiting = scheduler_.waiting();
  cached_ = snap;
  return cached_;
}

void Engine::setHistoryStore(std::unique_ptr<HistoryStore> store) {
  store_ = std::move(store);
  aggregator_ = std::make_unique<Aggregator>(*events_, store_.get());
}

void Engine::restoreHistory() {
  if (!store_) return;
  auto restored = store_->restore();
  events_->restore(std::move(restored.events));
  for (auto& entry : by_key_) {
    // Not a structured binding: clang before 16 cannot capture one in the lambda below.
    const auto& key = entry.first;
    const auto id = entry.second;
    auto it = restored.checks.find(key);
    if (it == restored.checks.end()) continue;
    Session& s = *sessions_[id];
    s.uptime.restore(it->second.uptime);
    auto st = std::make_shared<CheckStatus>(*s.status);
    st->recent = std::move(it->second.recent);
    if (st->recent.size() > CheckStatus::kRecentResults) {
      st->recent.erase(st->recent.begin(),
                       st->recent.end() - static_cast<std::ptrdiff_t>(CheckStatus::kRecentResults));
    }
    st->uptime = s.uptime.ratios(SystemClock::now());
    std::vector<StateChange> mine;
    for (const StateChange* e : events_->page(0, kRecentChanges, [&key](const StateChange& e) {
           return e.subject == StateChange::Subject::check && e.name == key;
         })) {
      mine.insert(mine.begin(), *e);
    }
    if (!mine.empty()) {
      s.changes = std::make_shared<std::vector<StateChange>>(std::move(mine));
      st->changes = s.changes;
      st->last_change = st->changes->back().at;
    }
    s.status = std::move(st);
  }
  for (const auto& [name, buckets] : restored.services) aggregator_->restoreService(name, buckets);
  cached_.reset();
  aggregate_due_ = true;
}

void Engine::flushUptime() {
  if (!store_) {
    for (auto id : uptime_dirty_) {
      if (id < sessions_.size() && sessions_[id]) sessions_[id]->uptime_dirty = false;
    }
    uptime_dirty_.clear();
    return;
  }
  const auto now = SystemClock::now();
  for (auto id : uptime_dirty_) {
    if (id >= sessions_.size() || !sessions_[id]) continue;
    Session& s = *sessions_[id];
    s.uptime_dirty = false;
    store_->recordUptime(s.check->key, false, s.uptime.recent(now));
  }
  uptime_dirty_.clear();
  for (const auto& [name, buckets] : aggregator_->serviceBuckets(now)) {
    std::vector<UptimeTracker::StoredBucket> recent;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    for (const auto& b : buckets) {
      if (b.index >= secs / UptimeTracker::kWidthSeconds[b.tier] - 1) recent.push_back(b);
    }
    store_->recordUptime(name, true, recent);
  }
}

void Engine::armTick() {
  if (stopped_) return;
  tick_timer_.expires_after(std::chrono::seconds(1));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    // Service states follow their checks' states (noted within a second, whether
    // anybody reads or not) and maintenance windows follow the clock: re-aggregate
    // when a check's state changed, and every second while the config has
    // maintenance windows. Nothing else moves a service's state; its uptime is
    // counted up to the moment it is read (a reader's snapshot() is always up to
    // date, and the history flush counts it first). A pass costs 10 ms at 10,000
    // services, so none is made on a clock.
    if (aggregate_due_ || (aggregate_quiet_due_ && ticks_ % kQuietAggregateEvery == 0) ||
        (config_ && !config_->maintenance.empty())) {
      cached_.reset();
      snapshot();
    }
    sweepOverdue(SteadyClock::now());
    watchDescriptors();
    if (++ticks_ % 10 == 0) flushUptime();
    armTick();
  });
}

void Engine::stop() {
  if (stopped_) return;
  // The store flushes its queue when it is destroyed; the uptime since the last
  // 10-second flush goes with it.
  if (store_) flushUptime();
  stopped_ = true;
  wake_timer_.cancel();
  tick_timer_.cancel();
  for (auto& s : sessions_) {
    if (!s) continue;
    s->deadline.cancel();
    if (s->running && s->probe) s->probe->cancel();
    s->running = false;
  }
}

}  // namespace vigie
