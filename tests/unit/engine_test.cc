// The engine on a real io_context with fake probes: bounding, timeouts, reloads.
// Fake probes stand for targets here (the scheduler is what is tested); real
// targets are in the integration tests.

#include <gtest/gtest.h>

#include <prometheus/registry.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <map>
#include <set>

#include "collector/engine.h"
#include "collector/history.h"
#include "tests/support/sanitizers.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;

// Completes after `delay` with `status`; never when delay is negative (a hung target).
class FakeProbe : public Probe {
 public:
  FakeProbe(boost::asio::io_context& io, std::chrono::milliseconds delay, const Status* status,
            int* in_flight, int* max_in_flight, const bool* no_fds = nullptr,
            bool times_itself = false)
      : timer_(io),
        delay_(delay),
        status_(status),
        in_flight_(in_flight),
        max_(max_in_flight),
        no_fds_(no_fds),
        times_itself_(times_itself) {}
  bool timesItself() const override { return times_itself_; }
  void start(SteadyClock::time_point, Done done) override {
    ++*in_flight_;
    *max_ = std::max(*max_, *in_flight_);
    running_ = true;
    if (delay_ < 0ms) return;
    timer_.expires_after(delay_);
    timer_.async_wait([this, done = std::move(done)](const boost::system::error_code& ec) {
      if (ec || !running_) return;
      running_ = false;
      --*in_flight_;
      Result r = *status_ == Status::fail ? Result::failure(Reason::http_status, "got 503")
                                          : Result::ok();
      r.status = *status_;
      if (no_fds_ && *no_fds_) {
        r = Result::failure(Reason::internal, "vigie is out of file descriptors");
        r.out_of_descriptors = true;
      }
      done(std::move(r));
    });
  }
  void cancel() override {
    if (running_) --*in_flight_;
    running_ = false;
    timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  std::chrono::milliseconds delay_;
  const Status* status_;  // read at each attempt: a test may change it
  bool running_ = false;
  int* in_flight_;
  int* max_;
  const bool* no_fds_;
  bool times_itself_;  // claims to answer by its deadline (a buggy one may not)
};

std::shared_ptr<Config> makeConfig(int services, std::chrono::milliseconds interval,
                                   std::chrono::milliseconds timeout, int max_in_flight) {
  auto cfg = std::make_shared<Config>();
  cfg->max_in_flight = max_in_flight;
  for (int i = 0; i < services; ++i) {
    ServiceConfig svc;
    svc.name = "svc" + std::to_string(i);
    CheckConfig c;
    c.name = "health";
    c.key = svc.name + "/health";
    c.interval = interval;
    c.timeout = timeout;
    c.failure_threshold = 1;
    HttpSpec http;
    http.url = "http://127.0.0.1:1/" + svc.name;
    c.spec = http;
    svc.checks.push_back(c);
    cfg->services.push_back(std::move(svc));
  }
  return cfg;
}

struct Fixture {
  boost::asio::io_context io{1};
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  int in_flight = 0;
  int max_in_flight = 0;
  std::map<std::string, std::chrono::milliseconds> delays;  // by service name; default 5ms
  std::map<std::string, Status> statuses;  // by service name; default ok (nodes stay put)
  bool no_fds = false;  // every attempt finds no descriptor
  std::set<std::string> self_timed;  // services whose probe says it times itself
  std::unique_ptr<Engine> engine;

