#include "exporters/api.h"

#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <unordered_set>
#include <variant>

#include "collector/shard.h"
#include "exporters/json_util.h"

namespace vigie {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxText = 4096;

json::value text(std::string_view s) { return json::string(sanitizeUtf8(s, kMaxText)); }

json::value timeOrNull(SystemClock::time_point tp) {
  if (tp == SystemClock::time_point{}) return nullptr;
  return json::string(formatRfc3339(tp));
}

json::value reasonOrNull(Reason r) {
  if (r == Reason::none) return nullptr;
  return json::string(reasonName(r));
}

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// What the check points at, for a human; never a secret (no DSN, no token,
// no user:password in URLs).
json::value targetOf(const ProbeSpec& spec) {
  return std::visit(
      [](const auto& s) -> json::value {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, HttpSpec> || std::is_same_v<T, IngressSpec>) {
          return text(stripUrlUserinfo(s.url));
        } else if constexpr (std::is_same_v<T, TcpSpec>) {
          return text(s.address);
        } else if constexpr (std::is_same_v<T, DiskSpec>) {
          return text(s.path);
        } else if constexpr (std::is_same_v<T, PostgresSpec>) {
          return text(redactDsn(s.dsn));
        } else {
          return nullptr;
        }
      },
      spec);
}

json::object resultJson(const Result& r) {
  json::object o;
  o.reserve(16);
  o["at"] = timeOrNull(r.started);
  o["status"] = statusName(r.status);
  o["reason"] = reasonOrNull(r.reason);
  o["detail"] = text(r.detail);
  o["duration_seconds"] = r.duration;
  o["http_status"] = r.http_status;
  o["phases"] = json::object{{"resolve", r.phases.resolve},
                             {"connect", r.phases.connect},
                             {"tls", r.phases.tls},
                             {"processing", r.phases.processing},
                             {"transfer", r.phases.transfer}};
  if (r.cert_expiry) {
    const auto tp = SystemClock::time_point(std::chrono::duration_cast<SystemClock::duration>(
        std::chrono::duration<double>(*r.cert_expiry)));
    o["cert_expiry"] = formatRfc3339(tp);
  }
  json::array conditions;
  conditions.reserve(r.conditions.size());
  for (const auto& c : r.conditions) {
    conditions.push_back(
        json::object{{"name", text(c.name)}, {"ok", c.ok}, {"detail", text(c.detail)}});
  }
  o["conditions"] = std::move(conditions);
  json::array components;
  components.reserve(r.components.size());
  for (const auto& c : r.components) {
    components.push_back(json::object{
        {"name", text(c.name)}, {"status", statusName(c.status)}, {"detail", text(c.detail)}});
  }
  o["components"] = std::move(components);
  o["version"] = r.version.empty() ? json::value(nullptr) : text(r.version);
  json::object info;
  for (const auto& [k, v] : r.info) info[sanitizeUtf8(k, 256)] = text(v);
  o["info"] = std::move(info);
  json::array targets;
  targets.reserve(r.targets.size());
  for (const auto& t : r.targets) {
    json::object to;
    to["address"] = text(t.address);
    to["status"] = statusName(t.status);
    to["reason"] = reasonOrNull(t.reason);
    to["detail"] = text(t.detail);
    to["http_status"] = t.http_status;
    to["duration_seconds"] = t.duration;
    to["cert_expiry"] = t.cert_expiry ? json::value(formatRfc3339(SystemClock::time_point(
                                            std::chrono::duration_cast<SystemClock::duration>(
                                                std::chrono::duration<double>(*t.cert_expiry)))))
                                      : json::value(nullptr);
    targets.push_back(std::move(to));
  }
  o["targets"] = std::move(targets);
  return o;
}

