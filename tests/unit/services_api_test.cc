// /api/v1/services, groups, clusters (and /ready), events, and the ETag rules,
// from snapshots built by hand and completed by aggregate().

#include "exporters/services_api.h"

#include <gtest/gtest.h>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "collector/aggregate.h"
#include "collector/history.h"
#include "exporters/api.h"
#include "exporters/json_util.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace http = boost::beast::http;

SystemClock::time_point at(std::int64_t unix_seconds) {
  return SystemClock::time_point(std::chrono::seconds(unix_seconds));
}

const SystemClock::time_point kNow = at(1700000000);

struct Check {
  std::string name;
  bool critical = true;
};
struct Svc {
  std::string name;
  std::string group;
  std::vector<Check> checks;
  std::vector<std::string> depends_on;
  std::map<std::string, std::string> labels;
  std::string description;
};

// db <- portal (blue and green checks report versions), shop <- db, legacy in
// maintenance, lone without a group. Clusters: web (portal, shop), data (db).
std::shared_ptr<Config> sampleConfig() {
  auto cfg = std::make_shared<Config>();
  cfg->groups = {{"web", "Web services"}, {"data", "Databases"}};
  const std::vector<Svc> services = {
      {"db", "data", {{"port"}}, {}, {}, "PostgreSQL"},
      {"portal", "web", {{"blue"}, {"green"}}, {"db"}, {{"env", "prod"}}, "The portal"},
      {"shop", "web", {{"health"}, {"extra", false}}, {"db"}, {}, ""},
      {"legacy", "web", {{"ping"}}, {}, {}, ""},
      {"lone", "", {{"ping"}}, {}, {}, ""},
  };
  for (const Svc& s : services) {
    ServiceConfig sc;
    sc.name = s.name;
    sc.group = s.group;
    sc.depends_on = s.depends_on;
    sc.labels = s.labels;
    sc.description = s.description;
    for (const Check& c : s.checks) {
      CheckConfig cc;
      cc.name = c.name;
      cc.key = s.name + "/" + c.name;
      cc.critical = c.critical;
      HttpSpec h;
      h.url = "http://" + s.name + ".example/" + c.name;
      cc.spec = h;
      sc.checks.push_back(cc);
    }
    cfg->services.push_back(std::move(sc));
  }
  ClusterConfig web;
  web.name = "web";
  web.services = {"portal", "shop"};
  web.agent_listen = "0.0.0.0:9878";
  ClusterConfig data;
  data.name = "data";
  data.services = {"db"};
  cfg->clusters = {web, data};
  MaintenanceWindow w;
  w.services = {"legacy"};
  w.start = kNow - 1h;
  w.duration = 2h;
  w.reason = "moving racks";
  cfg->maintenance = {w};
  return cfg;
}

Result resultFor(CheckState s) {
  Result r = s == CheckState::down ? Result::failure(Reason::http_status, "got 503") : Result::ok();
  if (s == CheckState::degraded) {
    r.status = Status::warn;
    r.reason = Reason::health_warn;
  }
  r.started = kNow - 5s;
  return r;
}

// Checks in the given states (by key; unknown without a result when absent), then
// aggregate(). `edit` may change a check's status before it is frozen.
std::shared_ptr<Snapshot> snapshotOf(const std::shared_ptr<const Config>& cfg,
                                     const std::map<std::string, CheckState>& states,
                                     const std::function<void(CheckStatus&)>& edit = {}) {
  auto snap = std::make_shared<Snapshot>();
  snap->config = cfg;
  snap->at = kNow;
  for (const auto& svc : cfg->services) {
    for (const auto& c : svc.checks) {
      auto st = std::make_shared<CheckStatus>();
      st->check = std::shared_ptr<const CheckConfig>(cfg, &c);
      st->service = std::shared_ptr<const ServiceConfig>(cfg, &svc);
      auto it = states.find(c.key);
      st->state = it == states.end() ? CheckState::unknown : it->second;
      if (st->state != CheckState::unknown) st->last = resultFor(st->state);
      if (edit) edit(*st);
      snap->checks.push_back(st);
    }
  }
  aggregate(*snap, kNow);
  return snap;
}

// db down, portal down by its own check too (so because of db), shop's
// non-critical check down (degraded), legacy in maintenance, lone unknown.
std::shared_ptr<Snapshot> sampleSnapshot() {
  return snapshotOf(sampleConfig(),
                    {{"db/port", CheckState::down},
                     {"portal/blue", CheckState::down},
                     {"portal/green", CheckState::up},
                     {"shop/health", CheckState::up},
                     {"shop/extra", CheckState::down},
                     {"legacy/ping", CheckState::up}},
                    [](CheckStatus& c) {
                      if (c.check->key == "portal/blue") {
                        c.last.edit().version = "1.4.0";
                        c.last.edit().info = {{"release_id", "b-77"}};
                      } else if (c.check->key == "portal/green") {
                        c.last.edit().version = "1.5.0";
                        c.last.edit().info = {{"release_id", "g-78"}};
                        c.last.edit().components = {{"cache", Status::warn, "slow"}};
                      }
                    });
}

