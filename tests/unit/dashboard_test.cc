// The dashboard's HTML and badges, rendered from hand-made snapshots: problems
// first, causes, escaping of hostile values, fragments, badges.

#include <gtest/gtest.h>

#include "collector/aggregate.h"
#include "collector/shard.h"
#include "exporters/dashboard.h"

#include <fmt/format.h>

namespace vigie {
namespace {

SystemClock::time_point at(std::int64_t s) { return SystemClock::time_point(std::chrono::seconds(s)); }
constexpr std::int64_t kNow = 1'800'000'000;

struct Fixture {
  std::shared_ptr<Config> cfg = std::make_shared<Config>();
  Snapshot snap;

  // Adds a service with one http check in `state`; `result` describes the last result.
  void add(const std::string& name, const std::string& group, CheckState state, Result result,
           std::vector<std::string> deps = {}) {
    ServiceConfig s;
    s.name = name;
    s.group = group;
    s.depends_on = std::move(deps);
    CheckConfig c;
    c.name = "health";
    c.key = name + "/health";
    HttpSpec h;
    h.url = "https://" + name + ".example/health";
    c.spec = h;
    s.checks.push_back(c);
    cfg->services.push_back(s);
    states.push_back({state, std::move(result)});
  }

  const Snapshot& build() {
    snap.config = cfg;
    snap.checks.clear();
    for (std::size_t i = 0; i < cfg->services.size(); ++i) {
      auto st = std::make_shared<CheckStatus>();
      st->service = std::shared_ptr<const ServiceConfig>(cfg, &cfg->services[i]);
      st->check = std::shared_ptr<const CheckConfig>(cfg, &cfg->services[i].checks[0]);
      st->state = states[i].first;
      if (st->state != CheckState::unknown) {
        st->last = states[i].second;
        for (int k = 0; k < 40; ++k) {
          st->recent.push_back({at(kNow - 40 + k), k % 10 == 3 ? Status::fail : states[i].second.status,
                                Reason::none, 0.01f + 0.001f * static_cast<float>(k)});
        }
      }
      snap.checks.push_back(st);
    }
    aggregate(snap, at(kNow));
    return snap;
  }

