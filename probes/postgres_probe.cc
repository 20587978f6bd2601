#include "probes/postgres_probe.h"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vigie {

struct PostgresProbe::Shared {
  // Guards `io`: a pool thread posts under the lock, and the probe's destructor
  // clears it under the lock, so nothing is posted to a loop that may be gone.
  std::mutex mu;
  boost::asio::io_context* io = nullptr;
  PostgresProbe* probe = nullptr;  // loop thread only
};

namespace {

// Where a job is, for the timeout detail.
enum class Phase { queued, connect, query, done };

constexpr std::size_t kOwnPoolThreads = 1;
constexpr std::size_t kMaxDetail = 400;

std::string describeTimeout(SteadyClock::duration d) {
  const auto ms = std::chrono::round<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

double secondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// libpq messages span lines ("...failed: FATAL:  password ...\n\tIs the server
// running...?"): one line, single spaces, bounded.
std::string oneLine(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxDetail));
  for (char c : s) {
    const bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (space) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
    if (out.size() >= kMaxDetail) break;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

void scrub(std::string& s, const std::string& secret) {
  if (secret.empty()) return;
  for (auto p = s.find(secret); p != std::string::npos; p = s.find(secret, p + 3)) {
    s.replace(p, secret.size(), "***");
  }
}

// The last line of defence for secrets: whatever a server or libpq put in a
// message, the password never leaves the worker.
void scrubResult(Result& r, const std::string& password) {
  if (password.empty()) return;
  scrub(r.detail, password);
  scrub(r.version, password);
  std::map<std::string, std::string> info;
  for (const auto& [key, value] : r.info) {
    std::string k = key;
    std::string v = value;
    scrub(k, password);
    scrub(v, password);
    info.emplace(std::move(k), std::move(v));
  }
  r.info = std::move(info);
}

struct ParsedDsn {
  std::vector<std::pair<std::string, std::string>> options;  // as given, in order
  std::string error;                                         // parse error, empty when parsed
  std::string get(std::string_view key) const {
    for (const auto& [k, v] : options) {
      if (k == key) return v;
    }
    return "";
  }
};

// libpq's own parser reads both forms (URI and key=value) exactly as a
// connection would, and decodes %-escapes, so the password found is the one
// sent.
ParsedDsn parseDsn(const std::string& dsn) {
  ParsedDsn out;
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (opts == nullptr) {
    out.error = err ? oneLine(err) : "out of memory";
    if (err) PQfreemem(err);
    return out;
  }
  for (const PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && o->val[0] != '\0') out.options.emplace_back(o->keyword, o->val);
  }
  PQconninfoFree(opts);
  return out;
}

std::string quoteConninfo(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

std::string targetOf(const ParsedDsn& p) {
  std::string host = p.get("host");
  if (host.empty()) host = p.get("hostaddr");
  if (host.empty()) host = "local socket";
  std::string port = p.get("port");
  if (port.empty()) port = "5432";
  return fmt::format("{}:{}/{}", host, port, p.get("dbname"));
}

// The DSN as key=value pairs with the attempt's timeouts added. Ours replace
// the user's, except a smaller positive connect_timeout, and keepalive settings
// the user chose on purpose.
std::string conninfoWithTimeouts(const ParsedDsn& p, SteadyClock::duration remaining) {
  const auto ms = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(remaining).count());
  std::int64_t secs = (ms + 999) / 1000;
  const std::string user_timeout = p.get("connect_timeout");
  if (!user_timeout.empty()) {
    const long v = std::strtol(user_timeout.c_str(), nullptr, 10);
    if (v > 0 && v < secs) secs = v;
  }
  std::string out;
  for (const auto& [k, v] : p.options) {
    if (k == "connect_timeout") continue;
    out += fmt::format("{}={} ", k, quoteConninfo(v));
  }
  out += fmt::format("connect_timeout={}", secs);
  // A server that vanishes mid-query (no RST) would otherwise hold the worker
  // for the kernel's two hours of keepalive silence.
  if (p.get("keepalives_idle").empty()) {
    out += fmt::format(" keepalives_idle={} keepalives_interval=1 keepalives_count=3", secs);
  }
  if (p.get("tcp_user_timeout").empty()) {
    out += fmt::format(" tcp_user_timeout={}", std::max<std::int64_t>(ms, 1000));
  }
  return out;
}

// server_version_num: 150018 -> "15.18"; before 10, 90624 -> "9.6.24".
std::string versionString(int v) {
  if (v <= 0) return "";
  if (v >= 100000) return fmt::format("{}.{}", v / 10000, v % 10000);
  return fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100);
}