ServiceStatus& serviceIn(Snapshot& snap, const std::string& name) {
  for (auto& s : snap.services) {
    if (s.service->name == name) return s;
  }
  throw std::runtime_error("no service " + name);
}

StateChange change(std::uint64_t id, StateChange::Subject subject, std::string name,
                   std::string from, std::string to) {
  StateChange e;
  e.id = id;
  e.at = kNow - std::chrono::seconds(1000 - id);
  e.subject = subject;
  e.name = std::move(name);
  e.from = std::move(from);
  e.to = std::move(to);
  return e;
}

// Runs a handler as the server would, with optional query and If-None-Match.
struct Call {
  HttpResponse res;
  json::value doc;  // null unless the body is JSON

  const std::string* header(const std::string& name) const {
    for (const auto& [k, v] : res.headers) {
      if (k == name) return &v;
    }
    return nullptr;
  }
};

using Handler = void (*)(const Snapshot*, const HttpRequest&, HttpResponse&);

Call call(Handler h, const Snapshot* snap, const std::string& path,
          std::vector<std::pair<std::string, std::string>> query = {},
          const std::string& if_none_match = "") {
  http::request<http::string_body> raw;
  if (!if_none_match.empty()) raw.set("If-None-Match", if_none_match);
  HttpRequest req;
  req.path = path;
  req.target = path;
  req.query = std::move(query);
  req.raw = &raw;
  Call c;
  h(snap, req, c.res);
  if (c.res.content_type == "application/json" && !c.res.body.empty()) {
    EXPECT_TRUE(isValidUtf8(c.res.body));
    c.doc = json::parse(c.res.body);
  }
  return c;
}

const json::object& byName(const json::array& a, std::string_view name) {
  for (const auto& v : a) {
    if (v.as_object().at("name").as_string() == name) return v.as_object();
  }
  throw std::runtime_error("no item " + std::string(name));
}

std::vector<std::string> names(const json::array& a) {
  std::vector<std::string> out;
  for (const auto& v : a) out.emplace_back(v.as_object().at("name").as_string());
  return out;
}

