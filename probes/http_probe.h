#pragma once
/// \file
/// The HTTP(S) probe: one request through libcurl on the shared CurlDriver, then the
/// status, the health page and the conditions, each turned into a Result.

#include <curl/curl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "collector/config.h"
#include "probes/probe.h"
#include "probes/registry.h"

namespace vigie {

class NativeHttpClient;

/// Knobs for probes built on HttpProbe (the ingress probe); not part of the user's config.
struct HttpProbeOptions {
  /// Connect to this IP address (IPv4, or IPv6 without brackets) instead of the URL
  /// host's DNS answer, as `curl --connect-to host:port:address:port`: the URL's host
  /// name still goes in Host, SNI and the certificate name check, and nothing is put
  /// in the driver's shared DNS cache (a CURLOPT_RESOLVE entry would be, and would
  /// redirect every other check of that name). Empty: the name is resolved.
  std::string connect_address;
  /// Put the Location of a 3xx answer in Result::info["redirect_url"].
  bool report_redirect_url = false;
  /// Fill Result::wire (address, Content-Length, Last-Modified, TLS facts of the
  /// final connection) and ask for gzip as Go's HTTP client does, for /probe's
  /// blackbox_exporter-compatible output. Costs a header callback per response.
  bool wire_facts = false;
};


/// The secrets an HTTP request built from `spec` carries, in the forms a target
/// may echo: the URL's password (raw, %-encoded, and the Basic header curl makes
/// of it), and the values of credential headers (Authorization, Cookie, any name
/// with token, key, secret, auth, pass, session or cookie), after their scheme word
/// ("Bearer <token>": the token). Pure.
std::vector<std::string> httpSecrets(const HttpSpec& spec);

/// Probes one URL as blackbox_exporter's http prober does, plus vigie's health pages.
///
/// Each attempt uses a fresh connection (CURLOPT_FRESH_CONNECT + FORBID_REUSE, no TLS
/// session resumption) so the connect and TLS phases and the certificate chain are
/// measured every time. The body is kept up to `max_body` bytes; one byte more cuts
/// the transfer (Reason::body_too_large), so memory stays bounded whatever the target.
/// A body nobody reads (health_format none and no condition) is counted, not kept.
/// The deadline is also given to curl (CURLOPT_TIMEOUT_MS): an attempt ends by itself.
///
/// Outcome, first match wins:
///  - transport error: dns, connect, timeout, tls, http_protocol (garbage, reset
///    mid-body, redirect loop "too many redirects"), body_too_large;
///  - status not in expect_status (empty: any 2xx): http_status, "got 503, expected 2xx"
///    (a health page on that response still fills components and version);
///  - the response's HTTP version not in valid_http_versions: http_protocol;
///  - fail_if_ssl / fail_if_not_ssl (blackbox modules): tls;
///  - certificate expiring within cert_min_days: cert_expiring;
///  - health page says fail: health_fail, the failing components named in the detail;
///    an explicit health_format that cannot be parsed: health_parse;
///  - a condition fails: latency (latency_below), http_status (status_in), else body;
///  - health page says warn: Status::warn with Reason::health_warn;
///  - else ok.
///
/// `health_format: auto` never fails a check on a body that is not a health page:
/// a parse error counts only when the Content-Type names a health format
/// (application/health+json, application/vnd.spring-boot.actuator...), and a
/// plain-text verdict ("OK" / anything else) only when the Content-Type is text/plain
/// or absent. So an HTML or generic JSON page with status 200 is ok, with no components.
///
/// Threading: as Probe. Holds an easy handle from the driver's pool only while an
/// attempt runs; destroying the probe cancels a running attempt (done is then never
/// called).
class HttpProbe : public Probe {
 public:
  /// Copies `spec`; `ctx` (its CurlDriver and io_context) must outlive the probe.
  HttpProbe(ProbeContext& ctx, HttpSpec spec);
  /// As above, with options for probes that compose HttpProbe.
  HttpProbe(ProbeContext& ctx, HttpSpec spec, HttpProbeOptions options);
  /// Shares `spec` (a check's, aliasing its Config) instead of copying it: 50,000
  /// checks do not hold their settings twice.
  HttpProbe(ProbeContext& ctx, std::shared_ptr<const HttpSpec> spec,
            HttpProbeOptions options = {});
  ~HttpProbe() override;

  HttpProbe(const HttpProbe&) = delete;
  HttpProbe& operator=(const HttpProbe&) = delete;

  /// Starts one attempt (a running one is cancelled first).
  void start(SteadyClock::time_point deadline, Done done) override;
  /// Stops the running attempt; its done is never called. No-op when idle.
  void cancel() override;
  bool timesItself() const override { return true; }  // its own timer ends it

  /// True when attempts go through vigie's own HTTP/1.1 client (plain http:// to an
  /// IP address, see probes/http_native.h), false when through libcurl. Decided once,
  /// at construction.
  bool native() const { return native_ != nullptr; }
  /// Attempts the native client handed back to libcurl (with wire_facts: a gzip body,
  /// a redirect to follow, ...), each made again through libcurl. For tests.
  std::uint64_t handoffs() const { return handoffs_; }

 private:
  struct Attempt;
  static std::size_t onWrite(char* data, std::size_t size, std::size_t nmemb, void* userp);
  static std::size_t onHeader(char* data, std::size_t size, std::size_t nmemb, void* userp);
  void configure(SteadyClock::time_point deadline);
  void finish(CURLcode rc);
  Result buildResult(CURLcode rc);
  void finishNative();
  void startCurl();
  void nativeWireFacts(Result& r);
  void regexFailed(const Result& r, WireFacts& w) const;
  void judge(Result& r, std::string_view body, std::string_view content_type, bool https);
  void addWireFacts(Result& r);

  ProbeContext& ctx_;
  std::shared_ptr<const HttpSpec> spec_;  // never null
  CURL* easy_ = nullptr;
  curl_slist* headers_ = nullptr;
  curl_slist* connect_to_ = nullptr;
  // spec_->url rewritten for an SNI override; null (nearly every check): spec_->url.
  std::unique_ptr<const std::string> url_;
  std::vector<std::string> secrets_;  // what a target echoing the request must not show
  std::unique_ptr<Attempt> attempt_;  // while an attempt runs (null when idle)
  std::unique_ptr<NativeHttpClient> native_;  // null: libcurl
  SteadyClock::time_point deadline_{};        // of the running attempt
  std::uint64_t handoffs_ = 0;
  bool running_ = false;
  // The options kept after construction (the pinned address goes into connect_to_).
  bool wire_facts_ = false;
  bool report_redirect_url_ = false;
  Done done_;
};

}  // namespace vigie
