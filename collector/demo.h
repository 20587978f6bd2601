#pragma once
/// \file
/// `vigie demo`: sample health pages of every supported format, served by vigie's
/// own HTTP server under /demo/, so the demo configuration needs no outside server.
/// One target is healthy, one degraded, one failing, one flaps on a timer.

#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>

namespace vigie {

class HttpServer;

/// Adds the /demo/... routes. Loop thread.
void registerDemoRoutes(HttpServer& server);

/// Pushes the demo's heartbeat (check backup-job/nightly) through vigie's own
/// push endpoint at `host_port`, the way a CronJob's curl does: every 20 s, the
/// first after 2 s, each one a real HTTP request on loopback. Runs on `io` until
/// it stops. Loop thread.
void startDemoHeartbeat(boost::asio::io_context& io, std::string host_port);

/// The demo configuration (examples/demo.yaml, embedded at build time).
std::string_view demoConfigText();

}  // namespace vigie
