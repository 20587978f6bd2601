#pragma once
/// \file
/// The JSON API over checks: GET /api/v1/checks and /api/v1/checks/{service}/{check}.
/// Field names are stable and documented in docs/api.md. Every string from a
/// target or the config is made valid UTF-8 and escaped by Boost.JSON; URLs are
/// shown without their user:password part and DSNs or tokens never appear.
/// Pure functions of a Snapshot: callable from any thread that holds one.

#include <boost/json/object.hpp>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "collector/snapshot.h"
#include "exporters/http_server.h"

namespace vigie {

/// The JSON object of one check, as listed in "checks". With `shard` (from the
/// snapshot's config) of more than one shard, it also says which shard runs the
/// check: "shard": N (collector/shard.h).
boost::json::object checkJson(const CheckStatus& check, const ShardSpec* shard = nullptr);

/// {"index": N, "count": M}: the top-level "shard" of sharded documents.
boost::json::object shardJson(const ShardSpec& shard);

/// The snapshot's shard when it is sharded (more than one shard), else null:
/// documents and checks carry shard fields only then.
const ShardSpec* snapshotShard(const Snapshot& snapshot);

/// One state change (an item of /api/v1/events and of every "changes" array):
/// {id, at, subject, name, from, to, reason, detail, cause}.
boost::json::object changeJson(const StateChange& change);

/// {"1h": r, "24h": r, "7d": r, "30d": r}, null for a window with nothing counted.
boost::json::object uptimeJson(const UptimeRatios& uptime);

/// A subject's recent changes, oldest first as kept (an empty array when null).
boost::json::array changesJson(const RecentChanges& changes);

/// A strong HTTP validator of `body`: its FNV-1a 64 hash in 16 hex digits, quoted
/// (`"9f3c...e1"`, quotes included, as the ETag header wants).
std::string bodyEtag(std::string_view body);

/// True when an If-None-Match header value (a list of entity tags, weak or
/// strong, or "*") matches `etag` by the weak comparison of RFC 9110.
bool etagMatches(std::string_view if_none_match, std::string_view etag);

/// Finishes a 200 JSON answer already in `res.body`: Content-Type
/// application/json, the given Cache-Control and an ETag of the body; when the
/// request's If-None-Match matches, turns it into a 304 without a body.
/// (/api/v1/checks keeps "no-store", as it always answered; the newer
/// endpoints say "no-cache" so that browsers revalidate with the ETag.)
void finishJson(const HttpRequest& req, HttpResponse& res,
                std::string_view cache_control = "no-cache");

/// The whole /api/v1/checks document: {"checks": [...], "generated_at": ...}, plus
/// "shard": {"index","count"} when sharded (then it lists this replica's checks only).
/// `states`: empty for every check, else a comma-separated list of state names
/// ("down,degraded") to keep. Returns false (and leaves `out` untouched) when a
/// state name is unknown.
bool checksDocument(const Snapshot& snapshot, std::string_view states, SystemClock::time_point now,
                    std::string& out);

/// GET /api/v1/checks[?state=down]. A null snapshot lists no check.
/// Bad `state` -> 400 JSON. "generated_at" is the snapshot's time (so an
/// unchanged state keeps its ETag).
void handleChecksList(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);

/// handleChecksList() for the route under load: each check's JSON is serialized
/// once per result (a status never changes once published) and a whole answer,
/// with its ETag, is reused while the snapshot and the filter stay the same. The
/// answers are byte for byte handleChecksList()'s. Loop thread only; holds the
/// last snapshot.
class ChecksListCache {
 public:
  void handle(const std::shared_ptr<const Snapshot>& snapshot, const HttpRequest& req,
              HttpResponse& res);

 private:
  struct Fragment {
    std::shared_ptr<const CheckStatus> status;  // keeps the key's address unique
    std::string json;
  };
  struct Answer {
    std::shared_ptr<const Snapshot> snapshot;
    std::string body;
    std::string etag;
  };
  std::unordered_map<const CheckStatus*, Fragment> fragments_;
  std::pair<unsigned, unsigned> shard_{0, 0};  // the fragments' shard fields
  std::map<std::string, Answer> answers_;      // by ?state=
};

/// GET /api/v1/checks/{service}/{check} (each segment %-decoded). Unknown -> 404 JSON.
void handleCheckOne(const Snapshot* snapshot, const HttpRequest& req, HttpResponse& res);

/// Path prefix served by handleCheckOne().
inline constexpr std::string_view kChecksPath = "/api/v1/checks";

}  // namespace vigie
