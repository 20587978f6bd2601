// The postgres probe against a real PostgreSQL 15 started by the test itself
// (tests/support/postgres.h): success and what it reports, each failure reason,
// timeouts on the loop and on the server, a saturated or stuck pool, the password
// never shown, and the engine seeing the server go down and come back.

#include "probes/postgres_probe.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <iostream>
#include <prometheus/registry.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "collector/config.h"
#include "collector/curl_driver.h"
#include "collector/engine.h"
#include "collector/worker_pool.h"
#include "probes/registry.h"
#include "tests/support/ports.h"
#include "tests/support/postgres.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;
using test::Postgres;

// initdb costs seconds: one cluster for the whole binary, started on first use.
// A failure to start is reported by every test that needs it, never skipped.
Postgres* cluster(std::string* error = nullptr) {
  static std::unique_ptr<Postgres> pg;
  static std::string start_error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    try {
      pg = std::make_unique<Postgres>();
    } catch (const std::exception& e) {
      start_error = e.what();
    }
  }
  if (error) *error = start_error;
  return pg.get();
}

#define REQUIRE_CLUSTER(pg)             \
  std::string pg##_error;               \
  Postgres* pg = cluster(&pg##_error);  \
  ASSERT_NE(pg, nullptr) << pg##_error; \
  if (!pg->running()) pg->start()

// Every string a result shows, to look for secrets in.
std::string everything(const Result& r) {
  std::string s = r.detail + "\n" + r.version + "\n";
  for (const auto& [k, v] : r.info) s += k + "=" + v + "\n";
  return s;
}

void expectNoSecret(const Result& r, const std::string& secret) {
  EXPECT_EQ(everything(r).find(secret), std::string::npos) << everything(r);
}

std::string sqlLiteral(const std::string& v) {
  std::string out = "'";
  for (char c : v) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

PostgresSpec spec(std::string dsn, std::string query = "SELECT 1",
                  std::optional<std::string> expect = std::nullopt) {
  PostgresSpec s;
  s.dsn = std::move(dsn);
  s.query = std::move(query);
  s.expect = std::move(expect);
  return s;
}

// A loop, a pool and a probe context, as the engine has them.
struct Loop {
  boost::asio::io_context io;
  CurlDriver curl{io};
  WorkerPool pool;
  ProbeContext ctx;
  explicit Loop(std::size_t threads = 2)
      : pool(io, threads, "pg-test"), ctx{io, curl, "", nullptr, &pool} {}
  ~Loop() { pool.shutdown(3s); }

  // Runs until `done` or `limit` passes; the work guard keeps run_for waiting for
  // the pool's post (and stops the loop when it goes with nothing else to do).
  template <typename Pred>
  void runUntil(Pred done, std::chrono::milliseconds limit) {
    io.restart();  // the previous guard's end may have stopped it
    auto work = boost::asio::make_work_guard(io);
    const auto until = SteadyClock::now() + limit;
    while (!done() && SteadyClock::now() < until) io.run_for(10ms);
  }
};

struct Timed {
  std::optional<Result> result;
  double wall = 0;  // seconds from start() to done
};

Timed probeOnce(Loop& loop, const PostgresSpec& s, std::chrono::milliseconds timeout = 5s) {
  PostgresProbe probe(loop.ctx, s);
  Timed t;
  const auto t0 = SteadyClock::now();
  probe.start(t0 + timeout, [&](Result r) {
    t.wall = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    t.result = std::move(r);
  });
  loop.runUntil([&] { return t.result.has_value(); }, timeout + 5s);
  return t;
}

Timed probeOnce(const PostgresSpec& s, std::chrono::milliseconds timeout = 5s) {
  Loop loop;
  return probeOnce(loop, s, timeout);
}

// Accepts TCP connections (the kernel does, through the backlog) and never says a
// word: a server that hangs before authentication.
class SilentServer {
 public:
  SilentServer() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    acceptor_.listen(64);
  }
  int port() const { return acceptor_.local_endpoint().port(); }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

TEST(PostgresReasons, ConnectMessages) {
  struct Case {
    const char* message;
    Reason reason;
  };
  const std::vector<Case> cases = {
      {"connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the "
       "server running on that host and accepting TCP/IP connections?",
       Reason::connect},
      {"could not translate host name \"db.invalid\" to address: Name or service not known",
       Reason::dns},
      {"connection to server at \"10.0.0.1\", port 5432 failed: timeout expired", Reason::timeout},
      {"connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password authentication "
       "failed for user \"vigie\"",
       Reason::auth},
      {"FATAL:  no pg_hba.conf entry for host \"10.1.2.3\", user \"x\", database \"y\", no "
       "encryption",
       Reason::auth},
      {"FATAL:  role \"ghost\" does not exist", Reason::auth},
      {"fe_sendauth: no password supplied", Reason::auth},
      {"FATAL:  database \"nope\" does not exist", Reason::database},
      {"server does not support SSL, but SSL was required", Reason::tls},
      {"connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  the database system is "
       "starting up",
       Reason::connect},
      {"connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: No such file or "
       "directory",
       Reason::connect},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(postgresConnectReason(c.message), c.reason) << c.message;
  }
}

TEST(PostgresReasons, SqlStates) {
  const std::vector<std::pair<const char*, Reason>> cases = {
      {"57014", Reason::timeout},   {"28P01", Reason::auth},    {"28000", Reason::auth},
      {"3D000", Reason::database},  {"08006", Reason::connect}, {"57P01", Reason::connect},
      {"25006", Reason::read_only}, {"42P01", Reason::query},   {"22012", Reason::query},
      {"", Reason::query},
  };
  for (const auto& [state, reason] : cases) EXPECT_EQ(postgresSqlReason(state), reason) << state;
}

TEST(PostgresTarget, NamesHostPortDatabaseNeverTheSecret) {
  EXPECT_EQ(postgresTarget("postgresql://u:s3cret@db.example:6543/app?sslmode=disable"),
            "db.example:6543/app");
  EXPECT_EQ(postgresTarget("host=db.example user=u password='s3 cret' dbname=app"),
            "db.example:5432/app");
  EXPECT_EQ(postgresTarget("dbname=app"), "local socket:5432/app");
  const std::string bad = postgresTarget("postgresql://u:s3cret@host:notaport/app");
  EXPECT_EQ(bad.find("s3cret"), std::string::npos) << bad;
}

TEST(PostgresRegistry, KindIsAvailable) {
  EXPECT_TRUE(probeKindAvailable(PostgresSpec{}));
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, ""};
  CheckConfig check;
  check.key = "db/pg";
  check.spec = spec("postgresql://u@127.0.0.1:1/x");
  EXPECT_NE(dynamic_cast<PostgresProbe*>(makeProbe(ctx, check).get()), nullptr);
}

TEST(PostgresProbe, SucceedsAndReportsServer) {
  REQUIRE_CLUSTER(pg);
  const std::vector<std::pair<const char*, std::string>> forms = {
      {"uri", pg->dsn(Postgres::user(), Postgres::password(), Postgres::database())},
      {"key=value", pg->keyValueDsn(Postgres::user(), Postgres::password(), Postgres::database())},
  };
  for (const auto& [form, dsn] : forms) {
    SCOPED_TRACE(form);
    const Timed t = probeOnce(spec(dsn));
    ASSERT_TRUE(t.result);
    const Result& r = *t.result;
    EXPECT_EQ(r.status, Status::ok) << r.detail;
    EXPECT_EQ(r.reason, Reason::none);
    EXPECT_TRUE(std::regex_match(r.version, std::regex(R"(15\.\d+)"))) << r.version;
    EXPECT_EQ(r.info.at("server_version"), r.version);
    EXPECT_EQ(r.info.at("in_recovery"), "false");
    EXPECT_EQ(r.info.at("read_only"), "false");
    EXPECT_EQ(r.info.at("database"), "app");
    EXPECT_EQ(r.info.at("user"), "vigie");
    EXPECT_GT(std::stod(r.info.at("query_seconds")), 0);
    EXPECT_GT(r.duration, 0);
    EXPECT_LT(r.duration, 2);
    EXPECT_NE(r.started, SystemClock::time_point{});
    expectNoSecret(r, Postgres::password());
  }
}

TEST(PostgresProbe, ExpectedValue) {
  REQUIRE_CLUSTER(pg);
  const std::string dsn = pg->dsn(Postgres::user(), Postgres::password(), Postgres::database());
  struct Case {
    const char* query;
    const char* expect;
    Status status;
    const char* detail;
  };
  const std::vector<Case> cases = {
      {"SELECT 40 + 2", "42", Status::ok, ""},
      {"SELECT 2", "1", Status::fail, "expected \"1\", got \"2\""},
      {"SELECT 1 WHERE false", "1", Status::fail, "expected \"1\", got no rows"},
      {"SELECT NULL", "1", Status::fail, "expected \"1\", got NULL"},
      {"SELECT 'a', 'b'", "a", Status::ok, ""},
  };
  for (const auto& c : cases) {
    const Timed t = probeOnce(spec(dsn, c.query, c.expect));
    ASSERT_TRUE(t.result) << c.query;
    EXPECT_EQ(t.result->status, c.status) << c.query << ": " << t.result->detail;
    EXPECT_EQ(t.result->detail, c.detail) << c.query;
    if (c.status == Status::fail) {
      EXPECT_EQ(t.result->reason, Reason::query);
      EXPECT_EQ(t.result->version, t.result->info.at("server_version"));  // known once connected
    }
  }
}

TEST(PostgresProbe, FailureReasons) {
  REQUIRE_CLUSTER(pg);
  const int closed = test::freePort();
  const std::string good_pw = Postgres::password();
  const std::string app = Postgres::database();
  pg->sql(
      "DROP DATABASE IF EXISTS ro;\nCREATE DATABASE ro OWNER vigie;\n"
      "ALTER DATABASE ro SET default_transaction_read_only = on");
  struct Case {
    std::string name;
    std::string dsn;
    std::string query;
    Reason reason;
    std::string detail_part;
    std::string secret;  // must not appear anywhere
  };
  const std::vector<Case> cases = {
      {"wrong password", pg->dsn("vigie", "Wr0ng-pass'word", app), "SELECT 1", Reason::auth,
       "password authentication failed for user \"vigie\"", "Wr0ng-pass'word"},
      {"wrong password key=value", pg->keyValueDsn("vigie", "Wr0ng pass", app), "SELECT 1",
       Reason::auth, "password authentication failed", "Wr0ng pass"},
      {"unknown role", pg->dsn("ghost", good_pw, app), "SELECT 1", Reason::auth,
       "password authentication failed for user \"ghost\"", good_pw},
      {"unknown database", pg->dsn("vigie", good_pw, "nope"), "SELECT 1", Reason::database,
       "database \"nope\" does not exist", good_pw},
      {"refused", fmt::format("postgresql://vigie:{}@127.0.0.1:{}/app", "pw-refused", closed),
       "SELECT 1", Reason::connect, "Connection refused", "pw-refused"},
      {"sql error", pg->dsn("vigie", good_pw, app), "SELECT * FROM no_such_table", Reason::query,
       "query failed: ERROR: relation \"no_such_table\" does not exist", good_pw},
      {"division by zero", pg->dsn("vigie", good_pw, app), "SELECT 1/0", Reason::query,
       "(SQLSTATE 22012)", good_pw},
      {"write on a read-only database", pg->dsn("vigie", good_pw, "ro"), "CREATE TABLE t (x int)",
       Reason::read_only, "read-only transaction", good_pw},
      {"invalid DSN", "host=127.0.0.1 password=pw-invalid-dsn nonsense", "SELECT 1",
       Reason::connect, "invalid DSN", "pw-invalid-dsn"},
      // The safety net: a server message echoing the password is scrubbed.
      {"echoed password", pg->dsn("vigie", good_pw, app), "SELECT " + sqlLiteral(good_pw) + "::int",
       Reason::query, "invalid input syntax for type integer: \"***\"", good_pw},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Timed t = probeOnce(spec(c.dsn, c.query));
    ASSERT_TRUE(t.result);
    EXPECT_EQ(t.result->status, Status::fail);
    EXPECT_EQ(t.result->reason, c.reason) << t.result->detail;
    EXPECT_NE(t.result->detail.find(c.detail_part), std::string::npos) << t.result->detail;
    EXPECT_EQ(t.result->detail.find('\n'), std::string::npos) << t.result->detail;
    expectNoSecret(*t.result, c.secret);
  }
}

TEST(PostgresProbe, ReadOnlyDatabaseIsReportedNotFailed) {
  REQUIRE_CLUSTER(pg);
  pg->sql(
      "DROP DATABASE IF EXISTS ro2;\nCREATE DATABASE ro2 OWNER vigie;\n"
      "ALTER DATABASE ro2 SET default_transaction_read_only = on");
  const Timed t = probeOnce(spec(pg->dsn(Postgres::user(), Postgres::password(), "ro2")));
  ASSERT_TRUE(t.result);
  EXPECT_EQ(t.result->status, Status::ok) << t.result->detail;
  EXPECT_EQ(t.result->info.at("read_only"), "true");
  EXPECT_EQ(t.result->info.at("in_recovery"), "false");
}

TEST(PostgresProbe, SlowQueryTimesOutAtTheDeadlineAndTheServerCancelsIt) {
  REQUIRE_CLUSTER(pg);
  Loop loop(2);
  const std::string dsn = pg->dsn(Postgres::user(), Postgres::password(), Postgres::database());
  const Timed t = probeOnce(loop, spec(dsn, "SELECT pg_sleep(5)"), 1s);
  ASSERT_TRUE(t.result);
  EXPECT_EQ(t.result->reason, Reason::timeout) << t.result->detail;
  EXPECT_NEAR(t.wall, 1.0, 0.25);
  // vigie's deadline and the server's statement_timeout (set to the same 1 s) race:
  // on a loaded machine the server's cancellation may arrive first. Both say so.
  // "1s", or a few ms less when start() ran after the deadline was taken (loaded CI).
  const std::regex ours(fmt::format("^query on 127\\.0\\.0\\.1:{}/app did not return within "
                                    "(1s|9[0-9]{{2}}ms)$",
                                    pg->port()));
  const std::string server = "query cancelled by statement_timeout: ";
  EXPECT_TRUE(std::regex_search(t.result->detail, ours) || t.result->detail.rfind(server, 0) == 0)
      << t.result->detail;
  expectNoSecret(*t.result, Postgres::password());

  // statement_timeout cancels the query on the server: the worker comes back well
  // before pg_sleep(5) would end, and nothing keeps sleeping there.
  const auto t0 = SteadyClock::now();
  loop.runUntil([&] { return loop.pool.busy() == 0; }, 3s);
  EXPECT_EQ(loop.pool.busy(), 0u);
  EXPECT_LT(SteadyClock::now() - t0, 1s);
  EXPECT_EQ(pg->sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
                    "'SELECT pg_sleep%'"),
            "0\n");

  // The synchronous form reports the server's cancellation itself.
  const Result direct =
      PostgresProbe::runCheck(spec(dsn, "SELECT pg_sleep(5)"), SteadyClock::now() + 500ms);
  EXPECT_EQ(direct.reason, Reason::timeout) << direct.detail;
  EXPECT_NE(direct.detail.find("query cancelled by statement_timeout"), std::string::npos)
      << direct.detail;
  EXPECT_LT(direct.duration, 1.5);
}

