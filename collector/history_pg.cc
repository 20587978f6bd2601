#include "collector/history_pg.h"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <thread>
#include <tuple>

namespace vigie {
namespace {

using Clock = std::chrono::steady_clock;

// Any constant will do: it only has to be the same for every replica.
constexpr std::int64_t kMigrationLock = 0x76696769655f6831;  // "vigie_h1"
constexpr std::size_t kRowsPerStatement = 500;
constexpr std::size_t kMaxResultsPerBatch = 5000;
constexpr std::size_t kMaxEventsPerBatch = 2000;
constexpr std::size_t kMaxBucketsPerBatch = 5000;
constexpr std::size_t kRestoredEvents = 10000;  // EventLog's capacity
constexpr std::int64_t kUptimeKeepSeconds = 31 * 86400;

// Each entry is one migration, applied in order inside one transaction.
const std::vector<std::string>& migrations() {
  static const std::vector<std::string> m{
      R"(CREATE TABLE vigie_results (
           at timestamptz NOT NULL,
           check_key text NOT NULL,
           status smallint NOT NULL,
           reason text NOT NULL,
           duration real NOT NULL);
         CREATE INDEX vigie_results_check_at ON vigie_results (check_key, at DESC);
         CREATE INDEX vigie_results_at ON vigie_results (at);
         CREATE TABLE vigie_events (
           id bigserial PRIMARY KEY,
           at timestamptz NOT NULL,
           subject text NOT NULL,
           name text NOT NULL,
           from_state text NOT NULL,
           to_state text NOT NULL,
           reason text NOT NULL,
           detail text NOT NULL,
           cause text NOT NULL);
         CREATE INDEX vigie_events_at ON vigie_events (at);
         CREATE TABLE vigie_uptime (
           subject_kind text NOT NULL,
           subject text NOT NULL,
           tier smallint NOT NULL,
           bucket integer NOT NULL,
           good bigint NOT NULL,
           total bigint NOT NULL,
           PRIMARY KEY (subject_kind, subject, tier, bucket));)",
  };
  return m;
}

