// HttpProbe and CurlDriver against a real nginx (health pages, statuses, redirects,
// TLS with a test-made CA) and against a fault server (trickle, reset, silence,
// garbage, endless body, stalled TLS).

#include "probes/http_probe.h"

#include <dirent.h>
#include <stdlib.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "collector/curl_driver.h"
#include "probes/http_native.h"
#include "probes/registry.h"
#include "tests/support/fault_server.h"
#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/tls_cert.h"
#include "tests/support/paths.h"
#include "tests/support/scoped_env.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;
using test::FaultServer;

int openFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the DIR's own descriptor
}

// Servers in other threads close their side a little later: wait for the count.
int fdsSettledAt(int expected) {
  const auto until = std::chrono::steady_clock::now() + 3s;
  int n = openFds();
  while (n != expected && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
    n = openFds();
  }
  return n;
}

// One nginx for the whole suite: plain port, and TLS ports with a valid, an
// expiring (5 days) and an expired certificate from one test CA.
struct Servers {
  std::string dir;
  std::unique_ptr<test::TestCa> ca;
  std::unique_ptr<test::Nginx> nginx;
};
Servers* g = nullptr;

constexpr std::size_t kValid = 0, kExpiring = 1, kExpired = 2;

class Env : public ::testing::Environment {
 public:
  void SetUp() override {
    g = new Servers;
    g->dir = test::makeTempDir("http-probe-test");
    g->ca = std::make_unique<test::TestCa>(g->dir);
    test::NginxOptions o;
    o.tls.push_back(g->ca->issue("valid", -1h, std::chrono::hours(24 * 365)));
    o.tls.push_back(g->ca->issue("expiring", -1h, std::chrono::hours(24 * 5)));
    o.tls.push_back(g->ca->issue("expired", -std::chrono::hours(24 * 30), -std::chrono::hours(24)));
    o.ipv6 = true;
    o.locations = {
        {"/hj/", "types {} default_type application/health+json;"},
        {"/spring/", "types {} default_type application/vnd.spring-boot.actuator.v3+json;"},
        {"= /down",
         "default_type application/json; "
         "return 503 '{\"status\":\"DOWN\",\"components\":{\"db\":{\"status\":\"DOWN\"}}}';"},
        {"= /r1", "return 302 /health_json_pass.json;"},
        {"= /loop", "return 302 /loop;"},
        {"= /echo",
         "default_type text/plain; return 200 'method=$request_method x=$http_x_vigie';"},
    };
    g->nginx = std::make_unique<test::Nginx>(o);
    const std::string root = g->nginx->root();
    const std::string samples = std::string(VIGIE_SOURCE_DIR) + "/tests/data/health";
    for (const char* sub : {"", "/hj", "/spring"}) {
      std::filesystem::create_directories(root + sub);
      for (const auto& f : std::filesystem::directory_iterator(samples)) {
        std::filesystem::copy_file(f.path(), root + sub + "/" + f.path().filename().string(),
                                   std::filesystem::copy_options::overwrite_existing);
      }
    }
    test::writeFile(root + "/index.html", "<!doctype html><html><body>hello</body></html>\n");
    test::writeFile(root + "/big.txt", std::string(10000, 'b'));
  }
  void TearDown() override {
    if (g == nullptr) return;
    g->nginx.reset();
    test::removeTree(g->dir);
    delete g;
    g = nullptr;
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new Env);

HttpSpec spec(std::string url) {
  HttpSpec s;
  s.url = std::move(url);
  return s;
}

struct Outcome {
  Result result;
  int calls = 0;
  std::chrono::duration<double> elapsed{};
};

// One attempt on a fresh loop; the loop is bounded by the deadline plus slack.
Outcome runProbe(const HttpSpec& s, std::chrono::milliseconds timeout = 5s) {
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, "test"};
  HttpProbe probe(ctx, s);
  Outcome run;
  const auto t0 = SteadyClock::now();
  probe.start(t0 + timeout, [&](Result r) {
    ++run.calls;
    run.result = std::move(r);
  });
  io.run_for(timeout + 5s);
  run.elapsed = SteadyClock::now() - t0;
  EXPECT_EQ(curl.active(), 0u);
  EXPECT_EQ(curl.openSockets(), 0u);
  return run;
}

