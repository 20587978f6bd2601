// IngressProbe against real nginx servers on several loopback addresses (127.0.0.2,
// 127.0.0.3, ::1), with certificates made at test time, inside a private mount and
// network namespace (tests/support/netns.h): /etc/hosts says public.vigie.test is
// 127.0.0.2 and 127.0.0.3, any other name fails to resolve at once, and port 80 (the
// redirect check's port, as `curl http://host/` uses) is ours on every loopback
// address, so parallel test processes never collide on it.

#include "probes/ingress_probe.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "collector/curl_driver.h"
#include "probes/registry.h"
#include "tests/support/fault_server.h"
#include "tests/support/netns.h"
#include "tests/support/nginx.h"
#include "tests/support/process.h"
#include "tests/support/tls_cert.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;
using Mode = IngressSpec::Mode;

constexpr const char* kHosts =
    "127.0.0.1 localhost\n"
    "::1 localhost\n"
    "127.0.0.2 public.vigie.test\n"
    "127.0.0.3 public.vigie.test\n";

constexpr std::size_t kValid = 0, kExpiring = 1, kExpired = 2;

// Certificates from one CA; a shared nginx serving each on both front-end addresses
// and ::1, one TLS port per certificate.
struct Shared {
  std::string dir;
  std::unique_ptr<test::TestCa> ca;
  std::vector<test::CertFiles> certs;
  std::unique_ptr<test::Nginx> nginx;
};
Shared* g = nullptr;

class Env : public ::testing::Environment {
 public:
  void SetUp() override {
    g = new Shared;
    g->dir = test::makeTempDir("ingress-probe-test");
    g->ca = std::make_unique<test::TestCa>(g->dir);
    const std::string san = "DNS:public.vigie.test,DNS:*.vigie.test";
    g->certs.push_back(g->ca->issue("valid", -1h, std::chrono::hours(24 * 365), san));
    g->certs.push_back(g->ca->issue("expiring", -1h, std::chrono::hours(24 * 3), san));
    g->certs.push_back(
        g->ca->issue("expired", -std::chrono::hours(24 * 30), -std::chrono::hours(24), san));
    test::NginxOptions o;
    o.tls = g->certs;
    o.addresses = {"127.0.0.2", "127.0.0.3", "::1"};
    g->nginx = std::make_unique<test::Nginx>(o);
    test::writeFile(g->nginx->root() + "/index.html", "<p>public</p>\n");
  }
  void TearDown() override {
    g->nginx.reset();
    test::removeTree(g->dir);
    delete g;
    g = nullptr;
  }
};

std::string publicUrl(int port, const std::string& path = "/index.html",
                      const std::string& host = "public.vigie.test") {
  return "https://" + host + ":" + std::to_string(port) + path;
}

IngressSpec spec(std::string url, std::vector<std::string> addresses, Mode mode = Mode::all) {
  IngressSpec s;
  s.url = std::move(url);
  s.addresses = std::move(addresses);
  s.mode = mode;
  s.tls.ca_file = g->ca->caFile();
  return s;
}

double now() { return static_cast<double>(std::time(nullptr)); }

struct Outcome {
  Result result;
  int calls = 0;
};

Outcome run(const IngressSpec& s, std::chrono::milliseconds timeout = 5s,
            std::string location = "test-site") {
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, std::move(location)};
  IngressProbe probe(ctx, s);
  Outcome out;
  out.result = Result::failure(Reason::internal, "done never called");
  probe.start(SteadyClock::now() + timeout, [&](Result r) {
    ++out.calls;
    out.result = std::move(r);
  });
  io.run_for(timeout + 3s);
  EXPECT_EQ(curl.active(), 0u);
  return out;
}

std::string dump(const Result& r) {
  std::string s = std::string(statusName(r.status)) + " " + std::string(reasonName(r.reason)) +
                  " \"" + r.detail + "\"";
  for (const auto& t : r.targets) {
    s += "\n  " + t.address + ": " + std::string(statusName(t.status)) + " " +
         std::string(reasonName(t.reason)) + " " + std::to_string(t.http_status) + " \"" +
         t.detail + "\"";
  }
  return s;
}

bool startsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// ---- both front ends answer ----

