#pragma once
/// \file
/// The ingress probe: the public URL as a user outside sees it, through each
/// front-end address.

#include <memory>
#include <string>
#include <vector>

#include "collector/config.h"
#include "probes/probe.h"
#include "probes/registry.h"

namespace vigie {

class HttpProbe;

/// Probes an `ingress:` check. One attempt:
///
///  1. resolves the URL's host name with Boost.Asio's async resolver on the loop's
///     io_context (the public's DNS answer). A name that does not resolve fails the
///     check with Reason::dns ("name obs.example does not resolve: ..."), even when
///     addresses are pinned: the public cannot reach the service then. The answer,
///     sorted and comma-separated, goes to info["dns"].
///  2. requests the URL through every front-end address on its own, as
///     `curl --resolve` pins it (done with CURLOPT_CONNECT_TO, see HttpProbeOptions:
///     the URL's name stays in Host, SNI and the certificate check). With
///     `addresses` set they are the configured ones, and are probed at the same time
///     as the name resolves (so a DNS failure still shows what each front end does);
///     with `addresses` empty they are every address of the DNS answer (at most 16),
///     so the per-address table shows what users reach. Each request is an HttpProbe
///     (fresh connection, TLS verification with `tls`, `expect_status`, empty: any
///     2xx; redirects not followed; no health-page parsing: the service's own checks
///     judge its health, this one the way in). A valid certificate expiring within
///     `cert_min_days` fails with Reason::cert_expiring; an expired or untrusted one
///     with Reason::tls.
///  3. with `expect_https_redirect`, also requests `http://host/path?query` (port 80,
///     the scheme's default, as `curl -I http://host/` would) through each address,
///     and wants a 301/302/303/307/308 whose Location starts with https://. Otherwise
///     Reason::http_status, "http://obs.example/health answered 200, expected a
///     redirect to https://"; a transport failure keeps its own reason.
///
/// Every request shares the attempt's deadline and runs concurrently on the shared
/// CurlDriver. The Result:
///  - targets: one TargetResult per address, in order (address as configured or as
///    answered; status/reason/detail of the first failing request of that address,
///    https before the redirect check; http_status, duration and cert_expiry of the
///    https request);
///  - mode all: ok only when every address is ok; else the reason of the first
///    failing address and its detail prefixed with it ("127.0.0.3: Failed to ...");
///  - mode any: ok when one address is ok, the detail then naming the failing ones
///    ("1 of 2 front-end addresses failing: 127.0.0.3 (connect)"); else as mode all,
///    detail "all 2 front-end addresses failing; 127.0.0.2: ...";
///  - a DNS failure wins over both (targets still filled when addresses are pinned);
///    a resolution still pending at the deadline is Reason::timeout;
///  - http_status, http_version, phases (except resolve: the DNS lookup above),
///    body_bytes from the first address; cert_expiry the earliest over addresses;
///  - info["dns"], info["location"] (ProbeContext::location, when not empty).
///
/// Threading: as Probe. Owns its sub-probes; destroying the probe cancels a running
/// attempt (done is then never called).
class IngressProbe : public Probe {
 public:
  /// Copies `spec`; `ctx` (its CurlDriver and io_context) must outlive the probe.
  IngressProbe(ProbeContext& ctx, IngressSpec spec);
  ~IngressProbe() override;

  IngressProbe(const IngressProbe&) = delete;
  IngressProbe& operator=(const IngressProbe&) = delete;

  /// Starts one attempt (a running one is cancelled first).
  void start(SteadyClock::time_point deadline, Done done) override;
  /// Stops the running attempt; its done is never called. No-op when idle.
  void cancel() override;

 private:
  struct Attempt;
  struct Target;
  void startTargets(const std::vector<std::string>& addresses);
  void oneDone();
  void finish(Result r);
  Result assemble();

  ProbeContext& ctx_;
  IngressSpec spec_;
  std::string host_;          // the URL's host, without brackets
  std::string port_;          // the URL's port, or the scheme's
  std::string redirect_url_;  // the http:// form, for expect_https_redirect
  std::string url_error_;     // why the URL cannot be probed; empty when fine
  std::shared_ptr<Attempt> attempt_;
  Done done_;
};

}  // namespace vigie