std::int64_t toMicros(SystemClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

SystemClock::time_point fromMicros(std::int64_t us) {
  return SystemClock::time_point(
      std::chrono::duration_cast<SystemClock::duration>(std::chrono::microseconds(us)));
}

// A timestamptz literal in UTC with microseconds: exact, unlike to_timestamp(double).
std::string timestampLiteral(SystemClock::time_point t) {
  const std::int64_t us = std::max<std::int64_t>(0, toMicros(t));
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("'{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00'", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1000000);
}

// PostgreSQL refuses a whole statement for one invalid UTF-8 sequence or a NUL
// byte, and details come from whatever a target answered (and are cut at 256
// bytes, maybe inside a character): one bad row must not poison a batch.
std::string cleanText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) {
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid too.
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
               (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)) {
      ok = false;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

std::string quoteConninfo(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

// The DSN (URI or key=value) as key=value pairs with our connect timeout and TCP
// keepalives added (a database that vanishes without a RST would otherwise hold
// the writer for the kernel's two hours), and the password for scrubbing.
struct Conninfo {
  std::string text;
  std::string password;
  std::string error;  // the DSN cannot be parsed
};

Conninfo buildConninfo(const std::string& dsn, std::chrono::seconds timeout) {
  Conninfo out;
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (!opts) {
    out.error = err ? std::string(err) : "cannot parse the DSN";
    if (err) PQfreemem(err);
    while (!out.error.empty() && (out.error.back() == '\n' || out.error.back() == ' ')) {
      out.error.pop_back();
    }
    return out;
  }
  std::map<std::string, std::string> kv;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (o->val && *o->val) kv[o->keyword] = o->val;
  }
  PQconninfoFree(opts);
  if (auto it = kv.find("password"); it != kv.end()) out.password = it->second;
  std::int64_t secs = std::max<std::int64_t>(2, timeout.count());
  if (auto it = kv.find("connect_timeout"); it != kv.end()) {
    const long v = std::strtol(it->second.c_str(), nullptr, 10);
    if (v > 0 && v < secs) secs = v;
  }
  kv["connect_timeout"] = std::to_string(secs);
  kv.try_emplace("keepalives_idle", "10");
  kv.try_emplace("keepalives_interval", "2");
  kv.try_emplace("keepalives_count", "3");
  kv.try_emplace("tcp_user_timeout", "30000");
  kv.try_emplace("application_name", "vigie-history");
  for (const auto& [k, v] : kv) {
    if (!out.text.empty()) out.text += ' ';
    out.text += k + "=" + quoteConninfo(v);
  }
  return out;
}

// libpq does not put the password in its messages; this makes sure of it.
std::string scrub(std::string msg, const std::string& password) {
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  for (auto& c : msg) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  if (password.size() >= 1) {
    for (auto p = msg.find(password); p != std::string::npos; p = msg.find(password, p + 3)) {
      msg.replace(p, password.size(), "***");
    }
  }
  return msg;
}

// Errors that say the connection (or the server) is not usable right now, as
// opposed to a statement the server refuses: retry those rows later.
bool connectionTrouble(const pqxx::sql_error& e) {
  const std::string& st = e.sqlstate();
  return st.empty() || st.rfind("08", 0) == 0 || st.rfind("57P", 0) == 0 ||
         st.rfind("53", 0) == 0 || st.rfind("40", 0) == 0 || st == "25006";
}

struct PendingResult {
  std::string check_key;
  ResultSummary r;
};

struct BucketKey {
  bool service = false;
  std::string subject;
  std::uint8_t tier = 0;
  std::int32_t index = 0;
  bool operator<(const BucketKey& o) const {
    return std::tie(service, subject, tier, index) <
           std::tie(o.service, o.subject, o.tier, o.index);
  }
};
using BucketCounts = std::pair<std::uint32_t, std::uint32_t>;  // good, total

struct Batch {
  std::vector<PendingResult> results;
  std::vector<StateChange> events;
  std::vector<std::pair<BucketKey, BucketCounts>> buckets;
  std::size_t size() const { return results.size() + events.size() + buckets.size(); }
};

class PostgresHistoryStore final : public HistoryStore {
 public:
  PostgresHistoryStore(const HistoryConfig& config, std::shared_ptr<prometheus::Registry> metrics,
                       PostgresHistoryOptions options)
      : options_(options),
        retention_(config.retention),
        redacted_(redactDsn(config.dsn)),
        registry_(std::move(metrics)) {
    const auto conninfo = buildConninfo(config.dsn, options_.connect_timeout);
    conninfo_ = conninfo.text;
    password_ = conninfo.password;
    dsn_error_ = conninfo.error;
    if (registry_) {
      written_metric_ = &prometheus::BuildCounter()
                             .Name("vigie_history_written_total")
                             .Help(
                                 "Rows written to the history database (results, events, "
                                 "uptime buckets)")
                             .Register(*registry_)
                             .Add({});
      dropped_metric_ = &prometheus::BuildCounter()
                             .Name("vigie_history_dropped_total")
                             .Help(
                                 "History rows dropped: queue full, database away at shutdown, "
                                 "or refused by the database")
                             .Register(*registry_)
                             .Add({});
      errors_metric_ = &prometheus::BuildCounter()
                            .Name("vigie_history_errors_total")
                            .Help("Failed connections and writes to the history database")
                            .Register(*registry_)
                            .Add({});
      connected_metric_ = &prometheus::BuildGauge()
                               .Name("vigie_history_connected")
                               .Help("1 while the history database is connected")
                               .Register(*registry_)
                               .Add({});
      queued_metric_ = &prometheus::BuildGauge()
                            .Name("vigie_history_queued")
                            .Help("History rows waiting to be written")
                            .Register(*registry_)
                            .Add({});
    }
    thread_ = std::thread([this] { run(); });
  }

  ~PostgresHistoryStore() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
      close_deadline_ = Clock::now() + options_.close_flush;
    }
    cv_.notify_all();
    thread_.join();
    std::size_t left = 0;
    {
      std::lock_guard lk(mu_);
      left = results_.size() + events_.size() + buckets_.size();
    }
    if (left > 0) {
      addDropped(left);
      spdlog::warn("history store: {} rows not written at shutdown", left);
    }
  }

  Restored restore() override {
    Restored out;
    const auto t0 = Clock::now();
    if (!dsn_error_.empty()) {
      spdlog::error("history store: invalid DSN {}: {}; starting with empty history", redacted_,
                    scrub(dsn_error_, password_));
      return out;
    }
    try {
      pqxx::connection conn(conninfo_);
      migrate(conn);
      applyRetention(conn);
      pqxx::read_transaction tx(conn);
      readEvents(tx, out);
      readResults(tx, out);
      readUptime(tx, out);
      tx.commit();
    } catch (const std::exception& e) {
      addError();
      spdlog::warn("history store: cannot restore from {}: {}; starting with empty history",
                   redacted_, scrub(e.what(), password_));
      return Restored{};
    }
    std::size_t results = 0;
    for (const auto& [key, c] : out.checks) results += c.recent.size();
    spdlog::info(
        "history store: restored {} events, {} results of {} checks, uptime of {} services "
        "from {} in {} ms",
        out.events.size(), results, out.checks.size(), out.services.size(), redacted_,
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
    return out;
  }

  void recordResult(const std::string& check_key, const ResultSummary& r) override {
    bool full = false;
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      results_.push_back({check_key, r});
      trimLocked();
      full = fullLocked();
    }
    if (full) cv_.notify_one();
  }

  void recordChange(const StateChange& e) override {
    bool full = false;
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      events_.push_back(e);
      trimLocked();
      full = fullLocked();
    }
    if (full) cv_.notify_one();
  }

  void recordUptime(const std::string& subject_key, bool is_service,
                    const std::vector<UptimeTracker::StoredBucket>& buckets) override {
    std::size_t refused = 0;
    bool full = false;
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      for (const auto& b : buckets) {
        BucketKey key{is_service, subject_key, b.tier, b.index};
        auto it = buckets_.find(key);
        if (it != buckets_.end()) {
          it->second = {b.good, b.total};
        } else if (buckets_.size() < options_.uptime_capacity) {
          buckets_.emplace(std::move(key), BucketCounts{b.good, b.total});
        } else {
          ++refused;
        }
      }
      updateQueuedLocked();
      full = fullLocked();
    }
    if (refused) addDropped(refused);
    if (full) cv_.notify_one();
  }

  Stats stats() const override {
    Stats s;
    s.written = written_.load();
    s.dropped = dropped_.load();
    s.errors = errors_.load();
    s.connected = connected_.load();
    return s;
  }

 private:
  // Oldest results and events go first: the newest matter most after a restart.
  void trimLocked() {
    std::size_t dropped = 0;
    while (results_.size() + events_.size() > options_.queue_capacity) {
      if (!results_.empty()) {
        results_.pop_front();
      } else {
        events_.pop_front();
      }
      ++dropped;
    }
    if (dropped) {
      dropped_ += dropped;
      if (dropped_metric_) dropped_metric_->Increment(static_cast<double>(dropped));
    }
    updateQueuedLocked();
  }

  void updateQueuedLocked() {
    if (queued_metric_) {
      queued_metric_->Set(static_cast<double>(results_.size() + events_.size() + buckets_.size()));
    }
  }

  bool fullLocked() const {
    return results_.size() + events_.size() + buckets_.size() >= options_.batch_rows;
  }

  void addDropped(std::size_t n) {
    dropped_ += n;
    if (dropped_metric_) dropped_metric_->Increment(static_cast<double>(n));
  }
  void addError() {
    ++errors_;
    if (errors_metric_) errors_metric_->Increment();
  }
  void setConnected(bool c) {
    connected_ = c;
    if (connected_metric_) connected_metric_->Set(c ? 1 : 0);
  }

  void migrate(pqxx::connection& conn) {
    pqxx::work tx(conn);
    tx.exec(fmt::format("SELECT pg_advisory_xact_lock({})", kMigrationLock));
    tx.exec(
        "CREATE TABLE IF NOT EXISTS vigie_schema_version ("
        " version integer PRIMARY KEY,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    const auto r = tx.exec("SELECT coalesce(max(version), 0) FROM vigie_schema_version");
    const int current = r[0][0].as<int>();
    const auto& m = migrations();
    if (current > static_cast<int>(m.size())) {
      spdlog::warn("history store: schema version {} is newer than this vigie knows ({})", current,
                   m.size());
    }
    for (int v = current + 1; v <= static_cast<int>(m.size()); ++v) {
      tx.exec(m[static_cast<std::size_t>(v - 1)]);
      tx.exec(fmt::format("INSERT INTO vigie_schema_version (version) VALUES ({})", v));
      spdlog::info("history store: schema migrated to version {}", v);
    }
    tx.commit();
  }

  // Deletes in slices so no transaction holds the table (or the writer) for long.
  void applyRetention(pqxx::connection& conn) {
    const auto results_keep = std::min<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(retention_),
        options_.results_retention_max);
    const auto events_keep = std::chrono::duration_cast<std::chrono::milliseconds>(retention_);
    auto sliced = [&conn](const std::string& table, const std::string& where) {
      std::size_t total = 0;
      for (;;) {
        pqxx::work tx(conn);
        const auto r = tx.exec(fmt::format(
            "DELETE FROM {0} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {0} WHERE {1} LIMIT 50000))",
            table, where));
        tx.commit();
        total += static_cast<std::size_t>(r.affected_rows());
        if (r.affected_rows() < 50000) break;
      }
      return total;
    };
    const std::size_t results =
        sliced("vigie_results",
               fmt::format("at < now() - interval '{} milliseconds'", results_keep.count()));
    const std::size_t events =
        sliced("vigie_events",
               fmt::format("at < now() - interval '{} milliseconds'", events_keep.count()));
    const std::size_t buckets =
        sliced("vigie_uptime",
               fmt::format(
                   "bucket::bigint * (CASE tier WHEN 0 THEN 300 WHEN 1 THEN 3600 WHEN 2 THEN 21600 "
                   "ELSE 86400 END) < extract(epoch FROM now())::bigint - {}",
                   kUptimeKeepSeconds));
    if (results + events + buckets > 0) {
      spdlog::info("history store: retention removed {} results, {} events, {} uptime buckets",
                   results, events, buckets);
    }
  }

  static void readEvents(pqxx::transaction_base& tx, Restored& out) {
    const auto r = tx.exec(fmt::format(
        "SELECT id, round(extract(epoch FROM at) * 1000000)::bigint, subject, name, from_state,"
        " to_state, reason, detail, cause FROM"
        " (SELECT * FROM vigie_events ORDER BY id DESC LIMIT {}) e ORDER BY id",
        kRestoredEvents));
    out.events.reserve(r.size());
    for (const auto& row : r) {
      StateChange e;
      e.id = row[0].as<std::uint64_t>();
      e.at = fromMicros(row[1].as<std::int64_t>());
      const std::string subject = row[2].c_str();
      if (subject == "check") {
        e.subject = StateChange::Subject::check;
      } else if (subject == "service") {
        e.subject = StateChange::Subject::service;
      } else if (subject == "cluster") {
        e.subject = StateChange::Subject::cluster;
      } else {
        continue;
      }
      e.name = row[3].c_str();
      e.from = row[4].c_str();
      e.to = row[5].c_str();
      e.reason = reasonFromName(row[6].c_str()).value_or(Reason::internal);
      e.detail = row[7].c_str();
      e.cause = row[8].c_str();
      out.events.push_back(std::move(e));
    }
  }

  // The last results of each check through the (check_key, at DESC) index: a
  // loose index scan for the keys, then 60 rows per key, instead of ranking
  // every row of a table that may hold tens of millions.
  static void readResults(pqxx::transaction_base& tx, Restored& out) {
    const auto r = tx.exec(fmt::format(
        "WITH RECURSIVE keys AS ("
        "  (SELECT check_key FROM vigie_results ORDER BY check_key LIMIT 1)"
        "  UNION ALL"
        "  SELECT (SELECT r.check_key FROM vigie_results r WHERE r.check_key > k.check_key"
        "          ORDER BY r.check_key LIMIT 1)"
        "  FROM keys k WHERE k.check_key IS NOT NULL)"
        " SELECT k.check_key, round(extract(epoch FROM x.at) * 1000000)::bigint, x.status,"
        "        x.reason, x.duration"
        " FROM keys k CROSS JOIN LATERAL"
        "  (SELECT at, status, reason, duration FROM vigie_results r"
        "   WHERE r.check_key = k.check_key ORDER BY r.at DESC LIMIT {}) x"
        " WHERE k.check_key IS NOT NULL"
        " ORDER BY k.check_key, x.at",
        CheckStatus::kRecentResults));
    Restored::Check* current = nullptr;
    std::string current_key;
    for (const auto& row : r) {
      const char* key = row[0].c_str();
      if (!current || current_key != key) {
        current_key = key;
        current = &out.checks[current_key];
        current->recent.reserve(CheckStatus::kRecentResults);
      }
      ResultSummary s;
      s.at = fromMicros(row[1].as<std::int64_t>());
      const int status = row[2].as<int>();
      s.status = status == 0 ? Status::ok : status == 1 ? Status::warn : Status::fail;
      s.reason = reasonFromName(row[3].c_str()).value_or(Reason::internal);
      s.duration = row[4].as<float>();
      current->recent.push_back(s);
    }
  }

  static void readUptime(pqxx::transaction_base& tx, Restored& out) {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch())
            .count();
    std::string where;
    for (std::size_t t = 0; t < UptimeTracker::kWidthSeconds.size(); ++t) {
      const std::int64_t oldest = now / UptimeTracker::kWidthSeconds[t] -
                                  static_cast<std::int64_t>(UptimeTracker::kCounts[t]) + 1;
      if (!where.empty()) where += " OR ";
      where += fmt::format("(tier = {} AND bucket >= {})", t, oldest);
    }
    const auto r = tx.exec(
        "SELECT subject_kind, subject, tier, bucket, good, total FROM vigie_uptime WHERE " + where);
    for (const auto& row : r) {
      UptimeTracker::StoredBucket b;
      const int tier = row[2].as<int>();
      if (tier < 0 || tier > 3) continue;
      b.tier = static_cast<std::uint8_t>(tier);
      b.index = row[3].as<std::int32_t>();
      b.good = static_cast<std::uint32_t>(
          std::clamp<std::int64_t>(row[4].as<std::int64_t>(), 0, UINT32_MAX));
      b.total = static_cast<std::uint32_t>(
          std::clamp<std::int64_t>(row[5].as<std::int64_t>(), 0, UINT32_MAX));
      const std::string kind = row[0].c_str();
      if (kind == "check") {
        out.checks[row[1].c_str()].uptime.push_back(b);
      } else if (kind == "service") {
        out.services[row[1].c_str()].push_back(b);
      }
    }
  }

  void write(pqxx::connection& conn, const Batch& b) {
    pqxx::work tx(conn);
    for (std::size_t i = 0; i < b.results.size(); i += kRowsPerStatement) {
      std::string sql =
          "INSERT INTO vigie_results (at, check_key, status, reason, duration) VALUES ";
      const std::size_t end = std::min(b.results.size(), i + kRowsPerStatement);
      for (std::size_t j = i; j < end; ++j) {
        const auto& p = b.results[j];
        if (j > i) sql += ',';
        sql +=
            fmt::format("({},{},{},'{}',{})", timestampLiteral(p.r.at),
                        tx.quote(cleanText(p.check_key)), static_cast<int>(p.r.status),
                        reasonName(p.r.reason), std::isfinite(p.r.duration) ? p.r.duration : 0.0f);
      }
      tx.exec(sql);
    }
    for (std::size_t i = 0; i < b.events.size(); i += kRowsPerStatement) {
      std::string sql =
          "INSERT INTO vigie_events (at, subject, name, from_state, to_state, reason, detail, "
          "cause)"
          " VALUES ";
      const std::size_t end = std::min(b.events.size(), i + kRowsPerStatement);
      for (std::size_t j = i; j < end; ++j) {
        const auto& e = b.events[j];
        if (j > i) sql += ',';
        sql += fmt::format(
            "({},'{}',{},{},{},'{}',{},{})", timestampLiteral(e.at), subjectName(e.subject),
            tx.quote(cleanText(e.name)), tx.quote(cleanText(e.from)), tx.quote(cleanText(e.to)),
            reasonName(e.reason), tx.quote(cleanText(e.detail)), tx.quote(cleanText(e.cause)));
      }
      tx.exec(sql);
    }
    for (std::size_t i = 0; i < b.buckets.size(); i += kRowsPerStatement) {
      std::string sql =
          "INSERT INTO vigie_uptime (subject_kind, subject, tier, bucket, good, total) VALUES ";
      const std::size_t end = std::min(b.buckets.size(), i + kRowsPerStatement);
      for (std::size_t j = i; j < end; ++j) {
        const auto& [key, counts] = b.buckets[j];
        if (j > i) sql += ',';
        sql += fmt::format("('{}',{},{},{},{},{})", key.service ? "service" : "check",
                           tx.quote(cleanText(key.subject)), key.tier, key.index, counts.first,
                           counts.second);
      }
      sql +=
          " ON CONFLICT (subject_kind, subject, tier, bucket) DO UPDATE"
          " SET good = EXCLUDED.good, total = EXCLUDED.total";
      tx.exec(sql);
    }
    tx.commit();
  }

  Batch takeLocked() {
    Batch b;
    const std::size_t nr = std::min(results_.size(), kMaxResultsPerBatch);
    b.results.assign(std::make_move_iterator(results_.begin()),
                     std::make_move_iterator(results_.begin() + static_cast<std::ptrdiff_t>(nr)));
    results_.erase(results_.begin(), results_.begin() + static_cast<std::ptrdiff_t>(nr));
    const std::size_t ne = std::min(events_.size(), kMaxEventsPerBatch);
    b.events.assign(std::make_move_iterator(events_.begin()),
                    std::make_move_iterator(events_.begin() + static_cast<std::ptrdiff_t>(ne)));
    events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(ne));
    while (!buckets_.empty() && b.buckets.size() < kMaxBucketsPerBatch) {
      auto node = buckets_.extract(buckets_.begin());
      b.buckets.emplace_back(std::move(node.key()), node.mapped());
    }
    updateQueuedLocked();
    return b;
  }

  // A batch that could not be written for the connection's sake goes back in
  // front; newer bucket counts that arrived meanwhile win.
  void requeueLocked(Batch&& b) {
    results_.insert(results_.begin(), std::make_move_iterator(b.results.begin()),
                    std::make_move_iterator(b.results.end()));
    events_.insert(events_.begin(), std::make_move_iterator(b.events.begin()),
                   std::make_move_iterator(b.events.end()));
    std::size_t refused = 0;
    for (auto& [key, counts] : b.buckets) {
      if (buckets_.count(key)) continue;
      if (buckets_.size() >= options_.uptime_capacity) {
        ++refused;
        continue;
      }
      buckets_.emplace(std::move(key), counts);
    }
    if (refused) addDropped(refused);
    trimLocked();
  }

  bool connect(std::optional<pqxx::connection>& conn) {
    if (!dsn_error_.empty()) {
      if (!dsn_reported_) {
        dsn_reported_ = true;
        addError();
        spdlog::error("history store: invalid DSN {}: {}; history is not written", redacted_,
                      scrub(dsn_error_, password_));
      }
      return false;
    }
    try {
      conn.emplace(conninfo_);
      // A write or a retention slice stuck on a sick server is cancelled by it.
      pqxx::nontransaction(*conn).exec("SET statement_timeout = '60s'");
      migrate(*conn);
    } catch (const std::exception& e) {
      conn.reset();
      addError();
      const std::string msg = scrub(e.what(), password_);
      if (!down_reported_) {
        down_reported_ = true;
        spdlog::warn(
            "history store: cannot reach {}: {}; probing goes on, history waits in memory "
            "(bounded) and reconnection is retried",
            redacted_, msg);
      } else {
        spdlog::debug("history store: reconnect to {} failed: {}", redacted_, msg);
      }
      return false;
    }
    setConnected(true);
    if (down_reported_) {
      down_reported_ = false;
      spdlog::info("history store: reconnected to {} after {:.1f} s", redacted_,
                   std::chrono::duration<double>(Clock::now() - down_since_).count());
    } else {
      spdlog::info("history store: connected to {}", redacted_);
    }
    return true;
  }

  void lost(std::optional<pqxx::connection>& conn, std::string why) {
    // libpqxx 6.4 loses libpq's message when the server closes the connection
    // under a statement; say what happened instead of its stand-in.
    if (why.find("Could not obtain client encoding") != std::string::npos) {
      why = "the server closed the connection";
    }
    conn.reset();
    setConnected(false);
    addError();
    down_since_ = Clock::now();
    if (!down_reported_) {
      down_reported_ = true;
      spdlog::warn(
          "history store: lost the database {}: {}; probing goes on, history waits in memory "
          "(bounded) and reconnection is retried",
          redacted_, scrub(why, password_));
    }
  }

  // Rows dropped because the queue was full (the database away or slow) say so in
  // the log: at once, then at most every 10 s while it lasts.
  void reportDrops(Clock::time_point now) {
    const std::uint64_t dropped = dropped_.load();
    if (dropped == drops_reported_ || now < next_drop_report_) return;
    spdlog::warn(
        "history store: {} history rows dropped ({} in all): the queue holds at most {} rows "
        "while {} is {}; the oldest go first (vigie_history_dropped_total)",
        dropped - drops_reported_, dropped, options_.queue_capacity, redacted_,
        connected_.load() ? "slow" : "away");
    drops_reported_ = dropped;
    next_drop_report_ = now + std::chrono::seconds(10);
  }

  void run() {
    std::optional<pqxx::connection> conn;
    auto backoff = options_.retry_min;
    auto next_connect = Clock::now();
    auto next_retention = Clock::now() + options_.retention_every;
    auto last_write = Clock::now();
    down_since_ = Clock::now();
    std::unique_lock lk(mu_);
    for (;;) {
      const auto now = Clock::now();
      reportDrops(now);
      const std::size_t pending = results_.size() + events_.size() + buckets_.size();
      if (stopping_ && (!conn || pending == 0 || now >= close_deadline_)) break;
      if (!conn) {
        if (now < next_connect) {
          cv_.wait_until(lk, next_connect, [this] { return stopping_; });
          continue;
        }
        lk.unlock();
        const bool ok = connect(conn);
        lk.lock();
        if (!ok) {
          next_connect = Clock::now() + backoff;
          backoff = std::min(backoff * 2, options_.retry_max);
          continue;
        }
        backoff = options_.retry_min;
      }
      if (!stopping_ && pending < options_.batch_rows) {
        const auto due = std::min(last_write + options_.batch_interval, next_retention);
        if (now < due) {
          cv_.wait_until(lk, due, [this] { return stopping_ || fullLocked(); });
          if (!stopping_ && Clock::now() < due && !fullLocked()) continue;
        }
      }
      Batch batch = takeLocked();
      const bool retention_due = Clock::now() >= next_retention && !stopping_;
      lk.unlock();
      last_write = Clock::now();
      std::optional<std::string> broken;
      if (batch.size() > 0) {
        try {
          write(*conn, batch);
          written_ += batch.size();
          if (written_metric_) written_metric_->Increment(static_cast<double>(batch.size()));
        } catch (const pqxx::broken_connection& e) {
          broken = e.what();
        } catch (const pqxx::sql_error& e) {
          if (connectionTrouble(e) || !conn->is_open()) {
            broken = e.what();
          } else {
            addError();
            addDropped(batch.size());
            spdlog::error("history store: the database refused {} rows, dropped: {}", batch.size(),
                          scrub(e.what(), password_));
            batch = Batch{};
          }
        } catch (const std::exception& e) {
          broken = e.what();
        }
      }
      if (!broken && retention_due) {
        try {
          applyRetention(*conn);
        } catch (const std::exception& e) {
          if (!conn->is_open()) {
            broken = e.what();
          } else {
            addError();
            spdlog::warn("history store: retention failed: {}", scrub(e.what(), password_));
          }
        }
        next_retention = Clock::now() + options_.retention_every;
      }
      lk.lock();
      if (broken) {
        if (batch.size() > 0) requeueLocked(std::move(batch));
        lk.unlock();
        lost(conn, *broken);
        lk.lock();
        next_connect = Clock::now() + backoff;
      }
    }
    lk.unlock();
    conn.reset();
    setConnected(false);
  }

  const PostgresHistoryOptions options_;
  const Duration retention_;
  const std::string redacted_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::string conninfo_;
  std::string password_;
  std::string dsn_error_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  Clock::time_point close_deadline_{};
  std::deque<PendingResult> results_;
  std::deque<StateChange> events_;
  std::map<BucketKey, BucketCounts> buckets_;

  // Writer thread only.
  std::uint64_t drops_reported_ = 0;
  Clock::time_point next_drop_report_{};
  bool down_reported_ = false;
  bool dsn_reported_ = false;
  Clock::time_point down_since_{};

  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> errors_{0};
  std::atomic<bool> connected_{false};
  prometheus::Counter* written_metric_ = nullptr;
  prometheus::Counter* dropped_metric_ = nullptr;
  prometheus::Counter* errors_metric_ = nullptr;
  prometheus::Gauge* connected_metric_ = nullptr;
  prometheus::Gauge* queued_metric_ = nullptr;

  std::thread thread_;
};

}  // namespace

std::unique_ptr<HistoryStore> makePostgresHistoryStore(
    const HistoryConfig& config, std::shared_ptr<prometheus::Registry> metrics,
    PostgresHistoryOptions options) {
  return std::make_unique<PostgresHistoryStore>(config, std::move(metrics), options);
}

}  // namespace vigie
