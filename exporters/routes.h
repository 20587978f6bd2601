#pragma once
/// \file
/// The standard surfaces every vigie process serves, registered in one call:
///   GET /metrics                          Prometheus text (exporters/metrics.h)
///   GET /api/v1/checks[?state=down]       JSON list (exporters/api.h, docs/api.md)
///   GET /api/v1/checks/{service}/{check}  JSON of one check
///   GET /api/v1/services[/{name}], /api/v1/groups[/{name}], /api/v1/clusters[/{name}],
///       /api/v1/clusters/{name}/ready, /api/v1/events   (exporters/services_api.h)
///   GET /healthz                          200 "ok" while the loop runs
///   GET /readyz                           200 once ready, else 503
/// Loop thread only, like the server.

#include <prometheus/registry.h>

#include <functional>
#include <string>

#include "exporters/http_server.h"
#include "exporters/metrics.h"

namespace vigie {

/// True once a config is loaded and the first round of checks is scheduled.
using ReadinessFn = std::function<bool()>;

/// Registers the routes above on `server`. `self` (vigie's own metrics, owned by
/// the engine) must outlive the server; it is collected at each scrape after the
/// snapshot families, together with the server's own counters
/// (vigie_http_requests_total, vigie_http_handler_errors_total, ...).
/// `version` feeds vigie_build_info.
/// `whole`, when set (sharded replicas, collector/peers.h), serves the services,
/// groups, clusters, events and single-check routes with every shard's checks;
/// /metrics and the /api/v1/checks list always serve `snapshots` (this
/// replica's own checks), so nothing is exported or read by peers twice.
void registerStandardRoutes(HttpServer& server, SnapshotSource snapshots,
                            prometheus::Registry& self, ReadinessFn ready,
                            std::string version = "unknown", SnapshotSource whole = {});

}  // namespace vigie