using test::ScopedEnv;

std::string describe(const Result& r) {
  return std::string(statusName(r.status)) + "/" + std::string(reasonName(r.reason)) + ": " +
         r.detail;
}

// An idle check holds no libcurl handle: each attempt takes one from the driver's
// pool and gives it back, reset, so 100 probes run in turn share one handle.
TEST(HttpProbe, EasyHandlesArePooled) {
  ScopedEnv curl_only("VIGIE_HTTP_CLIENT", "curl");  // the native client holds no handle
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, "test"};
  const HttpSpec s = spec(g->nginx->url("/health_json_pass.json"));
  std::vector<std::unique_ptr<HttpProbe>> probes;
  for (int i = 0; i < 100; ++i) probes.push_back(std::make_unique<HttpProbe>(ctx, s));
  EXPECT_EQ(curl.idleHandles(), 0u);
  int ok = 0;
  std::function<void(std::size_t)> next = [&](std::size_t i) {
    if (i == probes.size()) return;
    probes[i]->start(SteadyClock::now() + 5s, [&, i](Result r) {
      if (r.status == Status::ok) ++ok;
      EXPECT_EQ(curl.idleHandles(), 1u) << "released once the result was built";
      next(i + 1);
    });
  };
  next(0);
  io.run_for(30s);
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(curl.idleHandles(), 1u);
  // A cancelled attempt gives its handle back too, and nothing keeps running.
  probes[0]->start(SteadyClock::now() + 5s, [](Result) { ADD_FAILURE() << "cancelled"; });
  EXPECT_EQ(curl.idleHandles(), 0u);
  probes[0]->cancel();
  EXPECT_EQ(curl.idleHandles(), 1u);
  EXPECT_EQ(curl.active(), 0u);
}

// ---- health pages ----

struct PageCase {
  std::string path;
  HealthFormat format;
  Status status;
  Reason reason;
  std::string detail_has;  // "" = not checked
  std::string component;   // a component that must be reported ("" = not checked, "-" = none)
  std::string version;     // "" = not checked
};

class HealthPages : public ::testing::TestWithParam<PageCase> {};

