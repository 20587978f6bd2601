// vigie's own HTTP server as the vigie binary runs it (issue 9, item 5): thousands of
// connections and a wrk load on /metrics and the API while probing keeps its
// schedule, and every malformed or oversized request answered with a JSON error,
// never a crash. (Limits and slow clients in isolation: http_server_test.)

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

std::optional<double> metric(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return std::nullopt;
}

std::uint64_t u64(const json::value& v) { return v.to_number<std::uint64_t>(); }

// One vigie probing `checks` nginx pages every `interval`.
class VigieWithTargets {
 public:
  VigieWithTargets(int checks, const std::string& interval) {
    writeFile(nginx_.root() + "/health.json", R"({"status":"pass","version":"1.0"})");
    port_ = freePort();
    dir_ = makeTempDir("vigie-load");
    std::string y = fmt::format(
        "listen: \"127.0.0.1:{}\"\n"
        "defaults: {{interval: {}, timeout: {}, failure_threshold: 1}}\n"
        "services:\n",
        port_, interval, interval);
    for (int i = 0; i < checks; ++i) {
      y += fmt::format("  - name: svc{}\n    checks:\n      - {{name: health, http: {{url: \"{}\"}}}}\n",
                       i, nginx_.url("/health.json"));
    }
    writeFile(dir_ + "/vigie.yaml", y);
    vigie_ = std::make_unique<Process>(
        Process::Options{{VIGIE_BINARY, "--config", dir_ + "/vigie.yaml"}, {}, dir_ + "/log.txt", ""});
  }
  ~VigieWithTargets() {
    vigie_.reset();
    removeTree(dir_);
  }
  std::string base() const { return fmt::format("http://127.0.0.1:{}", port_); }
  int port() const { return port_; }
  Process& process() { return *vigie_; }

  // Results so far per check key, once every check has one.
  std::map<std::string, std::uint64_t> results() {
    std::map<std::string, std::uint64_t> out;
    const Http r = httpGet(base() + "/api/v1/checks");
    if (r.status != 200) return out;
    const json::value doc = json::parse(r.body);
    for (const auto& c : doc.at("checks").as_array()) {
      const auto& t = c.at("results_total");
      out[std::string(c.at("key").as_string())] = u64(t.at("ok")) + u64(t.at("warn")) + u64(t.at("fail"));
    }
    return out;
  }

 private:
  Nginx nginx_;
  int port_ = 0;
  std::string dir_;
  std::unique_ptr<Process> vigie_;
};

struct Histogram {
  std::map<std::string, double> buckets;  // le -> cumulative count
  double count = 0;
};

Histogram lagHistogram(const std::string& metrics) {
  Histogram h;
  static const std::regex line(R"re(vigie_scheduler_lag_seconds_bucket\{le="([^"]+)"\} (\S+))re");
  std::istringstream in(metrics);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_match(l, m, line)) h.buckets[m[1]] = std::stod(m[2]);
  }
  h.count = metric(metrics, "vigie_scheduler_lag_seconds_count").value_or(0);
  return h;
}

