// vigie's /probe against the real thing: a real nginx (plain and TLS with a CA
// made at test time) is probed through a real prometheus-blackbox-exporter and
// through vigie, both configured with the same `modules:` text. For each
// (module, target) the two answers must hold the same series (names and labels)
// and the same values where the meaning is not a timing. Then a real Prometheus
// scrapes both with the relabel_configs blackbox users write, and the two jobs
// must agree through Prometheus's HTTP API.

#include "exporters/blackbox_probe.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "collector/curl_driver.h"
#include "exporters/http_server.h"
#include "probes/registry.h"
#include "tests/support/http_client.h"
#include "tests/support/blackbox.h"
#include "tests/support/fault_server.h"
#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/tls_cert.h"
#include "tests/support/paths.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

struct Http {
  long status = 0;
  std::string content_type;
  std::string body;
  double seconds = 0;
};

Http get(const std::string& url, const std::vector<std::string>& headers = {}) {
  Http out;
  CURL* c = curl_easy_init();
  curl_slist* h = nullptr;
  for (const auto& line : headers) h = curl_slist_append(h, line.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* ud) -> size_t {
        static_cast<std::string*>(ud)->append(p, s * n);
        return s * n;
      });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
  const auto t0 = std::chrono::steady_clock::now();
  if (curl_easy_perform(c) == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
    const char* ct = nullptr;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) out.content_type = ct;
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return out;
}

std::string escape(const std::string& s) {
  CURL* c = curl_easy_init();
  char* e = curl_easy_escape(c, s.c_str(), static_cast<int>(s.size()));
  std::string out(e);
  curl_free(e);
  curl_easy_cleanup(c);
  return out;
}

/// One exposition: series identity ("name{labels}" as written) -> value text.
struct Exposition {
  std::map<std::string, double> series;
  std::map<std::string, std::string> help;  // family -> HELP text
  std::map<std::string, std::string> type;  // family -> TYPE
};

Exposition parse(const std::string& text) {
  Exposition e;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0) {
      const auto sp = line.find(' ', 7);
      e.help[line.substr(7, sp - 7)] = line.substr(sp + 1);
    } else if (line.rfind("# TYPE ", 0) == 0) {
      const auto sp = line.find(' ', 7);
      e.type[line.substr(7, sp - 7)] = line.substr(sp + 1);
    } else if (line[0] != '#') {
      const auto sp = line.rfind(' ');
      e.series[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
  }
  return e;
}

std::string nameOf(const std::string& series) { return series.substr(0, series.find('{')); }

// Families whose values are timings (or depend on them): compared by presence only.
bool timing(const std::string& name) {
  return name == "probe_duration_seconds" || name == "probe_dns_lookup_time_seconds" ||
         name == "probe_http_duration_seconds";
}

std::string keys(const std::map<std::string, double>& m) {
  std::string s;
  for (const auto& [k, v] : m) s += fmt::format("  {} {}\n", k, v);
  return s;
}

// The modules both exporters load: the same text, blackbox's schema.
std::string modulesYaml(const std::string& ca_file) {
  return fmt::format(
      "modules:\n"
      "  http_2xx:\n"
      "    prober: http\n"
      "    timeout: 5s\n"
      "  http_ca:\n"
      "    prober: http\n"
      "    timeout: 5s\n"
      "    http:\n"
      "      tls_config: {{ca_file: \"{0}\"}}\n"
      "  http_no_redirect:\n"
      "    prober: http\n"
      "    http:\n"
      "      no_follow_redirects: true\n"
      "      valid_status_codes: [302]\n"
      "  http_regex:\n"
      "    prober: http\n"
      "    http:\n"
      "      fail_if_body_not_matches_regexp: [\"not-in-the-page\"]\n"
      "  http_body_ok:\n"
      "    prober: http\n"
      "    http:\n"
      "      fail_if_body_matches_regexp: [\"not-in-the-page\"]\n"
      "      fail_if_not_ssl: true\n"
      "  http_auth:\n"
      "    prober: http\n"
      "    http:\n"
      "      basic_auth: {{username: probe, password: \"s3cr3t-pw\"}}\n"
      "      headers: {{X-Api-Token: tok-9f8e7d}}\n"
      "  tcp_connect:\n"
      "    prober: tcp\n"
      "    timeout: 5s\n"
      "  tcp_tls:\n"
      "    prober: tcp\n"
      "    tcp:\n"
      "      tls: true\n"
      "      tls_config: {{ca_file: \"{0}\"}}\n"
      "  tcp_http_dialogue:\n"
      "    prober: tcp\n"
      "    tcp:\n"
      "      query_response:\n"
      "        - send: \"HEAD / HTTP/1.0\\n\"\n"
      "        - expect: \"^HTTP/1\\\\.1 200\"\n"
      "  tcp_smtp_banner:\n"
      "    prober: tcp\n"
      "    tcp:\n"
      "      query_response:\n"
      "        - send: \"HEAD / HTTP/1.0\\n\"\n"
      "        - expect: \"^220 \"\n",
      ca_file);
}

