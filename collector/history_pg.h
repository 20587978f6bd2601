#pragma once
/// \file
/// `history.store: postgres`: results, state changes and uptime buckets kept in
/// PostgreSQL (libpqxx), so history survives a restart and several replicas can
/// share one database.
///
/// Schema (created and migrated by vigie; `vigie_schema_version` holds one row
/// per applied migration; migrations run in one transaction under
/// `pg_advisory_xact_lock`, so replicas starting together do not race):
///
///   vigie_results(at timestamptz, check_key text, status smallint /*0 ok, 1 warn,
///                 2 fail*/, reason text, duration real /*seconds*/)
///       index (check_key, at DESC), index (at)
///   vigie_events(id bigserial primary key, at timestamptz, subject text
///                /*check|service|cluster*/, name text, from_state text,
///                to_state text, reason text, detail text, cause text)
///       index (at)
///   vigie_uptime(subject_kind text /*check|service*/, subject text, tier smallint,
///                bucket integer, good bigint, total bigint,
///                primary key (subject_kind, subject, tier, bucket))
///
/// Retention (at restore() and then every hour, by each replica): events are
/// kept for `history.retention`; results for min(retention, 48 h), since they
/// only refill the recent-results bar after a restart (at 1,000 probes/s a day
/// is 86 M rows); uptime buckets for 31 days (the longest window is 30 days).
///
/// Writing: the record* calls only queue (a mutex and a notify); one background
/// thread owns the connection and writes every second (or sooner once 1,000
/// rows wait), each batch in one transaction of multi-row INSERTs; uptime
/// buckets are upserted with their absolute counts, and queued buckets coalesce
/// (the newest counts of a bucket win). At most 100,000 results and events and
/// 500,000 distinct buckets wait; beyond that the oldest results and events are
/// dropped, new buckets are refused, and both are counted.
///
/// When the database goes away: one warning (the DSN redacted, never the
/// password), the queue is kept (bounded as above), the thread reconnects with a
/// backoff of 1 s doubling to 30 s, migrates again, logs the reconnection and
/// writes what waited. A batch the server refuses for its content (not for the
/// connection) is dropped (counted in errors and in dropped) and logged.
///
/// Event ids: restored events carry the database's ids (bigserial: unique across
/// replicas, in insertion order); the process's EventLog continues after the
/// largest. Live events keep the ids the EventLog gave them until the next restart.

#include <chrono>
#include <cstddef>
#include <memory>

#include "collector/config.h"
#include "collector/history.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace vigie {

/// Tuning knobs; the defaults are those described above (tests shorten them).
struct PostgresHistoryOptions {
  std::size_t queue_capacity = 100000;   // results + events waiting
  std::size_t uptime_capacity = 500000;  // distinct uptime buckets waiting
  std::chrono::milliseconds batch_interval{1000};
  std::size_t batch_rows = 1000;            // write sooner once this many rows wait
  std::chrono::seconds connect_timeout{3};  // libpq waits at least 2 s
  std::chrono::milliseconds retry_min{1000};
  std::chrono::milliseconds retry_max{30000};
  std::chrono::milliseconds retention_every{std::chrono::hours(1)};
  std::chrono::milliseconds results_retention_max{std::chrono::hours(48)};
  std::chrono::milliseconds close_flush{2000};  // the destructor writes for at most this long
};

/// Makes the store for `config` (store == "postgres"; `dsn` as a URI or key=value
/// pairs). Never throws for an unreachable or refused database: it retries in
/// the background. The background thread starts here.
///
/// `metrics` (may be null) receives vigie_history_written_total,
/// vigie_history_dropped_total, vigie_history_errors_total (rows refused and
/// failed connects/writes), vigie_history_connected and vigie_history_queued;
/// the registry must outlive the store.
///
/// restore() blocks (connect with a timeout of a few seconds, migrate, apply
/// retention, read); an unreachable database yields an empty Restored and a
/// warning, so vigie still starts. record*() never block and may be called from
/// one thread at a time (the loop); stats() from any thread. The destructor
/// writes what waits for at most `close_flush` (plus a write in progress), then
/// stops the thread; what is left is counted as dropped.
std::unique_ptr<HistoryStore> makePostgresHistoryStore(
    const HistoryConfig& config, std::shared_ptr<prometheus::Registry> metrics = nullptr,
    PostgresHistoryOptions options = {});

}  // namespace vigie