std::string boolWord(std::string_view pg) {
  return pg == "t" || pg == "on" || pg == "true" ? "true" : "false";
}

Result connectFailure(const std::string& message, const std::string& target) {
  std::string detail = oneLine(message);
  const Reason reason = postgresConnectReason(detail);
  // libpq names the server in most messages, not in these.
  if (detail.empty()) detail = "connection failed";
  if (detail.find("connection to server") == std::string::npos &&
      detail.find("could not translate host name") == std::string::npos) {
    detail = fmt::format("connect to {}: {}", target, detail);
  }
  // libpq's "could not create socket: Too many open files": vigie's limit.
  if (detail.find(std::strerror(EMFILE)) != std::string::npos ||
      detail.find(std::strerror(ENFILE)) != std::string::npos) {
    Result r = Result::failure(Reason::internal,
                               "vigie is out of file descriptors (ulimit -n): " + detail);
    r.out_of_descriptors = true;
    return r;
  }
  return Result::failure(reason, std::move(detail));
}

Result sqlFailure(const std::string& message, const std::string& sqlstate,
                  std::string_view what) {
  const Reason reason = postgresSqlReason(sqlstate);
  std::string detail = oneLine(message);
  if (!sqlstate.empty()) detail += fmt::format(" (SQLSTATE {})", sqlstate);
  if (reason == Reason::timeout) {
    detail = fmt::format("{} cancelled by statement_timeout: {}", what, detail);
  } else {
    detail = fmt::format("{} failed: {}", what, detail);
  }
  return Result::failure(reason, std::move(detail));
}

void setPhase(std::atomic<Phase>* phase, Phase p) {
  if (phase) phase->store(p, std::memory_order_relaxed);
}

// libpq handles, freed on every path.
struct Conn {
  PGconn* c = nullptr;
  ~Conn() {
    if (c) PQfinish(c);
  }
};
struct Res {
  PGresult* r = nullptr;
  ~Res() {
    if (r) PQclear(r);
  }
};

