#pragma once
/// \file
/// GET /probe?target=...&module=...[&debug=true]: Prometheus blackbox_exporter's
/// multi-target endpoint, so a Prometheus job written for blackbox_exporter works
/// when pointed at vigie. The modules are the config's `modules:` (blackbox's
/// schema, collector/config.h ModuleConfig), read from the current Config at each
/// request, so SIGHUP reloads them.
///
/// As blackbox_exporter 0.23 does:
///  - `module` defaults to http_2xx; an unknown one is 400 `Unknown module "x"`;
///    a missing `target` is 400 `Target parameter is missing`;
///  - the probe's timeout is the scrape's (`X-Prometheus-Scrape-Timeout-Seconds`,
///    120 s without it) minus 0.5 s, capped by the module's `timeout`; a header that
///    is not a number is 400 `Failed to parse timeout from Prometheus header: ...`;
///  - the answer is the Prometheus text format with blackbox's families, help
///    texts, labels and meanings (docs/api.md, "/probe"); a target that is down is
///    data (`probe_success 0`, 200), never an HTTP error;
///  - `debug=true` answers text/plain: the probe's log lines, the metrics that
///    would have been returned and the module's configuration (credentials shown
///    as `<secret>`).
/// Beyond blackbox: at most `max_in_flight` probes at once (more is 503 with a
/// Retry-After), counted in vigie's own metrics (vigie_blackbox_*).
///
/// Threading: loop thread only, like the server. A probe runs on the loop
/// (HttpProbe on the shared CurlDriver, TcpProbe on Asio): nothing blocks.

#include <prometheus/registry.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "collector/config.h"
#include "exporters/http_server.h"
#include "probes/probe.h"

namespace vigie {

struct ProbeContext;

/// The configuration of the moment (the modules are read from it at each request).
using ConfigSource = std::function<std::shared_ptr<const Config>()>;

struct BlackboxOptions {
  std::size_t max_in_flight = 512;  // /probe requests probing at once; beyond: 503
};

/// The /probe endpoint. Owns the probes it runs: stop() (or destruction) cancels
/// them, so the loop can end. Must not outlive `ctx`; the server may outlive it
/// (later requests are answered 503).
class BlackboxEndpoint {
 public:
  /// Registers vigie_blackbox_* families in `self`, which must outlive the endpoint.
  BlackboxEndpoint(ProbeContext& ctx, ConfigSource config, prometheus::Registry& self,
                   BlackboxOptions options = {});
  ~BlackboxEndpoint();
  BlackboxEndpoint(const BlackboxEndpoint&) = delete;
  BlackboxEndpoint& operator=(const BlackboxEndpoint&) = delete;

  /// Adds GET /probe to `server`.
  void registerRoutes(HttpServer& server);
  /// Cancels every running probe (their requests get no answer: the server is
  /// stopping) and answers later requests 503. Idempotent.
  void stop();
  /// Probes running now.
  std::size_t inFlight() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// ---- pure helpers, exposed for tests

/// The probe's timeout in seconds, as blackbox's getTimeout with its 0.5 s offset:
/// the scrape timeout from `header` ("" when absent: 120 s) minus 0.5, replaced by
/// the module's timeout when that is set and shorter. Never 0 or less: a scrape
/// timeout under 0.5 s keeps the module's timeout, or else the header's own value.
/// nullopt with `error` set when the header is not a number.
std::optional<double> blackboxTimeout(std::string_view header, Duration module_timeout,
                                      std::string* error);

/// A float as Go's strconv.FormatFloat(v, 'g', -1, 64), which the Go Prometheus
/// client uses: "200", "0.005094648", "1.7655e-05", "3.668918509e+09", "NaN", "+Inf".
std::string goFloat(double v);

/// blackbox's probe_ip_addr_hash: FNV-1a 32 over the address's bytes (4 for IPv4,
/// 16 for IPv6); 0 for "" or a string that is not an address.
std::uint32_t ipAddrHash(const std::string& ip);

/// The Prometheus text blackbox_exporter returns for this module and outcome.
/// `success` is the probe's verdict, `duration` the whole probe's seconds.
std::string blackboxMetrics(const ModuleConfig& module, const Result& result, double duration);

/// The module as blackbox's debug output shows it (its YAML schema), with
/// credentials (Authorization and other secret-looking headers) and any request
/// body replaced by `<secret>`.
std::string blackboxModuleYaml(const ModuleConfig& module);

/// Whether a request header of this name carries a credential (Authorization,
/// Cookie, *token*, *secret*, *key*, *password*, ...): never shown.
bool secretHeaderName(std::string_view name);

}  // namespace vigie
