#pragma once
/// \file
/// What every probe produces and the one interface every probe implements.
/// Shared by probes, the check sessions and every exporter.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vigie {

using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

/// Outcome of one probe attempt. `warn` is a success that degrades the service
/// (a health page reporting "warn"); it never counts toward failure_threshold.
enum class Status : std::uint8_t { ok, warn, fail };

/// The closed set of failure reasons, shared by all probes. Used as a metric
/// label value and shown on the page beside the detail text. `none` for ok.
enum class Reason : std::uint8_t {
  none,
  timeout,           // the check's timeout elapsed first
  dns,               // name did not resolve
  connect,           // refused, unreachable, reset before a response
  tls,               // handshake failed, certificate invalid/untrusted
  cert_expiring,     // certificate valid but within cert_min_days
  http_status,       // status code not expected
  http_protocol,     // not HTTP, garbage, reset mid-body, redirect loop
  body_too_large,    // body larger than max_body
  body,              // a body condition failed (regex, JSON pointer)
  latency,           // latency_below condition failed
  health_fail,       // the health page says fail/DOWN
  health_warn,       // the health page says warn (status warn, not a failure)
  health_parse,      // the health page could not be understood
  auth,              // authentication refused
  database,          // database missing / unreachable database name
  query,             // query failed or returned an unexpected value
  disk_write,
  disk_read,
  disk_verify,
  disk_full,
  read_only,
  permission,
  heartbeat_missed,
  heartbeat_fail,    // job pushed status=fail
  internal,          // vigie's own fault (counted in vigie_internal_errors_total)
};

/// Stable lower-case name of a reason ("timeout", "http_status", ...). "" for none.
std::string_view reasonName(Reason r);
/// Inverse of reasonName(); nullopt for an unknown name.
std::optional<Reason> reasonFromName(std::string_view name);
/// "ok" | "warn" | "fail".
std::string_view statusName(Status s);

/// Per-phase durations in seconds, as blackbox_exporter's probe_http_duration_seconds{phase}.
struct HttpPhases {
  double resolve = 0;
  double connect = 0;
  double tls = 0;
  double processing = 0;  // request sent -> first byte
  double transfer = 0;    // first byte -> last byte
};

/// One condition's own outcome (Gatus-style: each condition is shown on its own).
struct ConditionResult {
  std::string name;    // human form of the condition, e.g. "json /status == pass"
  bool ok = false;
  std::string detail;  // what was seen, e.g. "got \"fail\""
};

/// One component of a structured health page (a database, a disk, ...).
struct Component {
  std::string name;
  Status status = Status::ok;
  std::string detail;  // raw status word or output text, bounded in size
};

/// One front-end address of an ingress check, probed on its own (as
/// `curl --resolve host:port:address` pins it). Shown per address in the API
/// and as vigie_check_target_* metrics.
struct TargetResult {
  std::string address;                 // as configured, e.g. "193.48.1.10" or "::1"
  Status status = Status::fail;
  Reason reason = Reason::internal;
  std::string detail;
  int http_status = 0;
  double duration = 0;                 // seconds
  std::optional<double> cert_expiry;   // unix seconds
};

/// The TLS side of a connection as blackbox_exporter reports it (probe_ssl_*,
/// probe_tls_version_info). Filled from OpenSSL by probes/tls_facts.h.
struct TlsFacts {
  std::string version;                       // "TLS 1.3", as Go's crypto/tls names it
  std::optional<double> earliest_expiry;     // unix seconds, earliest notAfter of the presented chain
  std::optional<double> last_chain_expiry;   // earliest notAfter of the verified chain (verification on)
  // The leaf certificate (probe_ssl_last_chain_info's labels).
  std::string fingerprint_sha256;            // lower-case hex of the DER's SHA-256
  std::string subject;                       // RFC 2253 ("CN=localhost,O=Example")
  std::string issuer;
  std::string dns_names;                     // subjectAltName DNS names, comma-separated
};

