// /probe's pure parts: blackbox's timeout rule, Go's float format, the address
// hash, the families for an outcome, and the module as debug output shows it.

#include "exporters/blackbox_probe.h"

#include <gtest/gtest.h>

#include <chrono>
#include <limits>

#include "collector/config.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;

TEST(BlackboxTimeout, ScrapeHeaderMinusOffsetCappedByModule) {
  struct Case {
    const char* header;
    Duration module;
    double want;
  };
  const Case cases[] = {
      {"", Duration(0), 119.5},     // no header, no module timeout: 120 - 0.5
      {"10", Duration(0), 9.5},     // Prometheus's default scrape timeout
      {"10", Duration(5000), 5},    // the module's is shorter
      {"3", Duration(5000), 2.5},   // the scrape's is shorter
      {"2.75", Duration(0), 2.25},  // fractions
      {"0.2", Duration(1000), 1},   // under the offset: the module's
      {"0.2", Duration(0), 0.2},    // under the offset, no module timeout: the header's
      {"0", Duration(0), 119.5},    // 0 is "not given", as blackbox
  };
  for (const auto& c : cases) {
    std::string error;
    const auto t = blackboxTimeout(c.header, c.module, &error);
    ASSERT_TRUE(t) << c.header << ": " << error;
    EXPECT_DOUBLE_EQ(*t, c.want) << "header " << c.header << " module " << c.module.count();
  }
}

TEST(BlackboxTimeout, BadHeaderIsAnError) {
  for (const char* bad : {"abc", "10s", "1e999", "nan", " "}) {
    std::string error;
    EXPECT_FALSE(blackboxTimeout(bad, Duration(0), &error)) << bad;
    EXPECT_NE(error.find("Failed to parse timeout from Prometheus header"), std::string::npos)
        << error;
  }
}