const std::string kPage = "<html><body>hello from nginx</body></html>\n";

class BlackboxCompat : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = makeTempDir("bbcompat");
    ca_ = new TestCa(dir_);
    NginxOptions no;
    no.tls.push_back(ca_->issue("web", -1h, std::chrono::hours(24 * 20)));
    no.locations = {{"= /missing", "return 404;"}, {"= /redirect", "return 302 /index.html;"}};
    nginx_ = new Nginx(no);
    writeFile(nginx_->root() + "/index.html", kPage);
    closed_port_ = freePort();

    blackbox_ = new BlackboxExporter(modulesYaml(ca_->caFile()));
    vigie_port_ = freePort();
    writeFile(dir_ + "/vigie.yaml",
              fmt::format("listen: \"127.0.0.1:{}\"\n{}", vigie_port_, modulesYaml(ca_->caFile())));
    vigie_ = new Process(Process::Options{
        {VIGIE_BINARY, "--config", dir_ + "/vigie.yaml"}, {}, dir_ + "/vigie.log", ""});
    ASSERT_TRUE(eventually(10s, [] {
      return !vigie_->running() ||
             get(fmt::format("http://127.0.0.1:{}/healthz", vigie_port_)).status == 200;
    }));
    ASSERT_TRUE(vigie_->running()) << vigie_->output();
  }
  static void TearDownTestSuite() {
    delete vigie_;
    delete blackbox_;
    delete nginx_;
    delete ca_;
    removeTree(dir_);
  }

  static std::string vigieUrl(const std::string& path) {
    return fmt::format("http://127.0.0.1:{}{}", vigie_port_, path);
  }
  static std::string probePath(const std::string& module, const std::string& target,
                               const std::string& extra = "") {
    return fmt::format("/probe?module={}&target={}{}", module, escape(target), extra);
  }

  /// Probes through both and compares; returns vigie's exposition.
  static Exposition compare(const std::string& module, const std::string& target,
                            const std::map<std::string, double>& expect) {
    const std::string path = probePath(module, target);
    const Http b = get(blackbox_->url(path));
    const Http v = get(vigieUrl(path));
    const std::string where = fmt::format("module {} target {}", module, target);
    EXPECT_EQ(b.status, 200) << where << "\n" << b.body;
    EXPECT_EQ(v.status, 200) << where << "\n" << v.body << vigie_->output();
    EXPECT_EQ(v.content_type, b.content_type) << where;
    const Exposition be = parse(b.body);
    const Exposition ve = parse(v.body);
    // Same series, name and labels.
    std::set<std::string> bs, vs;
    for (const auto& [k, x] : be.series) bs.insert(k);
    for (const auto& [k, x] : ve.series) vs.insert(k);
    EXPECT_EQ(vs, bs) << where << "\n--- blackbox:\n" << b.body << "--- vigie:\n" << v.body;
    // Same help and type for every family.
    for (const auto& [name, help] : be.help) {
      EXPECT_EQ(ve.help.count(name) ? ve.help.at(name) : "<missing>", help) << where << " " << name;
      EXPECT_EQ(ve.type.count(name) ? ve.type.at(name) : "<missing>", be.type.at(name)) << name;
    }
    // Same values where the meaning is not a timing.
    for (const auto& [series, value] : be.series) {
      if (timing(nameOf(series)) || !ve.series.count(series)) continue;
      EXPECT_EQ(ve.series.at(series), value) << where << ": " << series;
    }
    // And what the test itself expects, so both cannot be wrong the same way.
    for (const auto& [series, value] : expect) {
      EXPECT_EQ(be.series.count(series) ? be.series.at(series) : -12345, value)
          << "blackbox " << where << ": " << series << "\n"
          << keys(be.series);
      EXPECT_EQ(ve.series.count(series) ? ve.series.at(series) : -12345, value)
          << "vigie " << where << ": " << series;
    }
    return ve;
  }

  static inline std::string dir_;
  static inline TestCa* ca_ = nullptr;
  static inline Nginx* nginx_ = nullptr;
  static inline BlackboxExporter* blackbox_ = nullptr;
  static inline Process* vigie_ = nullptr;
  static inline int vigie_port_ = 0;
  static inline int closed_port_ = 0;
};

