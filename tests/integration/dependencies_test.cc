// Dependencies end to end: a real PostgreSQL as `shared-postgres`, two services
// whose own database checks use it and that depend on it. Stopping the server
// shows both dependents down *because of* shared-postgres (API and metrics), the
// root caused by nothing; starting it again brings everything back. Also the
// password of the DSN never shows in the API, the metrics, the page or the log.

#include <gtest/gtest.h>

#include <curl/curl.h>
#include <fmt/format.h>

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/support/http_client.h"
#include "tests/support/ports.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;

bool hasLine(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

TEST(Dependencies, RootCausePagesOnceAndRecovers) {
  Postgres pg;
  const auto dir = makeTempDir("vigie-deps");
  const int port = freePort();
  const auto base = fmt::format("http://127.0.0.1:{}", port);
  const auto dsn = pg.dsn(Postgres::user(), Postgres::password(), Postgres::database());
  writeFile(dir + "/vigie.yaml",
            fmt::format("listen: \"127.0.0.1:{0}\"\n"
                        "defaults: {{interval: 300ms, timeout: 300ms, failure_threshold: 1}}\n"
                        "groups: [{{name: data}}]\n"
                        "services:\n"
                        "  - name: shared-postgres\n"
                        "    group: data\n"
                        "    checks:\n"
                        "      - name: tcp\n"
                        "        tcp: {{address: \"127.0.0.1:{1}\"}}\n"
                        "  - name: obsportal\n"
                        "    group: data\n"
                        "    depends_on: [shared-postgres]\n"
                        "    checks:\n"
                        "      - name: db\n"
                        "        postgres: {{dsn: \"${{OBS_DSN}}\"}}\n"
                        "  - name: catalog\n"
                        "    group: data\n"
                        "    depends_on: [shared-postgres]\n"
                        "    checks:\n"
                        "      - name: db\n"
                        "        postgres: {{dsn: \"${{OBS_DSN}}\", query: \"SELECT 41 + 1\", expect: \"42\"}}\n"
                        "  - name: scratch\n"
                        "    checks:\n"
                        "      - name: disk\n"
                        "        disk: {{path: \"{2}\"}}\n",
                        port, pg.port(), dir));
  Process vigie({{VIGIE_BINARY, "--config", dir + "/vigie.yaml"},
                 {{"OBS_DSN", dsn}},
                 dir + "/log.txt",
                 ""});
  auto service = [&](const std::string& name) {
    const auto r = httpGet(base + "/api/v1/services/" + name);
    if (r.status != 200) return boost::json::object{};
    return boost::json::parse(r.body).as_object();
  };
  auto state = [&](const std::string& name) -> std::string {
    const auto o = service(name);
    return o.contains("state") ? std::string(o.at("state").as_string()) : "";
  };
  ASSERT_TRUE(eventually(10s, [&] {
    return state("obsportal") == "up" && state("catalog") == "up" &&
           state("shared-postgres") == "up";
  })) << vigie.output();

  pg.stop();
  ASSERT_TRUE(eventually(10s, [&] {
    return state("obsportal") == "down" && state("catalog") == "down" &&
           state("shared-postgres") == "down";
  })) << vigie.output();
  for (const std::string name : {"obsportal", "catalog"}) {
    const auto o = service(name);
    EXPECT_EQ(o.at("cause"), "shared-postgres") << boost::json::serialize(o);
  }
  EXPECT_TRUE(service("shared-postgres").at("cause").is_null());
  EXPECT_EQ(state("scratch"), "up");

  // One series says who is the cause; the root has none; "down" alerts can
  // exclude caused services with `unless on(service) vigie_service_cause == 1`.
  const auto metrics = httpGet(base + "/metrics").body;
  EXPECT_TRUE(hasLine(metrics,
                      R"(vigie_service_cause{service="obsportal",group="data",cause="shared-postgres"} 1)"))
      << metrics;
  EXPECT_TRUE(hasLine(metrics,
                      R"(vigie_service_cause{service="catalog",group="data",cause="shared-postgres"} 1)"));
  EXPECT_EQ(metrics.find(R"(vigie_service_cause{service="shared-postgres")"), std::string::npos);
  EXPECT_TRUE(hasLine(metrics,
                      R"(vigie_service_state{service="shared-postgres",group="data",state="down"} 1)"));

  // The event log has the root's change, and each dependent's with its cause.
  // (The dependents' own checks may fail a moment before the root's: then a
  // second event, down -> down, names the cause.)
  std::string events;
  EXPECT_TRUE(eventually(5s, [&] {
    events = httpGet(base + "/api/v1/events?subject=service&name=obsportal").body;
    return events.find(R"("cause":"shared-postgres")") != std::string::npos;
  })) << events;

  // The page says it in words.
  const auto page = httpGet(base + "/").body;
  EXPECT_NE(page.find("down because <a href=\"/services/shared-postgres\">shared-postgres</a> is down"),
            std::string::npos);

  pg.start();
  ASSERT_TRUE(eventually(15s, [&] {
    return state("obsportal") == "up" && state("catalog") == "up" &&
           state("shared-postgres") == "up";
  })) << vigie.output();
  EXPECT_TRUE(service("obsportal").at("cause").is_null());

  // The password is nowhere.
  const auto& password = Postgres::password();
  for (const std::string path : {"/api/v1/services", "/api/v1/checks", "/metrics", "/",
                                 "/services/obsportal", "/api/v1/events"}) {
    EXPECT_EQ(httpGet(base + path).body.find(password), std::string::npos) << path;
  }
  EXPECT_EQ(vigie.output().find(password), std::string::npos);
  vigie.stop();
  removeTree(dir);
}

}  // namespace
}  // namespace vigie::test