TEST_P(HealthPages, ServedByNginx) {
  const PageCase& c = GetParam();
  HttpSpec s = spec(g->nginx->url(c.path));
  s.health_format = c.format;
  if (c.format == HealthFormat::custom) {
    s.custom.edit().status_pointer = "/alive";
    s.custom.edit().components_pointer = "/dependencies";
    s.custom.edit().version_pointer = "/version_info/tag";
  }
  Outcome run = runProbe(s);
  ASSERT_EQ(run.calls, 1);
  const Result& r = run.result;
  EXPECT_EQ(r.status, c.status) << describe(r);
  EXPECT_EQ(r.reason, c.reason) << describe(r);
  if (!c.detail_has.empty()) {
    EXPECT_NE(r.detail.find(c.detail_has), std::string::npos) << r.detail;
  }
  if (c.component == "-") {
    EXPECT_TRUE(r.components.empty());
  } else if (!c.component.empty()) {
    bool found = false;
    for (const auto& comp : r.components) found = found || comp.name == c.component;
    EXPECT_TRUE(found) << c.component << " not among " << r.components.size() << " components";
  }
  if (!c.version.empty()) {
    EXPECT_EQ(r.version, c.version);
  }
  EXPECT_EQ(r.http_status, 200);
  EXPECT_GT(r.body_bytes, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Pages, HealthPages,
    ::testing::Values(
        PageCase{"/health_json_pass.json", HealthFormat::auto_detect, Status::ok, Reason::none, "",
                 "cpu:utilization/node-1", "1"},
        PageCase{"/hj/health_json_warn.json", HealthFormat::auto_detect, Status::warn,
                 Reason::health_warn, "vizier:responseTime", "vizier:responseTime", ""},
        PageCase{"/hj/health_json_fail.json", HealthFormat::auto_detect, Status::fail,
                 Reason::health_fail, "postgres:connections", "postgres:connections", ""},
        PageCase{"/spring/spring_up.json", HealthFormat::auto_detect, Status::ok, Reason::none, "",
                 "db", ""},
        PageCase{"/spring/spring_down.json", HealthFormat::auto_detect, Status::fail,
                 Reason::health_fail, "db", "db", ""},
        PageCase{"/spring/spring_up_with_build.json", HealthFormat::spring, Status::ok,
                 Reason::none, "", "", "5.2.0"},
        PageCase{"/microprofile_down.json", HealthFormat::auto_detect, Status::fail,
                 Reason::health_fail, "database-connection", "database-connection", ""},
        PageCase{"/text_fail.txt", HealthFormat::auto_detect, Status::fail, Reason::health_fail, "",
                 "", ""},
        PageCase{"/custom_home_down.json", HealthFormat::custom, Status::fail, Reason::health_fail,
                 "", "", ""},
        PageCase{"/truncated.json", HealthFormat::spring, Status::fail, Reason::health_parse, "",
                 "", ""},
        PageCase{"/spring/truncated.json", HealthFormat::auto_detect, Status::fail,
                 Reason::health_parse, "", "", ""},
        // auto on a page that is not a health page: not an error.
        PageCase{"/truncated.json", HealthFormat::auto_detect, Status::ok, Reason::none, "", "",
                 ""},
        PageCase{"/text_ok.txt", HealthFormat::auto_detect, Status::ok, Reason::none, "", "-", ""},
        PageCase{"/index.html", HealthFormat::auto_detect, Status::ok, Reason::none, "", "-", ""},
        PageCase{"/index.html", HealthFormat::none, Status::ok, Reason::none, "", "-", ""}));

// ---- status, method, headers, conditions ----

TEST(HttpProbe, UnexpectedStatusSaysWhatCame) {
  Outcome run = runProbe(spec(g->nginx->url("/down")));
  EXPECT_EQ(run.result.reason, Reason::http_status) << describe(run.result);
  EXPECT_EQ(run.result.detail.rfind("got 503, expected 2xx", 0), 0u) << run.result.detail;
  EXPECT_EQ(run.result.http_status, 503);
  ASSERT_EQ(run.result.components.size(), 1u);  // the page still tells what is down
  EXPECT_EQ(run.result.components[0].name, "db");

  HttpSpec s = spec(g->nginx->url("/down"));
  s.expect_status = {200, 204};
  run = runProbe(s);
  EXPECT_EQ(run.result.detail.rfind("got 503, expected 200 or 204", 0), 0u) << run.result.detail;

  s.expect_status = {503};  // 503 accepted: the health page decides
  run = runProbe(s);
  EXPECT_EQ(run.result.reason, Reason::health_fail) << describe(run.result);
  EXPECT_NE(run.result.detail.find("db"), std::string::npos) << run.result.detail;
}

TEST(HttpProbe, MethodHeadersAndBodyConditions) {
  HttpSpec s = spec(g->nginx->url("/echo"));
  s.method = "POST";
  s.body = "{\"ping\":1}";
  s.headers = {{"X-Vigie", "probe-42"}};
  s.health_format = HealthFormat::none;
  ConditionSpec contains;
  contains.kind = ConditionSpec::Kind::body_contains;
  contains.value = "method=POST x=probe-42";
  s.conditions = {contains};
  Outcome run = runProbe(s);
  EXPECT_EQ(run.result.status, Status::ok) << describe(run.result);
  ASSERT_EQ(run.result.conditions.size(), 1u);
  EXPECT_TRUE(run.result.conditions[0].ok);

  ConditionSpec missing;
  missing.kind = ConditionSpec::Kind::body_contains;
  missing.value = "method=GET";
  s.conditions = {contains, missing};
  run = runProbe(s);
  EXPECT_EQ(run.result.reason, Reason::body) << describe(run.result);
  ASSERT_EQ(run.result.conditions.size(), 2u);
  EXPECT_FALSE(run.result.conditions[1].ok);
}

TEST(HttpProbe, Redirects) {
  HttpSpec s = spec(g->nginx->url("/r1"));
  Outcome run = runProbe(s);
  EXPECT_EQ(run.result.reason, Reason::http_status) << describe(run.result);
  EXPECT_EQ(run.result.http_status, 302);

  s.follow_redirects = true;
  run = runProbe(s);
  EXPECT_EQ(run.result.status, Status::ok) << describe(run.result);
  EXPECT_EQ(run.result.http_status, 200);
  EXPECT_EQ(run.result.redirects, 1);

  s = spec(g->nginx->url("/loop"));
  s.follow_redirects = true;
  s.max_redirects = 5;
  run = runProbe(s);
  EXPECT_EQ(run.result.reason, Reason::http_protocol) << describe(run.result);
  EXPECT_NE(run.result.detail.find("too many redirects"), std::string::npos) << run.result.detail;
}

TEST(HttpProbe, MaxBodyCutsServedFile) {
  HttpSpec s = spec(g->nginx->url("/big.txt"));
  s.health_format = HealthFormat::none;
  s.max_body = 1000;
  Outcome run = runProbe(s);
  EXPECT_EQ(run.result.reason, Reason::body_too_large) << describe(run.result);
  s.max_body = 10000;
  run = runProbe(s);
  EXPECT_EQ(run.result.status, Status::ok) << describe(run.result);
  EXPECT_EQ(run.result.body_bytes, 10000u);
}

TEST(HttpProbe, PhasesAreMeasured) {
  Outcome run = runProbe(spec(g->nginx->url("/health_json_pass.json")));
  const Result& r = run.result;
  ASSERT_EQ(r.status, Status::ok) << describe(r);
  for (double v :
       {r.phases.resolve, r.phases.connect, r.phases.tls, r.phases.processing, r.phases.transfer}) {
    EXPECT_GE(v, 0.0);
  }
  EXPECT_EQ(r.phases.tls, 0.0);
  EXPECT_GT(r.duration, 0.0);
  EXPECT_LE(r.phases.resolve + r.phases.connect + r.phases.processing + r.phases.transfer,
            r.duration + 1e-6);
  EXPECT_EQ(r.http_version, 11);
}

TEST(HttpProbe, Ipv6Loopback) {
  Outcome run = runProbe(spec("http://[::1]:" + std::to_string(g->nginx->port()) + "/text_ok.txt"));
  EXPECT_EQ(run.result.status, Status::ok) << describe(run.result);
}

// A name from /etc/hosts goes through curl's threaded resolver (its socketpair is a
// descriptor curl opens itself); "localhost" and IP literals do not.
TEST(HttpProbe, NameThroughResolver) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::string name = "localhost";
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  if (getaddrinfo(host, nullptr, &hints, &res) == 0) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(res->ai_addr);
    if (ntohl(sin->sin_addr.s_addr) == INADDR_LOOPBACK) name = host;
    freeaddrinfo(res);
  }
  Outcome run =
      runProbe(spec("http://" + name + ":" + std::to_string(g->nginx->port()) + "/text_ok.txt"));
  EXPECT_EQ(run.result.status, Status::ok) << name << ": " << describe(run.result);
}

