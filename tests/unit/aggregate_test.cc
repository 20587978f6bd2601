// Services, groups and clusters from checks; dependency causes; maintenance;
// flapping; uptime windows; events. Time is passed in: no clocks, no sleeps.

#include <map>
#include <random>

#include <gtest/gtest.h>

#include <map>

#include "collector/aggregate.h"
#include "collector/check_state.h"
#include "collector/config.h"
#include "collector/history.h"
#include "collector/uptime.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;

SystemClock::time_point at(std::int64_t unix_seconds) {
  return SystemClock::time_point(std::chrono::seconds(unix_seconds));
}

// A config from a compact description: service -> its checks (name, critical), deps.
struct Svc {
  std::string name;
  std::vector<std::pair<std::string, bool>> checks;
  std::vector<std::string> depends_on;
  std::string group;
};

std::shared_ptr<Config> makeConfig(const std::vector<Svc>& services) {
  auto cfg = std::make_shared<Config>();
  for (const auto& s : services) {
    ServiceConfig sc;
    sc.name = s.name;
    sc.group = s.group;
    sc.depends_on = s.depends_on;
    for (const auto& [name, critical] : s.checks) {
      CheckConfig c;
      c.name = name;
      c.key = s.name + "/" + name;
      c.critical = critical;
      sc.checks.push_back(c);
    }
    cfg->services.push_back(std::move(sc));
  }
  return cfg;
}

// A snapshot with each check in the given state (by key; unknown when absent).
Snapshot snapshotOf(std::shared_ptr<const Config> cfg,
                    const std::map<std::string, CheckState>& states) {
  Snapshot snap;
  snap.config = cfg;
  for (const auto& svc : cfg->services) {
    for (const auto& c : svc.checks) {
      auto st = std::make_shared<CheckStatus>();
      st->check = std::shared_ptr<const CheckConfig>(cfg, &c);
      st->service = std::shared_ptr<const ServiceConfig>(cfg, &svc);
      auto it = states.find(c.key);
      st->state = it == states.end() ? CheckState::unknown : it->second;
      if (st->state != CheckState::unknown) {
        Result r = st->state == CheckState::down ? Result::failure(Reason::http_status, "got 503")
                                                 : Result::ok();
        if (st->state == CheckState::degraded) r.status = Status::warn;
        st->last = r;
      }
      snap.checks.push_back(st);
    }
  }
  return snap;
}

const ServiceStatus& service(const Snapshot& s, const std::string& name) {
  for (const auto& x : s.services) {
    if (x.service->name == name) return x;
  }
  throw std::runtime_error("no service " + name);
}

