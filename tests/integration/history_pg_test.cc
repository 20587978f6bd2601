// The PostgreSQL history store on a real PostgreSQL started by the test: the
// store itself (restore, caps, migration, retention, the database restarting),
// then the vigie binary restarting with `history.store: postgres`, its database
// going away and coming back, and the password kept out of logs and metrics.

#include "collector/history_pg.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"
#include "tests/support/http_client.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;

// One server for the whole binary (initdb takes seconds), stopped after the last
// test; each test has its own database.
std::unique_ptr<Postgres>& server() {
  static std::unique_ptr<Postgres> instance;
  return instance;
}
Postgres& pg() { return *server(); }

class PgEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { server() = std::make_unique<Postgres>(); }
  void TearDown() override { server().reset(); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PgEnvironment);

std::string freshDatabase(const std::string& name) {
  pg().sql(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name));
  pg().sql(fmt::format("CREATE DATABASE {} OWNER \"{}\"", name, Postgres::user()));
  // The test server runs with synchronous_commit off, which an immediate stop
  // punishes by losing the last commits; the tests stop it on purpose.
  pg().sql(fmt::format("ALTER DATABASE {} SET synchronous_commit = on", name));
  return name;
}

std::string dsnFor(const std::string& db) {
  return pg().dsn(Postgres::user(), Postgres::password(), db);
}

std::string sql(const std::string& db, const std::string& statements) {
  std::string out = pg().sql(statements, db);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// -1 while the table does not exist yet (or the server is away).
long count(const std::string& db, const std::string& table_and_where) {
  try {
    return std::stol(sql(db, "SELECT count(*) FROM " + table_and_where));
  } catch (const std::exception&) {
    return -1;
  }
}


HistoryConfig historyConfig(const std::string& db,
                            Duration retention = std::chrono::hours(24 * 30)) {
  HistoryConfig c;
  c.store = "postgres";
  c.dsn = dsnFor(db);
  c.retention = retention;
  return c;
}

PostgresHistoryOptions fastOptions() {
  PostgresHistoryOptions o;
  o.batch_interval = 100ms;
  o.retry_min = 100ms;
  o.retry_max = 500ms;
  o.close_flush = 5000ms;
  return o;
}

// Whole microseconds (what the database keeps), fixed for the whole binary.
SystemClock::time_point secondsAgo(int s) {
  static const SystemClock::time_point base =
      std::chrono::time_point_cast<std::chrono::microseconds>(SystemClock::now()) +
      std::chrono::microseconds(123);
  return base - std::chrono::seconds(s);
}

std::int32_t bucketIndex(int tier, SystemClock::time_point t) {
  return static_cast<std::int32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count() /
      UptimeTracker::kWidthSeconds[static_cast<std::size_t>(tier)]);
}

// What vigie logs while it lives (spdlog's default logger, as main sets it up).
class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard lock(mutex_);
    return out_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    out_.append(buf.data(), buf.size());
  }
  void flush_() override {}

 private:
  std::string out_;
};

class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<CaptureSink>()) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() { return sink_->text(); }

 private:
  std::shared_ptr<CaptureSink> sink_;
};

// --- The store by itself ---

