// Fuzzes vigie's HTTP request handling: the input is the raw byte stream a client
// sends on one connection (pipelined requests, bodies, garbage), fed to the real
// HttpServer (Boost.Beast parser, keep-alive, limits) through a socketpair, with
// the routes `vigie` registers: /metrics, the JSON API, the dashboard and badges,
// /healthz, /readyz and heartbeat pushes, over an engine running a real
// configuration (heartbeat checks only: nothing leaves the process).
//
// Checked promises, beyond "no crash, no leak, no hang": the connection ends once
// the client has sent everything; no handler throws (a 500 would be vigie's own
// fault); every answer parses as HTTP/1.1; every JSON body parses as JSON (UTF-8);
// every body the server writes (page, API, metrics, badge) is valid UTF-8.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "collector/config.h"
#include "collector/engine.h"
#include "exporters/dashboard.h"
#include "exporters/http_server.h"
#include "exporters/push.h"
#include "exporters/routes.h"
#include "probes/heartbeat_probe.h"
#include "tests/fuzz/fuzz_check.h"

namespace vigie {
namespace {

namespace http = boost::beast::http;

// Heartbeat checks only: a push changes their state, and nothing is probed over
// the network. Groups, dependencies, a cluster, maintenance and labels give the
// dashboard and the services API everything they can show.
constexpr const char* kConfig = R"(
listen: "127.0.0.1:0"
location: fuzz
groups:
  - {name: jmmc, description: "JMMC <web> services"}
services:
  - name: obsportal
    group: jmmc
    labels: {env: prod}
    depends_on: [shared-postgres]
    checks:
      - name: sync
        heartbeat: {period: 1h, grace: 10m, token: "${TOKEN}"}
      - name: nightly
        critical: false
        heartbeat: {period: 24h, grace: 30m, token: "${TOKEN}"}
  - name: shared-postgres
    group: jmmc
    checks:
      - name: backup
        heartbeat: {period: 1h, grace: 1m, token: "${TOKEN}"}
  - name: "app.x_y-Z9"
    description: "unicode: évian ☃"
    checks:
      - name: "job"
        heartbeat: {period: 5m, grace: 1m, token: "${TOKEN}"}
clusters:
  - name: cattle-blue
    services: [obsportal, shared-postgres]
maintenance:
  - services: ["app.x_y-Z9"]
    start: "2020-01-01T00:00:00Z"
    duration: 36500d
)";

struct World {
  boost::asio::io_context io{1};
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  Engine engine{io, registry};
  HttpServer server{io};

  World() {
    spdlog::set_level(spdlog::level::off);  // state changes would be logged per input
    const std::map<std::string, std::string> env = {{"TOKEN", "fuzz-token-0123456789"}};
    engine.apply(parseConfig(kConfig, "fuzz.yaml", &env));
    engine.noteReload(true, "fuzz.yaml");
    const SnapshotSource snapshots = [this] { return engine.snapshot(); };
    registerStandardRoutes(server, snapshots, *registry, [this] { return engine.ready(); },
                           "fuzz");
    registerDashboardRoutes(server, snapshots);
    registerPushRoutes(server, engine);
    // States to show: one check up, one down with a detail, the rest unknown.
    HeartbeatPush ok;
    ok.at = SystemClock::now();
    ok.steady = SteadyClock::now();
    engine.push("obsportal/sync", "fuzz-token-0123456789", ok);
    HeartbeatPush failed = ok;
    failed.failed = true;
    failed.exit_code = 3;
    failed.message = "disk <full> & \"quoted\"";
    engine.push("shared-postgres/backup", "fuzz-token-0123456789", failed);
    io.poll();
  }
};

// The methods of the requests the server will read from `input`, in order, parsed
// with the server's own limits: a HEAD's answer has no body.
std::vector<http::verb> requestMethods(std::string_view rest) {
  std::vector<http::verb> methods;
  while (!rest.empty()) {
    http::request_parser<http::string_body> p;
    p.header_limit(8 * 1024);
    p.body_limit(64 * 1024);
    p.eager(true);
    boost::system::error_code ec;
    while (!p.is_done()) {
      const std::size_t n = p.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(n);
      if (ec || n == 0) break;
    }
    if (!p.is_done()) break;
    methods.push_back(p.get().method());
    if (!p.get().keep_alive()) break;
  }
  return methods;
}

void checkResponses(std::string_view input, std::string_view output) {
  const std::vector<http::verb> methods = requestMethods(input);
  std::string_view rest = output;
  std::size_t index = 0;
  while (!rest.empty()) {
    http::response_parser<http::string_body> p;
    p.body_limit(std::uint64_t{1} << 30);
    p.eager(true);
    // Past the requests the server read comes at most its answer to a bad one.
    const bool head = index < methods.size() && methods[index] == http::verb::head;
    if (head) p.skip(true);
    boost::system::error_code ec;
    while (!p.is_done() && !ec) {
      const std::size_t n = p.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(n);
      if (n == 0) break;
    }
    VIGIE_FUZZ_CHECK(p.is_done(), std::string(output.substr(0, 300)) + " :: " + ec.message());
    ++index;
    const auto& res = p.get();
    VIGIE_FUZZ_CHECK(res.result_int() != 500, res.body());
    const std::string& body = res.body();
    VIGIE_FUZZ_CHECK(fuzz::validUtf8(body), body);
    if (!head && res[http::field::content_type].starts_with("application/json")) {
      boost::system::error_code jec;
      boost::json::parse(body, jec);
      VIGIE_FUZZ_CHECK(!jec, body);
    }
  }
  VIGIE_FUZZ_CHECK(index >= methods.size(), "fewer answers than requests");
  VIGIE_FUZZ_CHECK(index <= methods.size() + 1, "more answers than requests");
}

}  // namespace
}  // namespace vigie

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vigie;
  static World* world = new World();  // lives as long as the process (the engine's timers)
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) fuzz::fail("socketpair");
  ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  boost::asio::ip::tcp::socket socket(world->io);
  socket.assign(boost::asio::ip::tcp::v4(), fds[0]);
  const auto errors_before = world->server.stats().handler_errors;
  world->server.serve(std::move(socket));

  std::size_t sent = 0;
  bool shut = false, eof = false, moved = true;
  std::string output;
  char chunk[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!eof || world->server.stats().connections_open > 0) {
    if (std::chrono::steady_clock::now() > deadline) fuzz::fail("connection never ended");
    // Run what is ready; wait a little only when neither side moved.
    if (world->io.poll() == 0 && !moved) world->io.run_one_for(std::chrono::milliseconds(1));
    moved = false;
    if (!shut) {
      const ssize_t n = sent < size ? ::send(fds[1], data + sent, size - sent, MSG_NOSIGNAL) : 0;
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        moved = true;
      }
      // The server may close early (a limit, a bad request): stop sending then.
      if (sent == size || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        ::shutdown(fds[1], SHUT_WR);
        shut = true;
      }
    }
    while (!eof) {
      const ssize_t n = ::recv(fds[1], chunk, sizeof chunk, 0);
      if (n > 0) {
        output.append(chunk, static_cast<std::size_t>(n));
        moved = true;
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        eof = true;
      } else {
        break;
      }
    }
  }
  ::close(fds[1]);
  VIGIE_FUZZ_CHECK(world->server.stats().handler_errors == errors_before, "a handler threw");
  checkResponses(input, output);
  return 0;
}
