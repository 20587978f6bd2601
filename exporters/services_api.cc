#include "exporters/services_api.h"

#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cstdint>
#include <vector>

#include "collector/history.h"
#include "collector/shard.h"
#include "exporters/api.h"
#include "exporters/json_util.h"

namespace vigie {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxText = 4096;

json::value text(std::string_view s) { return json::string(sanitizeUtf8(s, kMaxText)); }

json::value textOrNull(std::string_view s) {
  if (s.empty()) return nullptr;
  return text(s);
}

json::value timeOrNull(SystemClock::time_point tp) {
  if (tp == SystemClock::time_point{}) return nullptr;
  return json::string(formatRfc3339(tp));
}

json::value reasonOrNull(Reason r) {
  if (r == Reason::none) return nullptr;
  return json::string(reasonName(r));
}

json::string stateName(ServiceState s) { return json::string(serviceStateName(s)); }

json::object countsJson(const std::array<std::size_t, 5>& counts) {
  json::object o;
  o.reserve(kServiceStates.size());
  for (ServiceState s : kServiceStates) {
    o[serviceStateName(s)] = counts[static_cast<std::size_t>(s)];
  }
  return o;
}

const CheckStatus* checkAt(const Snapshot& snap, std::size_t i) {
  return i < snap.checks.size() ? snap.checks[i].get() : nullptr;
}

// What each check of the service last reported about the running software, so
// blue and green instances (two checks, or two services) read side by side.
json::array versionsJson(const Snapshot& snap, const ServiceStatus& svc) {
  json::array out;
  for (std::size_t i : svc.checks) {
    const CheckStatus* c = checkAt(snap, i);
    if (!c || !c->check || !c->last) continue;
    const Result& r = *c->last;
    if (r.version.empty() && r.info.empty()) continue;
    json::object info;
    for (const auto& [k, v] : r.info) info[sanitizeUtf8(k, 256)] = text(v);
    out.push_back(json::object{{"check", text(c->check->name)},
                               {"version", textOrNull(r.version)},
                               {"info", std::move(info)}});
  }
  return out;
}

// The distinct version strings reported by the service's checks, in check order.
json::array distinctVersions(const Snapshot& snap, const ServiceStatus& svc) {
  json::array out;
  for (std::size_t i : svc.checks) {
    const CheckStatus* c = checkAt(snap, i);
    if (!c || !c->last || c->last->version.empty()) continue;
    json::value v = text(c->last->version);
    bool seen = false;
    for (const auto& x : out) seen = seen || x == v;
    if (!seen) out.push_back(std::move(v));
  }
  return out;
}

json::object shortCheckJson(const CheckStatus& c, const ShardSpec* shard) {
  json::object o;
  o.reserve(11);
  o["key"] = c.check ? text(c.check->key) : json::value(nullptr);
  o["check"] = c.check ? text(c.check->name) : json::value(nullptr);
  o["kind"] =
      c.check ? json::value(json::string(probeKindLabel(c.check->spec))) : json::value(nullptr);
  o["state"] = checkStateName(c.state);
  o["pending"] = c.pending;
  o["critical"] = c.check ? c.check->critical : true;
  o["flapping"] = c.flapping;
  o["reason"] = c.last ? reasonOrNull(c.last->reason) : json::value(nullptr);
  o["detail"] = c.last ? text(c.last->detail) : json::value(nullptr);
  o["last_change"] = timeOrNull(c.last_change);
  if (shard && c.check) o["shard"] = shardOf(c.check->key, shard->count);
  return o;
}

// A service as an item of a group or a cluster.
json::object serviceRef(const Snapshot& snap, const ServiceStatus& svc) {
  return json::object{{"name", svc.service ? text(svc.service->name) : json::value(nullptr)},
                      {"state", stateName(svc.state)},
                      {"cause", textOrNull(svc.cause)},
                      {"versions", distinctVersions(snap, svc)}};
}

json::array serviceRefs(const Snapshot& snap, const std::vector<std::size_t>& indices) {
  json::array out;
  out.reserve(indices.size());
  for (std::size_t i : indices) {
    if (i < snap.services.size()) out.push_back(serviceRef(snap, snap.services[i]));
  }
  return out;
}

bool parseServiceStates(std::string_view list, std::array<bool, 5>& keep) {
  keep.fill(false);
  for (bool more = true; more;) {
    const auto comma = list.find(',');
    const std::string_view name = list.substr(0, comma);
    more = comma != std::string_view::npos;
    if (more) list.remove_prefix(comma + 1);
    bool known = false;
    for (ServiceState s : kServiceStates) {
      if (serviceStateName(s) == name) {
        keep[static_cast<std::size_t>(s)] = true;
        known = true;
      }
    }
    if (!known) return false;
  }
  return true;
}

void noStore(HttpResponse& res) { res.headers.emplace_back("Cache-Control", "no-store"); }

void badParameter(HttpResponse& res, std::string_view name, std::string_view value,
                  std::string_view allowed) {
  noStore(res);
  res.jsonError(400, "bad parameter",
                {{"parameter", std::string(name)},
                 {"value", std::string(value)},
                 {"allowed", std::string(allowed)}});
}

void notFound(HttpResponse& res, std::string_view message, std::string_view field,
              std::string_view name) {
  noStore(res);
  res.jsonError(404, message, {{std::string(field), std::string(name)}});
}

// The %-decoded segments of the path after `prefix` + "/"; empty segments are kept
// (so "/x//y" is three segments and matches nothing).
std::vector<std::string> segmentsAfter(std::string_view path, std::string_view prefix) {
  std::vector<std::string> out;
  if (path.substr(0, prefix.size()) != prefix) return out;
  path.remove_prefix(prefix.size());
  if (path.empty() || path.front() != '/') return out;
  path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    out.push_back(percentDecode(path.substr(0, slash)));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool parseUnsigned(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc{} && r.ptr == s.data() + s.size();
}

// For the "next" link: everything but unreserved characters %-encoded.
std::string queryEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_' || c == '~';
    if (plain) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

void serveJson(const HttpRequest& req, HttpResponse& res, const json::value& v) {
  res.body = json::serialize(v);
  res.body.push_back('\n');
  finishJson(req, res);
}

const ServiceStatus* findService(const Snapshot* snap, std::string_view name) {
  if (!snap) return nullptr;
  for (const auto& s : snap->services) {
    if (s.service && s.service->name == name) return &s;
  }
  return nullptr;
}

}  // namespace

json::object serviceJson(const Snapshot& snap, const ServiceStatus& svc, bool full) {
  json::object o;
  o.reserve(18);
  const ServiceConfig* cfg = svc.service.get();
  o["name"] = cfg ? text(cfg->name) : json::value(nullptr);
  o["group"] = cfg ? text(cfg->group) : json::value(nullptr);
  o["description"] = cfg ? text(cfg->description) : json::value(nullptr);
  json::object labels;
  json::array depends_on;
  if (cfg) {
    for (const auto& [k, v] : cfg->labels) labels[sanitizeUtf8(k, 256)] = text(v);
    for (const auto& d : cfg->depends_on) depends_on.push_back(text(d));
  }
  o["labels"] = std::move(labels);
  o["depends_on"] = std::move(depends_on);
  o["state"] = stateName(svc.state);
  o["underlying_state"] = stateName(svc.underlying);
  o["cause"] = textOrNull(svc.cause);
  json::array causes;
  causes.reserve(svc.causes.size());
  for (const auto& c : svc.causes) causes.push_back(text(c));
  o["causes"] = std::move(causes);
  o["maintenance"] = svc.state == ServiceState::maintenance
                         ? text(svc.maintenance.empty() ? "maintenance" : svc.maintenance)
                         : json::value(nullptr);
  o["flapping"] = svc.flapping;
  o["last_change"] = timeOrNull(svc.last_change);
  o["uptime"] = uptimeJson(svc.uptime);
  json::array versions = versionsJson(snap, svc);
  o["versions_differ"] = distinctVersions(snap, svc).size() > 1;
  o["versions"] = std::move(versions);
  json::array checks;
  checks.reserve(svc.checks.size());
  for (std::size_t i : svc.checks) {
    const CheckStatus* c = checkAt(snap, i);
    if (!c) continue;
    checks.push_back(full ? checkJson(*c, snapshotShard(snap))
                          : shortCheckJson(*c, snapshotShard(snap)));
  }
  o["checks"] = std::move(checks);
  o["changes"] = changesJson(svc.changes);
  return o;
}

bool servicesDocument(const Snapshot& snap, std::string_view states, std::string_view group,
                      std::string& out, std::string& bad) {
  std::array<bool, 5> keep{true, true, true, true, true};
  if (!states.empty() && !parseServiceStates(states, keep)) {
    bad = "state";
    return false;
  }
  std::array<std::size_t, 5> summary{};
  std::string list;
  list.reserve(snap.services.size() * 1024);
  bool first = true;
  for (const ServiceStatus& s : snap.services) {
    if (!s.service) continue;
    if (!group.empty() && s.service->group != group) continue;
    ++summary[static_cast<std::size_t>(s.state)];
    if (!keep[static_cast<std::size_t>(s.state)]) continue;
    if (!first) list.push_back(',');
    first = false;
    list.append(json::serialize(serviceJson(snap, s, false)));
  }
  std::string doc;
  doc.reserve(list.size() + 256);
  doc.append("{\"generated_at\":");
  doc.append(json::serialize(timeOrNull(snap.at)));
  doc.append(",\"summary\":");
  doc.append(json::serialize(countsJson(summary)));
  doc.append(",\"services\":[");
  doc.append(list);
  doc.append("]");
  if (const ShardSpec* shard = snapshotShard(snap)) {
    doc.append(",\"shard\":");
    doc.append(json::serialize(shardJson(*shard)));
  }
  doc.append("}\n");
  out = std::move(doc);
  return true;
}

json::object groupJson(const Snapshot& snap, const GroupStatus& g) {
  std::size_t total = 0;
  for (std::size_t n : g.counts) total += n;
  return json::object{
      {"name", text(g.name)},           {"description", text(g.description)},
      {"state", stateName(g.state)},    {"total", total},
      {"counts", countsJson(g.counts)}, {"services", serviceRefs(snap, g.services)}};
}

json::object clusterJson(const Snapshot& snap, const ClusterStatus& c) {
  const ClusterConfig* cfg = c.cluster.get();
  json::object o;
  o.reserve(9);
  o["name"] = cfg ? text(cfg->name) : json::value(nullptr);
  o["state"] = stateName(c.state);
  o["ready"] = c.ready;
  o["reason"] = textOrNull(c.reason);
  o["agent_listen"] = cfg ? textOrNull(cfg->agent_listen) : json::value(nullptr);
  o["services"] = serviceRefs(snap, c.services);
  o["last_change"] = timeOrNull(c.last_change);
  o["changes"] = changesJson(c.changes);
  return o;
}

void handleServicesList(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  const std::string* state = req.param("state");
  const std::string* group = req.param("group");
  const std::string_view states = state ? std::string_view(*state) : std::string_view{};
  const Snapshot empty;
  std::string bad;
  if (!servicesDocument(snap ? *snap : empty, states, group ? *group : std::string_view{}, res.body,
                        bad)) {
    badParameter(res, bad, states, "unknown,up,degraded,down,maintenance");
    return;
  }
  finishJson(req, res);
}

void handleServiceOne(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  const auto seg = segmentsAfter(req.path, kServicesPath);
  if (seg.size() != 1 || seg[0].empty()) {
    notFound(res, "not found", "path", req.path);
    return;
  }
  const ServiceStatus* s = findService(snap, seg[0]);
  if (!s) {
    notFound(res, "unknown service", "service", seg[0]);
    return;
  }
  serveJson(req, res, serviceJson(*snap, *s, true));
}

void handleGroupsList(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  json::array groups;
  if (snap) {
    groups.reserve(snap->groups.size());
    for (const GroupStatus& g : snap->groups) groups.push_back(groupJson(*snap, g));
  }
  serveJson(req, res,
            json::object{{"generated_at", snap ? timeOrNull(snap->at) : nullptr},
                         {"groups", std::move(groups)}});
}

void handleGroupOne(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  const auto seg = segmentsAfter(req.path, kGroupsPath);
  if (seg.size() != 1 || seg[0].empty()) {
    notFound(res, "not found", "path", req.path);
    return;
  }
  if (snap) {
    for (const GroupStatus& g : snap->groups) {
      if (g.name == seg[0]) return serveJson(req, res, groupJson(*snap, g));
    }
  }
  notFound(res, "unknown group", "group", seg[0]);
}

void handleClustersList(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  json::array clusters;
  if (snap) {
    clusters.reserve(snap->clusters.size());
    for (const ClusterStatus& c : snap->clusters) clusters.push_back(clusterJson(*snap, c));
  }
  serveJson(req, res,
            json::object{{"generated_at", snap ? timeOrNull(snap->at) : nullptr},
                         {"clusters", std::move(clusters)}});
}

void handleClusterOne(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  const auto seg = segmentsAfter(req.path, kClustersPath);
  const bool ready = seg.size() == 2 && seg[1] == "ready";
  if ((seg.size() != 1 && !ready) || seg.empty() || seg[0].empty()) {
    notFound(res, "not found", "path", req.path);
    return;
  }
  const ClusterStatus* found = nullptr;
  if (snap) {
    for (const ClusterStatus& c : snap->clusters) {
      if (c.cluster && c.cluster->name == seg[0]) found = &c;
    }
  }
  if (!found) {
    notFound(res, "unknown cluster", "cluster", seg[0]);
    return;
  }
  if (!ready) return serveJson(req, res, clusterJson(*snap, *found));
  // For front ends' HTTP checks: only the status matters to them, the text is
  // for whoever reads their logs. Never cached.
  noStore(res);
  res.content_type = "text/plain; charset=utf-8";
  if (found->ready) {
    res.status = 200;
    res.body = "ready\n";
  } else {
    res.status = 503;
    res.body =
        found->reason.empty() ? std::string("not ready") : sanitizeUtf8(found->reason, kMaxText);
    res.body.push_back('\n');
  }
}

void handleEvents(const Snapshot* snap, const HttpRequest& req, HttpResponse& res) {
  std::uint64_t limit = kEventsDefaultLimit;
  if (const std::string* p = req.param("limit")) {
    if (!parseUnsigned(*p, limit) || limit < 1 || limit > kEventsMaxLimit) {
      return badParameter(res, "limit", *p, "an integer from 1 to 1000");
    }
  }
  std::uint64_t before = 0;
  if (const std::string* p = req.param("before")) {
    if (!parseUnsigned(*p, before)) {
      return badParameter(res, "before", *p, "an event id (a non-negative integer)");
    }
  }
  const std::string* subject_param = req.param("subject");
  StateChange::Subject subject = StateChange::Subject::check;
  if (subject_param) {
    bool known = false;
    for (auto s : {StateChange::Subject::check, StateChange::Subject::service,
                   StateChange::Subject::cluster}) {
      if (subjectName(s) == *subject_param) {
        subject = s;
        known = true;
      }
    }
    if (!known) return badParameter(res, "subject", *subject_param, "check,service,cluster");
  }
  const std::string* name = req.param("name");

  std::vector<const StateChange*> page;
  if (snap && snap->events) {
    page =
        snap->events->page(before, static_cast<std::size_t>(limit) + 1, [&](const StateChange& e) {
          return (!subject_param || e.subject == subject) && (!name || e.name == *name);
        });
  }
  json::value next = nullptr;
  if (page.size() > limit) {
    page.resize(static_cast<std::size_t>(limit));
    std::string url = std::string(kEventsPath) + "?before=" + std::to_string(page.back()->id) +
                      "&limit=" + std::to_string(limit);
    if (subject_param) url += "&subject=" + std::string(subjectName(subject));
    if (name) url += "&name=" + queryEscape(*name);
    next = json::string(url);
  }
  json::array events;
  events.reserve(page.size());
  for (const StateChange* e : page) events.push_back(changeJson(*e));
  serveJson(req, res, json::object{{"events", std::move(events)}, {"next", std::move(next)}});
}

}  // namespace vigie
