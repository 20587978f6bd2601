#pragma once
/// \file
/// The TCP probe: resolve, connect, optionally send a text and wait for a regex
/// in what the target answers, all on the loop with Boost.Asio (no blocking
/// call).

#include <memory>
#include <string>
#include <vector>

#include "collector/config.h"
#include "probes/probe.h"
#include "probes/registry.h"

namespace vigie {

class CompiledRegex;

/// Probes one `host:port` (IPv6 literals as `[::1]:port`) as
/// blackbox_exporter's tcp prober does with a single send/expect step.
///
/// Outcome, first match wins:
///  - the name does not resolve: dns;
///  - no connection (refused, unreachable), or a reset/write error: connect;
///  - the deadline passes first: timeout, the detail naming the phase;
///  - `expect` set and not found in what was read before EOF or 64 KiB: body,
///    "expected /x/ not seen; got \"...\"" (bounded, escaped);
///  - else ok. Without `expect` the probe succeeds once connected and `send`
///  written.
/// With `tls: true` the connection is TLS from the start (verified against
/// `tls_config`'s CA file or the system store, the host name checked; failure:
/// tls) and send/expect run over it; the certificate's earliest expiry is
/// Result::cert_expiry. blackbox's `query_response` (modules only) replaces
/// send/expect: each step reads lines until one matches `expect` (none before
/// EOF: body, WireFacts::regex_failed), sends `send` + "\n" with the match's
/// groups expanded ($1, ${name}), then upgrades to TLS when `starttls`.
/// phases.resolve, phases.connect and phases.tls are filled; duration covers the
/// whole attempt.
///
/// Threading: as Probe. The attempt's sockets and timer live in a shared state
/// that its own handlers keep alive, so cancel() or destroying the probe from
/// any loop callback (even from inside `done`) is safe; done is then never
/// called.
/// Knobs for callers other than checks; not part of the user's config.
struct TcpProbeOptions {
  /// Fill Result::wire (the address connected to, TLS facts) for /probe.
  bool wire_facts = false;
};

class TcpProbe : public Probe {
public:
  /// Copies `spec` and compiles `expect`; `ctx.io` must outlive the probe. An
  /// invalid pattern is reported by each attempt as Reason::internal (never
  /// thrown).
  TcpProbe(ProbeContext &ctx, TcpSpec spec);
  TcpProbe(ProbeContext &ctx, TcpSpec spec, TcpProbeOptions options);
  ~TcpProbe() override;

  TcpProbe(const TcpProbe &) = delete;
  TcpProbe &operator=(const TcpProbe &) = delete;

  /// Starts one attempt (a running one is cancelled first).
  void start(SteadyClock::time_point deadline, Done done) override;
  /// Stops the running attempt; its done is never called. No-op when idle.
  void cancel() override;
  bool timesItself() const override { return true; }  // its own timer ends it

private:
  struct Attempt;
  struct Step;

  ProbeContext &ctx_;
  TcpSpec spec_;
  TcpProbeOptions options_;
  std::shared_ptr<const CompiledRegex> regex_;
  std::shared_ptr<const std::vector<Step>> steps_; // query_response, compiled
  std::string
      setup_error_; // non-empty: every attempt fails with Reason::internal
  std::shared_ptr<Attempt> attempt_;
};

} // namespace vigie