  Fixture() {
    engine = std::make_unique<Engine>(io, registry, [this](const CheckConfig& c) {
      auto svc = c.key.substr(0, c.key.find('/'));
      auto d = delays.count(svc) ? delays[svc] : 5ms;
      const Status* s = &statuses[svc];
      return std::make_unique<FakeProbe>(io, d, s, &in_flight, &max_in_flight, &no_fds,
                                         self_timed.count(svc) > 0);
    });
  }
  void runFor(std::chrono::milliseconds d) {
    io.restart();
    io.run_for(d);
  }
};

// The engine's own timeout result for a check whose probe never answered (timeout
// 100 ms).
void expectTimedOutAfter100ms(const CheckStatus& hung) {
  ASSERT_TRUE(hung.last);
  EXPECT_EQ(hung.last->reason, Reason::timeout);
  EXPECT_NE(hung.last->detail.find("100ms"), std::string::npos) << hung.last->detail;
  EXPECT_GE(hung.last->duration, 0.1);
}

TEST(Engine, RunsEveryCheckAndBoundsInFlight) {
  Fixture f;
  std::map<std::string, int> results;
  f.engine->on_result = [&](const CheckStatus& s) { ++results[s.check->key]; };
  for (int i = 0; i < 200; ++i) f.delays["svc" + std::to_string(i)] = 50ms;
  f.engine->apply(makeConfig(200, 500ms, 400ms, 20));
  f.runFor(1300ms);
  EXPECT_EQ(results.size(), 200u);  // every check ran at least once
  EXPECT_LE(f.max_in_flight, 20);
  EXPECT_EQ(f.max_in_flight, 20);  // and the bound was actually reached
  auto snap = f.engine->snapshot();
  ASSERT_EQ(snap->checks.size(), 200u);
  for (const auto& c : snap->checks) EXPECT_EQ(c->state, CheckState::up) << c->check->key;
}

TEST(Engine, AHungCheckTimesOutAndOthersKeepTheirSchedule) {
  Fixture f;
  f.delays["svc0"] = -1ms;  // never answers
  std::map<std::string, int> results;
  f.engine->on_result = [&](const CheckStatus& s) { ++results[s.check->key]; };
  f.engine->apply(makeConfig(5, 200ms, 100ms, 2));
  f.runFor(1050ms);
  auto snap = f.engine->snapshot();
  expectTimedOutAfter100ms(*snap->checks[0]);
  EXPECT_EQ(snap->checks[0]->state, CheckState::down);
  for (int i = 1; i < 5; ++i) {
    EXPECT_GE(results["svc" + std::to_string(i) + "/health"], 4) << i;
  }
}

// A probe that says it times itself gets no timer per attempt; one that breaks that
// promise is still timed out, by the engine's sweep (every second), and does not
// hold its check forever.
TEST(Engine, ASelfTimedProbeThatNeverAnswersIsStillTimedOut) {
  Fixture f;
  f.delays["svc0"] = -1ms;  // never answers
  f.self_timed = {"svc0", "svc1"};
  std::map<std::string, std::vector<SteadyClock::time_point>> results;
  f.engine->on_result = [&](const CheckStatus& s) {
    results[s.check->key].push_back(SteadyClock::now());
  };
  const auto start = SteadyClock::now();
  f.engine->apply(makeConfig(2, 300ms, 100ms, 4));
  f.runFor(2600ms);
  auto snap = f.engine->snapshot();
  expectTimedOutAfter100ms(*snap->checks[0]);
  // Ended by the sweep: after its deadline, within a sweep (1 s) and some slack.
  ASSERT_GE(results["svc0/health"].size(), 1u);
  const auto first = results["svc0/health"].front() - start;
  EXPECT_GE(first, 100ms);
  EXPECT_LE(first, 1000ms + 300ms + 100ms + 30ms + 500ms * test::kTimingSlack);
  EXPECT_GE(results["svc0/health"].size(), 2u);  // and it ran again
  // The well-behaved self-timed check kept its schedule (every 300 ms).
  EXPECT_GE(results["svc1/health"].size(), 6u);
  EXPECT_EQ(snap->checks[1]->state, CheckState::up);
}

TEST(Engine, ReloadKeepsStateOfUnchangedChecksAndDropsRemovedOnes) {
  Fixture f;
  f.statuses["svc1"] = Status::fail;
  f.engine->apply(makeConfig(3, 100ms, 50ms, 10));
  f.runFor(350ms);
  auto before = f.engine->snapshot();
  ASSERT_EQ(before->checks.size(), 3u);
  const auto changes_before = before->checks[1]->state_changes;
  EXPECT_EQ(before->checks[1]->state, CheckState::down);

  f.engine->apply(makeConfig(2, 100ms, 50ms, 10));  // svc2 removed
  auto after = f.engine->snapshot();
  ASSERT_EQ(after->checks.size(), 2u);
  EXPECT_EQ(after->checks[1]->state, CheckState::down);
  EXPECT_EQ(after->checks[1]->state_changes, changes_before);
  EXPECT_GE(after->checks[1]->recent.size(), before->checks[1]->recent.size());
  f.runFor(300ms);
  EXPECT_EQ(f.engine->snapshot()->checks.size(), 2u);
}

TEST(Engine, AFailingFactoryLeavesTheRunningConfig) {
  Fixture f;
  f.engine->apply(makeConfig(2, 100ms, 50ms, 10));
  auto running = f.engine->config();
  Engine bad(f.io, std::make_shared<prometheus::Registry>(), [](const CheckConfig& c) -> std::unique_ptr<Probe> {
    throw std::invalid_argument("probe kind \"x\" is not available for " + c.key);
  });
  EXPECT_THROW(bad.apply(makeConfig(1, 100ms, 50ms, 10)), std::invalid_argument);
  EXPECT_FALSE(bad.ready());
  EXPECT_EQ(f.engine->config(), running);
}

// Nobody reads: a service's state change is still noted within a second of its
// check's, as an event, though the engine skips aggregations when no check changed.
TEST(Engine, ServiceChangesAreNotedWithoutReaders) {
  Fixture f;
  f.statuses["svc1"] = Status::fail;
  f.engine->apply(makeConfig(3, 200ms, 100ms, 10));
  auto serviceEvents = [&] {
    return f.engine->events().page(0, 100, [](const StateChange& e) {
      return e.subject == StateChange::Subject::service;
    });
  };
  const auto t0 = SteadyClock::now();
  while (serviceEvents().empty() && SteadyClock::now() - t0 < 3s) f.runFor(50ms);
  const auto noted_after = SteadyClock::now() - t0;
  const auto events = serviceEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]->name, "svc1");
  EXPECT_EQ(events[0]->to, "down");
  // First result within 200 ms, then the next one-second tick.
  EXPECT_LT(noted_after, 1500ms);
  // Nothing changes afterwards: no more events over several skipped aggregations.
  f.runFor(2500ms);
  EXPECT_EQ(serviceEvents().size(), 1u);
  // Then it recovers, long after the config was applied: noted within a second too.
  f.statuses["svc1"] = Status::ok;
  const auto t1 = SteadyClock::now();
  while (serviceEvents().size() < 2 && SteadyClock::now() - t1 < 3s) f.runFor(50ms);
  ASSERT_EQ(serviceEvents().size(), 2u);
  EXPECT_EQ(serviceEvents()[0]->to, "up");
  EXPECT_LT(SteadyClock::now() - t1, 1500ms);
}