TEST(ServicesApi, ListFieldsInConfigOrder) {
  auto snap = sampleSnapshot();
  ServiceStatus& portal = serviceIn(*snap, "portal");
  portal.uptime = {0.5, 0.75, std::nullopt, std::nullopt};
  portal.last_change = kNow - 60s;
  auto changes = std::make_shared<std::vector<StateChange>>();
  changes->push_back(change(7, StateChange::Subject::service, "portal", "up", "down"));
  changes->back().cause = "db";
  changes->back().reason = Reason::http_status;
  portal.changes = changes;

  const Call c = call(handleServicesList, snap.get(), "/api/v1/services");
  ASSERT_EQ(c.res.status, 200u) << c.res.body;
  const auto& doc = c.doc.as_object();
  EXPECT_EQ(doc.at("generated_at").as_string(), "2023-11-14T22:13:20.000Z");
  const auto& summary = doc.at("summary").as_object();
  EXPECT_EQ(summary.at("down").as_int64(), 2);
  EXPECT_EQ(summary.at("degraded").as_int64(), 1);
  EXPECT_EQ(summary.at("maintenance").as_int64(), 1);
  EXPECT_EQ(summary.at("unknown").as_int64(), 1);
  EXPECT_EQ(summary.at("up").as_int64(), 0);
  const auto& services = doc.at("services").as_array();
  EXPECT_EQ(names(services), (std::vector<std::string>{"db", "portal", "shop", "legacy", "lone"}));

  const auto& p = byName(services, "portal");
  EXPECT_EQ(p.at("group").as_string(), "web");
  EXPECT_EQ(p.at("description").as_string(), "The portal");
  EXPECT_EQ(p.at("labels").at("env").as_string(), "prod");
  EXPECT_EQ(p.at("depends_on").as_array(), json::array({"db"}));
  EXPECT_EQ(p.at("state").as_string(), "down");
  EXPECT_EQ(p.at("underlying_state").as_string(), "down");
  EXPECT_EQ(p.at("cause").as_string(), "db");
  EXPECT_EQ(p.at("causes").as_array(), json::array({"db"}));
  EXPECT_TRUE(p.at("maintenance").is_null());
  EXPECT_FALSE(p.at("flapping").as_bool());
  EXPECT_EQ(p.at("last_change").as_string(), "2023-11-14T22:12:20.000Z");
  const auto& uptime = p.at("uptime").as_object();
  EXPECT_EQ(uptime.at("1h").as_double(), 0.5);
  EXPECT_EQ(uptime.at("24h").as_double(), 0.75);
  EXPECT_TRUE(uptime.at("7d").is_null());
  EXPECT_TRUE(uptime.at("30d").is_null());
  // Blue and green side by side.
  const auto& versions = p.at("versions").as_array();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].at("check").as_string(), "blue");
  EXPECT_EQ(versions[0].at("version").as_string(), "1.4.0");
  EXPECT_EQ(versions[0].at("info").at("release_id").as_string(), "b-77");
  EXPECT_EQ(versions[1].at("version").as_string(), "1.5.0");
  EXPECT_TRUE(p.at("versions_differ").as_bool());
  // Short checks.
  const auto& checks = p.at("checks").as_array();
  ASSERT_EQ(checks.size(), 2u);
  const auto& blue = checks[0].as_object();
  EXPECT_EQ(blue.at("key").as_string(), "portal/blue");
  EXPECT_EQ(blue.at("check").as_string(), "blue");
  EXPECT_EQ(blue.at("kind").as_string(), "http");
  EXPECT_EQ(blue.at("state").as_string(), "down");
  EXPECT_EQ(blue.at("reason").as_string(), "http_status");
  EXPECT_EQ(blue.at("detail").as_string(), "got 503");
  EXPECT_TRUE(blue.at("critical").as_bool());
  EXPECT_FALSE(blue.at("flapping").as_bool());
  EXPECT_FALSE(blue.contains("last_result"));  // the full form is /services/{name}
  const auto& ch = p.at("changes").as_array();
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch[0].at("id").as_int64(), 7);
  EXPECT_EQ(ch[0].at("subject").as_string(), "service");
  EXPECT_EQ(ch[0].at("from").as_string(), "up");
  EXPECT_EQ(ch[0].at("to").as_string(), "down");
  EXPECT_EQ(ch[0].at("cause").as_string(), "db");
  EXPECT_EQ(ch[0].at("reason").as_string(), "http_status");

  const auto& db = byName(services, "db");
  EXPECT_TRUE(db.at("cause").is_null());
  EXPECT_TRUE(db.at("causes").as_array().empty());
  EXPECT_TRUE(db.at("versions").as_array().empty());
  EXPECT_FALSE(db.at("versions_differ").as_bool());
  EXPECT_TRUE(db.at("changes").as_array().empty());
  EXPECT_TRUE(db.at("last_change").is_null());

  const auto& legacy = byName(services, "legacy");
  EXPECT_EQ(legacy.at("state").as_string(), "maintenance");
  EXPECT_EQ(legacy.at("underlying_state").as_string(), "up");
  EXPECT_EQ(legacy.at("maintenance").as_string(), "moving racks");
  EXPECT_EQ(byName(services, "shop").at("state").as_string(), "degraded");
  EXPECT_EQ(byName(services, "lone").at("group").as_string(), "");
}

TEST(ServicesApi, Filters) {
  auto snap = sampleSnapshot();
  struct Case {
    std::vector<std::pair<std::string, std::string>> query;
    std::vector<std::string> want;
    std::int64_t summary_down;
  };
  const std::vector<Case> cases = {
      {{{"state", "down"}}, {"db", "portal"}, 2},
      {{{"state", "down,degraded"}}, {"db", "portal", "shop"}, 2},
      {{{"state", "maintenance"}}, {"legacy"}, 2},
      {{{"state", "up"}}, {}, 2},
      {{{"group", "web"}}, {"portal", "shop", "legacy"}, 1},
      {{{"group", "web"}, {"state", "degraded"}}, {"shop"}, 1},
      {{{"group", "nope"}}, {}, 0},
  };
  for (const auto& tc : cases) {
    const Call c = call(handleServicesList, snap.get(), "/api/v1/services", tc.query);
    ASSERT_EQ(c.res.status, 200u) << c.res.body;
    EXPECT_EQ(names(c.doc.at("services").as_array()), tc.want) << c.res.body;
    // The summary covers the group, whatever the state filter keeps.
    EXPECT_EQ(c.doc.at("summary").at("down").as_int64(), tc.summary_down) << c.res.body;
  }
  for (const std::string bad : {"sideways", "down,", "DOWN"}) {
    const Call c = call(handleServicesList, snap.get(), "/api/v1/services", {{"state", bad}});
    EXPECT_EQ(c.res.status, 400u) << bad;
    EXPECT_EQ(c.doc.at("parameter").as_string(), "state");
    EXPECT_EQ(c.doc.at("value").as_string(), bad);
  }
}

