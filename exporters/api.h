#pragma once
/// \file
/// The JSON API over checks: GET /api/v1/checks and /api/v1/checks/{service}/{check}.
/// Field names are stable and documented in docs/api.md. Every string from a
/// target or the config is made valid UTF-8 and escaped by Boost.JSON; URLs are
/// shown without their user:password part and DSNs or tokens never appear.
/// Pure functions of a Snapshot: callable from any thread that holds one.

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "collector/snapshot.h"
#include "exporters/http_server.h"

namespace vigie {

/// The JSON object of one check, as listed in "checks".
boost::json::object checkJson(const CheckStatus& check);

/// The whole /api/v1/checks document: {"checks": [...], "generated_at": ...}.
/// `states`: empty for every check, else a comma-separated list of state names
/// ("down,degraded") to keep. Returns false (and leaves `out` untouched) when a
/// state name is unknown.
bool checksDocument(const Snapshot& snapshot, std::string_view states, SystemClock::time_point now,
                    std::string& out);

/// GET /api/v1/checks[?state=down]. A null snapshot lists no check.
/// Bad `state` -> 400 JSON.
void handleChecksList(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);

/// GET /api/v1/checks/{service}/{check} (each segment %-decoded). Unknown -> 404 JSON.
void handleCheckOne(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);

/// Path prefix served by handleCheckOne().
inline constexpr std::string_view kChecksPath = "/api/v1/checks";

}  // namespace vigie