TEST_F(BlackboxCompat, HttpOkMissingRefusedAndRedirects) {
  compare("http_2xx", nginx_->url("/index.html"),
          {{"probe_success", 1},
           {"probe_http_status_code", 200},
           {"probe_http_ssl", 0},
           {"probe_http_redirects", 0},
           {"probe_http_version", 1.1},
           {"probe_ip_protocol", 4},
           {"probe_http_content_length", static_cast<double>(kPage.size())},
           {"probe_http_uncompressed_body_length", static_cast<double>(kPage.size())},
           {"probe_failed_due_to_regex", 0}});
  compare("http_2xx", nginx_->url("/missing"),
          {{"probe_success", 0}, {"probe_http_status_code", 404}});
  // No scheme: http:// is assumed, as blackbox does.
  compare("http_2xx", fmt::format("127.0.0.1:{}/", closed_port_),
          {{"probe_success", 0}, {"probe_http_status_code", 0}, {"probe_http_content_length", 0}});
  compare("http_2xx", nginx_->url("/redirect"),
          {{"probe_success", 1}, {"probe_http_status_code", 200}, {"probe_http_redirects", 1}});
  compare("http_no_redirect", nginx_->url("/redirect"),
          {{"probe_success", 1}, {"probe_http_status_code", 302}, {"probe_http_redirects", 1}});
}

TEST_F(BlackboxCompat, BodyRegexAndSslRequirement) {
  compare(
      "http_regex", nginx_->url("/index.html"),
      {{"probe_success", 0}, {"probe_failed_due_to_regex", 1}, {"probe_http_status_code", 200}});
  // The body passes; fail_if_not_ssl fails it over plain HTTP, not the regex.
  compare("http_body_ok", nginx_->url("/index.html"),
          {{"probe_success", 0}, {"probe_failed_due_to_regex", 0}});
  compare("http_body_ok", fmt::format("https://127.0.0.1:{}/index.html", nginx_->tlsPort()),
          {{"probe_success", 0}, {"probe_http_ssl", 0}});  // untrusted CA: no response
}