// One statement, blocking. A failure says what the server or libpq said, with
// its SQLSTATE; a connection lost meanwhile (the backend terminated, the server
// killed or gone) says so with libpq's own words, which libpqxx 6.4 loses ("Could
// not obtain client encoding"): that is why the probe talks to libpq itself.
std::optional<Result> exec(PGconn* conn, const std::string& sql, std::string_view what,
                           const std::string& target, Res& out) {
  out.r = PQexec(conn, sql.c_str());
  const ExecStatusType st = out.r ? PQresultStatus(out.r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
    return std::nullopt;
  }
  const char* state = out.r ? PQresultErrorField(out.r, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state ? state : "";
  std::string message = out.r ? PQresultErrorMessage(out.r) : "";
  if (message.empty()) message = PQerrorMessage(conn);
  const Reason reason = postgresSqlReason(sqlstate);
  if (PQstatus(conn) == CONNECTION_BAD &&
      (sqlstate.empty() || reason == Reason::connect)) {
    std::string why = oneLine(PQerrorMessage(conn));
    if (why.empty()) why = oneLine(message);
    return Result::failure(
        Reason::connect, fmt::format("connection to {} lost during the {}: {}", target, what, why));
  }
  if (st != PGRES_FATAL_ERROR && st != PGRES_NONFATAL_ERROR && st != PGRES_BAD_RESPONSE) {
    return Result::failure(Reason::query, fmt::format("{} failed: unexpected result {}", what,
                                                      PQresStatus(st)));
  }
  return sqlFailure(message, sqlstate, what);
}

// The attempt, blocking. `phase` (may be null) follows it for the loop's
// detail.
Result runAttempt(const PostgresSpec& spec, const ParsedDsn& dsn, SteadyClock::time_point deadline,
                  std::atomic<Phase>* phase) {
  const std::string target = targetOf(dsn);
  if (!dsn.error.empty()) return Result::failure(Reason::connect, "invalid DSN: " + dsn.error);
  if (SteadyClock::now() >= deadline) {
    return Result::failure(Reason::timeout, "the deadline passed before the attempt started");
  }

  setPhase(phase, Phase::connect);
  const auto connect_start = SteadyClock::now();
  Conn conn;
  conn.c = PQconnectdb(conninfoWithTimeouts(dsn, deadline - connect_start).c_str());
  if (conn.c == nullptr) {
    return Result::failure(Reason::connect, fmt::format("connect to {}: out of memory", target));
  }
  if (PQstatus(conn.c) != CONNECTION_OK) return connectFailure(PQerrorMessage(conn.c), target);
  const double connect_seconds = secondsSince(connect_start);

  Result r = Result::ok();
  r.version = versionString(PQserverVersion(conn.c));
  r.info["server_version"] = r.version;
  r.info["connect_seconds"] = fmt::format("{:.6f}", connect_seconds);
  if (const char* db = PQdb(conn.c)) r.info["database"] = db;
  if (const char* user = PQuser(conn.c)) r.info["user"] = user;
  auto failed = [&r](Result f) {
    f.version = r.version;
    f.info = r.info;
    return f;
  };

  const auto now = SteadyClock::now();
  if (now >= deadline) {
    return failed(Result::failure(
        Reason::timeout, fmt::format("connected to {} only after the deadline ({:.3f} s)", target,
                                     connect_seconds)));
  }
  setPhase(phase, Phase::query);
  const auto ms = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count());
  // The server cancels a query still running at the deadline, which frees
  // this worker instead of leaving it waiting for a result nobody wants.
  {
    Res set;
    if (auto f = exec(conn.c, fmt::format("SET statement_timeout = {}", ms), "setup", target, set)) {
      return failed(std::move(*f));
    }
  }
  {
    Res meta;
    if (auto f = exec(conn.c, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
                      "setup", target, meta)) {
      return failed(std::move(*f));
    }
    if (PQntuples(meta.r) > 0 && PQnfields(meta.r) >= 2) {
      r.info["in_recovery"] = boolWord(PQgetvalue(meta.r, 0, 0));
      r.info["read_only"] = boolWord(PQgetvalue(meta.r, 0, 1));
    }
  }
  const auto query_start = SteadyClock::now();
  Res res;
  if (auto f = exec(conn.c, spec.query, "query", target, res)) return failed(std::move(*f));
  r.info["query_seconds"] = fmt::format("{:.6f}", secondsSince(query_start));
  if (spec.expect) {
    std::string got;
    if (PQntuples(res.r) == 0 || PQnfields(res.r) == 0) {
      got = "no rows";
    } else if (PQgetisnull(res.r, 0, 0)) {
      got = "NULL";
    } else if (PQgetvalue(res.r, 0, 0) == *spec.expect) {
      return r;
    } else {
      got = fmt::format("\"{}\"", oneLine(PQgetvalue(res.r, 0, 0)));
    }
    return failed(
        Result::failure(Reason::query, fmt::format("expected \"{}\", got {}", *spec.expect, got)));
  }
  return r;
}

}  // namespace

// One submission to the pool. The pool thread advances `phase`; the loop reads
// it for the timeout detail and sets `abandoned` when nobody waits for the job.
struct PostgresProbe::Job {
  std::uint64_t attempt = 0;
  SteadyClock::time_point submitted{};
  SteadyClock::time_point deadline{};
  std::atomic<Phase> phase{Phase::queued};
  std::atomic<bool> abandoned{false};
};