TEST(HttpProbe, ConnectionRefused) {
  Outcome run = runProbe(spec("http://127.0.0.1:" + std::to_string(test::freePort()) + "/"));
  EXPECT_EQ(run.result.reason, Reason::connect) << describe(run.result);
}

// ---- TLS ----

TEST(HttpProbe, TlsVerifiedWithTestCa) {
  HttpSpec s = spec(g->nginx->tlsUrl("/health_json_pass.json", kValid));
  s.tls.edit().ca_file = g->ca->caFile();
  s.cert_min_days = 14;
  Outcome run = runProbe(s);
  const Result& r = run.result;
  ASSERT_EQ(r.status, Status::ok) << describe(r);
  EXPECT_GT(r.phases.connect, 0.0);
  EXPECT_GT(r.phases.tls, 0.0);
  EXPECT_GE(r.phases.processing, 0.0);
  ASSERT_TRUE(r.cert_expiry.has_value());
  const double now = std::chrono::duration<double>(SystemClock::now().time_since_epoch()).count();
  // The leaf (365 days) expires before the CA (10 years): the earliest wins.
  EXPECT_NEAR((*r.cert_expiry - now) / 86400.0, 365.0, 1.0);
}

TEST(HttpProbe, TlsUntrustedWithoutCa) {
  Outcome run = runProbe(spec(g->nginx->tlsUrl("/text_ok.txt", kValid)));
  EXPECT_EQ(run.result.reason, Reason::tls) << describe(run.result);
}