TEST_F(BlackboxCompat, TlsCertificateFacts) {
  const std::string target = fmt::format("https://127.0.0.1:{}/index.html", nginx_->tlsPort());
  const Exposition v =
      compare("http_ca", target,
              {{"probe_success", 1}, {"probe_http_ssl", 1}, {"probe_http_status_code", 200}});
  // Expiry, chain expiry, TLS version and the leaf's fingerprint, subject and
  // issuer are labels or values compared above; make sure they were there.
  std::set<std::string> names;
  for (const auto& [k, x] : v.series) names.insert(nameOf(k));
  for (const char* n :
       {"probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_expiry_timestamp_seconds",
        "probe_tls_version_info", "probe_ssl_last_chain_info"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
}

TEST_F(BlackboxCompat, Tcp) {
  compare("tcp_connect", fmt::format("127.0.0.1:{}", nginx_->port()),
          {{"probe_success", 1}, {"probe_ip_protocol", 4}, {"probe_failed_due_to_regex", 0}});
  compare("tcp_connect", fmt::format("127.0.0.1:{}", closed_port_), {{"probe_success", 0}});
  // TLS from the start: certificate facts as for http.
  const Exposition v =
      compare("tcp_tls", fmt::format("127.0.0.1:{}", nginx_->tlsPort()), {{"probe_success", 1}});
  bool chain = false;
  for (const auto& [k, x] : v.series) chain = chain || nameOf(k) == "probe_ssl_last_chain_info";
  EXPECT_TRUE(chain);
  // query_response, line by line: an HTTP dialogue passes, an SMTP banner is not there.
  compare("tcp_http_dialogue", fmt::format("127.0.0.1:{}", nginx_->port()),
          {{"probe_success", 1}, {"probe_failed_due_to_regex", 0}});
  compare("tcp_smtp_banner", fmt::format("127.0.0.1:{}", nginx_->port()),
          {{"probe_success", 0}, {"probe_failed_due_to_regex", 1}});
}

TEST_F(BlackboxCompat, BadRequestsAnswerAsBlackbox) {
  for (const std::string& path :
       {std::string("/probe?module=http_2xx"), std::string("/probe?module=nope&target=x"),
        std::string("/probe?target=&module=http_2xx")}) {
    const Http b = get(blackbox_->url(path));
    const Http v = get(vigieUrl(path));
    EXPECT_EQ(v.status, b.status) << path;
    EXPECT_EQ(v.status, 400) << path;
    EXPECT_EQ(v.body, b.body) << path;
  }
  // module defaults to http_2xx, as blackbox.
  const Http v = get(vigieUrl("/probe?target=" + escape(nginx_->url("/index.html"))));
  EXPECT_NE(v.body.find("probe_http_status_code 200\n"), std::string::npos) << v.body;
  // A scrape timeout that is not a number.
  const Http bad = get(vigieUrl(probePath("http_2xx", nginx_->url("/"))),
                       {"X-Prometheus-Scrape-Timeout-Seconds: soon"});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("Failed to parse timeout from Prometheus header"), std::string::npos);
}

TEST_F(BlackboxCompat, ScrapeTimeoutHeaderBoundsTheProbe) {
  FaultServer silent(FaultServer::Mode::never_answer);
  // 1.5 s scrape timeout - 0.5 s offset: both give up after about 1 s.
  const std::string path = probePath("http_2xx", silent.url("/"));
  const std::vector<std::string> h = {"X-Prometheus-Scrape-Timeout-Seconds: 1.5"};
  const Http b = get(blackbox_->url(path), h);
  const Http v = get(vigieUrl(path), h);
  EXPECT_NE(b.body.find("probe_success 0\n"), std::string::npos) << b.body;
  EXPECT_NE(v.body.find("probe_success 0\n"), std::string::npos) << v.body;
  EXPECT_GT(v.seconds, 0.9);
  EXPECT_LT(v.seconds, 1.6) << "blackbox took " << b.seconds;
  const auto d = parse(v.body).series.at("probe_duration_seconds");
  EXPECT_GT(d, 0.9);
  EXPECT_LT(d, 1.2);
}

TEST_F(BlackboxCompat, DebugOutputShapeAndNoSecrets) {
  const std::string path = probePath("http_auth", nginx_->url("/index.html"), "&debug=true");
  const Http b = get(blackbox_->url(path));
  const Http v = get(vigieUrl(path));
  ASSERT_EQ(v.status, 200);
  EXPECT_EQ(v.content_type, b.content_type);
  for (const char* part :
       {"Logs for the probe:\n", "\n\n\nMetrics that would have been returned:\n",
        "\n\n\nModule configuration:\nprober: http\n"}) {
    EXPECT_NE(b.body.find(part), std::string::npos) << "blackbox: " << part;
    EXPECT_NE(v.body.find(part), std::string::npos) << "vigie: " << part << "\n" << v.body;
  }
  EXPECT_NE(v.body.find("msg=\"Probe succeeded\""), std::string::npos) << v.body;
  EXPECT_NE(v.body.find("probe_success 1\n"), std::string::npos) << v.body;
  // Neither the password, nor its base64 form, nor the token header's value.
  for (const char* secret : {"s3cr3t-pw", "czNjcjN0LXB3", "tok-9f8e7d"}) {
    EXPECT_EQ(v.body.find(secret), std::string::npos) << secret << "\n" << v.body;
  }
  EXPECT_EQ(vigie_->output().find("s3cr3t-pw"), std::string::npos);
}

TEST_F(BlackboxCompat, ModulesFollowReload) {
  const std::string path = probePath("http_added", nginx_->url("/index.html"));
  EXPECT_EQ(get(vigieUrl(path)).status, 400);
  writeFile(dir_ + "/vigie.yaml",
            fmt::format("listen: \"127.0.0.1:{}\"\n{}  http_added:\n    prober: http\n",
                        vigie_port_, modulesYaml(ca_->caFile())));
  kill(vigie_->pid(), SIGHUP);
  EXPECT_TRUE(eventually(10s, [&] { return get(vigieUrl(path)).status == 200; }))
      << vigie_->output();
  const Http metrics = get(vigieUrl("/metrics"));
  EXPECT_NE(
      metrics.body.find("vigie_blackbox_probes_total{module=\"http_added\",result=\"success\"}"),
      std::string::npos);
  EXPECT_NE(metrics.body.find("vigie_blackbox_requests_rejected_total{reason=\"bad_request\"}"),
            std::string::npos);
}

// ---------------------------------------------------------------- Prometheus

std::string relabelJob(const std::string& job, const std::string& exporter,
                       const std::vector<std::string>& targets) {
  std::string list;
  for (const auto& t : targets) list += fmt::format("          - \"{}\"\n", t);
  // As blackbox_exporter's README writes it.
  return fmt::format(
      "  - job_name: {0}\n"
      "    metrics_path: /probe\n"
      "    params:\n"
      "      module: [http_2xx]\n"
      "    scrape_interval: 1s\n"
      "    scrape_timeout: 1s\n"
      "    static_configs:\n"
      "      - targets:\n{2}"
      "    relabel_configs:\n"
      "      - source_labels: [__address__]\n"
      "        target_label: __param_target\n"
      "      - source_labels: [__param_target]\n"
      "        target_label: instance\n"
      "      - target_label: __address__\n"
      "        replacement: {1}\n",
      job, exporter, list);
}

json::array promQuery(int port, const std::string& q) {
  const Http r = get(fmt::format("http://127.0.0.1:{}/api/v1/query?query={}", port, escape(q)));
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object() || v.as_object().at("status") != "success") return {};
  return v.at("data").at("result").as_array();
}

