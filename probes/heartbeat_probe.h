#pragma once
/// \file
/// The heartbeat kind: a job (a CronJob, a backup script) pushes
/// `POST /api/v1/push/{service}/{check}` when it runs, as healthchecks.io's ping
/// URL; the check fails when no push arrives within `period + grace`, or when the
/// last push said the job failed. Pushes land on a HeartbeatBoard owned by the
/// engine; the probe only reads the board, so an attempt costs no I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "collector/config.h"
#include "probes/probe.h"
#include "probes/registry.h"

namespace vigie {

/// One push, as received.
struct HeartbeatPush {
  SystemClock::time_point at{};      // wall clock, for display
  SteadyClock::time_point steady{};  // for the period arithmetic
  bool failed = false;               // status=fail, or a non-zero exit_code
  std::optional<int> exit_code;
  std::string message;               // the request body, valid UTF-8, at most 1 KiB
};

/// Pushes received, by check key ("service/check"). Loop thread only.
class HeartbeatBoard {
 public:
  /// Starts the clock of a check that never had a push: its first push is due
  /// `period + grace` after the first watch(). Later calls (a reload) keep it.
  void watch(const std::string& key, SteadyClock::time_point now);
  /// Records a push for `key` (the caller has checked the token).
  void record(const std::string& key, HeartbeatPush push);
  /// Drops what is known of checks no longer configured.
  void forget(const std::string& key);

  struct Entry {
    SteadyClock::time_point watching_since{};
    std::optional<HeartbeatPush> last;
    std::uint64_t pushes = 0;
  };
  /// nullptr when the key was never watched nor pushed.
  const Entry* find(const std::string& key) const;

 private:
  std::unordered_map<std::string, Entry> entries_;
};

/// True when `presented` equals `expected`, in time independent of where they
/// differ and of their lengths (both are hashed with SHA-256, the digests compared
/// with CRYPTO_memcmp), so a token cannot be guessed byte by byte from response
/// times. An empty `expected` never matches. For every secret token vigie checks:
/// heartbeat push tokens and the API's bearer tokens (exporters/auth.h).
bool tokenMatches(std::string_view expected, std::string_view presented);

/// Turns a push request's parameters into a HeartbeatPush. `status` is "ok",
/// "success", "fail" or "failure" (empty: ok); `exit_code` a decimal integer
/// (non-zero: failed), as healthchecks.io's /fail and /{exit-status} endpoints.
/// Returns an error message for a bad parameter instead.
std::optional<std::string> parseHeartbeatPush(std::string_view status, std::string_view exit_code,
                                              std::string_view body, HeartbeatPush& out);

/// Evaluates the board for one check, at every scheduled turn and right after
/// each push (the engine runs the check at once). Outcome:
///  - no push yet, and less than period + grace since vigie started watching:
///    inconclusive (the check stays unknown);
///  - no push within period + grace: heartbeat_missed, "last push 1h12m ago,
///    expected every 1h (+10m grace)" or "no push received in 1h10m";
///  - the last push failed: heartbeat_fail "job reported failure (exit code 3)
///    12m ago: <message>", until a successful push;
///  - else ok, info last_push (RFC 3339), last_push_age_seconds, pushes.
///
/// Threading: as Probe; start() completes synchronously.
class HeartbeatProbe : public Probe {
 public:
  /// `ctx.heartbeats` must be set and outlive the probe; `key` is the check's key.
  HeartbeatProbe(ProbeContext& ctx, HeartbeatSpec spec, std::string key);

  void start(SteadyClock::time_point deadline, Done done) override;
  void cancel() override {}

  /// The evaluation itself, for tests: `entry` may be null (never watched).
  static Result evaluate(const HeartbeatSpec& spec, const HeartbeatBoard::Entry* entry,
                         SteadyClock::time_point now);

 private:
  ProbeContext& ctx_;
  HeartbeatSpec spec_;
  std::string key_;
};

}  // namespace vigie