TEST(ServerUnderLoad, WrkOnMetricsAndApiWhileProbingKeepsItsSchedule) {
  constexpr int kChecks = 20;
  VigieWithTargets v(kChecks, "500ms");
  std::map<std::string, std::uint64_t> before;
  ASSERT_TRUE(eventually(10s, [&] {
    before = v.results();
    if (before.size() != kChecks) return false;
    for (const auto& [k, n] : before) {
      if (n == 0) return false;
    }
    return true;
  })) << v.process().output();
  const Histogram lag_before = lagHistogram(httpGet(v.base() + "/metrics").body);

  // wrk alternates /metrics and /api/v1/checks over 2,000 connections, niced: on a
  // 2-core machine its threads would otherwise take the CPU vigie's loop needs, where
  // real clients run elsewhere.
  const std::string dir = makeTempDir("vigie-wrk");
  writeFile(dir + "/paths.lua",
            "local paths = {\"/metrics\", \"/api/v1/checks\"}\n"
            "local i = 0\n"
            "request = function()\n"
            "  i = i + 1\n"
            "  return wrk.format(\"GET\", paths[i % 2 + 1])\n"
            "end\n");
  const auto t0 = std::chrono::steady_clock::now();
  Process wrk({{"/usr/bin/nice", "-n", "10", "/usr/bin/wrk", "-t2", "-c2000", "-d4s", "--timeout", "3s", "-s",
                dir + "/paths.lua", v.base() + "/"},
               {},
               dir + "/wrk.txt",
               ""});
  const auto status = wrk.wait(30s);
  const double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << wrk.output();
  const std::string out = wrk.output();
  removeTree(dir);

  // Probing kept its pace meanwhile: every check has most of its turns (every 500 ms).
  const auto after = v.results();
  ASSERT_EQ(after.size(), static_cast<std::size_t>(kChecks));
  std::uint64_t fewest = UINT64_MAX;
  for (const auto& [k, n] : after) fewest = std::min(fewest, n - before[k]);
  const double turns = window / 0.5;
  EXPECT_GE(static_cast<double>(fewest), 0.6 * turns) << fewest << " results in " << window << " s";
  const std::string metrics = httpGet(v.base() + "/metrics").body;
  const Histogram lag_after = lagHistogram(metrics);
  const double starts = lag_after.count - lag_before.count;
  auto share = [&](const std::string& le) {
    return starts > 0 ? (lag_after.buckets.at(le) - lag_before.buckets.at(le)) / starts : 0;
  };
  // On a shared 2-core machine the loop thread also waits for a CPU (wrk, nginx and
  // other builds run beside it): tens of milliseconds of lag are the machine's; a
  // loop blocked by the server (a render on the loop, a flood served back to back)
  // shows seconds.
  EXPECT_GE(share("1"), 0.99) << "lag <= 1 s for " << share("1") * 100 << "%";
  // nginx shares the two cores too: a probe of it may time out (500 ms); nothing else.
  int timeouts = 0;
  const json::value doc = json::parse(httpGet(v.base() + "/api/v1/checks").body);
  for (const auto& c : doc.at("checks").as_array()) {
    for (const auto& r : c.at("recent").as_array()) {
      if (r.at("status").as_string() == "ok") continue;
      EXPECT_EQ(r.at("reason"), json::value("timeout")) << json::serialize(c);
      ++timeouts;
    }
  }

  // The server answered everything, without error or stall (wrk counts a request
  // unanswered after 3 s as a timeout); the rate is reported, not asserted.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"((\d+) requests in ([\d.]+)s)"))) << out;
  const double requests = std::stod(m[1]);
  const double rate = requests / std::stod(m[2]);
  EXPECT_GT(requests, 1000) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
  std::printf("[ figures ] wrk, 2 threads, 2000 connections, /metrics and /api/v1/checks of %d "
              "checks: %.0f requests/s; probing: fewest results %llu of %.1f turns, lag <= 50 "
              "ms %.1f%%, <= 250 ms %.1f%%, <= 1 s %.1f%% of %.0f starts, %d timeouts of "
              "nginx; %.0f requests deferred\n",
              kChecks, rate, static_cast<unsigned long long>(fewest), turns,
              share("0.05") * 100, share("0.25") * 100, share("1") * 100, starts, timeouts,
              metric(metrics, "vigie_http_requests_deferred_total").value_or(-1));
  RecordProperty("requests_per_second", static_cast<int>(rate));

  // Every connection closed afterwards; vigie serves on.
  EXPECT_TRUE(eventually(5s, [&] {
    return metric(httpGet(v.base() + "/metrics").body, "vigie_http_connections ").value_or(99) <= 1;
  }));
  EXPECT_TRUE(v.process().running());
  const int st = v.process().stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

// ---- malformed requests against the binary ----

class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<unsigned short>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error("connect failed");
    }
  }
  ~RawClient() { ::close(fd_); }

  // Sends `request` and reads until the server closes or a whole response came.
  std::string exchange(const std::string& request) {
    std::size_t off = 0;
    while (off < request.size()) {
      const ssize_t n = ::send(fd_, request.data() + off, request.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;  // the server may answer and close before reading it all
      off += static_cast<std::size_t>(n);
    }
    std::string in;
    char buf[8192];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
      const auto end = in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      std::smatch m;
      const std::string head = in.substr(0, end);
      if (std::regex_search(head, m, std::regex(R"(Content-Length: (\d+))", std::regex::icase)) &&
          in.size() >= end + 4 + std::stoul(m[1])) {
        break;
      }
    }
    return in;
  }

 private:
  int fd_ = -1;
};