Reason postgresConnectReason(std::string_view libpq_message) {
  const std::string m = lower(libpq_message);
  auto has = [&m](std::string_view s) { return m.find(s) != std::string::npos; };
  if (has("could not translate host name")) return Reason::dns;
  if (has("timeout expired")) return Reason::timeout;
  if (has("database \"") && has("does not exist")) return Reason::database;
  if (has("password authentication failed") || has("no pg_hba.conf entry") ||
      (has("role \"") && has("does not exist")) || has("no password supplied") ||
      has("authentication failed") || has("server requested a") || has("channel binding") ||
      has("pg_hba.conf rejects")) {
    return Reason::auth;
  }
  if (has("ssl") || has("certificate")) return Reason::tls;
  return Reason::connect;
}

Reason postgresSqlReason(std::string_view sqlstate) {
  if (sqlstate == "57014") return Reason::timeout;
  if (sqlstate == "3D000") return Reason::database;
  if (sqlstate == "25006") return Reason::read_only;
  if (sqlstate.starts_with("28")) return Reason::auth;
  if (sqlstate.starts_with("08") || sqlstate.starts_with("57P0")) return Reason::connect;
  return Reason::query;
}

std::string postgresTarget(const std::string& dsn) {
  const ParsedDsn p = parseDsn(dsn);
  if (!p.error.empty()) return redactDsn(dsn);
  return targetOf(p);
}

Result PostgresProbe::runCheck(const PostgresSpec& spec, SteadyClock::time_point deadline) {
  const auto start = SteadyClock::now();
  const SystemClock::time_point wall = SystemClock::now();
  const ParsedDsn dsn = parseDsn(spec.dsn);
  Result r = runAttempt(spec, dsn, deadline, nullptr);
  scrubResult(r, dsn.get("password"));
  r.started = wall;
  r.duration = secondsSince(start);
  return r;
}

PostgresProbe::PostgresProbe(ProbeContext& ctx, PostgresSpec spec)
    : ctx_(ctx), spec_(std::move(spec)), shared_(std::make_shared<Shared>()), timer_(ctx.io) {
  target_ = postgresTarget(spec_.dsn);
  pool_ = ctx_.database;
  if (pool_ == nullptr) {
    own_pool_ = std::make_unique<WorkerPool>(ctx_.io, kOwnPoolThreads, "vigie-postgres");
    pool_ = own_pool_.get();
  }
  shared_->io = &ctx_.io;
  shared_->probe = this;
}

PostgresProbe::~PostgresProbe() {
  cancel();
  shared_->probe = nullptr;
  std::lock_guard lock(shared_->mu);
  shared_->io = nullptr;
}

void PostgresProbe::start(SteadyClock::time_point deadline, Done done) {
  cancel();
  const std::uint64_t attempt = ++attempt_;
  running_ = true;
  done_ = std::move(done);
  started_wall_ = SystemClock::now();
  started_ = SteadyClock::now();
  deadline_ = deadline;

  std::weak_ptr<Shared> weak = shared_;
  timer_.expires_at(deadline);
  // The timer may fire after the probe is gone: reach it only through the
  // shared block.
  timer_.async_wait([weak, attempt](const boost::system::error_code& ec) {
    if (ec) return;
    auto s = weak.lock();
    if (s && s->probe) s->probe->onDeadline(attempt);
  });

  // The previous job still blocked (a server that stopped answering): wait for
  // it rather than take a second thread for the same server.
  if (job_) {
    waiting_for_job_ = true;
    return;
  }
  submit();
}