TEST(Aggregate, ServiceStateRules) {
  auto cfg = makeConfig({{"s", {{"crit", true}, {"extra", false}}}});
  struct Case {
    CheckState crit, extra;
    ServiceState want;
  };
  const auto U = CheckState::unknown, P = CheckState::up, D = CheckState::down,
             G = CheckState::degraded;
  const Case cases[] = {
      {U, U, ServiceState::unknown}, {P, U, ServiceState::up},
      {U, P, ServiceState::up},      {P, P, ServiceState::up},
      {G, P, ServiceState::degraded}, {P, G, ServiceState::degraded},
      {P, D, ServiceState::degraded}, {D, P, ServiceState::down},
      {D, D, ServiceState::down},    {U, D, ServiceState::degraded},
      {D, U, ServiceState::down},
  };
  for (const auto& c : cases) {
    auto snap = snapshotOf(cfg, {{"s/crit", c.crit}, {"s/extra", c.extra}});
    aggregate(snap, at(1'800'000'000));
    EXPECT_EQ(service(snap, "s").state, c.want)
        << checkStateName(c.crit) << "/" << checkStateName(c.extra);
  }
}

TEST(Aggregate, DependencyRootCause) {
  // db <- api <- web ; db <- batch ; cache (independent) <- web
  auto cfg = makeConfig({{"db", {{"tcp", true}}, {}},
                         {"cache", {{"tcp", true}}, {}},
                         {"api", {{"health", true}}, {"db"}},
                         {"web", {{"health", true}}, {"api", "cache"}},
                         {"batch", {{"health", true}}, {"db"}},
                         {"report", {{"health", true}}, {"db"}}});
  auto snap = snapshotOf(cfg, {{"db/tcp", CheckState::down},
                               {"cache/tcp", CheckState::up},
                               {"api/health", CheckState::down},
                               {"web/health", CheckState::down},
                               {"batch/health", CheckState::down},
                               {"report/health", CheckState::up}});
  aggregate(snap, at(1'800'000'000));
  EXPECT_EQ(service(snap, "db").cause, "");  // the root is caused by nothing
  EXPECT_EQ(service(snap, "db").state, ServiceState::down);
  EXPECT_EQ(service(snap, "api").cause, "db");
  EXPECT_EQ(service(snap, "web").cause, "db");  // through api, which is down too
  EXPECT_EQ(service(snap, "batch").cause, "db");
  EXPECT_EQ(service(snap, "report").cause, "");  // not failing: not caused
  EXPECT_EQ(service(snap, "report").state, ServiceState::up);

  // A chain broken by a dependency that is up: web's failure is its own.
  snap = snapshotOf(cfg, {{"db/tcp", CheckState::down},
                          {"api/health", CheckState::up},
                          {"web/health", CheckState::down}});
  aggregate(snap, at(1'800'000'000));
  EXPECT_EQ(service(snap, "web").cause, "");

  // Two roots.
  snap = snapshotOf(cfg, {{"db/tcp", CheckState::down},
                          {"cache/tcp", CheckState::down},
                          {"api/health", CheckState::down},
                          {"web/health", CheckState::down}});
  aggregate(snap, at(1'800'000'000));
  EXPECT_EQ(service(snap, "web").cause, "db");
  EXPECT_EQ(service(snap, "web").causes, (std::vector<std::string>{"db", "cache"}));
}

TEST(Aggregate, MaintenanceGroupsAndClusters) {
  auto cfg = makeConfig({{"a", {{"h", true}}, {}, "g1"},
                         {"b", {{"h", true}}, {}, "g1"},
                         {"c", {{"h", true}}, {}, ""}});
  cfg->groups = {{"g1", "team one"}, {"empty", ""}};
  MaintenanceWindow w;
  w.services = {"b"};
  w.start = at(1'800'000'000);
  w.duration = std::chrono::hours(2);
  w.reason = "database upgrade";
  cfg->maintenance = {w};
  cfg->clusters = {{"blue", {"a", "b"}, "127.0.0.1:1"}, {"green", {"a"}, ""}};
  const std::map<std::string, CheckState> states{
      {"a/h", CheckState::up}, {"b/h", CheckState::down}, {"c/h", CheckState::degraded}};

  auto snap = snapshotOf(cfg, states);
  aggregate(snap, at(1'800'000'000 + 60));
  EXPECT_EQ(service(snap, "b").state, ServiceState::maintenance);
  EXPECT_EQ(service(snap, "b").underlying, ServiceState::down);
  EXPECT_EQ(service(snap, "b").maintenance, "database upgrade");
  ASSERT_EQ(snap.groups.size(), 3u);  // g1, empty, then "" for c
  EXPECT_EQ(snap.groups[0].state, ServiceState::maintenance);
  EXPECT_EQ(snap.groups[0].counts[static_cast<int>(ServiceState::up)], 1u);
  EXPECT_EQ(snap.groups[1].state, ServiceState::unknown);  // no services
  EXPECT_EQ(snap.groups[2].name, "");
  EXPECT_EQ(snap.groups[2].state, ServiceState::degraded);
  ASSERT_EQ(snap.clusters.size(), 2u);
  EXPECT_EQ(snap.clusters[0].state, ServiceState::maintenance);
  EXPECT_FALSE(snap.clusters[0].ready);
  EXPECT_EQ(snap.clusters[0].reason, "b: maintenance (database upgrade)");
  EXPECT_TRUE(snap.clusters[1].ready);

  // After the window: b is down, and says why.
  snap = snapshotOf(cfg, states);
  aggregate(snap, at(1'800'000'000 + 7200));
  EXPECT_EQ(service(snap, "b").state, ServiceState::down);
  EXPECT_EQ(snap.clusters[0].state, ServiceState::down);
  EXPECT_EQ(snap.clusters[0].reason, "b: down (h http_status: got 503)");
  // Before it.
  snap = snapshotOf(cfg, states);
  aggregate(snap, at(1'800'000'000 - 1));
  EXPECT_EQ(service(snap, "b").state, ServiceState::down);
}

std::vector<ResultSummary> results(const std::string& pattern) {
  std::vector<ResultSummary> out;
  for (char c : pattern) {
    out.push_back({{}, c == 'o' ? Status::ok : c == 'w' ? Status::warn : Status::fail});
  }
  return out;
}

TEST(Flapping, WeightedChanges) {
  EXPECT_DOUBLE_EQ(flapPercent(results("")), 0);
  EXPECT_DOUBLE_EQ(flapPercent(results("oooooooooooooooooooo")), 0);
  // One change, newest: weight 1.2 of 20 slots = 6%.
  EXPECT_NEAR(flapPercent(results("oooooooooooooooooooof")), 6.0, 1e-9);
  // One change, oldest of the window: 0.8 -> 4%.
  EXPECT_NEAR(flapPercent(results("foooooooooooooooooooo")), 4.0, 1e-9);
  // Changes older than 20 transitions do not count.
  EXPECT_NEAR(flapPercent(results("ofoooooooooooooooooooo")), 4.0, 1e-9);
  // Every transition a change: the weights sum to 20 -> 100%.
  EXPECT_NEAR(flapPercent(results("ofofofofofofofofofofo")), 100.0, 1e-9);
  EXPECT_NEAR(flapPercent(results("owowowowowowowowowowo")), 100.0, 1e-9);
}

TEST(Flapping, HysteresisThroughApplyResult) {
  CheckStatus st;
  auto feed = [&](Status s) {
    Result r = s == Status::fail ? Result::failure(Reason::timeout, "x") : Result::ok();
    r.status = s;
    st = *applyResult(st, r, Thresholds{1, 1});
  };
  for (int i = 0; i < 20; ++i) feed(Status::ok);
  EXPECT_FALSE(st.flapping);
  // Alternate: 6 changes among the newest -> above 30%.
  for (int i = 0; i < 6; ++i) feed(i % 2 ? Status::ok : Status::fail);
  EXPECT_GT(st.flap_percent, kFlapHigh);
  EXPECT_TRUE(st.flapping);
  // Calm down: the percentage decays; flapping stops only below 25%.
  bool stopped = false;
  double at_stop = 0;
  for (int i = 0; i < 25 && !stopped; ++i) {
    feed(Status::ok);
    if (!st.flapping) {
      stopped = true;
      at_stop = st.flap_percent;
    } else {
      EXPECT_GE(st.flap_percent, kFlapLow);
    }
  }
  EXPECT_TRUE(stopped);
  EXPECT_LT(at_stop, kFlapLow);
}

TEST(Uptime, CountsAndWindows) {
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;  // midnight UTC
  UptimeTracker u;
  EXPECT_FALSE(u.ratios(at(t0))[0].has_value());
  for (int i = 0; i < 60; ++i) u.add(at(t0 + i * 60), i % 4 == 0 ? 0 : 1, 1);  // 1 h, 75% up
  auto r = u.ratios(at(t0 + 3599));
  ASSERT_TRUE(r[0] && r[1] && r[2] && r[3]);
  EXPECT_DOUBLE_EQ(*r[0], 0.75);
  EXPECT_DOUBLE_EQ(*r[3], 0.75);
  // Two hours later the 1 h window is empty, the others still hold it.
  r = u.ratios(at(t0 + 3 * 3600));
  EXPECT_FALSE(r[0]);
  EXPECT_DOUBLE_EQ(*r[1], 0.75);
  // 25 hours later: only 7 d and 30 d.
  r = u.ratios(at(t0 + 25 * 3600));
  EXPECT_FALSE(r[1]);
  EXPECT_DOUBLE_EQ(*r[2], 0.75);
  // 8 days later only 30 d; 31 days later nothing.
  r = u.ratios(at(t0 + 8 * 86400));
  EXPECT_FALSE(r[2]);
  EXPECT_DOUBLE_EQ(*r[3], 0.75);
  EXPECT_FALSE(u.ratios(at(t0 + 31 * 86400))[3]);
  // A bucket slot reused for a newer period starts from zero.
  u.add(at(t0 + 31 * 86400), 1, 1);
  EXPECT_DOUBLE_EQ(*u.ratios(at(t0 + 31 * 86400))[3], 1.0);
}

TEST(Uptime, SpansSplitAcrossBuckets) {
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;
  UptimeTracker u;
  u.addSpan(at(t0), at(t0 + 1800), true);           // 30 min up
  u.addSpan(at(t0 + 1800), at(t0 + 2400), false);   // 10 min down
  u.addSpan(at(t0 + 2400), at(t0 + 2400), false);   // empty: nothing
  u.addSpan(at(t0 + 3000), at(t0 + 2400), false);   // reversed: nothing
  auto r = u.ratios(at(t0 + 2400));
  EXPECT_DOUBLE_EQ(*r[0], 0.75);
  EXPECT_DOUBLE_EQ(*r[1], 0.75);
  // Store and restore.
  UptimeTracker copy;
  copy.restore(u.buckets(at(t0 + 2400)));
  EXPECT_EQ(copy.ratios(at(t0 + 2400)), r);
  EXPECT_LE(u.recent(at(t0 + 2400)).size(), u.buckets(at(t0 + 2400)).size());
}

TEST(Uptime, OlderResultsInsideTheWindowCountOlderOutsideDoNot) {
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;
  UptimeTracker u;
  u.add(at(t0 + 3000), 1, 1);
  u.add(at(t0 + 2000), 0, 1);              // late, still inside every window: counted
  u.add(at(t0 + 3000 - 40 * 86400), 0, 1);  // older than 30 days: dropped
  auto r = u.ratios(at(t0 + 3000));
  EXPECT_DOUBLE_EQ(*r[0], 0.5);
  EXPECT_DOUBLE_EQ(*r[3], 0.5);
  // A jump of more than a tier's window clears it whole.
  u.add(at(t0 + 3000 + 2 * 3600), 1, 1);
  r = u.ratios(at(t0 + 3000 + 2 * 3600));
  EXPECT_DOUBLE_EQ(*r[0], 1.0);
  EXPECT_NEAR(*r[1], 2.0 / 3.0, 1e-12);
  EXPECT_EQ(u.buckets(at(t0 + 3000 + 2 * 3600)).size(), 1u + 2u + 1u + 1u);
}

TEST(Uptime, CountersHoldAWholeBucketOfMillisecondsExactly) {
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;
  UptimeTracker u;
  u.addSpan(at(t0), at(t0 + 86400), true);  // a whole day up, counted in ms
  u.addSpan(at(t0 + 86400), at(t0 + 86400) + std::chrono::milliseconds(1), false);
  const auto b = u.buckets(at(t0 + 86400));
  std::array<std::uint64_t, 4> total{};
  std::array<std::uint64_t, 4> largest{};
  for (const auto& x : b) {
    total[x.tier] += x.total;
    largest[x.tier] = std::max<std::uint64_t>(largest[x.tier], x.total);
    EXPECT_LE(x.total, UptimeTracker::kMax[x.tier]);
  }
  EXPECT_EQ(largest[0], 300'000u);
  EXPECT_EQ(largest[1], 3'600'000u);
  EXPECT_EQ(largest[2], 21'600'000u);
  EXPECT_EQ(largest[3], 86'400'000u);
  // Tier 3 holds the whole day and the 1 ms after it.
  EXPECT_EQ(total[3], 86'400'001u);
  EXPECT_NEAR(*u.ratios(at(t0 + 86400))[3], 86'400'000.0 / 86'400'001.0, 1e-15);
  // What the previous version stored (32-bit counts) restores exactly while it fits.
  UptimeTracker copy;
  copy.restore(b);
  EXPECT_EQ(copy.buckets(at(t0 + 86400)).size(), b.size());
  for (std::size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(copy.buckets(at(t0 + 86400))[i].good, b[i].good);
    EXPECT_EQ(copy.buckets(at(t0 + 86400))[i].total, b[i].total);
  }
}

TEST(Uptime, ABucketSaturatesAtItsBoundKeepingItsRatio) {
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;
  const auto idx = [&](std::size_t tier) {
    return static_cast<std::int32_t>(t0 / UptimeTracker::kWidthSeconds[tier]);
  };
  const std::uint32_t max0 = UptimeTracker::kMax[0];
  EXPECT_EQ(max0, (1u << 19) - 1);
  UptimeTracker u;
  // One result short of the 5-minute bucket's bound, all good.
  u.restore({{0, idx(0), max0 - 1, max0 - 1}});
  u.add(at(t0), 1, 1);  // fills it
  u.add(at(t0), 0, 1);  // past the bound: left out of tier 0, counted above
  u.add(at(t0), 0, 5);
  auto find = [&](std::uint8_t tier) {
    for (const auto& x : u.buckets(at(t0))) {
      if (x.tier == tier) return x;
    }
    return UptimeTracker::StoredBucket{};
  };
  EXPECT_EQ(find(0).total, max0);
  EXPECT_EQ(find(0).good, max0);
  EXPECT_DOUBLE_EQ(*u.ratios(at(t0))[0], 1.0);
  EXPECT_EQ(find(1).total, 7u);
  EXPECT_EQ(find(1).good, 1u);
  // A partial fit counts what fits, good first.
  UptimeTracker v;
  v.restore({{0, idx(0), 0, max0 - 2}});
  v.add(at(t0), 3, 5);
  const auto b = v.buckets(at(t0));
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b[0].tier, 0);
  EXPECT_EQ(b[0].total, max0);
  EXPECT_EQ(b[0].good, 2u);
  // A stored count past the bound (possible before the counters narrowed) comes
  // back scaled to it, ratio kept; good never exceeds total.
  UptimeTracker w;
  w.restore({{0, idx(0), 3'000'000, 4'000'000}, {3, idx(3), 900'000'000, 800'000'000}});
  const auto r = w.ratios(at(t0));
  EXPECT_NEAR(*r[0], 0.75, 1e-6);
  EXPECT_DOUBLE_EQ(*r[3], 1.0);
  for (const auto& x : w.buckets(at(t0))) {
    EXPECT_EQ(x.total, UptimeTracker::kMax[x.tier]);
    EXPECT_LE(x.good, x.total);
  }
  // The tracker is no bigger than its packed counters (19, 22, 25, 27 bits twice a
  // bucket: 567 bytes) and the four heads.
  EXPECT_LE(sizeof(UptimeTracker), 584u);
}

// The packed counters against a plain model: random results at random times
// (mostly forward, some late), every bucket compared exactly after each one.
TEST(Uptime, PackedBucketsMatchAPlainModel) {
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;
  struct Event {
    std::array<std::int64_t, 4> index;
    std::array<bool, 4> kept;
    std::uint32_t good, total;
  };
  std::vector<Event> events;
  std::array<std::int64_t, 4> head{-1, -1, -1, -1};
  UptimeTracker u;
  std::mt19937 rng(42);
  std::int64_t now = t0;
  for (int i = 0; i < 3000; ++i) {
    now += std::uniform_int_distribution<std::int64_t>(0, 1500)(rng);
    const std::int64_t s = now - (rng() % 8 == 0 ? std::int64_t(rng() % (9 * 86400)) : 0);
    const auto total = static_cast<std::uint32_t>(rng() % 100 + 1);
    const auto good = static_cast<std::uint32_t>(rng() % (total + 1));
    Event e{};
    for (std::size_t t = 0; t < 4; ++t) {
      const auto n = static_cast<std::int64_t>(UptimeTracker::kCounts[t]);
      e.index[t] = s / UptimeTracker::kWidthSeconds[t];
      e.kept[t] = e.index[t] > head[t] - n;
      head[t] = std::max(head[t], e.index[t]);
    }
    e.good = good;
    e.total = total;
    events.push_back(e);
    u.add(at(s), good, total);

    std::map<std::pair<int, std::int64_t>, std::pair<std::uint64_t, std::uint64_t>> want;
    for (std::size_t t = 0; t < 4; ++t) {
      const auto n = static_cast<std::int64_t>(UptimeTracker::kCounts[t]);
      const std::int64_t from =
          std::max(now / UptimeTracker::kWidthSeconds[t] - n + 1, head[t] - n + 1);
      for (const Event& x : events) {
        if (x.kept[t] && x.index[t] >= from && x.index[t] <= head[t]) {
          auto& w = want[{static_cast<int>(t), x.index[t]}];
          w.first += x.good;
          w.second += x.total;
        }
      }
    }
    std::map<std::pair<int, std::int64_t>, std::pair<std::uint64_t, std::uint64_t>> got;
    for (const auto& b : u.buckets(at(now))) got[{b.tier, b.index}] = {b.good, b.total};
    ASSERT_EQ(got, want) << "after result " << i;
  }
}

TEST(Events, PagingNewestFirst) {
  EventLog log(5);
  for (int i = 0; i < 8; ++i) {
    StateChange e;
    e.name = "s" + std::to_string(i);
    e.subject = i % 2 ? StateChange::Subject::service : StateChange::Subject::check;
    log.append(e);
  }
  EXPECT_EQ(log.size(), 5u);  // oldest dropped
  auto page = log.page(0, 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]->id, 8u);
  EXPECT_EQ(page[1]->id, 7u);
  page = log.page(page.back()->id, 10);
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page[0]->id, 6u);
  EXPECT_EQ(page[2]->id, 4u);
  page = log.page(0, 10, [](const StateChange& e) {
    return e.subject == StateChange::Subject::service;
  });
  EXPECT_EQ(page.size(), 3u);  // ids 8, 6 and 4 (services: even ids)
}

// Service ratios are kept between updates when they cannot have moved, and refreshed
// within 10 s when they can; a state change shows at once.
TEST(Aggregator, ServiceUptimeRatiosRefreshRule) {
  auto cfg = makeConfig({{"db", {{"tcp", true}}, {}}});
  EventLog log;
  Aggregator agg(log, nullptr);
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;
  auto step = [&](std::int64_t t, CheckState db) {
    auto snap = snapshotOf(cfg, {{"db/tcp", db}});
    aggregate(snap, at(t));
    agg.update(snap, at(t));
    return service(snap, "db").uptime;
  };
  EXPECT_FALSE(step(t0, CheckState::up)[0]);  // nothing counted yet
  // Up: every window exactly 1 from the first counted second on, and it stays so.
  for (std::int64_t t = t0 + 1; t <= t0 + 30; ++t) {
    const auto r = step(t, CheckState::up);
    for (const auto& w : r) {
      ASSERT_TRUE(w) << t;
      EXPECT_EQ(*w, 1.0) << t;
    }
  }
  // Down: shown at once (60 s down after 30 s up... the change itself counts the
  // last up second), then the ratio keeps moving, at least every 10 s.
  auto r = step(t0 + 31, CheckState::down);
  ASSERT_TRUE(r[0]);
  EXPECT_DOUBLE_EQ(*r[0], 1.0);  // the second just ended was up
  double last = *r[0];
  std::int64_t last_move = t0 + 31;
  for (std::int64_t t = t0 + 32; t <= t0 + 90; ++t) {
    r = step(t, CheckState::down);
    ASSERT_TRUE(r[0]);
    if (*r[0] != last) {
      EXPECT_LT(*r[0], last) << t;
      EXPECT_LE(t - last_move, 10) << t;
      last = *r[0];
      last_move = t;
    }
    EXPECT_LE(t - last_move, 10) << t;
  }
  // 31 s up, 59 s down so far: within 10 s of 31/90.
  EXPECT_NEAR(last, 31.0 / 90.0, 10.0 / 90.0);
  // Up again: the change recomputes at once (the 60 s down just counted).
  r = step(t0 + 91, CheckState::up);
  EXPECT_DOUBLE_EQ(*r[0], 31.0 / 91.0);
}

TEST(Aggregator, ServiceEventsUptimeAndLastChange) {
  auto cfg = makeConfig({{"db", {{"tcp", true}}, {}}, {"api", {{"h", true}}, {"db"}}});
  cfg->clusters = {{"blue", {"api"}, ""}};
  EventLog log;
  Aggregator agg(log, nullptr);
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;

  auto step = [&](std::int64_t t, CheckState db, CheckState api) {
    auto snap = snapshotOf(cfg, {{"db/tcp", db}, {"api/h", api}});
    aggregate(snap, at(t));
    agg.update(snap, at(t));
    return snap;
  };
  auto snap = step(t0, CheckState::up, CheckState::up);
  EXPECT_EQ(log.size(), 0u);  // unknown -> up is not news
  EXPECT_EQ(service(snap, "api").last_change, at(t0));
  snap = step(t0 + 600, CheckState::down, CheckState::down);
  // db down, api down because of db, and the cluster down: three events.
  auto events = log.page(0, 10);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2]->name, "db");
  EXPECT_EQ(events[2]->to, "down");
  EXPECT_EQ(events[2]->reason, Reason::http_status);
  EXPECT_EQ(events[2]->detail, "tcp: got 503");
  EXPECT_EQ(events[1]->name, "api");
  EXPECT_EQ(events[1]->cause, "db");
  EXPECT_EQ(events[0]->subject, StateChange::Subject::cluster);
  ASSERT_TRUE(service(snap, "api").changes);
  EXPECT_EQ(service(snap, "api").changes->back().to, "down");
  // The dependent failing first, its dependency a moment later: a second event
  // says why, with the cause.
  {
    EventLog log2;
    Aggregator agg2(log2, nullptr);
    auto s1 = snapshotOf(cfg, {{"db/tcp", CheckState::up}, {"api/h", CheckState::up}});
    aggregate(s1, at(t0));
    agg2.update(s1, at(t0));
    s1 = snapshotOf(cfg, {{"db/tcp", CheckState::up}, {"api/h", CheckState::down}});
    aggregate(s1, at(t0 + 1));
    agg2.update(s1, at(t0 + 1));
    s1 = snapshotOf(cfg, {{"db/tcp", CheckState::down}, {"api/h", CheckState::down}});
    aggregate(s1, at(t0 + 2));
    agg2.update(s1, at(t0 + 2));
    const auto api = log2.page(0, 10, [](const StateChange& e) { return e.name == "api"; });
    ASSERT_EQ(api.size(), 2u);
    EXPECT_EQ(api[0]->from, "down");
    EXPECT_EQ(api[0]->to, "down");
    EXPECT_EQ(api[0]->cause, "db");
    EXPECT_EQ(api[1]->cause, "");
  }
  // 10 min up then 10 min down: 50% over the hour.
  snap = step(t0 + 1200, CheckState::up, CheckState::up);
  EXPECT_DOUBLE_EQ(*service(snap, "api").uptime[0], 0.5);
  EXPECT_EQ(service(snap, "api").last_change, at(t0 + 1200));
  EXPECT_EQ(log.size(), 6u);
  // A removed service is forgotten: re-added, it starts from unknown again.
  auto small = makeConfig({{"db", {{"tcp", true}}, {}}});
  auto s2 = snapshotOf(small, {{"db/tcp", CheckState::up}});
  aggregate(s2, at(t0 + 1300));
  agg.update(s2, at(t0 + 1300));
  snap = step(t0 + 1400, CheckState::up, CheckState::up);
  EXPECT_EQ(service(snap, "api").last_change, at(t0 + 1400));
  EXPECT_FALSE(service(snap, "api").uptime[0]);
}

// Nothing re-aggregates on a clock: the history flush counts a service's time up to
// the flush itself, from the state of the last update.
TEST(Aggregator, ServiceBucketsCountTheTimeSinceTheLastUpdate) {
  auto cfg = makeConfig({{"db", {{"tcp", true}}, {}}, {"api", {{"h", true}}, {}}});
  EventLog log;
  Aggregator agg(log, nullptr);
  const std::int64_t t0 = 1'800'000'000 - 1'800'000'000 % 86400;
  auto snap = snapshotOf(cfg, {{"db/tcp", CheckState::up}, {"api/h", CheckState::down}});
  aggregate(snap, at(t0));
  agg.update(snap, at(t0));
  const auto sum = [](const std::vector<UptimeTracker::StoredBucket>& b, std::uint8_t tier) {
    std::pair<std::uint64_t, std::uint64_t> gt{0, 0};
    for (const auto& x : b) {
      if (x.tier != tier) continue;
      gt.first += x.good;
      gt.second += x.total;
    }
    return gt;
  };
  auto buckets = agg.serviceBuckets(at(t0 + 90));  // no update in between
  std::map<std::string, std::vector<UptimeTracker::StoredBucket>> by(buckets.begin(),
                                                                     buckets.end());
  ASSERT_EQ(by.size(), 2u);
  EXPECT_EQ(sum(by["db"], 0), std::make_pair(std::uint64_t{90'000}, std::uint64_t{90'000}));
  EXPECT_EQ(sum(by["api"], 0), std::make_pair(std::uint64_t{0}, std::uint64_t{90'000}));
  // Counted once: the next update adds only the time since the flush.
  snap = snapshotOf(cfg, {{"db/tcp", CheckState::up}, {"api/h", CheckState::down}});
  aggregate(snap, at(t0 + 100));
  agg.update(snap, at(t0 + 100));
  buckets = agg.serviceBuckets(at(t0 + 100));
  by = {buckets.begin(), buckets.end()};
  EXPECT_EQ(sum(by["db"], 0), std::make_pair(std::uint64_t{100'000}, std::uint64_t{100'000}));
  EXPECT_EQ(sum(by["api"], 1), std::make_pair(std::uint64_t{0}, std::uint64_t{100'000}));
  EXPECT_DOUBLE_EQ(*service(snap, "api").uptime[0], 0.0);
}

}  // namespace
}  // namespace vigie

namespace vigie {
namespace {

// Prints what one aggregation costs at scale (the engine runs one a second); the
// bound only catches a complexity blow-up, the figure goes to the notes.
TEST(AggregateScale, FiftyThousandChecks) {
  std::vector<Svc> services;
  for (int i = 0; i < 10000; ++i) {
    Svc s{"svc-" + std::to_string(i), {}, {}, "g" + std::to_string(i % 50)};
    for (int c = 0; c < 5; ++c) s.checks.push_back({"c" + std::to_string(c), c < 3});
    if (i % 10 != 0) s.depends_on = {"svc-" + std::to_string(i - i % 10)};
    services.push_back(std::move(s));
  }
  auto cfg = makeConfig(services);
  std::map<std::string, CheckState> states;
  for (int i = 0; i < 10000; i += 7) states["svc-" + std::to_string(i) + "/c0"] = CheckState::down;
  for (const auto& s : cfg->services) {
    for (const auto& c : s.checks) states.try_emplace(c.key, CheckState::up);
  }
  auto snap = snapshotOf(cfg, states);
  EventLog log;
  Aggregator agg(log, nullptr);
  const auto start = std::chrono::steady_clock::now();
  constexpr int kRounds = 5;
  for (int r = 0; r < kRounds; ++r) {
    aggregate(snap, at(1'800'000'000 + r));
    agg.update(snap, at(1'800'000'000 + r));
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      kRounds;
  std::printf("aggregate + update, 10,000 services / 50,000 checks: %.1f ms per round\n", ms);
  EXPECT_EQ(snap.services.size(), 10000u);  // the time is printed, not asserted (bench/)
}

}  // namespace
}  // namespace vigie