bool parseStates(std::string_view list, std::array<bool, 4>& keep) {
  keep.fill(false);
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view name = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    bool known = false;
    for (CheckState s :
         {CheckState::unknown, CheckState::up, CheckState::degraded, CheckState::down}) {
      if (checkStateName(s) == name) {
        keep[static_cast<std::size_t>(s)] = true;
        known = true;
      }
    }
    if (!known) return false;
  }
  return true;
}

void noStore(HttpResponse& res) { res.headers.emplace_back("Cache-Control", "no-store"); }

json::value ratioOrNull(const std::optional<double>& r) {
  if (!r) return nullptr;
  return *r;
}

// The list of entity tags in an If-None-Match value, one at a time; weak tags
// compare equal to strong ones (RFC 9110 13.1.2).
bool listHas(std::string_view list, std::string_view etag) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view tag = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag == "*") return true;
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    if (!tag.empty() && tag == etag) return true;
  }
  return false;
}

}  // namespace

json::object changeJson(const StateChange& e) {
  json::object o;
  o.reserve(9);
  o["id"] = e.id;
  o["at"] = timeOrNull(e.at);
  o["subject"] = subjectName(e.subject);
  o["name"] = text(e.name);
  o["from"] = text(e.from);
  o["to"] = text(e.to);
  o["reason"] = reasonOrNull(e.reason);
  o["detail"] = text(e.detail);
  o["cause"] = e.cause.empty() ? json::value(nullptr) : text(e.cause);
  return o;
}

json::object uptimeJson(const UptimeRatios& uptime) {
  json::object o;
  o.reserve(kUptimeWindows.size());
  for (std::size_t i = 0; i < kUptimeWindows.size(); ++i) {
    o[kUptimeWindows[i]] = ratioOrNull(uptime[i]);
  }
  return o;
}

json::array changesJson(const RecentChanges& changes) {
  json::array a;
  if (!changes) return a;
  a.reserve(changes->size());
  for (const StateChange& e : *changes) a.push_back(changeJson(e));
  return a;
}

std::string bodyEtag(std::string_view body) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : body) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(18, '"');
  for (int i = 16; i >= 1; --i, h >>= 4) out[static_cast<std::size_t>(i)] = kHex[h & 0xF];
  return out;
}

bool etagMatches(std::string_view if_none_match, std::string_view etag) {
  return listHas(if_none_match, etag);
}

namespace {

void finishJsonWithEtag(const HttpRequest& req, HttpResponse& res, std::string_view cache_control,
                        std::string etag) {
  res.status = 200;
  res.content_type = "application/json";
  res.headers.emplace_back("Cache-Control", std::string(cache_control));
  const std::string_view inm = req.header("If-None-Match");
  if (!inm.empty() && etagMatches(inm, etag)) {
    res.status = 304;
    res.body.clear();
  }
  res.headers.emplace_back("ETag", std::move(etag));
}

}  // namespace

void finishJson(const HttpRequest& req, HttpResponse& res, std::string_view cache_control) {
  finishJsonWithEtag(req, res, cache_control, bodyEtag(res.body));
}

json::object shardJson(const ShardSpec& shard) {
  return json::object{{"index", shard.index}, {"count", shard.count}};
}

const ShardSpec* snapshotShard(const Snapshot& snap) {
  return snap.config && snap.config->shard.count > 1 ? &snap.config->shard : nullptr;
}