TEST(HttpProbe, TlsVerifyOffPasses) {
  HttpSpec s = spec(g->nginx->tlsUrl("/text_ok.txt", kValid));
  s.tls.edit().verify = false;
  Outcome run = runProbe(s);
  EXPECT_EQ(run.result.status, Status::ok) << describe(run.result);
  EXPECT_TRUE(run.result.cert_expiry.has_value());
}

TEST(HttpProbe, TlsCertificateExpiringSoon) {
  HttpSpec s = spec(g->nginx->tlsUrl("/text_ok.txt", kExpiring));
  s.tls.edit().ca_file = g->ca->caFile();
  s.cert_min_days = 14;
  Outcome run = runProbe(s);
  EXPECT_EQ(run.result.reason, Reason::cert_expiring) << describe(run.result);
  ASSERT_TRUE(run.result.cert_expiry.has_value());
  const double now = std::chrono::duration<double>(SystemClock::now().time_since_epoch()).count();
  EXPECT_NEAR((*run.result.cert_expiry - now) / 86400.0, 5.0, 0.1);

  s.cert_min_days.reset();  // no minimum: the same certificate is fine
  run = runProbe(s);
  EXPECT_EQ(run.result.status, Status::ok) << describe(run.result);
}

TEST(HttpProbe, TlsExpiredCertificate) {
  HttpSpec s = spec(g->nginx->tlsUrl("/text_ok.txt", kExpired));
  s.tls.edit().ca_file = g->ca->caFile();
  Outcome run = runProbe(s);
  EXPECT_EQ(run.result.reason, Reason::tls) << describe(run.result);
}

TEST(HttpProbe, SniOverrideConnectsToConfiguredAddress) {
  // URL names 127.0.0.1; the certificate check uses server_name "localhost".
  HttpSpec s =
      spec("https://127.0.0.1:" + std::to_string(g->nginx->tlsPort(kValid)) + "/text_ok.txt");
  s.tls.edit().ca_file = g->ca->caFile();
  s.tls.edit().server_name = "localhost";
  Outcome run = runProbe(s);
  EXPECT_EQ(run.result.status, Status::ok) << describe(run.result);
}

// ---- fault server ----

TEST(HttpProbe, TrickleTimesOutWithinDeadline) {
  FaultServer f(FaultServer::Mode::trickle);
  Outcome run = runProbe(spec(f.url()), 1500ms);
  EXPECT_EQ(run.result.reason, Reason::timeout) << describe(run.result);
  EXPECT_NE(run.result.detail.find("reading the body"), std::string::npos) << run.result.detail;
  EXPECT_LT(run.elapsed, 2500ms);
}

TEST(HttpProbe, ResetMidBody) {
  FaultServer f(FaultServer::Mode::reset_mid_body);
  HttpSpec s = spec(f.url());
  s.health_format = HealthFormat::none;
  Outcome run = runProbe(s, 3s);
  EXPECT_EQ(run.result.reason, Reason::http_protocol) << describe(run.result);
  EXPECT_NE(run.result.detail.find("mid-body"), std::string::npos) << run.result.detail;
  EXPECT_LT(run.elapsed, 2s);
}

TEST(HttpProbe, NeverAnswersTimesOut) {
  FaultServer f(FaultServer::Mode::never_answer);
  Outcome run = runProbe(spec(f.url()), 1s);
  EXPECT_EQ(run.result.reason, Reason::timeout) << describe(run.result);
  EXPECT_NE(run.result.detail.find("waiting for the response"), std::string::npos)
      << run.result.detail;
  EXPECT_LT(run.elapsed, 2s);
}

TEST(HttpProbe, GarbageIsProtocolError) {
  FaultServer f(FaultServer::Mode::garbage);
  Outcome run = runProbe(spec(f.url()), 3s);
  EXPECT_EQ(run.result.reason, Reason::http_protocol) << describe(run.result);
}

