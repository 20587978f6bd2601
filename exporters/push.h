#pragma once
/// \file
/// The heartbeat push endpoint, as healthchecks.io's ping URLs:
///   POST /api/v1/push/{service}/{check}            the job ran and succeeded
///   POST /api/v1/push/{service}/{check}?status=fail   it ran and failed
///   POST /api/v1/push/{service}/{check}?exit_code=3   failed when non-zero
///   POST /api/v1/push/{service}/{check}/fail          same as status=fail
///   POST /api/v1/push/{service}/{check}/{0-255}       same as exit_code=
/// GET is accepted too, for tools that can only GET. The token goes in
/// `Authorization: Bearer <token>` or `?token=<token>`. The request body (at most
/// 1 KiB kept) is shown as the push's message, e.g. the tail of the job's log.
///
/// Answers: 200 {"check","state","accepted":true}; 401 (WWW-Authenticate: Bearer)
/// for a missing or wrong token, and the push counts nowhere; 404 for an unknown
/// check; 409 for a check that is not a heartbeat; 400 for a bad parameter.
/// Every error is JSON {"error": ...}.

#include <functional>
#include <optional>
#include <string>

#include "collector/engine.h"
#include "exporters/http_server.h"

namespace vigie {

inline constexpr std::string_view kPushPath = "/api/v1/push";

/// Sharding (collector/shard.h): where a push for a check run by another replica
/// should go.
struct PushElsewhere {
  unsigned shard = 0;    // the replica that runs the check
  unsigned shards = 1;
  std::string base_url;  // "http://10.0.0.3:9877" when that replica is known, else ""
};
/// For a check this replica does not run: where it runs, or nullopt when no
/// replica runs it (no such check).
using PushOwnerLookup = std::function<std::optional<PushElsewhere>(const std::string& key)>;

/// Registers the push routes on `server`. `engine` must outlive the server.
/// With `elsewhere` (sharded replicas), a push for a check another replica runs
/// answers 307 Temporary Redirect to the same path and query on that replica
/// (`curl -L` repeats the POST and its body there), or 421 Misdirected Request
/// {"error", "shard", "shards"} when its address is not known.
/// Loop thread only.
void registerPushRoutes(HttpServer& server, Engine& engine, PushOwnerLookup elsewhere = {});

}  // namespace vigie