TEST(PostgresHistoryStore, RestoresResultsEventsAndUptimeAfterARestart) {
  const auto db = freshDatabase("h_restore");
  auto registry = std::make_shared<prometheus::Registry>();
  std::vector<StateChange> recorded;
  std::size_t buckets_sent = 0;
  {
    auto store = makePostgresHistoryStore(historyConfig(db), registry, fastOptions());
    auto empty = store->restore();
    EXPECT_TRUE(empty.events.empty());
    EXPECT_TRUE(empty.checks.empty());
    for (int i = 0; i < 70; ++i) {
      ResultSummary r;
      r.at = secondsAgo(100 - i);
      r.status = i % 3 == 0 ? Status::fail : i % 3 == 1 ? Status::warn : Status::ok;
      r.reason = i % 3 == 0 ? Reason::http_status : Reason::none;
      r.duration = 0.25f + static_cast<float>(i);
      store->recordResult("web/health", r);
    }
    for (int i = 0; i < 3; ++i) {
      store->recordResult("db/tcp",
                          ResultSummary{secondsAgo(10 - i), Status::ok, Reason::none, 0.5f});
    }
    const std::vector<std::tuple<StateChange::Subject, std::string, std::string>> changes{
        {StateChange::Subject::check, "web/health", ""},
        {StateChange::Subject::service, "web", "db"},
        {StateChange::Subject::cluster, "blue", ""},
    };
    std::uint64_t id = 100;
    for (const auto& [subject, name, cause] : changes) {
      StateChange e;
      e.id = id++;
      e.at = secondsAgo(50 - static_cast<int>(id));
      e.subject = subject;
      e.name = name;
      e.from = "up";
      e.to = "down";
      e.reason = Reason::http_status;
      e.detail = "got 503 'it''s \\ down'";
      e.cause = cause;
      store->recordChange(e);
      recorded.push_back(e);
    }
    // A detail cut inside a UTF-8 character and carrying a NUL must not poison the batch.
    StateChange bad = recorded[0];
    bad.detail = std::string("caf\xC3\xA9 \0 x\xC3", 10);
    store->recordChange(bad);
    recorded.push_back(bad);

    const auto now = SystemClock::now();
    const std::vector<UptimeTracker::StoredBucket> check_buckets{{0, bucketIndex(0, now), 9, 10},
                                                                 {3, bucketIndex(3, now), 90, 100}};
    store->recordUptime("web/health", false, {{0, bucketIndex(0, now), 1, 2}});
    store->recordUptime("web/health", false, check_buckets);  // the newest counts win
    store->recordUptime("web", true, {{1, bucketIndex(1, now), 3000, 3600}});
    buckets_sent = 3;
  }  // the destructor writes what waits

  auto store = makePostgresHistoryStore(historyConfig(db), nullptr, fastOptions());
  const auto t0 = std::chrono::steady_clock::now();
  auto restored = store->restore();
  const auto restore_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::cout << "restore of a small history: " << restore_ms.count() << " ms\n";

  ASSERT_EQ(restored.checks.count("web/health"), 1u);
  const auto& web = restored.checks.at("web/health");
  ASSERT_EQ(web.recent.size(), CheckStatus::kRecentResults);
  for (std::size_t k = 0; k < web.recent.size(); ++k) {
    const int i = static_cast<int>(k) + 10;  // the 60 newest of 70, oldest first
    SCOPED_TRACE(i);
    EXPECT_EQ(web.recent[k].at, secondsAgo(100 - i)) << "exact to the microsecond";
    EXPECT_EQ(web.recent[k].status, i % 3 == 0   ? Status::fail
                                    : i % 3 == 1 ? Status::warn
                                                 : Status::ok);
    EXPECT_EQ(web.recent[k].reason, i % 3 == 0 ? Reason::http_status : Reason::none);
    EXPECT_FLOAT_EQ(web.recent[k].duration, 0.25f + static_cast<float>(i));
  }
  ASSERT_EQ(restored.checks.count("db/tcp"), 1u);
  EXPECT_EQ(restored.checks.at("db/tcp").recent.size(), 3u);

  ASSERT_EQ(restored.events.size(), recorded.size());
  for (std::size_t k = 0; k < recorded.size(); ++k) {
    SCOPED_TRACE(k);
    const auto& got = restored.events[k];
    if (k > 0) {
      EXPECT_GT(got.id, restored.events[k - 1].id);
    }
    EXPECT_EQ(got.at, recorded[k].at);
    EXPECT_EQ(got.subject, recorded[k].subject);
    EXPECT_EQ(got.name, recorded[k].name);
    EXPECT_EQ(got.from, "up");
    EXPECT_EQ(got.to, "down");
    EXPECT_EQ(got.reason, Reason::http_status);
    EXPECT_EQ(got.cause, recorded[k].cause);
    if (k < 3) {
      EXPECT_EQ(got.detail, recorded[k].detail);
    }
  }
  EXPECT_EQ(restored.events.back().detail, "caf\xC3\xA9  x?");

  const auto& up = restored.checks.at("web/health").uptime;
  ASSERT_EQ(up.size(), 2u);
  for (const auto& b : up) {
    if (b.tier == 0) {
      EXPECT_EQ(b.good, 9u);
      EXPECT_EQ(b.total, 10u);
    } else {
      EXPECT_EQ(b.tier, 3);
      EXPECT_EQ(b.good, 90u);
      EXPECT_EQ(b.total, 100u);
    }
  }
  ASSERT_EQ(restored.services.count("web"), 1u);
  ASSERT_EQ(restored.services.at("web").size(), 1u);
  EXPECT_EQ(restored.services.at("web")[0].good, 3000u);
  EXPECT_EQ(restored.services.at("web")[0].total, 3600u);

  // What the first store counted, through its metrics.
  const auto text = prometheus::TextSerializer().Serialize(registry->Collect());
  EXPECT_NE(
      text.find(fmt::format("vigie_history_written_total {}", 73 + recorded.size() + buckets_sent)),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("vigie_history_dropped_total 0"), std::string::npos) << text;
}