TEST(Ingress, EveryAddressOkPassesAndIsReported) {
  const auto s = spec(publicUrl(g->nginx->tlsPort(kValid)), {"127.0.0.2", "127.0.0.3"});
  const Outcome run_ = run(s);
  const Result& r = run_.result;
  EXPECT_EQ(run_.calls, 1);
  ASSERT_EQ(r.status, Status::ok) << dump(r);
  EXPECT_EQ(r.reason, Reason::none);
  EXPECT_EQ(r.detail, "");
  EXPECT_EQ(r.http_status, 200);
  ASSERT_TRUE(r.cert_expiry.has_value());
  EXPECT_NEAR(*r.cert_expiry, now() + 365 * 86400.0, 120);
  EXPECT_EQ(r.info.at("dns"), "127.0.0.2,127.0.0.3");
  EXPECT_EQ(r.info.at("location"), "test-site");
  EXPECT_GT(r.duration, 0);
  ASSERT_EQ(r.targets.size(), 2u) << dump(r);
  for (std::size_t i = 0; i < 2; ++i) {
    const TargetResult& t = r.targets[i];
    EXPECT_EQ(t.address, i == 0 ? "127.0.0.2" : "127.0.0.3");
    EXPECT_EQ(t.status, Status::ok);
    EXPECT_EQ(t.reason, Reason::none);
    EXPECT_EQ(t.http_status, 200);
    EXPECT_GT(t.duration, 0);
    ASSERT_TRUE(t.cert_expiry.has_value());
    EXPECT_NEAR(*t.cert_expiry, now() + 365 * 86400.0, 120);
  }
}

TEST(Ingress, Ipv6AddressIsPinnedInBrackets) {
  const auto s = spec(publicUrl(g->nginx->tlsPort(kValid)), {"::1", "127.0.0.2"});
  const Result r = run(s).result;
  ASSERT_EQ(r.status, Status::ok) << dump(r);
  ASSERT_EQ(r.targets.size(), 2u);
  EXPECT_EQ(r.targets[0].address, "::1");
  EXPECT_EQ(r.targets[0].status, Status::ok);
  EXPECT_EQ(r.targets[0].http_status, 200);
}

TEST(Ingress, NoAddressesProbesEveryAddressOfTheDnsAnswer) {
  const auto s = spec(publicUrl(g->nginx->tlsPort(kValid)), {});
  const Result r = run(s).result;
  ASSERT_EQ(r.status, Status::ok) << dump(r);
  std::set<std::string> seen;
  for (const auto& t : r.targets) {
    EXPECT_EQ(t.status, Status::ok) << t.address;
    seen.insert(t.address);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"127.0.0.2", "127.0.0.3"}));
  EXPECT_EQ(r.targets.size(), 2u);
  EXPECT_EQ(r.info.at("dns"), "127.0.0.2,127.0.0.3");
}

TEST(Ingress, NoLocationNoLocationInfo) {
  const auto s = spec(publicUrl(g->nginx->tlsPort(kValid)), {"127.0.0.2"});
  const Result r = run(s, 5s, "").result;
  ASSERT_EQ(r.status, Status::ok) << dump(r);
  EXPECT_EQ(r.info.count("location"), 0u);
}

TEST(Ingress, UnexpectedStatusFailsWithHttpStatus) {
  auto s = spec(publicUrl(g->nginx->tlsPort(kValid), "/missing"), {"127.0.0.2"});
  Result r = run(s).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::http_status);
  EXPECT_EQ(r.detail, "127.0.0.2: got 404, expected 2xx");
  EXPECT_EQ(r.http_status, 404);

  s.expect_status = {404};
  r = run(s).result;
  EXPECT_EQ(r.status, Status::ok) << dump(r);
}

// ---- one front end broken ----

class OneBroken : public ::testing::Test {
 protected:
  void SetUp() override {
    test::NginxOptions o;
    o.tls = {g->certs[kValid]};
    o.addresses = {"127.0.0.2"};  // nothing listens on 127.0.0.3
    nginx_ = std::make_unique<test::Nginx>(o);
    test::writeFile(nginx_->root() + "/index.html", "ok\n");
  }
  std::string url() const { return publicUrl(nginx_->tlsPort()); }
  std::unique_ptr<test::Nginx> nginx_;
};