json::object checkJson(const CheckStatus& c, const ShardSpec* shard) {
  json::object o;
  o.reserve(24);
  const CheckConfig* cfg = c.check.get();
  const ServiceConfig* svc = c.service.get();
  o["key"] = cfg ? text(cfg->key) : json::value(nullptr);
  o["service"] = svc ? text(svc->name) : json::value(nullptr);
  o["check"] = cfg ? text(cfg->name) : json::value(nullptr);
  o["group"] = svc ? text(svc->group) : json::value(nullptr);
  o["kind"] = cfg ? json::value(json::string(probeKindLabel(cfg->spec))) : json::value(nullptr);
  if (cfg && std::holds_alternative<HeartbeatSpec>(cfg->spec)) {
    o["target"] = text("/api/v1/push/" + cfg->key);  // where the job pushes; never the token
  } else {
    o["target"] = cfg ? targetOf(cfg->spec) : json::value(nullptr);
  }
  o["critical"] = cfg ? cfg->critical : true;
  o["state"] = checkStateName(c.state);
  o["pending"] = c.pending;
  o["reason"] = c.last ? reasonOrNull(c.last->reason) : json::value(nullptr);
  o["detail"] = c.last ? text(c.last->detail) : json::value(nullptr);
  o["consecutive_failures"] = c.consecutive_failures;
  o["consecutive_successes"] = c.consecutive_successes;
  o["last_result"] = c.last ? json::value(resultJson(*c.last)) : json::value(nullptr);
  o["last_change"] = timeOrNull(c.last_change);
  o["last_success"] = timeOrNull(c.last_success);
  o["last_failure"] = timeOrNull(c.last_failure);
  o["last_failure_reason"] =
      c.last_failure_result ? reasonOrNull(c.last_failure_result->reason) : json::value(nullptr);
  o["last_failure_detail"] =
      c.last_failure_result ? text(c.last_failure_result->detail) : json::value(nullptr);
  json::array recent;
  recent.reserve(c.recent.size());
  for (const ResultSummary& s : c.recent) {
    recent.push_back(json::object{{"at", timeOrNull(s.at)},
                                  {"status", statusName(s.status)},
                                  {"reason", reasonOrNull(s.reason)},
                                  {"duration_seconds", static_cast<double>(s.duration)}});
  }
  o["recent"] = std::move(recent);
  o["interval_seconds"] = cfg ? seconds(cfg->interval) : 0.0;
  o["timeout_seconds"] = cfg ? seconds(cfg->timeout) : 0.0;
  o["results_total"] = json::object{
      {"ok", c.results_total[0]}, {"warn", c.results_total[1]}, {"fail", c.results_total[2]}};
  o["state_changes"] = c.state_changes;
  o["flapping"] = c.flapping;
  o["flap_percent"] = c.flap_percent;
  o["uptime"] = uptimeJson(c.uptime);
  o["changes"] = changesJson(c.changes);
  if (shard && shard->count > 1 && cfg) o["shard"] = shardOf(cfg->key, shard->count);
  return o;
}

namespace {

// The /api/v1/checks document; `append` writes one check's JSON object.
template <class AppendCheck>
bool writeChecksDocument(const Snapshot& snap, std::string_view states,
                         SystemClock::time_point now, std::string& out, AppendCheck append) {
  std::array<bool, 4> keep{true, true, true, true};
  if (!states.empty() && !parseStates(states, keep)) return false;
  // Serialized one check at a time: the whole document never exists as a tree.
  std::string doc;
  doc.reserve(snap.checks.size() * 1024 + 64);
  doc.append("{\"checks\":[");
  bool first = true;
  const ShardSpec* shard = snapshotShard(snap);
  for (const auto& c : snap.checks) {
    if (!c || !keep[static_cast<std::size_t>(c->state)]) continue;
    if (!first) doc.push_back(',');
    first = false;
    append(c, shard, doc);
  }
  doc.append("],\"generated_at\":");
  doc.append(json::serialize(json::value(json::string(formatRfc3339(now)))));
  if (shard) {
    doc.append(",\"shard\":");
    doc.append(json::serialize(shardJson(*shard)));
  }
  doc.append("}\n");
  out = std::move(doc);
  return true;
}

SystemClock::time_point generatedAt(const Snapshot* snap) {
  return snap && snap->at != SystemClock::time_point{} ? snap->at : SystemClock::now();
}

void badStates(HttpResponse& res, std::string_view states) {
  noStore(res);
  res.jsonError(400, "unknown state in ?state=",
                {{"state", std::string(states)}, {"allowed", "unknown,up,degraded,down"}});
}

}  // namespace