TEST(PostgresHistoryStore, MigratesOnceEvenWithReplicasStartingTogether) {
  const auto db = freshDatabase("h_migrate");
  std::vector<std::thread> replicas;
  std::atomic<int> restored{0};
  for (int i = 0; i < 4; ++i) {
    replicas.emplace_back([&] {
      auto store = makePostgresHistoryStore(historyConfig(db), nullptr, fastOptions());
      store->restore();
      if (store->stats().errors == 0) ++restored;
    });
  }
  for (auto& t : replicas) t.join();
  EXPECT_EQ(restored.load(), 4);
  EXPECT_EQ(sql(db, "SELECT string_agg(version::text, ',') FROM vigie_schema_version"), "1");
  const auto tables = sql(db,
                          "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                          "WHERE tablename LIKE 'vigie_%'");
  EXPECT_EQ(tables, "vigie_events,vigie_results,vigie_schema_version,vigie_uptime");

  // Another start changes nothing.
  const auto applied = sql(db, "SELECT applied_at FROM vigie_schema_version");
  makePostgresHistoryStore(historyConfig(db), nullptr, fastOptions())->restore();
  EXPECT_EQ(sql(db, "SELECT applied_at FROM vigie_schema_version"), applied);
}

TEST(PostgresHistoryStore, RetentionRemovesOldRowsAtStart) {
  const auto db = freshDatabase("h_retention");
  makePostgresHistoryStore(historyConfig(db), nullptr, fastOptions())->restore();  // schema
  const auto now_s =
      std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch())
          .count();
  sql(db,
      fmt::format(
          "INSERT INTO vigie_results VALUES"
          " (now() - interval '3 hours', 'a/old', 0, 'none', 0.1),"
          " (now() - interval '1 hour', 'a/kept', 0, 'none', 0.1),"
          " (now() - interval '60 hours', 'a/past48h', 0, 'none', 0.1);"
          "INSERT INTO vigie_events (at, subject, name, from_state, to_state, reason, detail, "
          "cause)"
          " VALUES (now() - interval '5 hours', 'check', 'a/old', 'up', 'down', 'none', '', ''),"
          "        (now() - interval '1 hour', 'check', 'a/kept', 'up', 'down', 'none', '', '');"
          "INSERT INTO vigie_uptime VALUES"
          " ('check', 'a/kept', 3, {0}, 1, 1), ('check', 'a/old', 3, {1}, 1, 1),"
          " ('service', 'a', 0, {2}, 1, 1)",
          now_s / 86400, now_s / 86400 - 40, now_s / 300 - 31 * 288 - 1));

  // Retention 2 h: results older than that go, and so do events; buckets past 31 days go.
  auto store =
      makePostgresHistoryStore(historyConfig(db, std::chrono::hours(2)), nullptr, fastOptions());
  auto restored = store->restore();
  EXPECT_EQ(sql(db, "SELECT string_agg(check_key, ',') FROM vigie_results"), "a/kept");
  EXPECT_EQ(sql(db, "SELECT string_agg(name, ',') FROM vigie_events"), "a/kept");
  EXPECT_EQ(sql(db, "SELECT string_agg(subject, ',') FROM vigie_uptime"), "a/kept");
  EXPECT_EQ(restored.checks.count("a/old"), 0u);
  ASSERT_EQ(restored.events.size(), 1u);
  EXPECT_EQ(restored.events[0].name, "a/kept");

  // Results never outlive 48 h, whatever the retention.
  sql(db,
      "INSERT INTO vigie_results VALUES (now() - interval '60 hours', 'a/past48h', 0, 'none', 0.1),"
      " (now() - interval '40 hours', 'a/within48h', 0, 'none', 0.1)");
  makePostgresHistoryStore(historyConfig(db), nullptr, fastOptions())->restore();
  EXPECT_EQ(sql(db, "SELECT string_agg(check_key, ',' ORDER BY check_key) FROM vigie_results"),
            "a/kept,a/within48h");
}