struct BadRequest {
  std::string name;
  std::string request;
  int status;
};

// The start of a TLS ClientHello, NUL bytes included: a client speaking TLS to HTTP.
constexpr char kClientHello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n";

TEST(ServerLimits, EveryBadRequestGetsAJsonErrorAndVigieServesOn) {
  VigieWithTargets v(2, "1s");
  ASSERT_TRUE(eventually(10s, [&] { return v.results().size() == 2; })) << v.process().output();
  const std::string host = "Host: t\r\n";
  const std::vector<BadRequest> cases = {
      {"unknown path", "GET /nope HTTP/1.1\r\n" + host + "\r\n", 404},
      {"unknown api path", "GET /api/v2/checks HTTP/1.1\r\n" + host + "\r\n", 404},
      {"unknown check", "GET /api/v1/checks/svc0/nope HTTP/1.1\r\n" + host + "\r\n", 404},
      {"bad percent-encoding", "GET /api/v1/checks/%zz/%00 HTTP/1.1\r\n" + host + "\r\n", 404},
      {"bad state", "GET /api/v1/checks?state=bogus HTTP/1.1\r\n" + host + "\r\n", 400},
      {"bad service state", "GET /api/v1/services?state=%ff HTTP/1.1\r\n" + host + "\r\n", 400},
      {"limit not a number", "GET /api/v1/events?limit=abc HTTP/1.1\r\n" + host + "\r\n", 400},
      {"limit zero", "GET /api/v1/events?limit=0 HTTP/1.1\r\n" + host + "\r\n", 400},
      {"limit overflow",
       "GET /api/v1/events?limit=99999999999999999999999 HTTP/1.1\r\n" + host + "\r\n", 400},
      {"negative before", "GET /api/v1/events?before=-1 HTTP/1.1\r\n" + host + "\r\n", 400},
      {"unknown subject", "GET /api/v1/events?subject=x HTTP/1.1\r\n" + host + "\r\n", 400},
      {"wrong method", "DELETE /metrics HTTP/1.1\r\n" + host + "\r\n", 405},
      {"header too large",
       "GET /metrics HTTP/1.1\r\n" + host + "X-Big: " + std::string(16 * 1024, 'a') + "\r\n\r\n",
       431},
      {"url too large", "GET /api/v1/checks?x=" + std::string(16 * 1024, 'a') + " HTTP/1.1\r\n" + host +
                            "\r\n",
       431},
      {"body too large",
       "POST /api/v1/push/svc0/health HTTP/1.1\r\n" + host + "Content-Length: 10000000\r\n\r\n",
       413},
      {"not http", std::string(kClientHello, sizeof kClientHello - 1), 400},
      {"control bytes in target", std::string("GET /\x01\x7f HTTP/1.1\r\n") + host + "\r\n", 400},
      {"bad content-length", "POST /metrics HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400},
      {"bad chunk", "POST /api/v1/push/svc0/health HTTP/1.1\r\n" + host +
                        "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
       400},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RawClient client(v.port());
    const std::string reply = client.exchange(c.request);
    ASSERT_GE(reply.size(), 12u) << "no answer";
    EXPECT_EQ(reply.substr(9, 3), std::to_string(c.status)) << reply.substr(0, 300);
    const auto end = reply.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos);
    EXPECT_NE(reply.substr(0, end).find("Content-Type: application/json"), std::string::npos)
        << reply.substr(0, end);
    json::value body;
    ASSERT_NO_THROW(body = json::parse(reply.substr(end + 4))) << reply.substr(end + 4, 300);
    EXPECT_TRUE(body.as_object().contains("error")) << json::serialize(body);
    EXPECT_TRUE(v.process().running());
  }
  // vigie is still whole: it answers, probes and stops cleanly.
  EXPECT_EQ(httpGet(v.base() + "/healthz").status, 200);
  const auto results = v.results();
  EXPECT_EQ(results.size(), 2u);
  const int st = v.process().stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

}  // namespace
}  // namespace vigie::test