TEST(BlackboxFormat, GoFloat) {
  // Each as blackbox_exporter 0.23 printed it.
  EXPECT_EQ(goFloat(200), "200");
  EXPECT_EQ(goFloat(0), "0");
  EXPECT_EQ(goFloat(1), "1");
  EXPECT_EQ(goFloat(1.1), "1.1");
  EXPECT_EQ(goFloat(-1), "-1");
  EXPECT_EQ(goFloat(0.005094648), "0.005094648");
  EXPECT_EQ(goFloat(1.7655e-05), "1.7655e-05");
  EXPECT_EQ(goFloat(3668918509.0), "3.668918509e+09");
  EXPECT_EQ(goFloat(1796780592.0), "1.796780592e+09");
  EXPECT_EQ(goFloat(-62135596800.0), "-6.21355968e+10");
  EXPECT_EQ(goFloat(4457), "4457");
  EXPECT_EQ(goFloat(999999), "999999");
  EXPECT_EQ(goFloat(1000000), "1e+06");
  EXPECT_EQ(goFloat(0.0001), "0.0001");
  EXPECT_EQ(goFloat(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(goFloat(std::numeric_limits<double>::infinity()), "+Inf");
}

TEST(BlackboxFormat, IpAddrHashIsFnv1a32OfTheAddressBytes) {
  EXPECT_EQ(ipAddrHash("127.0.0.1"), 3668918509u);  // blackbox 0.23 for 127.0.0.1
  EXPECT_EQ(ipAddrHash("::ffff:127.0.0.1"), 3668918509u);
  EXPECT_NE(ipAddrHash("::1"), 0u);
  EXPECT_NE(ipAddrHash("::1"), ipAddrHash("127.0.0.1"));
  EXPECT_EQ(ipAddrHash(""), 0u);
  EXPECT_EQ(ipAddrHash("not-an-ip"), 0u);
}

ModuleConfig httpModule() {
  auto cfg = parseConfig(
      "modules:\n"
      "  http_2xx:\n"
      "    prober: http\n"
      "    http:\n"
      "      headers: {X-Api-Key: k3y-value, Accept: text/html}\n"
      "      basic_auth: {username: probe, password: hunter2-secret}\n"
      "      fail_if_body_matches_regexp: [\"maintenance\"]\n"
      "      tls_config: {ca_file: /etc/ca.pem}\n",
      "t.yaml");
  return cfg->modules.at("http_2xx");
}

TEST(BlackboxMetrics, HttpSuccessHasBlackboxFamiliesSorted) {
  const ModuleConfig m = httpModule();
  Result r = Result::ok();
  r.http_status = 200;
  r.http_version = 11;
  r.body_bytes = 612;
  r.phases = HttpPhases{0.001, 0.002, 0, 0.003, 0.0005};
  auto w = std::make_shared<WireFacts>();
  w->ip = "127.0.0.1";
  w->content_length = 612;
  w->last_modified = 1700000000;
  r.wire = w;
  const std::string text = blackboxMetrics(m, r, 0.25);
  EXPECT_EQ(text.find("# HELP probe_dns_lookup_time_seconds "), 0u) << text;
  for (const char* line : {
           "probe_success 1\n",
           "probe_duration_seconds 0.25\n",
           "probe_dns_lookup_time_seconds 0.001\n",
           "probe_failed_due_to_regex 0\n",
           "probe_http_content_length 612\n",
           "probe_http_uncompressed_body_length 612\n",
           "probe_http_status_code 200\n",
           "probe_http_version 1.1\n",
           "probe_http_redirects 0\n",
           "probe_http_ssl 0\n",
           "probe_http_last_modified_timestamp_seconds 1.7e+09\n",
           "probe_ip_protocol 4\n",
           "probe_ip_addr_hash 3.668918509e+09\n",
           "probe_http_duration_seconds{phase=\"connect\"} 0.002\n"
           "probe_http_duration_seconds{phase=\"processing\"} 0.003\n"
           "probe_http_duration_seconds{phase=\"resolve\"} 0.001\n"
           "probe_http_duration_seconds{phase=\"tls\"} 0\n"
           "probe_http_duration_seconds{phase=\"transfer\"} 0.0005\n",
           "# HELP probe_success Displays whether or not the probe was a success\n"
           "# TYPE probe_success gauge\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n---\n" << text;
  }
  EXPECT_EQ(text.find("probe_ssl"), std::string::npos);
  // Families sorted by name, as the Go client gathers them.
  EXPECT_LT(text.find("probe_http_ssl"), text.find("probe_http_status_code"));
  EXPECT_LT(text.find("probe_ip_protocol"), text.find("probe_success"));
}

TEST(BlackboxMetrics, DnsFailureHasOnlyTheResolvePhase) {
  const ModuleConfig m = httpModule();
  Result r = Result::failure(Reason::dns, "could not resolve");
  r.phases.resolve = 0.01;
  r.wire = std::make_shared<WireFacts>();
  const std::string text = blackboxMetrics(m, r, 0.02);
  EXPECT_NE(text.find("probe_success 0\n"), std::string::npos);
  EXPECT_NE(text.find("probe_http_duration_seconds{phase=\"resolve\"} 0.01\n"), std::string::npos);
  EXPECT_EQ(text.find("phase=\"connect\""), std::string::npos);
  EXPECT_NE(text.find("probe_ip_protocol 0\n"), std::string::npos);
  EXPECT_NE(text.find("probe_ip_addr_hash 0\n"), std::string::npos);
  EXPECT_NE(text.find("probe_http_status_code 0\n"), std::string::npos);
}

TEST(BlackboxMetrics, TlsFamiliesAndEscapedLabels) {
  const ModuleConfig m = httpModule();
  Result r = Result::ok();
  r.http_status = 200;
  r.http_version = 20;
  auto w = std::make_shared<WireFacts>();
  w->ip = "::1";
  TlsFacts t;
  t.version = "TLS 1.3";
  t.earliest_expiry = 1796780592;
  t.last_chain_expiry = 1796780592;
  t.fingerprint_sha256 = "ab12";
  t.subject = "CN=localhost,O=A \"quoted\" org";
  t.issuer = "CN=testca";
  t.dns_names = "localhost,example.org";
  w->tls = t;
  r.wire = w;
  const std::string text = blackboxMetrics(m, r, 0.1);
  for (const char* line : {
           "probe_http_ssl 1\n",
           "probe_http_version 2\n",
           "probe_ip_protocol 6\n",
           "probe_ssl_earliest_cert_expiry 1.796780592e+09\n",
           "probe_ssl_last_chain_expiry_timestamp_seconds 1.796780592e+09\n",
           "probe_tls_version_info{version=\"TLS 1.3\"} 1\n",
           "probe_ssl_last_chain_info{fingerprint_sha256=\"ab12\",issuer=\"CN=testca\","
           "subject=\"CN=localhost,O=A \\\"quoted\\\" org\","
           "subjectalternative=\"localhost,example.org\"} 1\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n---\n" << text;
  }
}

TEST(BlackboxMetrics, NoFollowRedirectCountsOneAsBlackbox) {
  auto cfg = parseConfig(
      "modules:\n  m:\n    prober: http\n    http: {no_follow_redirects: true, "
      "valid_status_codes: [302]}\n",
      "t.yaml");
  Result r = Result::ok();
  r.http_status = 302;
  r.http_version = 11;
  EXPECT_NE(blackboxMetrics(cfg->modules.at("m"), r, 0.1).find("probe_http_redirects 1\n"),
            std::string::npos);
}

TEST(BlackboxMetrics, TcpHasNoHttpFamilies) {
  auto cfg = parseConfig("modules:\n  tcp_connect:\n    prober: tcp\n", "t.yaml");
  Result r = Result::ok();
  auto w = std::make_shared<WireFacts>();
  w->ip = "127.0.0.1";
  r.wire = w;
  const std::string text = blackboxMetrics(cfg->modules.at("tcp_connect"), r, 0.001);
  EXPECT_EQ(text.find("probe_http"), std::string::npos) << text;
  for (const char* name :
       {"probe_dns_lookup_time_seconds", "probe_duration_seconds", "probe_failed_due_to_regex",
        "probe_ip_addr_hash", "probe_ip_protocol", "probe_success"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + name + " gauge\n"), std::string::npos) << name;
  }
}

TEST(BlackboxModuleYaml, CredentialsNeverShown) {
  const ModuleConfig m = httpModule();
  const std::string yaml = blackboxModuleYaml(m);
  EXPECT_EQ(yaml.find("hunter2"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("k3y-value"), std::string::npos) << yaml;
  // base64("probe:hunter2-secret") must not leak either.
  EXPECT_EQ(yaml.find("cHJvYmU6"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\"Authorization\": <secret>"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\"X-Api-Key\": <secret>"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\"Accept\": \"text/html\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("prober: http\n"), std::string::npos);
  EXPECT_NE(yaml.find("fail_if_body_matches_regexp:\n    - \"maintenance\"\n"), std::string::npos)
      << yaml;
  EXPECT_NE(yaml.find("ca_file: \"/etc/ca.pem\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("follow_redirects: true"), std::string::npos) << yaml;
}

TEST(BlackboxConfig, CredentialsBecomeOneAuthorizationHeader) {
  const ModuleConfig m = httpModule();
  const auto& h = std::get<HttpSpec>(m.spec);
  int auth = 0;
  for (const auto& [k, v] : h.headers) {
    if (k == "Authorization") {
      ++auth;
      EXPECT_EQ(v, "Basic cHJvYmU6aHVudGVyMi1zZWNyZXQ=");  // base64("probe:hunter2-secret")
    }
  }
  EXPECT_EQ(auth, 1);
  EXPECT_EQ(m.timeout, Duration(0));  // unset: the scrape's timeout governs
  EXPECT_EQ(h.max_body, std::numeric_limits<std::uint64_t>::max());  // no body_size_limit

  auto bearer = parseConfig(
      "modules:\n  b:\n    prober: http\n    http: {bearer_token: t0k, body_size_limit: 1KiB}\n",
      "t.yaml");
  const auto& hb = std::get<HttpSpec>(bearer->modules.at("b").spec);
  ASSERT_EQ(hb.headers.size(), 1u);
  EXPECT_EQ(hb.headers[0].second, "Bearer t0k");
  EXPECT_EQ(hb.max_body, 1024u);

  try {
    parseConfig(
        "modules:\n  b:\n    prober: http\n    http:\n      bearer_token: x\n"
        "      basic_auth: {username: u}\n",
        "t.yaml");
    FAIL() << "two credentials accepted";
  } catch (const ConfigException& e) {
    EXPECT_EQ(e.errors().at(0).str(),
              "t.yaml:5: modules.b.http: at most one of basic_auth, bearer_token and "
              "authorization may be set");
  }
}

TEST(BlackboxSecrets, HeaderNames) {
  for (const char* s : {"Authorization", "proxy-authorization", "Cookie", "X-Auth-Token",
                        "X-API-Key", "X-Secret"}) {
    EXPECT_TRUE(secretHeaderName(s)) << s;
  }
  for (const char* s : {"Accept", "User-Agent", "Host", "X-Request-Id"}) {
    EXPECT_FALSE(secretHeaderName(s)) << s;
  }
}

}  // namespace
}  // namespace vigie
