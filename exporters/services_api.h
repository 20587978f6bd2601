#pragma once
/// \file
/// The JSON API over services, groups, clusters and state-change events:
///   GET /api/v1/services[?state=down,degraded][&group=name]
///   GET /api/v1/services/{name}
///   GET /api/v1/groups            GET /api/v1/groups/{name}
///   GET /api/v1/clusters          GET /api/v1/clusters/{name}
///   GET /api/v1/clusters/{name}/ready   (text: 200 "ready" or 503 with the reason)
///   GET /api/v1/events[?limit=100][&before=id][&subject=service][&name=x]
/// Field names are stable and documented in docs/api.md. JSON answers carry an
/// ETag (a hash of the body) and Cache-Control: no-cache, and answer 304 to a
/// matching If-None-Match. Unknown names answer 404 and bad parameters 400, both
/// as JSON errors. Every string from a target or the config is valid UTF-8 and
/// escaped. Path segments are %-decoded.
///
/// Pure functions of a Snapshot, except that the events come from the engine's
/// live EventLog (Snapshot::events): call them on the loop thread, as the
/// server does.

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "collector/snapshot.h"
#include "exporters/http_server.h"

namespace vigie {

inline constexpr std::string_view kServicesPath = "/api/v1/services";
inline constexpr std::string_view kGroupsPath = "/api/v1/groups";
inline constexpr std::string_view kClustersPath = "/api/v1/clusters";
inline constexpr std::string_view kEventsPath = "/api/v1/events";

/// Bounds of /api/v1/events?limit=.
inline constexpr std::size_t kEventsDefaultLimit = 100;
inline constexpr std::size_t kEventsMaxLimit = 1000;

/// The JSON object of one service. `full`: each check as checkJson() (last result
/// with components, conditions, targets; recent results; changes), else the
/// short form {key, check, kind, state, pending, critical, flapping, reason,
/// detail, last_change}.
boost::json::object serviceJson(const Snapshot& snapshot, const ServiceStatus& service, bool full);

/// The /api/v1/services document. `states`: "" for all, else a comma-separated
/// list of service state names; `group`: "" for all, else one group's name (an
/// unknown group lists nothing). Returns false, naming the bad parameter in
/// `bad`, when a state name is unknown (and leaves `out` untouched).
bool servicesDocument(const Snapshot& snapshot, std::string_view states, std::string_view group,
                      std::string& out, std::string& bad);

/// The JSON objects of a group and a cluster, as listed and as served alone.
boost::json::object groupJson(const Snapshot& snapshot, const GroupStatus& group);
boost::json::object clusterJson(const Snapshot& snapshot, const ClusterStatus& cluster);

/// The route handlers. A null snapshot lists nothing and knows no name.
void handleServicesList(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);
/// Serves kServicesPath + "/{name}".
void handleServiceOne(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);
void handleGroupsList(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);
/// Serves kGroupsPath + "/{name}".
void handleGroupOne(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);
void handleClustersList(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);
/// Serves kClustersPath + "/{name}" and kClustersPath + "/{name}/ready".
void handleClusterOne(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);
void handleEvents(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);

}  // namespace vigie