TEST(ServicesApi, OneServiceInFull) {
  auto snap = sampleSnapshot();
  const Call c = call(handleServiceOne, snap.get(), "/api/v1/services/p%6Frtal");
  ASSERT_EQ(c.res.status, 200u) << c.res.body;
  const auto& s = c.doc.as_object();
  EXPECT_EQ(s.at("name").as_string(), "portal");
  EXPECT_EQ(s.at("cause").as_string(), "db");
  const auto& checks = s.at("checks").as_array();
  ASSERT_EQ(checks.size(), 2u);
  const auto& green = checks[1].as_object();
  EXPECT_EQ(green.at("key").as_string(), "portal/green");
  EXPECT_EQ(green.at("target").as_string(), "http://portal.example/green");
  const auto& last = green.at("last_result").as_object();
  EXPECT_EQ(last.at("version").as_string(), "1.5.0");
  EXPECT_EQ(last.at("components").as_array()[0].at("name").as_string(), "cache");
  EXPECT_EQ(last.at("components").as_array()[0].at("detail").as_string(), "slow");
  EXPECT_TRUE(green.contains("recent"));
  EXPECT_TRUE(green.contains("uptime"));
  EXPECT_EQ(s.at("versions").as_array().size(), 2u);
}

TEST(ServicesApi, UnknownNamesAre404Json) {
  auto snap = sampleSnapshot();
  struct Case {
    Handler handler;
    std::string path;
    std::string field;  // "" for a malformed path
    std::string name;
  };
  const std::vector<Case> cases = {
      {handleServiceOne, "/api/v1/services/nope", "service", "nope"},
      {handleServiceOne, "/api/v1/services/a%2Fb", "service", "a/b"},
      {handleServiceOne, "/api/v1/services/portal/blue", "", ""},
      {handleServiceOne, "/api/v1/services/", "", ""},
      {handleGroupOne, "/api/v1/groups/nope", "group", "nope"},
      {handleGroupOne, "/api/v1/groups/web/x", "", ""},
      {handleClusterOne, "/api/v1/clusters/nope", "cluster", "nope"},
      {handleClusterOne, "/api/v1/clusters/nope/ready", "cluster", "nope"},
      {handleClusterOne, "/api/v1/clusters/web/other", "", ""},
      {handleClusterOne, "/api/v1/clusters/web/ready/x", "", ""},
  };
  for (const auto& tc : cases) {
    const Call c = call(tc.handler, snap.get(), tc.path);
    EXPECT_EQ(c.res.status, 404u) << tc.path;
    EXPECT_EQ(c.res.content_type, "application/json") << tc.path;
    ASSERT_TRUE(c.doc.is_object()) << tc.path;
    EXPECT_TRUE(c.doc.as_object().contains("error")) << tc.path;
    const std::string field = tc.field.empty() ? "path" : tc.field;
    const std::string want = tc.field.empty() ? tc.path : tc.name;
    EXPECT_EQ(c.doc.at(field).as_string(), want) << tc.path;
    EXPECT_EQ(c.header("ETag"), nullptr) << tc.path;
  }
  // Without a snapshot: empty lists, unknown names.
  EXPECT_TRUE(
      call(handleServicesList, nullptr, "/api/v1/services").doc.at("services").as_array().empty());
  EXPECT_TRUE(call(handleEvents, nullptr, "/api/v1/events").doc.at("events").as_array().empty());
  EXPECT_EQ(call(handleServiceOne, nullptr, "/api/v1/services/db").res.status, 404u);
  EXPECT_EQ(call(handleClusterOne, nullptr, "/api/v1/clusters/web/ready").res.status, 404u);
}

TEST(ServicesApi, GroupsCountServices) {
  auto snap = sampleSnapshot();
  const Call list = call(handleGroupsList, snap.get(), "/api/v1/groups");
  ASSERT_EQ(list.res.status, 200u);
  const auto& groups = list.doc.at("groups").as_array();
  EXPECT_EQ(names(groups), (std::vector<std::string>{"web", "data", ""}));
  const Call one = call(handleGroupOne, snap.get(), "/api/v1/groups/web");
  ASSERT_EQ(one.res.status, 200u) << one.res.body;
  const auto& web = one.doc.as_object();
  EXPECT_EQ(web, groups[0].as_object());
  EXPECT_EQ(web.at("description").as_string(), "Web services");
  EXPECT_EQ(web.at("state").as_string(), "down");
  EXPECT_EQ(web.at("total").as_int64(), 3);
  const auto& counts = web.at("counts").as_object();
  EXPECT_EQ(counts.at("down").as_int64(), 1);
  EXPECT_EQ(counts.at("degraded").as_int64(), 1);
  EXPECT_EQ(counts.at("maintenance").as_int64(), 1);
  EXPECT_EQ(counts.at("up").as_int64(), 0);
  const auto& services = web.at("services").as_array();
  EXPECT_EQ(names(services), (std::vector<std::string>{"portal", "shop", "legacy"}));
  EXPECT_EQ(services[0].at("state").as_string(), "down");
  EXPECT_EQ(services[0].at("cause").as_string(), "db");
  EXPECT_EQ(services[0].at("versions").as_array(), json::array({"1.4.0", "1.5.0"}));
}