  std::vector<std::pair<CheckState, Result>> states;
};

Result ok(std::string version = "") {
  Result r = Result::ok();
  r.started = at(kNow - 5);
  r.version = std::move(version);
  return r;
}

Result fail(Reason reason, std::string detail) {
  Result r = Result::failure(reason, std::move(detail));
  r.started = at(kNow - 5);
  return r;
}

TEST(Dashboard, ProblemsFirstWithWordsCausesAndVersions) {
  Fixture f;
  f.cfg->groups = {{"jmmc", "JMMC services"}, {"osug", ""}};
  f.add("aspro", "jmmc", CheckState::up, ok("2.4.1"));
  f.add("shared-postgres", "osug", CheckState::down, fail(Reason::connect, "connection refused"));
  f.add("obsportal", "jmmc", CheckState::down, fail(Reason::http_status, "got 503, expected 2xx"),
        {"shared-postgres"});
  f.add("catalog", "osug", CheckState::degraded, ok());
  const auto html = renderOverview(f.build(), {}, at(kNow), false);

  // Down services come before the up one within the group; the failing detail is shown.
  const auto obs = html.find("data-service=\"obsportal\"");
  const auto aspro = html.find("data-service=\"aspro\"");
  ASSERT_NE(obs, std::string::npos);
  ASSERT_NE(aspro, std::string::npos);
  EXPECT_LT(obs, aspro);
  EXPECT_NE(html.find("<span class=\"state s-down\">down</span>"), std::string::npos);
  EXPECT_NE(html.find("down because <a href=\"/services/shared-postgres\">shared-postgres</a> is down"),
            std::string::npos);
  EXPECT_NE(html.find("got 503, expected 2xx"), std::string::npos);
  EXPECT_NE(html.find("version 2.4.1"), std::string::npos);
  EXPECT_NE(html.find("4 services</strong>: 2 down, 1 degraded, 0 in maintenance, 0 unknown, 1 up"),
            std::string::npos);
  EXPECT_NE(html.find("<link rel=\"stylesheet\" href=\"/assets/dashboard.css\">"), std::string::npos);
  EXPECT_EQ(html.find("<style"), std::string::npos);  // CSP: no inline style
  EXPECT_EQ(html.find("style=\""), std::string::npos);
  EXPECT_EQ(html.find("<script>"), std::string::npos);

  // The fragment is only <main>'s inside.
  const auto frag = renderOverview(f.snap, {}, at(kNow), true);
  EXPECT_EQ(frag.find("<html"), std::string::npos);
  EXPECT_NE(frag.find("data-service=\"obsportal\""), std::string::npos);

  // Group and cluster views; unknown names render nothing (404 by the route).
  const auto group = renderOverview(f.snap, {DashboardView::Kind::group, "osug"}, at(kNow), false);
  EXPECT_NE(group.find("data-service=\"catalog\""), std::string::npos);
  EXPECT_EQ(group.find("data-service=\"aspro\""), std::string::npos);
  EXPECT_TRUE(renderOverview(f.snap, {DashboardView::Kind::group, "nope"}, at(kNow), false).empty());
  EXPECT_TRUE(renderOverview(f.snap, {DashboardView::Kind::cluster, "nope"}, at(kNow), false).empty());
}

TEST(Dashboard, HostileValuesAreText) {
  Fixture f;
  Result r = fail(Reason::health_fail, "<img src=x onerror=alert(1)>");
  r.components = {{"<script>alert(1)</script>", Status::fail, "\"><svg onload=alert(2)>"}};
  r.conditions = {{"json /status == <b>pass</b>", false, "got '<i>'"}};
  r.version = "1.0<script>";
  r.info = {{"<k>", "</td><script>x()</script>"}};
  f.add("evil", "", CheckState::down, r);
  f.build();
  for (const auto& html : {renderOverview(f.snap, {}, at(kNow), false),
                           renderServicePage(f.snap, "evil", at(kNow), false)}) {
    EXPECT_EQ(html.find("<script>alert"), std::string::npos);
    EXPECT_EQ(html.find("<img src=x"), std::string::npos);
    EXPECT_EQ(html.find("<svg onload"), std::string::npos);
    EXPECT_EQ(html.find("<b>pass"), std::string::npos);
    EXPECT_EQ(html.find("</td><script>"), std::string::npos);
    EXPECT_NE(html.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  }
  const auto page = renderServicePage(f.snap, "evil", at(kNow), false);
  EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(page.find("FAILED: json /status == &lt;b&gt;pass&lt;/b&gt;"), std::string::npos);
}

TEST(Dashboard, ServicePageShowsConditionsComponentsChartAndJsonLink) {
  Fixture f;
  Result r = fail(Reason::body, "condition failed: json /status == pass");
  r.conditions = {{"json /status == pass", false, "got \"fail\""}, {"latency < 800ms", true, ""}};
  r.components = {{"database", Status::fail, "DOWN"}, {"disk", Status::ok, "UP"}};
  f.add("obsportal", "", CheckState::down, r);
  const auto page = renderServicePage(f.build(), "obsportal", at(kNow), false);
  EXPECT_NE(page.find("<li class=\"cond-fail\">FAILED: json /status == pass &mdash; got &quot;fail&quot;</li>"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("<li class=\"cond-ok\">passed: latency &lt; 800ms</li>"), std::string::npos);
  EXPECT_NE(page.find("<td>database</td>"), std::string::npos);
  EXPECT_NE(page.find("<svg class=\"chart\""), std::string::npos);
  EXPECT_NE(page.find("<polyline class=\"line\""), std::string::npos);
  EXPECT_NE(page.find("class=\"pt-fail\""), std::string::npos);
  EXPECT_NE(page.find("/api/v1/services/obsportal"), std::string::npos);
  EXPECT_TRUE(renderServicePage(f.snap, "nope", at(kNow), false).empty());
}

TEST(Dashboard, ShardedPagesSayWhichReplicaRunsEachCheck) {
  Fixture f;
  f.add("a", "", CheckState::up, ok("1.0"));
  f.add("b", "", CheckState::up, ok("1.0"));
  f.add("c", "", CheckState::up, ok("1.0"));
  // Unsharded: nothing said.
  EXPECT_EQ(renderServicePage(f.build(), "a", at(kNow), false).find("run by"), std::string::npos);
  f.cfg->shard = ShardSpec{1, 3};
  f.build();
  const auto overview = renderOverview(f.snap, {}, at(kNow), false);
  EXPECT_NE(overview.find(">shard 1/3</small>"), std::string::npos) << overview;
  for (const char* name : {"a", "b", "c"}) {
    const auto page = renderServicePage(f.snap, name, at(kNow), false);
    const unsigned owner = shardOf(std::string(name) + "/health", 3);
    if (owner == 1) {
      EXPECT_NE(page.find("run by this replica"), std::string::npos) << name;
    } else {
      EXPECT_NE(page.find(fmt::format("run by shard {}/3", owner)), std::string::npos) << name;
    }
  }
}

TEST(Badge, ShieldsLook) {
  const auto svg = renderBadge("obsportal", "up", "#4c1");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("<title>obsportal: up</title>"), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#4c1\""), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#555\""), std::string::npos);
  EXPECT_EQ(svg.substr(svg.size() - 6), "</svg>");
  // Wider text, wider badge; markup in names is text.
  const auto wide = renderBadge("a-much-longer-service-name", "maintenance", "#007ec6");
  auto width = [](const std::string& s) { return std::stoi(s.substr(s.find("width=\"") + 7)); };
  EXPECT_GT(width(wide), width(svg) + 100);
  EXPECT_NE(renderBadge("<x>", "\"y\"", "#fff").find("&lt;x&gt;: &quot;y&quot;"), std::string::npos);
}

TEST(Dashboard, ThousandServicesRenderCompactly) {
  Fixture f;
  for (int i = 0; i < 1000; ++i) {
    f.add("svc-" + std::to_string(i), "g" + std::to_string(i % 10),
          i % 50 == 0 ? CheckState::down : CheckState::up,
          i % 50 == 0 ? fail(Reason::timeout, "no answer within 5s") : ok("1.0"));
  }
  const auto html = renderOverview(f.build(), {}, at(kNow), false);
  // Merged bars keep the page small: about 1 KiB per service, not 60 rectangles each.
  EXPECT_LT(html.size(), 1500u * 1000u) << html.size();
  EXPECT_NE(html.find("1000 services</strong>: 20 down"), std::string::npos);
}

}  // namespace
}  // namespace vigie