TEST_F(BlackboxCompat, PrometheusScrapesBothWithTheSameJob) {
  const std::vector<std::string> targets = {nginx_->url("/index.html"), nginx_->url("/missing"),
                                            fmt::format("127.0.0.1:{}", closed_port_)};
  const int prom_port = freePort();
  writeFile(dir_ + "/prometheus.yml",
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n" +
                relabelJob("blackbox", blackbox_->address(), targets) +
                relabelJob("vigie", fmt::format("127.0.0.1:{}", vigie_port_), targets));
  Process prom(Process::Options{
      {"/usr/bin/prometheus", "--config.file=" + dir_ + "/prometheus.yml",
       "--storage.tsdb.path=" + dir_ + "/tsdb",
       fmt::format("--web.listen-address=127.0.0.1:{}", prom_port), "--log.level=warn"},
      {},
      dir_ + "/prometheus.log",
      ""});
  // Every target of both jobs scraped, up, with its probe_success.
  ASSERT_TRUE(eventually(20s, [&] {
    if (!prom.running()) return true;
    return promQuery(prom_port, "up == 1").size() == 6 &&
           promQuery(prom_port, "probe_success").size() == 6;
  })) << prom.output();
  ASSERT_TRUE(prom.running()) << prom.output();

  // The same value per instance, for what must match.
  for (const char* metric :
       {"probe_success", "probe_http_status_code", "probe_http_ssl", "probe_http_content_length",
        "probe_http_redirects", "probe_ip_protocol"}) {
    std::map<std::string, std::map<std::string, std::string>>
        by_instance;  // instance -> job -> value
    for (const auto& s : promQuery(prom_port, metric)) {
      const auto& m = s.at("metric").as_object();
      by_instance[json::value_to<std::string>(m.at("instance"))]
                 [json::value_to<std::string>(m.at("job"))] =
                     json::value_to<std::string>(s.at("value").as_array().at(1));
    }
    EXPECT_EQ(by_instance.size(), targets.size()) << metric;
    for (const auto& [instance, jobs] : by_instance) {
      ASSERT_EQ(jobs.size(), 2u) << metric << " " << instance;
      EXPECT_EQ(jobs.at("vigie"), jobs.at("blackbox")) << metric << " " << instance;
    }
  }
  const auto ok = promQuery(prom_port, "probe_success{instance=\"" + targets[0] + "\"} == 1");
  EXPECT_EQ(ok.size(), 2u);
  const auto missing =
      promQuery(prom_port, "probe_http_status_code{instance=\"" + targets[1] + "\"} == 404");
  EXPECT_EQ(missing.size(), 2u);

  // The same series names for each instance, asked from Prometheus itself.
  for (const auto& t : targets) {
    std::map<std::string, std::set<std::string>> names;  // job -> names
    for (const auto& s : promQuery(prom_port, "{instance=\"" + t + "\",__name__=~\"probe_.*\"}")) {
      const auto& m = s.at("metric").as_object();
      names[json::value_to<std::string>(m.at("job"))].insert(
          json::value_to<std::string>(m.at("__name__")));
    }
    EXPECT_FALSE(names["blackbox"].empty()) << t;
    EXPECT_EQ(names["vigie"], names["blackbox"]) << t;
  }
}