TEST(ServicesApi, ClustersAndReady) {
  auto snap = sampleSnapshot();
  snap->clusters[0].last_change = kNow - 10s;
  auto changes = std::make_shared<std::vector<StateChange>>();
  changes->push_back(change(3, StateChange::Subject::cluster, "web", "up", "down"));
  snap->clusters[0].changes = changes;

  const Call list = call(handleClustersList, snap.get(), "/api/v1/clusters");
  ASSERT_EQ(list.res.status, 200u);
  EXPECT_EQ(names(list.doc.at("clusters").as_array()), (std::vector<std::string>{"web", "data"}));
  const Call one = call(handleClusterOne, snap.get(), "/api/v1/clusters/web");
  ASSERT_EQ(one.res.status, 200u) << one.res.body;
  const auto& web = one.doc.as_object();
  EXPECT_EQ(web.at("state").as_string(), "down");
  EXPECT_FALSE(web.at("ready").as_bool());
  EXPECT_NE(web.at("reason").as_string().find("portal: down (because db is down)"),
            json::string::npos)
      << web.at("reason");
  EXPECT_EQ(web.at("agent_listen").as_string(), "0.0.0.0:9878");
  EXPECT_EQ(names(web.at("services").as_array()), (std::vector<std::string>{"portal", "shop"}));
  EXPECT_EQ(web.at("last_change").as_string(), "2023-11-14T22:13:10.000Z");
  EXPECT_EQ(web.at("changes").as_array()[0].at("to").as_string(), "down");
  EXPECT_TRUE(byName(list.doc.at("clusters").as_array(), "data").at("agent_listen").is_null());

  const Call down = call(handleClusterOne, snap.get(), "/api/v1/clusters/web/ready");
  EXPECT_EQ(down.res.status, 503u);
  EXPECT_EQ(down.res.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(down.res.body, std::string(snap->clusters[0].reason) + "\n");
  ASSERT_NE(down.header("Cache-Control"), nullptr);
  EXPECT_EQ(*down.header("Cache-Control"), "no-store");
  EXPECT_EQ(down.header("ETag"), nullptr);

  // Everything up (shop's non-critical check down: degraded, still ready).
  auto healthy = snapshotOf(sampleConfig(), {{"db/port", CheckState::up},
                                             {"portal/blue", CheckState::up},
                                             {"portal/green", CheckState::up},
                                             {"shop/health", CheckState::up},
                                             {"shop/extra", CheckState::down}});
  for (const std::string cluster : {"web", "data"}) {
    const Call ok = call(handleClusterOne, healthy.get(), "/api/v1/clusters/" + cluster + "/ready");
    EXPECT_EQ(ok.res.status, 200u) << cluster;
    EXPECT_EQ(ok.res.body, "ready\n");
  }
  EXPECT_EQ(healthy->clusters[0].state, ServiceState::degraded);
}

TEST(ServicesApi, EtagAnd304) {
  auto snap = sampleSnapshot();
  struct Endpoint {
    Handler handler;
    std::string path;
  };
  const std::vector<Endpoint> endpoints = {
      {handleServicesList, "/api/v1/services"},
      {handleServiceOne, "/api/v1/services/portal"},
      {handleGroupsList, "/api/v1/groups"},
      {handleGroupOne, "/api/v1/groups/web"},
      {handleClustersList, "/api/v1/clusters"},
      {handleClusterOne, "/api/v1/clusters/web"},
      {handleEvents, "/api/v1/events"},
      {handleChecksList, "/api/v1/checks"},
      {handleCheckOne, "/api/v1/checks/portal/blue"},
  };
  for (const auto& ep : endpoints) {
    const Call first = call(ep.handler, snap.get(), ep.path);
    ASSERT_EQ(first.res.status, 200u) << ep.path;
    const std::string* etag = first.header("ETag");
    ASSERT_NE(etag, nullptr) << ep.path;
    EXPECT_EQ(*etag, bodyEtag(first.res.body));
    EXPECT_EQ(etag->size(), 18u);
    ASSERT_NE(first.header("Cache-Control"), nullptr);
    const bool checks = ep.path.rfind("/api/v1/checks", 0) == 0;  // kept as it was
    EXPECT_EQ(*first.header("Cache-Control"), checks ? "no-store" : "no-cache") << ep.path;
    // Same state, same tag; a matching If-None-Match gets 304 and no body.
    EXPECT_EQ(*call(ep.handler, snap.get(), ep.path).header("ETag"), *etag) << ep.path;
    for (const std::string& inm : {*etag, "W/" + *etag, "\"x\", " + *etag, std::string("*")}) {
      const Call again = call(ep.handler, snap.get(), ep.path, {}, inm);
      EXPECT_EQ(again.res.status, 304u) << ep.path << " " << inm;
      EXPECT_TRUE(again.res.body.empty());
      ASSERT_NE(again.header("ETag"), nullptr);
      EXPECT_EQ(*again.header("ETag"), *etag);
    }
    const Call other = call(ep.handler, snap.get(), ep.path, {}, "\"0000000000000000\"");
    EXPECT_EQ(other.res.status, 200u) << ep.path;
    EXPECT_FALSE(other.res.body.empty());
  }
  // A change of state changes the tag.
  const std::string before =
      *call(handleServicesList, snap.get(), "/api/v1/services").header("ETag");
  serviceIn(*snap, "db").uptime[0] = 0.25;
  const Call after = call(handleServicesList, snap.get(), "/api/v1/services", {}, before);
  EXPECT_EQ(after.res.status, 200u);
  EXPECT_NE(*after.header("ETag"), before);
}

TEST(ServicesApi, EtagHelpers) {
  EXPECT_EQ(bodyEtag(""), "\"cbf29ce484222325\"");  // the FNV-1a 64 offset basis
  EXPECT_EQ(bodyEtag("a"), "\"af63dc4c8601ec8c\"");
  EXPECT_NE(bodyEtag("{\"a\":1}"), bodyEtag("{\"a\":2}"));
  const std::string tag = "\"0123456789abcdef\"";
  EXPECT_TRUE(etagMatches(tag, tag));
  EXPECT_TRUE(etagMatches(" W/" + tag + " ", tag));
  EXPECT_TRUE(etagMatches("\"a\",\t" + tag, tag));
  EXPECT_FALSE(etagMatches("\"0123456789abcdee\"", tag));
  EXPECT_FALSE(etagMatches("0123456789abcdef", tag));  // unquoted is not the same tag
  EXPECT_FALSE(etagMatches(",", tag));
}

// 25 events: checks, services and a cluster, ids 1..25.
std::shared_ptr<EventLog> sampleLog() {
  auto log = std::make_shared<EventLog>();
  for (int i = 1; i <= 25; ++i) {
    const auto subject = i % 5 == 0   ? StateChange::Subject::cluster
                         : i % 2 == 0 ? StateChange::Subject::service
                                      : StateChange::Subject::check;
    const std::string name = subject == StateChange::Subject::check     ? "portal/blue"
                             : subject == StateChange::Subject::service ? "portal"
                                                                        : "web";
    StateChange e = change(0, subject, name, i % 2 ? "up" : "down", i % 2 ? "down" : "up");
    if (subject == StateChange::Subject::service) e.cause = "db";
    e.reason = i % 2 ? Reason::timeout : Reason::none;
    e.at = kNow - std::chrono::seconds(1000 - i);
    e.detail = "event " + std::to_string(i);
    log->append(e);
  }
  return log;
}

// The query of a "next" link, decoded.
std::vector<std::pair<std::string, std::string>> queryOf(std::string_view url) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto q = url.find('?');
  EXPECT_NE(q, std::string_view::npos) << url;
  EXPECT_EQ(url.substr(0, q), "/api/v1/events");
  std::string_view rest = url.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view kv = rest.substr(0, amp);
    const auto eq = kv.find('=');
    out.emplace_back(percentDecode(kv.substr(0, eq), true), percentDecode(kv.substr(eq + 1), true));
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
  }
  return out;
}