TEST(HttpProbe, EndlessBodyIsCut) {
  FaultServer f(FaultServer::Mode::huge_body);
  HttpSpec s = spec(f.url());
  s.max_body = 1024 * 1024;
  Outcome run = runProbe(s, 10s);
  EXPECT_EQ(run.result.reason, Reason::body_too_large) << describe(run.result);
  EXPECT_LT(run.elapsed, 3s);
  EXPECT_LE(run.result.body_bytes, s.max_body + 256 * 1024);
}

TEST(HttpProbe, StalledTlsHandshakeTimesOut) {
  FaultServer f(FaultServer::Mode::tls_stall);
  HttpSpec s = spec(f.url());
  s.tls.edit().verify = false;
  Outcome run = runProbe(s, 1s);
  EXPECT_EQ(run.result.reason, Reason::timeout) << describe(run.result);
  EXPECT_NE(run.result.detail.find("TLS handshake"), std::string::npos) << run.result.detail;
}

// ---- the driver under load, cancellation, reuse ----

TEST(CurlDriver, TwoHundredConcurrentProbesLeakNothing) {
  runProbe(spec(g->nginx->url("/text_ok.txt")));  // warm libcurl/OpenSSL one-time state
  const int before = openFds();
  {
    boost::asio::io_context io;
    CurlDriver curl(io);
    ProbeContext ctx{io, curl, "test"};
    std::vector<std::unique_ptr<HttpProbe>> probes;
    std::vector<int> calls(200, 0);
    int ok = 0;
    std::size_t through_curl = 0;
    for (int i = 0; i < 200; ++i) {
      // Mix plain and TLS, IPv4 and IPv6.
      HttpSpec s;
      if (i % 4 == 0) {
        s = spec(g->nginx->tlsUrl("/health_json_pass.json", kValid));
        s.tls.edit().ca_file = g->ca->caFile();
      } else if (i % 4 == 1) {
        s = spec("http://[::1]:" + std::to_string(g->nginx->port()) + "/spring/spring_up.json");
      } else {
        s = spec(g->nginx->url("/health_json_pass.json"));
      }
      probes.push_back(std::make_unique<HttpProbe>(ctx, s));
      if (!probes.back()->native()) ++through_curl;
    }
    // TLS always goes through libcurl; plain http:// to an address only with
    // VIGIE_HTTP_CLIENT=curl.
    EXPECT_EQ(through_curl, nativeHttpEnabled() ? 50u : 200u);
    for (int i = 0; i < 200; ++i) {
      probes[i]->start(SteadyClock::now() + 20s, [&, i](Result r) {
        ++calls[i];
        if (r.status == Status::ok) ++ok;
      });
    }
    EXPECT_EQ(curl.active(), through_curl);
    io.run_for(30s);
    for (int i = 0; i < 200; ++i) EXPECT_EQ(calls[i], 1) << i;
    EXPECT_EQ(ok, 200);
    EXPECT_EQ(curl.active(), 0u);
    EXPECT_EQ(curl.openSockets(), 0u);
  }
  EXPECT_EQ(fdsSettledAt(before), before);
}

TEST(CurlDriver, CancelMeansDoneNeverCalled) {
  FaultServer f(FaultServer::Mode::never_answer);
  const int before = openFds();
  {
    boost::asio::io_context io;
    CurlDriver curl(io);
    ProbeContext ctx{io, curl, "test"};
    HttpProbe cancelled(ctx, spec(f.url()));
    auto destroyed = std::make_unique<HttpProbe>(ctx, spec(f.url()));
    int calls = 0;
    cancelled.start(SteadyClock::now() + 5s, [&](Result) { ++calls; });
    destroyed->start(SteadyClock::now() + 5s, [&](Result) { ++calls; });
    // Until both connections are accepted and the requests wait for an answer.
    const auto until = SteadyClock::now() + 3s;
    while (f.accepted() < 2 && SteadyClock::now() < until) io.run_for(10ms);
    io.run_for(50ms);
    ASSERT_EQ(f.accepted(), 2u);
    EXPECT_EQ(curl.active(), cancelled.native() ? 0u : 2u);
    cancelled.cancel();
    destroyed.reset();
    EXPECT_EQ(curl.active(), 0u);
    EXPECT_EQ(curl.openSockets(), 0u);
    io.restart();
    io.run_for(6s);  // past the deadline: nothing may fire
    EXPECT_EQ(calls, 0);
  }
  EXPECT_EQ(fdsSettledAt(before), before);
}