TEST(Engine, LagIsMeasured) {
  Fixture f;
  // A 200 ms interval starts on 25 ms steps, which divide it: every slot is on a step.
  f.engine->apply(makeConfig(50, 200ms, 50ms, 100));
  f.runFor(1000ms);
  bool found = false;
  for (const auto& fam : f.registry->Collect()) {
    if (fam.name != "vigie_scheduler_lag_seconds") continue;
    found = true;
    ASSERT_EQ(fam.metric.size(), 1u);
    EXPECT_GE(fam.metric[0].histogram.sample_count, 200u);
    // On an idle loop nearly every start is within 10 ms of its slot.
    EXPECT_LT(fam.metric[0].histogram.sample_sum / fam.metric[0].histogram.sample_count, 0.01);
  }
  EXPECT_TRUE(found);
}

double metricValue(prometheus::Registry& r, const std::string& name) {
  for (const auto& fam : r.Collect()) {
    if (fam.name != name || fam.metric.empty()) continue;
    const auto& m = fam.metric[0];
    return fam.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return -1;
}

TEST(Engine, TheDescriptorLimitCapsProbesInFlight) {
  Fixture f;
  f.engine->setFdLimit(200);  // 200 - 50 for HTTP clients - 64 = 86 probes
  for (int i = 0; i < 300; ++i) f.delays["svc" + std::to_string(i)] = 300ms;
  f.engine->apply(makeConfig(300, 500ms, 400ms, 4096));
  EXPECT_EQ(f.engine->effectiveMaxInFlight(), 86u);
  f.runFor(1200ms);
  EXPECT_EQ(f.max_in_flight, 86);
  EXPECT_EQ(metricValue(*f.registry, "vigie_probes_max_in_flight"), 86);
  EXPECT_EQ(metricValue(*f.registry, "vigie_fd_limit"), 200);
  EXPECT_EQ(metricValue(*f.registry, "vigie_fd_limit_reached"), 1);  // checks wait for it
  EXPECT_GT(metricValue(*f.registry, "vigie_fds_open"), 0);
}

TEST(Engine, AnAttemptWithoutDescriptorIsDroppedAndHoldsBackNewStarts) {
  Fixture f;
  for (int i = 0; i < 100; ++i) f.delays["svc" + std::to_string(i)] = 50ms;
  f.engine->apply(makeConfig(100, 200ms, 150ms, 60));
  f.runFor(450ms);
  auto before = f.engine->snapshot();
  for (const auto& c : before->checks) ASSERT_EQ(c->state, CheckState::up) << c->check->key;
  std::map<std::string, int> results;
  f.engine->on_result = [&](const CheckStatus& s) { ++results[s.check->key]; };

  f.no_fds = true;
  f.runFor(500ms);
  EXPECT_TRUE(results.empty());  // no result applied: vigie's limit, not the targets'
  auto during = f.engine->snapshot();
  for (const auto& c : during->checks) {
    EXPECT_EQ(c->state, CheckState::up) << c->check->key;
    EXPECT_EQ(c->last->status, Status::ok);
  }
  EXPECT_GT(metricValue(*f.registry, "vigie_fd_exhaustions_total"), 0);
  EXPECT_LT(f.engine->effectiveMaxInFlight(), 60u);
  EXPECT_EQ(metricValue(*f.registry, "vigie_fd_limit_reached"), 1);

  f.no_fds = false;
  f.runFor(600ms);
  EXPECT_EQ(results.size(), 100u);  // every check runs again, below the lowered cap
  EXPECT_LE(f.max_in_flight, 60);
}

TEST(Engine, StopCancelsEverything) {
  Fixture f;
  f.delays["svc0"] = -1ms;
  f.engine->apply(makeConfig(3, 100ms, 5000ms, 10));
  f.runFor(150ms);
  f.engine->stop();
  f.io.restart();
  const auto t0 = SteadyClock::now();
  f.io.run();  // must return: no timer or probe left pending
  EXPECT_LT(SteadyClock::now() - t0, 1s);
  EXPECT_EQ(f.in_flight, 0);
}

}  // namespace
}  // namespace vigie