void PostgresProbe::submit() {
  auto job = std::make_shared<Job>();
  job->attempt = attempt_;
  job->submitted = SteadyClock::now();
  job->deadline = deadline_;

  std::weak_ptr<Shared> weak = shared_;
  const bool queued = pool_->submit([weak, job, spec = spec_] {
    Result r;
    if (job->abandoned.load()) {
      r = Result::failure(Reason::timeout, "abandoned before a database worker was free");
    } else {
      const ParsedDsn dsn = parseDsn(spec.dsn);
      r = runAttempt(spec, dsn, job->deadline, &job->phase);
      scrubResult(r, dsn.get("password"));
    }
    job->phase.store(Phase::done);
    auto shared = weak.lock();
    if (!shared) return;
    std::lock_guard lock(shared->mu);
    if (shared->io == nullptr) return;
    boost::asio::post(*shared->io, [weak, job, r = std::move(r)]() mutable {
      auto s = weak.lock();
      if (s && s->probe) s->probe->onJobDone(job, std::move(r));
    });
  });
  if (queued) {
    job_ = std::move(job);
    return;
  }
  Result r = Result::failure(Reason::timeout,
                             fmt::format("all {} database workers are busy or stuck (pool "
                                         "saturated)",
                                         pool_->maxThreads()));
  // done must not run inside start(): deliver it from the loop like any result.
  boost::asio::post(ctx_.io, [weak, attempt = attempt_, r = std::move(r)]() mutable {
    auto s = weak.lock();
    if (s && s->probe) s->probe->finish(attempt, std::move(r));
  });
}

void PostgresProbe::onJobDone(const std::shared_ptr<Job>& job, Result result) {
  if (job_ == job) job_.reset();
  if (!running_) return;
  if (job->attempt == attempt_) {
    finish(attempt_, std::move(result));
  } else if (waiting_for_job_ && !job_) {
    // The blocked job of an earlier attempt returned in time: run ours now.
    waiting_for_job_ = false;
    submit();
  }
}

void PostgresProbe::onDeadline(std::uint64_t attempt) {
  if (!running_ || attempt != attempt_) return;
  const std::string timeout = describeTimeout(deadline_ - started_);
  std::string detail;
  if (!job_) {
    detail = fmt::format("no result within {}", timeout);
  } else {
    const Phase phase = job_->phase.load();
    if (job_->attempt == attempt) {
      switch (phase) {
        case Phase::queued:
          detail = fmt::format(
              "no database worker free within {}: {} of {} busy "
              "(pool saturated by stuck "
              "servers?)",
              timeout, pool_->busy(), pool_->maxThreads());
          break;
        case Phase::connect:
          detail = fmt::format("connect to {} did not finish within {}", target_, timeout);
          break;
        case Phase::query:
        case Phase::done:
          detail = fmt::format("query on {} did not return within {}", target_, timeout);
          break;
      }
      // Our own job, if still queued, need not run any more.
      job_->abandoned.store(true);
    } else if (phase == Phase::queued) {
      detail = fmt::format(
          "the previous attempt still waits for a database "
          "worker: {} of {} busy (pool "
          "saturated)",
          pool_->busy(), pool_->maxThreads());
    } else {
      detail = fmt::format("the previous attempt's {} on {} has not returned for {:.1f} s",
                           phase == Phase::connect ? "connect" : "query", target_,
                           secondsSince(job_->submitted));
    }
  }
  finish(attempt, Result::failure(Reason::timeout, std::move(detail)));
}

void PostgresProbe::cancel() {
  running_ = false;
  waiting_for_job_ = false;
  done_ = nullptr;
  timer_.cancel();
  if (job_) job_->abandoned.store(true);
}

void PostgresProbe::finish(std::uint64_t attempt, Result result) {
  if (!running_ || attempt != attempt_) return;
  running_ = false;
  waiting_for_job_ = false;
  timer_.cancel();
  if (result.started == SystemClock::time_point{}) result.started = started_wall_;
  result.duration = std::chrono::duration<double>(SteadyClock::now() - started_).count();
  Done done = std::move(done_);
  done_ = nullptr;
  done(std::move(result));
}

}  // namespace vigie
