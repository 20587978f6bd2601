#pragma once
/// \file
/// `vigie demo`: sample health pages of every supported format, served by vigie's
/// own HTTP server under /demo/, so the demo configuration needs no outside server.
/// One target is healthy, one degraded, one failing, one flaps on a timer.

#include <string_view>

namespace vigie {

class HttpServer;

/// Adds the /demo/... routes. Loop thread.
void registerDemoRoutes(HttpServer& server);

/// The demo configuration (examples/demo.yaml, embedded at build time).
std::string_view demoConfigText();

}  // namespace vigie