TEST(PostgresProbe, SilentServerTimesOutInConnectAndFreesTheWorker) {
  SilentServer silent;
  Loop loop(2);
  const std::string dsn =
      fmt::format("host=127.0.0.1 port={} user=vigie password=pw-silent dbname=app", silent.port());
  const Timed t = probeOnce(loop, spec(dsn), 1s);
  ASSERT_TRUE(t.result);
  EXPECT_EQ(t.result->reason, Reason::timeout) << t.result->detail;
  EXPECT_NEAR(t.wall, 1.0, 0.25);
  EXPECT_EQ(t.result->detail,
            fmt::format("connect to 127.0.0.1:{}/app did not finish within 1s", silent.port()));
  // libpq's connect_timeout (2 s at least) ends the blocked connect soon after.
  loop.runUntil([&] { return loop.pool.busy() == 0; }, 4s);
  EXPECT_EQ(loop.pool.busy(), 0u);
}

TEST(PostgresProbe, StuckPreviousAttemptHoldsOneWorkerOnly) {
  SilentServer silent;
  Loop loop(2);
  const std::string dsn = fmt::format("postgresql://vigie:pw@127.0.0.1:{}/app", silent.port());
  PostgresProbe probe(loop.ctx, spec(dsn));
  std::vector<Result> results;
  for (int i = 0; i < 3; ++i) {
    const std::size_t want = results.size() + 1;
    probe.start(SteadyClock::now() + 300ms, [&](Result r) { results.push_back(std::move(r)); });
    loop.runUntil([&] { return results.size() == want; }, 2s);
    ASSERT_EQ(results.size(), want);
    EXPECT_EQ(results.back().reason, Reason::timeout);
    EXPECT_LE(loop.pool.busy(), 1u);
  }
  EXPECT_EQ(results[0].detail.rfind("connect to", 0), 0u) << results[0].detail;
  EXPECT_EQ(results[2].detail.rfind("the previous attempt's connect on 127.0.0.1:", 0), 0u)
      << results[2].detail;
}