std::vector<std::int64_t> ids(const json::value& doc) {
  std::vector<std::int64_t> out;
  for (const auto& e : doc.at("events").as_array()) out.push_back(e.at("id").as_int64());
  return out;
}

TEST(ServicesApi, EventsNewestFirstAcrossPages) {
  auto snap = sampleSnapshot();
  snap->events = sampleLog();

  const Call first = call(handleEvents, snap.get(), "/api/v1/events");
  ASSERT_EQ(first.res.status, 200u) << first.res.body;
  EXPECT_EQ(ids(first.doc).size(), 25u);
  EXPECT_EQ(ids(first.doc).front(), 25);
  EXPECT_TRUE(first.doc.at("next").is_null());
  const auto& e25 = first.doc.at("events").as_array()[0].as_object();
  EXPECT_EQ(e25.at("subject").as_string(), "cluster");
  EXPECT_EQ(e25.at("name").as_string(), "web");
  EXPECT_EQ(e25.at("from").as_string(), "up");
  EXPECT_EQ(e25.at("to").as_string(), "down");
  EXPECT_EQ(e25.at("reason").as_string(), "timeout");
  EXPECT_EQ(e25.at("detail").as_string(), "event 25");
  EXPECT_TRUE(e25.at("cause").is_null());
  EXPECT_EQ(e25.at("at").as_string(), "2023-11-14T21:57:05.000Z");

  // Follow "next" with limit=10: 25..16, 15..6, 5..1, then no next.
  std::vector<std::int64_t> all;
  std::vector<std::pair<std::string, std::string>> query = {{"limit", "10"}};
  for (int pages = 0; pages < 5; ++pages) {
    const Call page = call(handleEvents, snap.get(), "/api/v1/events", query);
    ASSERT_EQ(page.res.status, 200u) << page.res.body;
    const auto got = ids(page.doc);
    EXPECT_LE(got.size(), 10u);
    all.insert(all.end(), got.begin(), got.end());
    if (page.doc.at("next").is_null()) break;
    query = queryOf(page.doc.at("next").as_string());
  }
  std::vector<std::int64_t> want;
  for (int i = 25; i >= 1; --i) want.push_back(i);
  EXPECT_EQ(all, want);

  // An exact multiple of the limit: the last full page says there is nothing more.
  const Call exact =
      call(handleEvents, snap.get(), "/api/v1/events", {{"limit", "5"}, {"before", "6"}});
  EXPECT_EQ(ids(exact.doc), (std::vector<std::int64_t>{5, 4, 3, 2, 1}));
  EXPECT_TRUE(exact.doc.at("next").is_null());
}

