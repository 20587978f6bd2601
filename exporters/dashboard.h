#pragma once
/// \file
/// The status dashboard, rendered by vigie from a snapshot (no web server, no
/// CDN, works offline):
///   GET /                        every group with its services, problems first
///   GET /groups/{name}           one group (a team's bookmark)
///   GET /clusters/{name}         the services of one cluster
///   GET /services/{name}         one service in full: checks, conditions,
///                                components, response-time chart, changes
///   GET /checks                  the flat list of every check
///   GET /badge/{service}.svg     state badge, shields.io look
///   GET /badge/{service}/uptime/{1h|24h|7d|30d}.svg
///   GET /assets/dashboard.css, /assets/dashboard.js
/// `?fragment=1` returns only the inside of <main>, for the page's own refresh.
/// Every value from a target or a config is HTML-escaped; a strict
/// Content-Security-Policy (no inline script or style) goes with every page.
/// Loop thread only, like the server.

#include <string>
#include <string_view>

#include "collector/snapshot.h"
#include "exporters/http_server.h"
#include "exporters/metrics.h"

namespace vigie {

/// Sent with every dashboard page.
inline constexpr const char* kDashboardCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What `/`, `/groups/{name}` and `/clusters/{name}` show.
struct DashboardView {
  enum class Kind { all, group, cluster } kind = Kind::all;
  std::string name;
};

/// The overview page (or only its <main> contents with `fragment`). Returns an
/// empty string when the view names an unknown group or cluster.
std::string renderOverview(const Snapshot& snap, const DashboardView& view,
                           SystemClock::time_point now, bool fragment);
/// One service in full; empty when there is no such service.
std::string renderServicePage(const Snapshot& snap, std::string_view name,
                              SystemClock::time_point now, bool fragment);

/// A shields.io-style flat badge: grey `label`, coloured `message`.
/// `color` is a CSS colour such as "#4c1". Text is escaped.
std::string renderBadge(std::string_view label, std::string_view message, std::string_view color);

/// Registers every route above on `server`.
void registerDashboardRoutes(HttpServer& server, SnapshotSource snapshots);

}  // namespace vigie