TEST(PostgresProbe, SaturatedPoolFailsAtOnce) {
  SilentServer silent;
  Loop loop(1);  // 1 running + 2 waiting at most
  const std::string dsn = fmt::format("postgresql://vigie:pw@127.0.0.1:{}/app", silent.port());
  std::vector<std::unique_ptr<PostgresProbe>> probes;
  std::vector<std::optional<Result>> results(4);
  std::vector<double> walls(4);
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < 4; ++i) {
    probes.push_back(std::make_unique<PostgresProbe>(loop.ctx, spec(dsn)));
    probes.back()->start(t0 + 1s, [&, i](Result r) {
      walls[i] = std::chrono::duration<double>(SteadyClock::now() - t0).count();
      results[i] = std::move(r);
    });
  }
  loop.runUntil(
      [&] {
        for (const auto& r : results) {
          if (!r) return false;
        }
        return true;
      },
      3s);
  for (const auto& r : results) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->reason, Reason::timeout) << r->detail;
  }
  EXPECT_EQ(results[3]->detail, "all 1 database workers are busy or stuck (pool saturated)");
  EXPECT_LT(walls[3], 0.5);
  // "within 1s", or a few ms less when the loop was late to queue it (loaded CI).
  EXPECT_TRUE(std::regex_search(results[1]->detail,
                                std::regex("^no database worker free within (1s|9[0-9]{2}ms): 1 of 1 busy")))
      << results[1]->detail;
  EXPECT_GE(walls[1], 0.9);
  EXPECT_LT(walls[1], 2.0);
}