TEST(ServicesApi, EventsFilteredBySubjectAndName) {
  auto snap = sampleSnapshot();
  snap->events = sampleLog();
  struct Case {
    std::vector<std::pair<std::string, std::string>> query;
    std::vector<std::int64_t> want;
  };
  const std::vector<Case> cases = {
      {{{"subject", "cluster"}}, {25, 20, 15, 10, 5}},
      {{{"subject", "service"}, {"limit", "3"}}, {24, 22, 18}},
      {{{"name", "portal/blue"}, {"before", "10"}}, {9, 7, 3, 1}},
      {{{"subject", "check"}, {"name", "portal"}}, {}},
      {{{"name", "nobody"}}, {}},
  };
  for (const auto& tc : cases) {
    const Call c = call(handleEvents, snap.get(), "/api/v1/events", tc.query);
    ASSERT_EQ(c.res.status, 200u) << c.res.body;
    EXPECT_EQ(ids(c.doc), tc.want) << c.res.body;
  }
  // The filters carry over into "next" (the name %-encoded).
  const Call c = call(handleEvents, snap.get(), "/api/v1/events",
                      {{"subject", "check"}, {"name", "portal/blue"}, {"limit", "2"}});
  const std::string next(c.doc.at("next").as_string());
  EXPECT_EQ(next, "/api/v1/events?before=21&limit=2&subject=check&name=portal%2Fblue");
  const Call more = call(handleEvents, snap.get(), "/api/v1/events", queryOf(next));
  EXPECT_EQ(ids(more.doc), (std::vector<std::int64_t>{19, 17}));
  const Call services = call(handleEvents, snap.get(), "/api/v1/events", {{"subject", "service"}});
  const auto& svc = services.doc.at("events").as_array()[0];
  EXPECT_EQ(svc.at("cause").as_string(), "db");
}

TEST(ServicesApi, EventsBadParametersAre400) {
  auto snap = sampleSnapshot();
  snap->events = sampleLog();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"limit", "0"},
      {"limit", "1001"},
      {"limit", "ten"},
      {"limit", ""},
      {"limit", "-5"},
      {"limit", "1e3"},
      {"limit", "99999999999999999999999"},
      {"before", "x"},
      {"before", "-1"},
      {"before", "18446744073709551616"},
      {"subject", "job"},
      {"subject", ""},
  };
  for (const auto& [param, value] : cases) {
    const Call c = call(handleEvents, snap.get(), "/api/v1/events", {{param, value}});
    EXPECT_EQ(c.res.status, 400u) << param << "=" << value;
    ASSERT_TRUE(c.doc.is_object()) << c.res.body;
    EXPECT_EQ(c.doc.at("parameter").as_string(), param);
    EXPECT_EQ(c.doc.at("value").as_string(), value);
  }
  for (const std::string limit : {"1", "1000"}) {
    EXPECT_EQ(call(handleEvents, snap.get(), "/api/v1/events", {{"limit", limit}}).res.status,
              200u);
  }
}