bool checksDocument(const Snapshot& snap, std::string_view states, SystemClock::time_point now,
                    std::string& out) {
  return writeChecksDocument(
      snap, states, now, out,
      [](const std::shared_ptr<const CheckStatus>& c, const ShardSpec* shard, std::string& doc) {
        doc.append(json::serialize(checkJson(*c, shard)));
      });
}

void ChecksListCache::handle(const std::shared_ptr<const Snapshot>& snap, const HttpRequest& req,
                             HttpResponse& res) {
  // Without a time, "generated_at" is now: nothing to reuse.
  if (!snap || snap->at == SystemClock::time_point{}) return handleChecksList(snap.get(), req, res);
  const std::string* state = req.param("state");
  const std::string states = state ? *state : std::string();
  auto it = answers_.find(states);
  if (it == answers_.end() || it->second.snapshot != snap) {
    const ShardSpec* shard = snapshotShard(*snap);
    const auto shard_key =
        shard ? std::make_pair(shard->index, shard->count) : std::make_pair(0u, 0u);
    if (shard_key != shard_) {
      fragments_.clear();
      shard_ = shard_key;
    }
    std::string body;
    const bool ok = writeChecksDocument(
        *snap, states, generatedAt(snap.get()), body,
        [this](const std::shared_ptr<const CheckStatus>& c, const ShardSpec* sh, std::string& doc) {
          // The fragment holds its status: the address cannot be reused meanwhile.
          auto [f, fresh] = fragments_.try_emplace(c.get());
          if (fresh || f->second.status != c) {
            f->second.status = c;
            f->second.json = json::serialize(checkJson(*c, sh));
          }
          doc.append(f->second.json);
        });
    if (!ok) return badStates(res, states);
    // Forget the statuses that results have replaced.
    if (fragments_.size() > 2 * snap->checks.size() + 64) {
      std::unordered_set<const CheckStatus*> live;
      live.reserve(snap->checks.size());
      for (const auto& c : snap->checks) live.insert(c.get());
      std::erase_if(fragments_, [&live](const auto& kv) { return live.count(kv.first) == 0; });
    }
    if (it == answers_.end()) {
      if (answers_.size() >= 16) answers_.clear();  // a bounded number of filters
      it = answers_.emplace(states, Answer{}).first;
    }
    it->second.snapshot = snap;
    it->second.etag = bodyEtag(body);
    it->second.body = std::move(body);
  }
  res.body = it->second.body;
  finishJsonWithEtag(req, res, "no-store", it->second.etag);
}

void handleChecksList(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  const std::string* state = req.param("state");
  const std::string_view states = state ? std::string_view(*state) : std::string_view{};
  const Snapshot empty;
  if (!checksDocument(snap ? *snap : empty, states, generatedAt(snap), res.body)) {
    return badStates(res, states);
  }
  finishJson(req, res, "no-store");
}

void handleCheckOne(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  std::string_view rest = req.path;
  if (rest.substr(0, kChecksPath.size()) == kChecksPath) rest.remove_prefix(kChecksPath.size());
  if (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || rest.find('/', slash + 1) != std::string_view::npos) {
    noStore(res);
    res.jsonError(404, "not found", {{"path", std::string(req.path)}});
    return;
  }
  const std::string service = percentDecode(rest.substr(0, slash));
  const std::string check = percentDecode(rest.substr(slash + 1));
  if (snap) {
    for (const auto& c : snap->checks) {
      if (c && c->check && c->service && c->service->name == service && c->check->name == check) {
        res.body = json::serialize(checkJson(*c, snapshotShard(*snap)));
        res.body.push_back('\n');
        finishJson(req, res, "no-store");
        return;
      }
    }
  }
  noStore(res);
  res.jsonError(404, "unknown check", {{"service", service}, {"check", check}});
}

}  // namespace vigie