TEST(PostgresHistoryStore, UnreachableDatabaseGivesAnEmptyRestoreAndNeverBlocksRecording) {
  HistoryConfig c;
  c.store = "postgres";
  c.dsn = fmt::format("postgresql://u:s3cret-pw@127.0.0.1:{}/x?sslmode=disable", freePort());
  LogCapture log;
  auto store = makePostgresHistoryStore(c, nullptr, fastOptions());
  const auto t0 = std::chrono::steady_clock::now();
  auto restored = store->restore();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(restored.events.empty());
  EXPECT_TRUE(restored.checks.empty());
  // Recording is a queue push: 200,000 results take far less than a second and the
  // oldest beyond the queue's capacity are counted as dropped.
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < 200000; ++i) {
    store->recordResult("a/b", ResultSummary{SystemClock::now(), Status::ok, Reason::none, 0.1f});
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 1s);
  const auto s = store->stats();
  EXPECT_FALSE(s.connected);
  EXPECT_EQ(s.dropped, 100000u);
  EXPECT_GE(s.errors, 1u);
  // ... and the log says so, once, without the password.
  ASSERT_TRUE(eventually(3s, [&] {
    return log.text().find(" history rows dropped (") != std::string::npos;
  })) << log.text();
  EXPECT_NE(log.text().find("the queue holds at most 100000 rows while "
                            "postgresql://u:***@127.0.0.1:"),
            std::string::npos)
      << log.text();
  EXPECT_NE(log.text().find("is away; the oldest go first (vigie_history_dropped_total)"),
            std::string::npos)
      << log.text();
  EXPECT_EQ(log.text().find("s3cret-pw"), std::string::npos) << log.text();
}

TEST(PostgresHistoryStore, KeepsWhatWaitsWhileTheDatabaseIsAwayAndWritesItOnReconnect) {
  const auto db = freshDatabase("h_away");
  LogCapture log;
  auto store = makePostgresHistoryStore(historyConfig(db), nullptr, fastOptions());
  store->restore();
  auto record = [&](int n) {
    for (int i = 0; i < n; ++i) {
      store->recordResult("a/b", ResultSummary{SystemClock::now(), Status::ok, Reason::none, 0.1f});
    }
  };
  record(100);
  ASSERT_TRUE(eventually(5s, [&] { return store->stats().written == 100; }));
  pg().stop();
  record(50);
  ASSERT_TRUE(eventually(5s, [&] { return !store->stats().connected; }));
  EXPECT_GE(store->stats().errors, 1u);
  record(50);
  pg().start();
  ASSERT_TRUE(eventually(10s, [&] { return store->stats().written == 200; }))
      << store->stats().written;
  EXPECT_TRUE(store->stats().connected);
  EXPECT_EQ(store->stats().dropped, 0u);
  EXPECT_EQ(count(db, "vigie_results"), 200);
  // One line when it goes, one when it is back; each says what happened.
  EXPECT_NE(log.text().find(": the server closed the connection; probing goes on"),
            std::string::npos)
      << log.text();
  EXPECT_NE(log.text().find("history store: reconnected to postgresql://vigie:***@"),
            std::string::npos)
      << log.text();
}

TEST(PostgresHistoryStore, WritesThousandsOfRowsPerSecond) {
  const auto db = freshDatabase("h_rate");
  auto options = fastOptions();
  auto store = makePostgresHistoryStore(historyConfig(db), nullptr, options);
  store->restore();
  constexpr int kRows = 50000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRows; ++i) {
    store->recordResult(fmt::format("svc{}/check", i % 500),
                        ResultSummary{SystemClock::now(), Status::ok, Reason::none, 0.1f});
  }
  ASSERT_TRUE(eventually(60s, [&] { return store->stats().written == kRows; }));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << fmt::format("wrote {} results in {:.2f} s: {:.0f} rows/s\n", kRows, secs,
                           kRows / secs);
  EXPECT_GT(kRows / secs, 5000.0);

  // Restoring 500 checks x 60 results from 50,000 rows.
  auto again = makePostgresHistoryStore(historyConfig(db), nullptr, options);
  const auto t1 = std::chrono::steady_clock::now();
  auto restored = again->restore();
  std::cout << fmt::format(
      "restored {} checks in {} ms\n", restored.checks.size(),
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t1)
          .count());
  EXPECT_EQ(restored.checks.size(), 500u);
  EXPECT_EQ(restored.checks.at("svc7/check").recent.size(), CheckStatus::kRecentResults);
}