TEST(ServicesApi, HostileStringsStayValidJson) {
  auto cfg = sampleConfig();
  cfg->services[1].description = "say \"hi\"\n\\ \x01 \xff\xfe";
  cfg->services[1].labels = {{"k\xc0\xaf", "v</script>\xed\xa0\x80"}};
  auto snap = snapshotOf(cfg, {{"portal/blue", CheckState::down}, {"portal/green", CheckState::up}},
                         [](CheckStatus& c) {
                           if (!c.last) return;
                           c.last.edit().detail = "bad \xff detail \"q\"";
                           c.last.edit().version = std::string("v\0\x1f\xff", 4);
                           c.last.edit().info = {{"k\xff", "\xe2\x82"}};
                           c.last.edit().components = {{"comp\xff\"", Status::fail, "\n"}};
                         });
  auto log = std::make_shared<EventLog>();
  StateChange e = change(0, StateChange::Subject::check, "portal/blue", "up", "down");
  e.detail = "\xf4\x90\x80\x80 x";
  log->append(e);
  snap->events = log;
  for (const auto& [handler, path] :
       std::vector<std::pair<Handler, std::string>>{{handleServicesList, "/api/v1/services"},
                                                    {handleServiceOne, "/api/v1/services/portal"},
                                                    {handleGroupsList, "/api/v1/groups"},
                                                    {handleClustersList, "/api/v1/clusters"},
                                                    {handleEvents, "/api/v1/events"}}) {
    const Call c = call(handler, snap.get(), path);
    ASSERT_EQ(c.res.status, 200u) << path;
    EXPECT_TRUE(isValidUtf8(c.res.body)) << path;
  }
  const Call one = call(handleServiceOne, snap.get(), "/api/v1/services/portal");
  EXPECT_EQ(one.doc.at("description").as_string(), "say \"hi\"\n\\ \x01 \xEF\xBF\xBD\xEF\xBF\xBD");
  const auto& versions = one.doc.at("versions").as_array();
  EXPECT_EQ(versions[0].at("version").as_string(), std::string("v\0\x1f\xEF\xBF\xBD", 6));
  EXPECT_EQ(versions[0].at("info").at("k\xEF\xBF\xBD").as_string(), "\xEF\xBF\xBD\xEF\xBF\xBD");
  const auto& components =
      one.doc.at("checks").as_array()[0].at("last_result").at("components").as_array();
  EXPECT_EQ(components[0].at("name").as_string(), "comp\xEF\xBF\xBD\"");
  const Call ev = call(handleEvents, snap.get(), "/api/v1/events");
  EXPECT_EQ(ev.doc.at("events").as_array()[0].at("detail").as_string(),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD x");
}

TEST(ServicesApi, CheckJsonFlappingUptimeChanges) {
  auto snap = sampleSnapshot();
  auto blue = std::make_shared<CheckStatus>(*snap->checks[1]);
  blue->flapping = true;
  blue->flap_percent = 37.5;
  blue->uptime = {1.0, 0.9, 0.875, std::nullopt};
  auto changes = std::make_shared<std::vector<StateChange>>();
  changes->push_back(change(1, StateChange::Subject::check, "portal/blue", "unknown", "up"));
  changes->push_back(change(2, StateChange::Subject::check, "portal/blue", "up", "down"));
  blue->changes = changes;
  const auto o = checkJson(*blue);
  EXPECT_TRUE(o.at("flapping").as_bool());
  EXPECT_EQ(o.at("flap_percent").as_double(), 37.5);
  EXPECT_EQ(o.at("uptime").at("1h").as_double(), 1.0);
  EXPECT_EQ(o.at("uptime").at("7d").as_double(), 0.875);
  EXPECT_TRUE(o.at("uptime").at("30d").is_null());
  const auto& ch = o.at("changes").as_array();
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(ch[1].at("to").as_string(), "down");
  EXPECT_EQ(ch[1].at("subject").as_string(), "check");
  const auto plain = checkJson(*snap->checks[0]);
  EXPECT_FALSE(plain.at("flapping").as_bool());
  EXPECT_TRUE(plain.at("uptime").at("1h").is_null());
  EXPECT_TRUE(plain.at("changes").as_array().empty());
  // A flapping check makes its service flap, in the list and in the check's short form.
  snap->checks[1] = blue;
  aggregate(*snap, kNow);
  const Call c = call(handleServicesList, snap.get(), "/api/v1/services");
  const auto& portal = byName(c.doc.at("services").as_array(), "portal");
  EXPECT_TRUE(portal.at("flapping").as_bool());
  EXPECT_TRUE(portal.at("checks").as_array()[0].at("flapping").as_bool());
}

}  // namespace
}  // namespace vigie
