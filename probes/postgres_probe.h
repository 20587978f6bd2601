#pragma once
/// \file
/// The PostgreSQL probe: connect, authenticate, run one query, report the
/// server's version and whether it is in recovery or read-only. It uses libpq's
/// blocking calls directly (libpqxx 6.4 loses libpq's message when a connection
/// breaks mid-query), so each attempt runs on the database WorkerPool and posts
/// its result back.

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "collector/config.h"
#include "collector/worker_pool.h"
#include "probes/probe.h"
#include "probes/registry.h"

namespace vigie {

/// Checks one database through a fresh connection per attempt (so every attempt
/// proves the whole path: network, authentication, database, query).
///
/// The DSN may be a URI (postgresql://user:pass@host:port/db?sslmode=disable)
/// or key=value pairs (host=h dbname=d user=u password=p). The probe adds
/// connect_timeout (the attempt's remaining time in whole seconds, rounded up;
/// libpq waits at least 2 s), TCP keepalives, and `SET statement_timeout` to
/// the remaining time, so a slow query is cancelled by the server and the
/// worker is freed soon after the deadline. A smaller connect_timeout in the
/// DSN is kept.
///
/// Outcome, first match wins:
///  - the DSN cannot be parsed: connect ("invalid DSN: ...");
///  - connection failures, from libpq's message: host name not found: dns;
///    refused, unreachable, server starting or shutting down: connect; "timeout
///    expired": timeout; password rejected, no pg_hba.conf entry, unknown role:
///    auth; database "x" does not exist: database; SSL failures: tls;
///  - errors after connecting, by SQLSTATE: 57014 (statement_timeout) timeout,
///    class 28 auth, 3D000 database, class 08 and 57P0x connect, 25006
///    read_only, anything else query; a connection lost mid-query: connect;
///  - `expect` set and the first column of the first row differs: query,
///    `expected "1", got "2"` (or `got no rows`, `got NULL`);
///  - else ok. A server in recovery or read-only is not a failure.
/// On success (and on query failures once connected) the result carries version
/// ("15.18") and info: server_version, in_recovery and read_only ("true" /
/// "false"), database, user, connect_seconds, query_seconds. Never the
/// password: every string of the result is scrubbed of it before leaving the
/// worker.
///
/// Pool and timeouts, as DiskProbe: the job runs on `ctx.database` (a private
/// one-thread pool when the context has none, as `vigie probe` does). A refused
/// submit fails at once with timeout "all N database workers are busy or
/// stuck". At the deadline the attempt ends with timeout naming the phase that
/// did not finish ("connect to 127.0.0.1:5432/app did not finish within 1s",
/// "query did not return within 1s", "no database worker free within 1s: 8 of 8
/// busy"). A probe has at most one job in the pool: a new attempt while the
/// previous job is still blocked waits for it instead of taking a second
/// thread, so a stuck server holds at most one worker per check. A result that
/// arrives after its attempt ended (deadline, cancel(), probe destroyed) is
/// dropped.
///
/// Threading: as Probe. The job shares only a small state block with the probe.
class PostgresProbe : public Probe {
 public:
  /// Copies `spec`; `ctx` (its io_context and pool) must outlive the probe.
  PostgresProbe(ProbeContext& ctx, PostgresSpec spec);
  ~PostgresProbe() override;

  PostgresProbe(const PostgresProbe&) = delete;
  PostgresProbe& operator=(const PostgresProbe&) = delete;

  /// Starts one attempt (a running one is abandoned first).
  void start(SteadyClock::time_point deadline, Done done) override;
  /// Abandons the running attempt; its done is never called. No-op when idle.
  void cancel() override;

  /// The blocking check itself, exposed for tests and tools; any thread. Blocks
  /// until the server answers or libpq's own timeouts end it (not exactly at
  /// `deadline`: connect_timeout is whole seconds, at least 2). duration is
  /// set.
  static Result runCheck(const PostgresSpec& spec, SteadyClock::time_point deadline);

 private:
  struct Shared;
  struct Job;
  void submit();
  void onJobDone(const std::shared_ptr<Job>& job, Result result);
  void onDeadline(std::uint64_t attempt);
  void finish(std::uint64_t attempt, Result result);

  ProbeContext& ctx_;
  PostgresSpec spec_;
  std::string target_;                    // host:port/db, for details; no user, no password
  std::unique_ptr<WorkerPool> own_pool_;  // only when ctx_.database is null
  WorkerPool* pool_ = nullptr;
  std::shared_ptr<Shared> shared_;
  boost::asio::steady_timer timer_;  // the attempt's deadline
  std::uint64_t attempt_ = 0;
  bool running_ = false;
  std::shared_ptr<Job> job_;      // in the pool, from the loop's view; may outlive its attempt
  bool waiting_for_job_ = false;  // the running attempt waits for job_ to end
  SystemClock::time_point started_wall_{};
  SteadyClock::time_point started_{};
  SteadyClock::time_point deadline_{};
  Done done_;
};

/// The reason for a libpq connection failure message (no SQLSTATE is given for
/// those): dns, timeout, auth, database, tls, else connect. Pure; any thread.
Reason postgresConnectReason(std::string_view libpq_message);

/// The reason for an error with SQLSTATE `sqlstate` once connected. Pure; any
/// thread.
Reason postgresSqlReason(std::string_view sqlstate);

/// "host:port/db" of a DSN (either form), for messages: no user, no password;
/// the DSN redacted by redactDsn() when it cannot be parsed. Pure; any thread.
std::string postgresTarget(const std::string& dsn);

}  // namespace vigie