// --- The vigie binary ---

std::optional<boost::json::object> checkDoc(const std::string& base, const std::string& key) {
  const auto r = httpGet(base + "/api/v1/checks/" + key);
  if (r.status != 200) return std::nullopt;
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  // Either the check itself or {"check": {...}}.
  if (const auto* inner = v.as_object().if_contains("check"); inner && inner->is_object()) {
    return inner->as_object();
  }
  return v.as_object();
}

std::uint64_t resultsTotal(const boost::json::object& c) {
  const auto& t = c.at("results_total").as_object();
  return static_cast<std::uint64_t>(t.at("ok").as_int64() + t.at("warn").as_int64() +
                                    t.at("fail").as_int64());
}

double metricValue(const std::string& metrics, const std::string& name) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// The password in every form it could leak in: raw, and as the DSN carries it.
void expectNoPassword(const std::string& text, const std::string& where) {
  const auto& pw = Postgres::password();
  EXPECT_EQ(text.find(pw), std::string::npos) << where << " shows the password";
  std::string encoded;
  for (unsigned char c : pw) {
    encoded += std::isalnum(c) ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  EXPECT_EQ(text.find(encoded), std::string::npos) << where << " shows the encoded password";
}

class VigieWithPostgres : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = makeTempDir("vigie-history");
    writeFile(nginx_.root() + "/ok.txt", "ok\n");
    port_ = freePort();
    base_ = fmt::format("http://127.0.0.1:{}", port_);
  }
  void TearDown() override { removeTree(dir_); }

  // One http check against nginx every 200 ms, down after one failure; the DSN
  // comes from the environment, as a user's would.
  std::string writeConfig() {
    const auto file = dir_ + "/vigie.yaml";
    writeFile(file,
              fmt::format("listen: \"127.0.0.1:{}\"\n"
                          "defaults: {{interval: 200ms, timeout: 200ms, failure_threshold: 1}}\n"
                          "services:\n"
                          "  - name: web\n"
                          "    checks:\n"
                          "      - name: page\n"
                          "        http: {{url: \"{}\"}}\n"
                          "history:\n"
                          "  store: postgres\n"
                          "  dsn: \"${{VIGIE_HISTORY_DSN}}\"\n",
                          port_, nginx_.url("/ok.txt")));
    return file;
  }

  std::unique_ptr<Process> startVigie(const std::string& db, const std::string& log) {
    auto p = std::make_unique<Process>(Process::Options{
        {VIGIE_BINARY, "--config", writeConfig()}, {{"VIGIE_HISTORY_DSN", dsnFor(db)}}, log, ""});
    return p;
  }

  Nginx nginx_;
  std::string dir_;
  int port_ = 0;
  std::string base_;
};