TEST_F(OneBroken, ModeAllFailsNamingTheAddress) {
  const Result r = run(spec(url(), {"127.0.0.2", "127.0.0.3"}, Mode::all)).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::connect);
  EXPECT_TRUE(startsWith(r.detail, "127.0.0.3: ")) << r.detail;
  ASSERT_EQ(r.targets.size(), 2u);
  EXPECT_EQ(r.targets[0].status, Status::ok);
  EXPECT_EQ(r.targets[0].http_status, 200);
  EXPECT_TRUE(r.targets[0].cert_expiry.has_value());
  EXPECT_EQ(r.targets[1].address, "127.0.0.3");
  EXPECT_EQ(r.targets[1].status, Status::fail);
  EXPECT_EQ(r.targets[1].reason, Reason::connect);
  EXPECT_EQ(r.targets[1].http_status, 0);
  EXPECT_FALSE(r.targets[1].cert_expiry.has_value());
  EXPECT_EQ(r.http_status, 200);  // from the first address
}

TEST_F(OneBroken, ModeAnyPassesAndNamesTheFailingAddress) {
  const Result r = run(spec(url(), {"127.0.0.3", "127.0.0.2"}, Mode::any)).result;
  EXPECT_EQ(r.status, Status::ok) << dump(r);
  EXPECT_EQ(r.reason, Reason::none);
  EXPECT_EQ(r.detail, "1 of 2 front-end addresses failing: 127.0.0.3 (connect)");
  ASSERT_EQ(r.targets.size(), 2u);
  EXPECT_EQ(r.targets[0].status, Status::fail);
  EXPECT_EQ(r.targets[0].reason, Reason::connect);
  EXPECT_EQ(r.targets[1].status, Status::ok);
  // The earliest expiry over the addresses that showed a certificate.
  ASSERT_TRUE(r.cert_expiry.has_value());
  EXPECT_EQ(r.cert_expiry, r.targets[1].cert_expiry);
}

TEST_F(OneBroken, ModeAnyFailsWhenEveryAddressFails) {
  const Result r = run(spec(url(), {"127.0.0.3", "::1"}, Mode::any)).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::connect);
  EXPECT_TRUE(startsWith(r.detail, "all 2 front-end addresses failing; 127.0.0.3: ")) << r.detail;
  ASSERT_EQ(r.targets.size(), 2u);
  EXPECT_EQ(r.targets[1].address, "::1");
  EXPECT_EQ(r.targets[1].status, Status::fail);

  const Result all = run(spec(url(), {"::1"}, Mode::all)).result;
  EXPECT_TRUE(startsWith(all.detail, "[::1]: ")) << all.detail;
}

// ---- certificates ----

TEST(Ingress, ExpiredCertificateFailsWithTls) {
  const Result r =
      run(spec(publicUrl(g->nginx->tlsPort(kExpired)), {"127.0.0.2", "127.0.0.3"})).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::tls);
  EXPECT_TRUE(startsWith(r.detail, "127.0.0.2: ")) << r.detail;
  EXPECT_NE(r.detail.find("expired"), std::string::npos) << r.detail;
  ASSERT_EQ(r.targets.size(), 2u);
  for (const auto& t : r.targets) EXPECT_EQ(t.reason, Reason::tls) << t.address;
}

TEST(Ingress, UntrustedCertificateFailsWithTls) {
  auto s = spec(publicUrl(g->nginx->tlsPort(kValid)), {"127.0.0.2"});
  s.tls.ca_file.clear();  // the system store does not know the test CA
  const Result r = run(s).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::tls);
}

TEST(Ingress, CertificateExpiringWithinCertMinDays) {
  struct Case {
    int min_days;
    Status status;
    Reason reason;
  };
  for (const Case& c :
       {Case{14, Status::fail, Reason::cert_expiring}, Case{2, Status::ok, Reason::none}}) {
    SCOPED_TRACE(c.min_days);
    auto s = spec(publicUrl(g->nginx->tlsPort(kExpiring)), {"127.0.0.2", "127.0.0.3"});
    s.cert_min_days = c.min_days;
    const Result r = run(s).result;
    EXPECT_EQ(r.status, c.status) << dump(r);
    EXPECT_EQ(r.reason, c.reason);
    ASSERT_TRUE(r.cert_expiry.has_value());
    EXPECT_NEAR(*r.cert_expiry, now() + 3 * 86400.0, 120);
    if (c.status == Status::fail) {
      EXPECT_TRUE(startsWith(r.detail, "127.0.0.2: certificate expires in 2.9 days (minimum 14)") ||
                  startsWith(r.detail, "127.0.0.2: certificate expires in 3.0 days (minimum 14)"))
          << r.detail;
      for (const auto& t : r.targets) EXPECT_EQ(t.reason, Reason::cert_expiring);
    }
  }
}