/// Low-level facts of one attempt that blackbox_exporter exports and vigie's own
/// checks do not need. Filled only by probes asked for them (HttpProbeOptions::
/// wire_facts, TcpProbeOptions::wire_facts): /probe (exporters/blackbox_probe.h).
struct WireFacts {
  std::string ip;                            // address connected to (or tried); "" when none
  std::int64_t content_length = -1;          // Content-Length of the final response; -1 unknown
  std::optional<double> last_modified;       // unix seconds, Last-Modified of the final response
  std::optional<TlsFacts> tls;               // the final connection was TLS
  bool regex_failed = false;                 // a body / query_response regex decided the failure
  std::vector<std::string> log;              // what happened, one line each, for debug output
};

/// The result of one attempt. Values are copied into the check's history, so
/// keep strings bounded (probes cut details at a few hundred bytes).
struct Result {
  Status status = Status::fail;
  Reason reason = Reason::internal;
  std::string detail;                     // for a human: what went wrong, where
  SystemClock::time_point started{};      // wall clock at start
  double duration = 0;                    // seconds, the whole attempt

  // HTTP-like probes
  int http_status = 0;                    // 0 when no response
  int http_version = 0;                   // 10, 11, 20
  HttpPhases phases;
  std::optional<double> cert_expiry;      // unix seconds of the earliest leaf/chain expiry
  std::uint64_t body_bytes = 0;
  int redirects = 0;

  std::vector<ConditionResult> conditions;
  std::vector<Component> components;
  std::string version;                    // reported by the target (health page, server)
  std::map<std::string, std::string> info;  // other facts: release_id, server_version, ...
  std::vector<TargetResult> targets;      // ingress: one per front-end address
  std::shared_ptr<const WireFacts> wire;  // /probe only (see WireFacts); null otherwise

  /// Nothing to report yet (a heartbeat before its first push is due): the
  /// engine drops this result, the check's state and history are unchanged.
  bool inconclusive = false;
  /// The attempt could not run because vigie had no file descriptor left (EMFILE,
  /// ENFILE): vigie's limit, not the target's fault. Reason `internal`; the engine
  /// drops it like an inconclusive result and holds back new probes (README "Limits").
  bool out_of_descriptors = false;

  static Result ok() {
    Result r;
    r.status = Status::ok;
    r.reason = Reason::none;
    return r;
  }
  static Result failure(Reason reason, std::string detail) {
    Result r;
    r.status = Status::fail;
    r.reason = reason;
    r.detail = std::move(detail);
    return r;
  }
};

/// Replaces each occurrence of each secret with "***" in every text of `r` a
/// target could have filled (detail, version, info, components, conditions,
/// targets): the safety net of probes that send secrets a target may echo back
/// (a debugging endpoint showing the request's headers). Secrets shorter than 6
/// bytes are ignored (they would mask ordinary words). Pure; any thread.
void scrubSecrets(Result& r, const std::vector<std::string>& secrets);

/// One probe attempt against one target. Created per check by the probe registry
/// and reused for every attempt of that check.
///
/// Threading: start() and cancel() are called on the loop thread only, and `done`
/// is invoked on the loop thread, exactly once per start() unless cancel() was
/// called first (then it is never invoked). A probe must never block the loop.
/// The check session owns the timeout: it calls cancel() when the deadline passes,
/// and a probe may also stop at `deadline` by itself.
class Probe {
 public:
  using Done = std::function<void(Result)>;
  virtual ~Probe() = default;
  virtual void start(SteadyClock::time_point deadline, Done done) = 0;
  virtual void cancel() = 0;
  /// True when the probe answers by `deadline` by itself (its own timer), so the
  /// engine needs no timer of its own per attempt: it only sweeps, every second,
  /// for an attempt still running past its deadline (a safety net). False: the
  /// engine arms a timer per attempt and answers "timeout" for the probe.
  virtual bool timesItself() const { return false; }
};

}  // namespace vigie