TEST_F(VigieWithPostgres, RecentResultsUptimeAndChangesSurviveARestart) {
  const auto db = freshDatabase("h_vigie_restart");
  auto vigie = startVigie(db, dir_ + "/log1");
  ASSERT_TRUE(eventually(10s, [&] {
    auto c = checkDoc(base_, "web/page");
    return c && c->at("state").as_string() == "up";
  })) << vigie->output();
  ::unlink((nginx_.root() + "/ok.txt").c_str());
  ASSERT_TRUE(eventually(5s, [&] {
    auto c = checkDoc(base_, "web/page");
    return c && c->at("state").as_string() == "down";
  })) << vigie->output();
  writeFile(nginx_.root() + "/ok.txt", "ok\n");
  ASSERT_TRUE(eventually(5s, [&] {
    auto c = checkDoc(base_, "web/page");
    return c && c->at("state").as_string() == "up";
  })) << vigie->output();
  // The changes are written within a second or so; uptime buckets every 10 s.
  ASSERT_TRUE(eventually(5s, [&] {
    return count(db, "vigie_events WHERE subject = 'check' AND name = 'web/page'") >= 2;
  })) << vigie->output();
  ASSERT_TRUE(eventually(15s, [&] {
    return count(db,
                 "vigie_uptime WHERE subject_kind = 'check' AND subject = 'web/page' AND "
                 "tier = 0 AND good < total") == 1;
  })) << vigie->output();
  const auto before = checkDoc(base_, "web/page");
  ASSERT_TRUE(before);
  const auto results_before = resultsTotal(*before);
  const auto events_before = count(db, "vigie_events");
  vigie->stop();
  const auto results_in_db = count(db, "vigie_results WHERE check_key = 'web/page'");
  EXPECT_GE(static_cast<std::uint64_t>(results_in_db), results_before) << "flushed at exit";
  const auto log1 = vigie->output();
  expectNoPassword(log1, "the first log");

  // Probing pauses while the new process restores: the first answer shows the past.
  const auto t0 = std::chrono::steady_clock::now();
  vigie = startVigie(db, dir_ + "/log2");
  std::optional<boost::json::object> after;
  ASSERT_TRUE(eventually(10s, [&] { return (after = checkDoc(base_, "web/page")).has_value(); }))
      << vigie->output();
  std::cout << "second start to first API answer: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0)
                   .count()
            << " ms\n";
  const auto& recent = after->at("recent").as_array();
  EXPECT_GT(recent.size(), resultsTotal(*after))
      << "recent results restored: " << boost::json::serialize(*after);
  EXPECT_GE(recent.size(), std::min<std::size_t>(results_before, CheckStatus::kRecentResults));
  bool saw_fail = false;
  for (const auto& r : recent) saw_fail |= r.at("status").as_string() == "fail";
  EXPECT_TRUE(saw_fail) << "the down spell is in the restored bar";
  const auto& h1 = after->at("uptime").as_object().at("1h");
  ASSERT_TRUE(h1.is_double()) << boost::json::serialize(*after);
  EXPECT_LT(h1.as_double(), 1.0) << "the restored bucket counts the failures";
  const auto& changes = after->at("changes").as_array();
  ASSERT_GE(changes.size(), 2u) << boost::json::serialize(*after);
  EXPECT_EQ(changes[changes.size() - 2].at("to").as_string(), "down");
  EXPECT_EQ(changes.back().at("to").as_string(), "up");

  // The events API serves them too (when this build has it).
  const auto events = httpGet(base_ + "/api/v1/events");
  if (events.status == 200) {
    EXPECT_NE(events.body.find("\"web/page\""), std::string::npos) << events.body;
  }
  EXPECT_GE(count(db, "vigie_events"), events_before) << "nothing was lost";
  const auto log2 = vigie->output();
  EXPECT_NE(log2.find("history store: restored"), std::string::npos) << log2;
  expectNoPassword(log2, "the second log");
  expectNoPassword(httpGet(base_ + "/metrics").body, "/metrics");
}