// ---- DNS ----

TEST(Ingress, UnresolvableNameFailsWithDns) {
  const auto s =
      spec(publicUrl(g->nginx->tlsPort(kValid), "/index.html", "unresolvable.vigie.test"), {});
  const auto started = SteadyClock::now();
  const Result r = run(s).result;
  EXPECT_LT(SteadyClock::now() - started, 3s);
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::dns);
  EXPECT_TRUE(startsWith(r.detail, "name unresolvable.vigie.test does not resolve: ")) << r.detail;
  EXPECT_TRUE(r.targets.empty());
  EXPECT_EQ(r.info.count("dns"), 0u);
}

TEST(Ingress, UnresolvableNameFailsEvenWhenPinnedFrontEndsAnswer) {
  const auto s =
      spec(publicUrl(g->nginx->tlsPort(kValid), "/index.html", "unresolvable.vigie.test"),
           {"127.0.0.2", "127.0.0.3"}, Mode::any);
  const Result r = run(s).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::dns);
  // The front ends themselves work (the certificate's *.vigie.test covers the name).
  ASSERT_EQ(r.targets.size(), 2u);
  for (const auto& t : r.targets) EXPECT_EQ(t.status, Status::ok) << t.address << " " << t.detail;
}

// ---- http -> https redirect ----

// Front end A serves TLS on 127.0.0.2 and 127.0.0.3, and http on 127.0.0.2:80 with a
// redirect to https; front end B serves plain http on 127.0.0.3:80 without one.
class Redirect : public ::testing::Test {
 protected:
  void SetUp() override {
    test::NginxOptions a;
    a.tls = {g->certs[kValid]};
    a.addresses = {"127.0.0.2", "127.0.0.3"};
    a.http_addresses = {"127.0.0.2"};
    a.http_port = 80;
    a.https_redirect = true;
    a.locations = {{"= /to-http", "return 301 http://$host/elsewhere;"}};
    front_ = std::make_unique<test::Nginx>(a);
    test::writeFile(front_->root() + "/index.html", "ok\n");
  }
  void startPlain() {
    test::NginxOptions b;
    b.addresses = {"127.0.0.3"};
    b.http_port = 80;
    b.locations = {{"= /to-http", "return 301 http://$host/elsewhere;"}};
    plain_ = std::make_unique<test::Nginx>(b);
    test::writeFile(plain_->root() + "/index.html", "plain\n");
  }
  IngressSpec redirectSpec(std::vector<std::string> addresses, Mode mode = Mode::all,
                           const std::string& path = "/index.html") const {
    auto s = spec(publicUrl(front_->tlsPort(), path), std::move(addresses), mode);
    s.expect_https_redirect = true;
    return s;
  }
  std::unique_ptr<test::Nginx> front_;
  std::unique_ptr<test::Nginx> plain_;
};

TEST_F(Redirect, HttpRedirectsToHttps) {
  const Result r = run(redirectSpec({"127.0.0.2"})).result;
  EXPECT_EQ(r.status, Status::ok) << dump(r);
  ASSERT_EQ(r.targets.size(), 1u);
  EXPECT_EQ(r.targets[0].http_status, 200);  // the https answer
}

TEST_F(Redirect, MissingRedirectFailsWithHttpStatus) {
  startPlain();
  const Result r = run(redirectSpec({"127.0.0.2", "127.0.0.3"})).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::http_status);
  EXPECT_EQ(r.detail,
            "127.0.0.3: http://public.vigie.test/index.html answered 200, expected a redirect "
            "to https://");
  ASSERT_EQ(r.targets.size(), 2u);
  EXPECT_EQ(r.targets[0].status, Status::ok);
  EXPECT_EQ(r.targets[1].status, Status::fail);
  EXPECT_EQ(r.targets[1].http_status, 200);  // https itself answered fine there

  const Result any = run(redirectSpec({"127.0.0.2", "127.0.0.3"}, Mode::any)).result;
  EXPECT_EQ(any.status, Status::ok) << dump(any);
  EXPECT_EQ(any.detail, "1 of 2 front-end addresses failing: 127.0.0.3 (http_status)");
}

TEST_F(Redirect, RedirectToPlainHttpFails) {
  startPlain();
  auto s = redirectSpec({"127.0.0.3"}, Mode::all, "/to-http");
  s.expect_status = {301};  // the https side redirects there too
  const Result r = run(s).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::http_status);
  EXPECT_EQ(r.detail,
            "127.0.0.3: http://public.vigie.test/to-http redirects to "
            "http://public.vigie.test/elsewhere, expected https://");
}

