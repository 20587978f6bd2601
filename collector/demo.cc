#include "collector/demo.h"

#include <fmt/format.h>

#include <chrono>

#include "collector/demo_config.h"
#include "exporters/http_server.h"

namespace vigie {
namespace {

using boost::beast::http::verb;

void page(HttpServer& server, std::string path, unsigned status, std::string content_type,
          std::string body) {
  server.route(verb::get, std::move(path),
               [status, content_type = std::move(content_type), body = std::move(body)](
                   const HttpRequest&, HttpResponse& res) {
                 res.status = status;
                 res.content_type = content_type;
                 res.body = body;
               });
}

}  // namespace

std::string_view demoConfigText() { return kDemoConfigYaml; }

void registerDemoRoutes(HttpServer& server) {
  // Healthy: IETF health+json with components and a version.
  page(server, "/demo/obsportal/health", 200, "application/health+json", R"J({
  "status": "pass",
  "version": "2.4.1",
  "releaseId": "2.4.1-blue",
  "serviceId": "obsportal",
  "description": "JMMC ObsPortal",
  "checks": {
    "postgres:responseTime": [
      {"componentId": "obsportal-db", "componentType": "datastore", "observedValue": 12,
       "observedUnit": "ms", "status": "pass", "time": "2026-11-28T10:00:00Z"}
    ],
    "nfs-data:writable": [
      {"componentType": "system", "status": "pass", "observedValue": true}
    ]
  }
})J");

  // Healthy: Spring Boot Actuator with nested components.
  page(server, "/demo/aspro/actuator/health", 200, "application/vnd.spring-boot.actuator.v3+json",
       R"J({
  "status": "UP",
  "components": {
    "db": {"status": "UP", "details": {"database": "PostgreSQL", "validationQuery": "isValid()"}},
    "diskSpace": {"status": "UP", "details": {"total": 107374182400, "free": 53687091200, "threshold": 10485760}},
    "ping": {"status": "UP"}
  }
})J");

  // Degraded: health+json "warn" (a nearly full volume).
  page(server, "/demo/catalog/health", 200, "application/health+json", R"J({
  "status": "warn",
  "version": "1.9.0",
  "output": "data volume 93% full",
  "checks": {
    "postgres:connections": [{"status": "pass", "observedValue": 14}],
    "nfs-data:utilization": [{"status": "warn", "observedValue": 93, "observedUnit": "percent",
                               "output": "93% used, warning at 90%"}]
  }
})J");

  // Failing: MicroProfile Health, database down, served with 503 as MicroProfile does.
  page(server, "/demo/searchcal/health", 503, "application/json", R"J({
  "status": "DOWN",
  "checks": [
    {"name": "database", "status": "DOWN", "data": {"error": "connection refused (pg.osug.fr:5432)"}},
    {"name": "catalog-cache", "status": "UP"}
  ]
})J");

  // Plain text.
  page(server, "/demo/legacy/health", 200, "text/plain", "OK\n");

  // Flapping on a timer: down during one minute of every three.
  server.route(verb::get, "/demo/oidb/health", [](const HttpRequest&, HttpResponse& res) {
    const auto minute = std::chrono::duration_cast<std::chrono::minutes>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const bool down = minute % 3 == 2;
    res.status = down ? 503 : 200;
    res.content_type = "application/health+json";
    res.body = fmt::format(
        R"J({{"status":"{}","version":"3.0.2","checks":{{"postgres:connection":[{{"status":"{}"{}}}]}}}})J",
        down ? "fail" : "pass", down ? "fail" : "pass",
        down ? R"J(,"output":"FATAL: too many connections for role \"oidb\"")J" : "");
  });
}

}  // namespace vigie