TEST_F(VigieWithPostgres, KeepsProbingWhileTheDatabaseIsAwayAndCatchesUpAfter) {
  const auto db = freshDatabase("h_vigie_away");
  auto vigie = startVigie(db, dir_ + "/log");
  ASSERT_TRUE(eventually(10s, [&] { return count(db, "vigie_results") > 0; })) << vigie->output();
  EXPECT_EQ(metricValue(httpGet(base_ + "/metrics").body, "vigie_history_connected"), 1);

  pg().stop();
  const auto away = checkDoc(base_, "web/page");
  ASSERT_TRUE(away);
  std::string metrics;
  ASSERT_TRUE(eventually(5s,
                         [&] {
                           metrics = httpGet(base_ + "/metrics").body;
                           return metricValue(metrics, "vigie_history_connected") == 0 &&
                                  metricValue(metrics, "vigie_history_errors_total") >= 1;
                         }))
      << metrics << vigie->output();
  std::this_thread::sleep_for(1s);
  const auto still = checkDoc(base_, "web/page");
  ASSERT_TRUE(still);
  EXPECT_GE(resultsTotal(*still), resultsTotal(*away) + 3) << "probing goes on";
  EXPECT_EQ(still->at("state").as_string(), "up");
  EXPECT_NE(vigie->output().find("history store: lost the database"), std::string::npos)
      << vigie->output();

  // A down spell while the database is away: the state in memory follows it.
  ::unlink((nginx_.root() + "/ok.txt").c_str());
  ASSERT_TRUE(eventually(5s, [&] {
    auto c = checkDoc(base_, "web/page");
    return c && c->at("state").as_string() == "down";
  })) << vigie->output();
  writeFile(nginx_.root() + "/ok.txt", "ok\n");
  ASSERT_TRUE(eventually(5s, [&] {
    auto c = checkDoc(base_, "web/page");
    return c && c->at("state").as_string() == "up";
  })) << vigie->output();
  EXPECT_EQ(metricValue(httpGet(base_ + "/metrics").body, "vigie_history_connected"), 0);

  pg().start();
  const auto t0 = std::chrono::steady_clock::now();
  const auto probed_while_away = resultsTotal(*checkDoc(base_, "web/page"));
  // Everything probed while the database was away is written once it is back.
  ASSERT_TRUE(eventually(40s, [&] {
    return static_cast<std::uint64_t>(count(db, "vigie_results")) >= probed_while_away;
  })) << vigie->output();
  std::cout << "caught up "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0)
                   .count()
            << " ms after the database came back\n";
  metrics = httpGet(base_ + "/metrics").body;
  EXPECT_EQ(metricValue(metrics, "vigie_history_connected"), 1);
  EXPECT_EQ(metricValue(metrics, "vigie_history_dropped_total"), 0);
  EXPECT_NE(vigie->output().find("history store: reconnected"), std::string::npos)
      << vigie->output();
  ASSERT_TRUE(eventually(5s, [&] {
    return count(db, "vigie_events WHERE name = 'web/page' AND to_state = 'up'") == 1;
  })) << "the changes made while the database was away are written";
  expectNoPassword(vigie->output(), "the log");
  expectNoPassword(metrics, "/metrics");

  // A restart shows the down spell that happened while the database was away.
  const auto total = resultsTotal(*checkDoc(base_, "web/page"));
  EXPECT_EQ(vigie->stop(), 0);
  vigie = startVigie(db, dir_ + "/log2");
  std::optional<boost::json::object> after;
  ASSERT_TRUE(eventually(10s, [&] { return (after = checkDoc(base_, "web/page")).has_value(); }))
      << vigie->output();
  const auto& changes = after->at("changes").as_array();
  ASSERT_GE(changes.size(), 2u) << boost::json::serialize(*after);
  EXPECT_EQ(changes[changes.size() - 2].at("to").as_string(), "down");
  EXPECT_EQ(changes.back().at("to").as_string(), "up");
  EXPECT_GE(after->at("recent").as_array().size(),
            std::min<std::uint64_t>(total, CheckStatus::kRecentResults))
      << "every result was written, and the newest are restored";
  expectNoPassword(vigie->output(), "the second log");
}

TEST_F(VigieWithPostgres, StartsWithTheDatabaseUnreachableAndSaysSoWithoutThePassword) {
  const auto file = writeConfig();
  const int closed = freePort();
  const std::string dsn =
      fmt::format("postgresql://{}:{}@127.0.0.1:{}/nowhere", "vigie", "pw-%27-in-url", closed);
  Process vigie(
      {{VIGIE_BINARY, "--config", file}, {{"VIGIE_HISTORY_DSN", dsn}}, dir_ + "/log", ""});
  ASSERT_TRUE(eventually(10s, [&] {
    auto c = checkDoc(base_, "web/page");
    return c && c->at("state").as_string() == "up";
  })) << vigie.output();
  const auto log = vigie.output();
  EXPECT_NE(log.find("starting with empty history"), std::string::npos) << log;
  EXPECT_NE(log.find(fmt::format("postgresql://vigie:***@127.0.0.1:{}/nowhere", closed)),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("pw-"), std::string::npos) << log;
  EXPECT_EQ(log.find("pw-'"), std::string::npos) << log;
  const auto metrics = httpGet(base_ + "/metrics").body;
  EXPECT_EQ(metricValue(metrics, "vigie_history_connected"), 0);
  EXPECT_EQ(metrics.find("pw-"), std::string::npos);
  EXPECT_EQ(vigie.stop(), 0) << "exits cleanly with its database away";
}

}  // namespace
}  // namespace vigie::test
