#pragma once
/// \file
/// The TCP probe: resolve, connect, optionally send a text and wait for a regex
/// in what the target answers, all on the loop with Boost.Asio (no blocking
/// call).

#include <memory>
#include <string>

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
/// `tls: true` is not supported yet: every attempt is Reason::internal.
/// phases.resolve and phases.connect are filled; duration covers the whole
/// attempt.
///
/// Threading: as Probe. The attempt's sockets and timer live in a shared state
/// that its own handlers keep alive, so cancel() or destroying the probe from
/// any loop callback (even from inside `done`) is safe; done is then never
/// called.
class TcpProbe : public Probe {
public:
  /// Copies `spec` and compiles `expect`; `ctx.io` must outlive the probe. An
  /// invalid pattern is reported by each attempt as Reason::internal (never
  /// thrown).
  TcpProbe(ProbeContext &ctx, TcpSpec spec);
  ~TcpProbe() override;

  TcpProbe(const TcpProbe &) = delete;
  TcpProbe &operator=(const TcpProbe &) = delete;

  /// Starts one attempt (a running one is cancelled first).
  void start(SteadyClock::time_point deadline, Done done) override;
  /// Stops the running attempt; its done is never called. No-op when idle.
  void cancel() override;

private:
  struct Attempt;

  ProbeContext &ctx_;
  TcpSpec spec_;
  std::shared_ptr<const CompiledRegex> regex_;
  std::string
      setup_error_; // non-empty: every attempt fails with Reason::internal
  std::shared_ptr<Attempt> attempt_;
};

} // namespace vigie
