#include "collector/demo.h"

#include <fmt/format.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

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

// The token of the demo's heartbeat check in examples/demo.yaml.
constexpr std::string_view kDemoToken = "demo-token-not-a-secret";

// One push: a plain HTTP/1.1 request, as `curl -X POST -H "Authorization: ..."`.
class DemoPusher : public std::enable_shared_from_this<DemoPusher> {
 public:
  DemoPusher(boost::asio::io_context& io, std::string host_port)
      : io_(io), timer_(io), host_port_(std::move(host_port)) {}

  void schedule(std::chrono::seconds after) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      self->push();
      self->schedule(std::chrono::seconds(20));
    });
  }

 private:
  struct Exchange {
    explicit Exchange(boost::asio::io_context& io) : socket(io), resolver(io) {}
    boost::asio::ip::tcp::socket socket;
    boost::asio::ip::tcp::resolver resolver;
    std::string request;
    std::string response;
  };

  void push() {
    const auto colon = host_port_.rfind(':');
    if (colon == std::string::npos) return;
    auto ex = std::make_shared<Exchange>(io_);
    const std::string body = fmt::format("nightly backup done, {} files", 1200 + ++count_ % 7);
    ex->request = fmt::format(
        "POST /api/v1/push/backup-job/nightly HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n"
        "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        host_port_, kDemoToken, body.size(), body);
    std::string host = host_port_.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    ex->resolver.async_resolve(
        host, host_port_.substr(colon + 1),
        [ex](const boost::system::error_code& ec,
             const boost::asio::ip::tcp::resolver::results_type& results) {
          if (ec) return spdlog::warn("demo heartbeat: {}", ec.message());
          boost::asio::async_connect(
              ex->socket, results,
              [ex](const boost::system::error_code& ec, const boost::asio::ip::tcp::endpoint&) {
                if (ec) return spdlog::warn("demo heartbeat: {}", ec.message());
                boost::asio::async_write(
                    ex->socket, boost::asio::buffer(ex->request),
                    [ex](const boost::system::error_code& ec, std::size_t) {
                      if (ec) return spdlog::warn("demo heartbeat: {}", ec.message());
                      boost::asio::async_read(
                          ex->socket, boost::asio::dynamic_buffer(ex->response, 64 * 1024),
                          [ex](const boost::system::error_code&, std::size_t) {
                            if (ex->response.rfind("HTTP/1.1 200", 0) != 0) {
                              spdlog::warn("demo heartbeat: push refused: {}",
                                           ex->response.substr(0, ex->response.find('\r')));
                            }
                          });
                    });
              });
        });
  }

  boost::asio::io_context& io_;
  boost::asio::steady_timer timer_;
  std::string host_port_;
  unsigned count_ = 0;
};

}  // namespace

void startDemoHeartbeat(boost::asio::io_context& io, std::string host_port) {
  std::make_shared<DemoPusher>(io, std::move(host_port))->schedule(std::chrono::seconds(2));
}

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