TEST_F(Redirect, NothingOnPort80FailsWithConnect) {
  // 127.0.0.3:80 has no listener until startPlain().
  const Result r = run(redirectSpec({"127.0.0.3"})).result;
  EXPECT_EQ(r.status, Status::fail) << dump(r);
  EXPECT_EQ(r.reason, Reason::connect);
  EXPECT_TRUE(startsWith(r.detail, "127.0.0.3: http://public.vigie.test/index.html: ")) << r.detail;
}

// ---- deadline, cancel, registry, bad URL ----

TEST(Ingress, DeadlineEndsAnAttemptWithTimeout) {
  test::FaultServer silent(test::FaultServer::Mode::tls_stall);
  const auto s = spec(publicUrl(silent.port()), {"127.0.0.1"});
  const auto started = SteadyClock::now();
  const Outcome out = run(s, 300ms);
  EXPECT_LT(SteadyClock::now() - started, 2s);
  EXPECT_EQ(out.calls, 1);
  EXPECT_EQ(out.result.status, Status::fail) << dump(out.result);
  EXPECT_EQ(out.result.reason, Reason::timeout);
  EXPECT_TRUE(startsWith(out.result.detail, "127.0.0.1: timed out")) << out.result.detail;
}

TEST(Ingress, CancelStopsAnAttemptAndTheProbeRunsAgain) {
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, ""};
  test::FaultServer silent(test::FaultServer::Mode::tls_stall);
  auto s = spec(publicUrl(silent.port()), {"127.0.0.1", "127.0.0.2"});
  s.expect_https_redirect = true;
  IngressProbe probe(ctx, s);
  int calls = 0;
  probe.start(SteadyClock::now() + 5s, [&](Result) { ++calls; });
  io.run_for(100ms);
  probe.cancel();
  EXPECT_EQ(curl.active(), 0u);
  io.run_for(200ms);
  EXPECT_EQ(calls, 0);

  IngressProbe good(ctx, spec(publicUrl(g->nginx->tlsPort(kValid)), {"127.0.0.2"}));
  std::optional<Result> r;
  good.start(SteadyClock::now() + 5s, [&](Result x) { r = std::move(x); });
  good.start(SteadyClock::now() + 5s, [&](Result x) { r = std::move(x); });  // restarts
  io.restart();
  io.run_for(5s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, Status::ok) << dump(*r);
}

TEST(Ingress, DoneMayDestroyTheProbe) {
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, ""};
  auto probe = std::make_unique<IngressProbe>(
      ctx, spec(publicUrl(g->nginx->tlsPort(kValid)), {"127.0.0.2", "127.0.0.3"}));
  int calls = 0;
  probe->start(SteadyClock::now() + 5s, [&](Result) {
    ++calls;
    probe.reset();
  });
  io.run_for(5s);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(probe, nullptr);
}

TEST(Ingress, RegistryMakesIngressProbes) {
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, "site"};
  CheckConfig check;
  check.spec = spec(publicUrl(g->nginx->tlsPort(kValid)), {"127.0.0.2"});
  EXPECT_TRUE(probeKindAvailable(check.spec));
  auto probe = makeProbe(ctx, check);
  ASSERT_NE(probe, nullptr);
  std::optional<Result> r;
  probe->start(SteadyClock::now() + 5s, [&](Result x) { r = std::move(x); });
  io.run_for(5s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, Status::ok) << dump(*r);
  EXPECT_EQ(r->info.at("location"), "site");
}

TEST(Ingress, UrlThatCannotBeProbedIsInternal) {
  for (const char* url : {"ftp://public.vigie.test/", "not a url"}) {
    const Result r = run(spec(url, {"127.0.0.2"})).result;
    EXPECT_EQ(r.status, Status::fail) << url;
    EXPECT_EQ(r.reason, Reason::internal) << url;
  }
}

}  // namespace
}  // namespace vigie

// Our own main: the namespaces must be made while the process has one thread.
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!GTEST_FLAG_GET(list_tests)) {
    try {
      vigie::test::isolateNameResolution(vigie::kHosts);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  }
  ::testing::AddGlobalTestEnvironment(new vigie::Env);
  return RUN_ALL_TESTS();
}