// ---------------------------------------------------------------- in-process limits

TEST(BlackboxEndpointLimits, BeyondMaxInFlightIs503AndStopCancels) {
  FaultServer silent(FaultServer::Mode::never_answer);
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, "", nullptr};
  prometheus::Registry self;
  auto cfg = parseConfig("modules:\n  http_2xx:\n    prober: http\n", "t.yaml");
  HttpServer server(io);
  server.listen("127.0.0.1:0");
  auto endpoint = std::make_unique<BlackboxEndpoint>(
      ctx, [cfg] { return cfg; }, self, BlackboxOptions{2});
  endpoint->registerRoutes(server);
  std::thread loop([&io] {
    auto guard = boost::asio::make_work_guard(io);
    io.run();
  });
  const std::string url =
      fmt::format("http://127.0.0.1:{}/probe?target={}", server.port(), escape(silent.url("/")));
  // Two probes hang on the silent server (10 s scrape timeout); the third is refused.
  std::vector<std::thread> hanging;
  std::vector<Http> answers(2);
  for (int i = 0; i < 2; ++i) {
    hanging.emplace_back(
        [&, i] { answers[i] = get(url, {"X-Prometheus-Scrape-Timeout-Seconds: 10"}); });
  }
  ASSERT_TRUE(eventually(5s, [&] { return silent.accepted() >= 2; }));
  const Http third = get(url);
  EXPECT_EQ(third.status, 503) << third.body;
  EXPECT_NE(third.body.find("too many probes running"), std::string::npos) << third.body;
  // Stopping cancels both at once: their connections are closed unanswered.
  const auto t0 = std::chrono::steady_clock::now();
  boost::asio::post(io, [&] {
    endpoint->stop();
    server.stop();
  });
  for (auto& t : hanging) t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  for (const auto& a : answers) EXPECT_EQ(a.status, 0);  // no answer
  boost::asio::post(io, [&] {
    EXPECT_EQ(endpoint->inFlight(), 0u);
    endpoint.reset();
    io.stop();
  });
  loop.join();
  bool counted = false;
  for (const auto& f : self.Collect()) {
    if (f.name != "vigie_blackbox_requests_rejected_total") continue;
    for (const auto& m : f.metric) {
      for (const auto& l : m.label) {
        if (l.value == "over_limit") counted = m.counter.value == 1;
      }
    }
  }
  EXPECT_TRUE(counted);
}

}  // namespace
}  // namespace vigie::test