TEST(CurlDriver, DoneMayStartTheNextAttempt) {
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, "test"};
  HttpProbe probe(ctx, spec(g->nginx->url("/text_ok.txt")));
  std::vector<Status> seen;
  std::function<void(Result)> again = [&](Result r) {
    seen.push_back(r.status);
    if (seen.size() < 3) probe.start(SteadyClock::now() + 5s, again);
  };
  probe.start(SteadyClock::now() + 5s, again);
  io.run_for(15s);
  EXPECT_EQ(seen, (std::vector<Status>{Status::ok, Status::ok, Status::ok}));
}

TEST(CurlDriver, AddingARunningHandleFailsOnlyTheNewRequest) {
  FaultServer f(FaultServer::Mode::never_answer);
  boost::asio::io_context io;
  CurlDriver curl(io);
  CURL* easy = curl_easy_init();
  curl_easy_setopt(easy, CURLOPT_URL, f.url().c_str());
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 500L);
  std::vector<CURLcode> codes;
  curl.add(easy, [&](CURLcode rc, CURL*) { codes.push_back(rc); });
  curl.add(easy, [&](CURLcode rc, CURL*) { codes.push_back(rc); });
  io.run_for(5s);
  EXPECT_EQ(codes, (std::vector<CURLcode>{CURLE_FAILED_INIT, CURLE_OPERATION_TIMEDOUT}));
  curl_easy_cleanup(easy);
}

// ---- registry ----

// The engine's HTTP probes share their check's settings (50,000 checks must not hold
// them twice): the probe keeps the check alive, and probes it as a copy would.
TEST(Registry, HttpProbeSharesTheChecksSettings) {
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, ""};
  auto check = std::make_shared<CheckConfig>();
  check->spec = spec(g->nginx->url("/text_ok.txt"));
  std::weak_ptr<const CheckConfig> watch = check;
  auto probe = makeProbe(ctx, std::shared_ptr<const CheckConfig>(check));
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(check.use_count(), 2);  // ours and the probe's: no copy of the spec
  check.reset();
  EXPECT_FALSE(watch.expired());
  std::optional<Result> got;
  probe->start(SteadyClock::now() + 5s, [&](Result r) { got = std::move(r); });
  const auto until = SteadyClock::now() + 10s;
  while (!got && SteadyClock::now() < until) io.run_for(10ms);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, Status::ok) << got->detail;
  probe.reset();
  EXPECT_TRUE(watch.expired());
}

TEST(Registry, HttpIsAvailableOthersAreNot) {
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, ""};
  CheckConfig check;
  check.spec = spec(g->nginx->url("/text_ok.txt"));
  EXPECT_TRUE(probeKindAvailable(check.spec));
  EXPECT_NE(makeProbe(ctx, check), nullptr);

  check.spec = TcpSpec{"127.0.0.1:1"};
  EXPECT_TRUE(probeKindAvailable(check.spec));
  EXPECT_NE(makeProbe(ctx, check), nullptr);

  check.spec = IngressSpec{"https://localhost/"};
  EXPECT_TRUE(probeKindAvailable(check.spec));
  EXPECT_NE(makeProbe(ctx, check), nullptr);

  // Kinds still being built (heartbeat, postgres, ...) must refuse by name, at makeProbe.
  int unavailable = 0;
  for (const ProbeSpec& s : {ProbeSpec{PostgresSpec{}}, ProbeSpec{HeartbeatSpec{}}}) {
    if (probeKindAvailable(s)) continue;
    ++unavailable;
    check.spec = s;
    try {
      makeProbe(ctx, check);
      ADD_FAILURE() << "no exception for " << probeKindName(s);
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(e.what(), std::string("probe kind \"") + probeKindName(s) +
                              "\" is not available in this build");
    }
  }
  RecordProperty("unavailable_kinds", unavailable);
}

}  // namespace
}  // namespace vigie