TEST(PostgresProbe, CancelAndDestroyWhileTheJobRuns) {
  REQUIRE_CLUSTER(pg);
  Loop loop(2);
  const std::string dsn = pg->dsn(Postgres::user(), Postgres::password(), Postgres::database());
  bool called = false;
  {
    PostgresProbe probe(loop.ctx, spec(dsn, "SELECT pg_sleep(0.3)"));
    probe.start(SteadyClock::now() + 2s, [&](Result) { called = true; });
    loop.runUntil([] { return false; }, 50ms);
    probe.cancel();
    loop.runUntil([] { return false; }, 500ms);
    EXPECT_FALSE(called);
    // Destroyed while a second job is still on its worker: its result must go nowhere.
    probe.start(SteadyClock::now() + 2s, [&](Result) { called = true; });
    loop.runUntil([] { return false; }, 50ms);
  }
  loop.runUntil([&] { return loop.pool.busy() == 0; }, 2s);
  loop.runUntil([] { return false; }, 50ms);
  EXPECT_FALSE(called);
  EXPECT_EQ(loop.pool.busy(), 0u);
}

// Starts `query` through the probe and, once the server shows it running, calls
// `kill` from another thread (what an operator or a crash does to a busy server).
Timed probeKilledMidQuery(Postgres* pg, const std::string& query,
                          const std::function<void()>& kill) {
  Loop loop(2);
  const std::string dsn = pg->dsn(Postgres::user(), Postgres::password(), Postgres::database());
  std::atomic<bool> seen{false};
  std::thread killer([&] {
    const auto until = SteadyClock::now() + 5s;
    while (SteadyClock::now() < until) {
      const std::string n = pg->sql(
          "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = " +
          sqlLiteral(query));
      if (n != "0\n") {
        seen = true;
        kill();
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  const Timed t = probeOnce(loop, spec(dsn, query), 8s);
  killer.join();
  EXPECT_TRUE(seen) << "the query never showed in pg_stat_activity";
  loop.runUntil([&] { return loop.pool.busy() == 0; }, 3s);
  EXPECT_EQ(loop.pool.busy(), 0u) << "the worker is free again";
  return t;
}

TEST(PostgresProbe, BackendTerminatedDuringTheQueryIsAPreciseFailureAndTheNextAttemptRecovers) {
  REQUIRE_CLUSTER(pg);
  const std::string query = "SELECT pg_sleep(4) AS terminated_here";
  const Timed t = probeKilledMidQuery(pg, query, [&] {
    pg->sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = " +
            sqlLiteral(query));
  });
  ASSERT_TRUE(t.result);
  EXPECT_EQ(t.result->status, Status::fail);
  EXPECT_EQ(t.result->reason, Reason::connect) << t.result->detail;
  EXPECT_LT(t.wall, 3.0) << "failed when the backend went, not at the deadline";
  std::cout << fmt::format("backend terminated mid-query: failed after {:.2f} s: {}\n", t.wall,
                           t.result->detail);
  EXPECT_EQ(t.result->detail.rfind(fmt::format("connection to 127.0.0.1:{}/app lost during the "
                                               "query: ",
                                               pg->port()),
                                   0),
            0u)
      << t.result->detail;
  EXPECT_NE(t.result->detail.find("terminating connection due to administrator command"),
            std::string::npos)
      << t.result->detail;
  EXPECT_EQ(t.result->detail.find('\n'), std::string::npos) << t.result->detail;
  EXPECT_EQ(t.result->info.at("database"), "app") << "what was known before the loss stays";
  expectNoSecret(*t.result, Postgres::password());

  const Timed next = probeOnce(spec(pg->dsn(Postgres::user(), Postgres::password(), "app")));
  ASSERT_TRUE(next.result);
  EXPECT_EQ(next.result->status, Status::ok) << next.result->detail;
}

// Stops the shared cluster (and starts it again): runs after the tests above.
TEST(PostgresProbe, YServerKilledDuringTheQueryIsAPreciseFailureAndTheNextAttemptRecovers) {
  REQUIRE_CLUSTER(pg);
  const std::string query = "SELECT pg_sleep(4) AS killed_here";
  const Timed t = probeKilledMidQuery(pg, query, [&] { pg->stop(); });
  ASSERT_TRUE(t.result);
  EXPECT_EQ(t.result->status, Status::fail);
  EXPECT_EQ(t.result->reason, Reason::connect) << t.result->detail;
  EXPECT_LT(t.wall, 3.5) << "failed when the server went, not at the deadline";
  std::cout << fmt::format("server stopped (immediate) mid-query: failed after {:.2f} s: {}\n",
                           t.wall, t.result->detail);
  EXPECT_NE(t.result->detail.find("server closed the connection unexpectedly"),
            std::string::npos)
      << t.result->detail;
  EXPECT_EQ(t.result->detail.rfind(fmt::format("connection to 127.0.0.1:{}/app lost during the "
                                               "query: ",
                                               pg->port()),
                                   0),
            0u)
      << t.result->detail;
  EXPECT_EQ(t.result->detail.find('\n'), std::string::npos) << t.result->detail;
  expectNoSecret(*t.result, Postgres::password());

  // While it is down: refused at connect; once back, the next attempt passes.
  const std::string dsn = pg->dsn(Postgres::user(), Postgres::password(), Postgres::database());
  const Timed down = probeOnce(spec(dsn));
  ASSERT_TRUE(down.result);
  EXPECT_EQ(down.result->reason, Reason::connect) << down.result->detail;
  EXPECT_NE(down.result->detail.find("Connection refused"), std::string::npos)
      << down.result->detail;
  pg->start();
  const Timed next = probeOnce(spec(dsn));
  ASSERT_TRUE(next.result);
  EXPECT_EQ(next.result->status, Status::ok) << next.result->detail;
}

// Runs last in this file: it stops the shared cluster (and starts it again).
TEST(PostgresProbe, ZEngineSeesTheServerGoDownAndComeBack) {
  REQUIRE_CLUSTER(pg);
  const std::string dsn = pg->dsn(Postgres::user(), Postgres::password(), Postgres::database());
  const std::string yaml = R"(
services:
  - name: db
    checks:
      - name: pg
        interval: 300ms
        timeout: 300ms
        failure_threshold: 2
        postgres:
          dsn: ")" + dsn + R"("
)";
  auto config = parseConfig(yaml, "postgres.yaml");
  boost::asio::io_context io;
  Engine engine(io, std::make_shared<prometheus::Registry>());
  struct Seen {
    Result result;
    CheckState state;
    bool pending;
  };
  std::vector<Seen> seen;
  engine.on_result = [&](const CheckStatus& s) { seen.push_back({*s.last, s.state, s.pending}); };
  engine.apply(config);
  auto runUntil = [&](auto pred, std::chrono::milliseconds limit) {
    const auto until = SteadyClock::now() + limit;
    while (!pred() && SteadyClock::now() < until) io.run_for(20ms);
  };
  auto lastState = [&] { return seen.empty() ? CheckState::unknown : seen.back().state; };

  runUntil([&] { return lastState() == CheckState::up; }, 5s);
  ASSERT_EQ(lastState(), CheckState::up) << (seen.empty() ? "" : seen.back().result.detail);
  EXPECT_EQ(seen.back().result.version, engine.snapshot()->checks.at(0)->last->version);

  pg->stop();
  const std::size_t before = seen.size();
  runUntil([&] { return lastState() == CheckState::down; }, 5s);
  ASSERT_EQ(lastState(), CheckState::down);
  // failure_threshold 2: the first failure only makes the check pending.
  ASSERT_GE(seen.size() - before, 2u);
  EXPECT_EQ(seen[before].state, CheckState::up);
  EXPECT_TRUE(seen[before].pending);
  for (std::size_t i = before; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].result.status, Status::fail);
    EXPECT_EQ(seen[i].result.reason, Reason::connect) << seen[i].result.detail;
    expectNoSecret(seen[i].result, Postgres::password());
  }

  pg->start();
  runUntil([&] { return lastState() == CheckState::up; }, 10s);
  EXPECT_EQ(lastState(), CheckState::up) << seen.back().result.detail;
  EXPECT_EQ(seen.back().result.status, Status::ok);
  engine.stop();
}

}  // namespace
}  // namespace vigie
