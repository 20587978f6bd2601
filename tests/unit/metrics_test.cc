// /metrics text from hand-built snapshots, the JSON API document and the text
// helpers they share. The text output is also validated by promtool.

#include "exporters/metrics.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/summary.h>
#include <prometheus/text_serializer.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <regex>
#include <string>
#include <vector>

#include "collector/aggregate.h"
#include "exporters/api.h"
#include "exporters/json_util.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;

SystemClock::time_point at(double unix_seconds) {
  return SystemClock::time_point(std::chrono::duration_cast<SystemClock::duration>(
      std::chrono::duration<double>(unix_seconds)));
}

CheckConfig httpCheck(const std::string& service, const std::string& name, std::string url) {
  CheckConfig c;
  c.name = name;
  c.key = service + "/" + name;
  c.interval = 30s;
  c.timeout = 5s;
  HttpSpec h;
  h.url = std::move(url);
  c.spec = h;
  return c;
}

// A config of services; each service holds the listed checks (http unless told).
std::shared_ptr<Config> makeConfig(
    const std::vector<std::pair<std::string, std::vector<CheckConfig>>>& services) {
  auto cfg = std::make_shared<Config>();
  cfg->location = "osug";
  for (const auto& [name, checks] : services) {
    ServiceConfig s;
    s.name = name;
    s.group = "web";
    s.checks = checks;
    cfg->services.push_back(std::move(s));
  }
  return cfg;
}

std::shared_ptr<CheckStatus> statusOf(const std::shared_ptr<const Config>& cfg, std::size_t svc,
                                      std::size_t chk) {
  auto st = std::make_shared<CheckStatus>();
  st->service = std::shared_ptr<const ServiceConfig>(cfg, &cfg->services[svc]);
  st->check = std::shared_ptr<const CheckConfig>(cfg, &cfg->services[svc].checks[chk]);
  return st;
}

Result okResult() {
  Result r = Result::ok();
  r.started = at(1700000000.5);
  r.duration = 0.125;
  r.http_status = 200;
  r.http_version = 11;
  r.phases = {0.001, 0.25, 0.5, 0.03125, 0.0625};
  r.body_bytes = 512;
  r.redirects = 1;
  r.cert_expiry = 1800000000;
  r.components = {{"db", Status::fail, "DOWN"}, {"disk", Status::ok, "UP"}};
  r.version = "1.2.3";
  r.info = {{"release_id", "abc"}, {"bad-key", "x"}, {"service", "spoof"}};
  r.conditions = {{"json /status == pass", true, ""}};
  return r;
}

// The standard two-check snapshot: api/health up with a full result, api/ping
// down after a timeout.
std::shared_ptr<Snapshot> sampleSnapshot() {
  auto cfg = makeConfig({{"api",
                          {httpCheck("api", "health", "https://user:secret@api.example/health"),
                           httpCheck("api", "ping", "http://api.example/ping")}}});
  auto snap = std::make_shared<Snapshot>();
  snap->config = cfg;
  auto health = statusOf(cfg, 0, 0);
  health->state = CheckState::up;
  health->last = okResult();
  health->last_change = at(1699999000);
  health->last_success = at(1700000000.5);
  health->results_total = {10, 1, 2};
  health->state_changes = 3;
  health->consecutive_successes = 4;
  health->recent = {{at(1700000000.5), Status::ok, Reason::none, 0.125f}};
  auto ping = statusOf(cfg, 0, 1);
  ping->state = CheckState::down;
  ping->consecutive_failures = 3;
  Result fail = Result::failure(Reason::timeout, "no answer within 5s");
  fail.started = at(1700000001);
  fail.duration = 5;
  ping->last = fail;
  ping->last_failure = fail.started;
  ping->last_failure_result = fail;
  snap->checks = {health, ping};
  snap->self.started = at(1699990000);
  snap->self.probes_in_flight = 7;
  snap->self.config_reloads_total = 2;
  snap->self.config_last_reload_success = at(1699990001);
  return snap;
}

// sampleSnapshot() plus a service db (its check down) that api depends on, a
// cluster "front" of api, and the aggregator's figures (uptime, flapping, last change).
std::shared_ptr<Snapshot> aggregatedSnapshot() {
  auto cfg = makeConfig({{"api",
                          {httpCheck("api", "health", "https://api.example/health"),
                           httpCheck("api", "ping", "http://api.example/ping")}},
                         {"db", {httpCheck("db", "port", "http://db.example/")}}});
  cfg->services[0].depends_on = {"db"};
  cfg->services[1].group = "data";
  ClusterConfig front;
  front.name = "front";
  front.services = {"api"};
  ClusterConfig back;
  back.name = "back";
  back.services = {};
  cfg->clusters = {front, back};
  auto sample = sampleSnapshot();
  auto snap = std::make_shared<Snapshot>(*sample);
  snap->config = cfg;
  auto health = std::make_shared<CheckStatus>(*sample->checks[0]);
  health->service = std::shared_ptr<const ServiceConfig>(cfg, &cfg->services[0]);
  health->check = std::shared_ptr<const CheckConfig>(cfg, &cfg->services[0].checks[0]);
  health->flapping = true;
  health->flap_percent = 31;
  health->uptime = {1.0, 0.99, 1.0 / 3.0, std::nullopt};
  auto ping = std::make_shared<CheckStatus>(*sample->checks[1]);
  ping->service = health->service;
  ping->check = std::shared_ptr<const CheckConfig>(cfg, &cfg->services[0].checks[1]);
  auto port = statusOf(cfg, 1, 0);
  port->state = CheckState::down;
  port->last = *ping->last;
  snap->checks = {health, ping, port};
  aggregate(*snap, at(1700000002));
  snap->services[0].uptime = {0.5, 0.75, std::nullopt, std::nullopt};
  snap->services[0].last_change = at(1699999000);
  snap->clusters[0].last_change = at(1699999500);
  return snap;
}

bool hasLine(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

// The /metrics path (direct text writer).
std::string render(const Snapshot& snap) { return renderSnapshotMetrics(&snap, "0.1.0", {}); }

// The Collectable path, serialized by prometheus-cpp's TextSerializer.
std::string renderViaCollectable(const Snapshot& snap) {
  SnapshotCollectable c([&snap] { return std::shared_ptr<const Snapshot>(&snap, [](auto*) {}); },
                        "0.1.0");
  return renderMetrics({&c});
}

// Feeds `text` to `promtool check metrics`; returns its exit status and output.
std::pair<int, std::string> promtool(const std::string& text) {
  const auto out = std::filesystem::temp_directory_path() /
                   ("vigie_promtool_" + std::to_string(::getpid()) + ".txt");
  const std::string cmd = "/usr/bin/promtool check metrics > " + out.string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "w");
  if (p == nullptr) return {-1, "popen failed"};
  std::fwrite(text.data(), 1, text.size(), p);
  const int status = ::pclose(p);
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  std::filesystem::remove(out);
  return {status, ss.str()};
}

constexpr const char* kHealth =
    R"(service="api",check="health",group="web",probe="http",location="osug")";
constexpr const char* kPing =
    R"(service="api",check="ping",group="web",probe="http",location="osug")";

TEST(Metrics, ExactLines) {
  const std::string text = render(*sampleSnapshot());
  const std::string h = kHealth, p = kPing;
  const std::vector<std::string> expected = {
      "# HELP probe_success 1 when the last probe succeeded (a warning counts as success), else 0.",
      "# TYPE probe_success gauge",
      "probe_success{" + h + "} 1",
      "probe_success{" + p + "} 0",
      "probe_duration_seconds{" + h + "} 0.125",
      "probe_http_status_code{" + h + "} 200",
      "probe_http_status_code{" + p + "} 0",
      "probe_http_duration_seconds{" + h + ",phase=\"connect\"} 0.25",
      "probe_http_duration_seconds{" + h + ",phase=\"transfer\"} 0.0625",
      "probe_http_version{" + h + "} 1.1",
      "probe_http_uncompressed_body_length{" + h + "} 512",
      "probe_http_redirects{" + h + "} 1",
      "probe_ssl_earliest_cert_expiry{" + h + "} 1800000000",
      "vigie_check_failure{" + p + ",reason=\"timeout\"} 1",
      "vigie_check_state{" + h + ",state=\"up\"} 1",
      "vigie_check_state{" + h + ",state=\"down\"} 0",
      "vigie_check_state{" + h + ",state=\"unknown\"} 0",
      "vigie_check_state{" + p + ",state=\"down\"} 1",
      "vigie_check_pending{" + h + "} 0",
      "vigie_check_consecutive_failures{" + p + "} 3",
      "vigie_check_last_result_timestamp_seconds{" + h + "} 1700000000.5",
      "vigie_check_last_state_change_timestamp_seconds{" + h + "} 1699999000",
      "# TYPE vigie_check_results_total counter",
      "vigie_check_results_total{" + h + ",result=\"ok\"} 10",
      "vigie_check_results_total{" + h + ",result=\"warn\"} 1",
      "vigie_check_results_total{" + h + ",result=\"fail\"} 2",
      "vigie_check_state_changes_total{" + h + "} 3",
      "vigie_health_component_status{" + h + ",component=\"db\",status=\"fail\"} 1",
      "vigie_health_component_status{" + h + ",component=\"db\",status=\"ok\"} 0",
      "vigie_health_component_status{" + h + ",component=\"disk\",status=\"ok\"} 1",
      // bad-key is not a label name and `service` is reserved: both left out.
      "vigie_target_info{" + h + ",version=\"1.2.3\",release_id=\"abc\"} 1",
      "vigie_condition_success{" + h + ",condition=\"json /status == pass\"} 1",
      "vigie_probes_in_flight 7",
      "vigie_probes_waiting 0",
      "vigie_config_last_reload_successful 1",
      "vigie_config_last_reload_success_timestamp_seconds 1699990001",
      "vigie_config_reloads_total 2",
      "vigie_config_reload_failures_total 0",
      "vigie_checks 2",
      "vigie_start_time_seconds 1699990000",
      "vigie_build_info{version=\"0.1.0\"} 1",
  };
  for (const auto& line : expected) {
    EXPECT_TRUE(hasLine(text, line)) << "missing line: " << line << "\n--- output:\n" << text;
  }
  // Families absent where the meaning does not apply.
  EXPECT_FALSE(hasLine(text, "vigie_check_failure{" + h + ",reason=\"\"} 1"));
  EXPECT_EQ(text.find("vigie_check_last_state_change_timestamp_seconds{" + p), std::string::npos);
  EXPECT_EQ(text.find("probe_ssl_earliest_cert_expiry{" + p), std::string::npos);
  // No secret from the URL.
  EXPECT_EQ(text.find("secret"), std::string::npos);
}

TEST(Metrics, ServicesAndClusters) {
  auto snap = aggregatedSnapshot();
  const std::string text = render(*snap);
  EXPECT_EQ(text, renderViaCollectable(*snap));
  const std::string h = kHealth;
  const std::string api = R"(service="api",group="web")";
  const std::string db = R"(service="db",group="data")";
  const std::vector<std::string> expected = {
      "# HELP vigie_check_flapping 1 while the check is flapping (weighted share of state changes "
      "over the last 21 results above 30%, until below 25%).",
      "# TYPE vigie_check_flapping gauge",
      "vigie_check_flapping{" + h + "} 1",
      "vigie_check_flapping{" + std::string(kPing) + "} 0",
      "vigie_check_uptime_ratio{" + h + ",window=\"1h\"} 1",
      "vigie_check_uptime_ratio{" + h + ",window=\"24h\"} 0.99",
      "vigie_check_uptime_ratio{" + h + ",window=\"7d\"} 0.3333333333333333",
      "# TYPE vigie_service_state gauge",
      "vigie_service_state{" + api + ",state=\"unknown\"} 0",
      "vigie_service_state{" + api + ",state=\"up\"} 0",
      "vigie_service_state{" + api + ",state=\"degraded\"} 0",
      "vigie_service_state{" + api + ",state=\"down\"} 1",
      "vigie_service_state{" + api + ",state=\"maintenance\"} 0",
      "vigie_service_state{" + db + ",state=\"down\"} 1",
      "vigie_service_cause{" + api + ",cause=\"db\"} 1",
      "vigie_service_flapping{" + api + "} 1",
      "vigie_service_flapping{" + db + "} 0",
      "vigie_service_uptime_ratio{" + api + ",window=\"1h\"} 0.5",
      "vigie_service_uptime_ratio{" + api + ",window=\"24h\"} 0.75",
      "vigie_service_last_state_change_timestamp_seconds{" + api + "} 1699999000",
      "# TYPE vigie_cluster_state gauge",
      "vigie_cluster_state{cluster=\"front\",state=\"down\"} 1",
      "vigie_cluster_state{cluster=\"front\",state=\"up\"} 0",
      "vigie_cluster_state{cluster=\"back\",state=\"unknown\"} 1",
      "vigie_cluster_ready{cluster=\"front\"} 0",
      "vigie_cluster_ready{cluster=\"back\"} 0",
  };
  for (const auto& line : expected) {
    EXPECT_TRUE(hasLine(text, line)) << "missing line: " << line << "\n--- output:\n" << text;
  }
  // Absent when unknown or not caused.
  EXPECT_EQ(text.find("vigie_check_uptime_ratio{" + h + ",window=\"30d\"}"), std::string::npos);
  EXPECT_EQ(text.find("vigie_check_uptime_ratio{" + std::string(kPing)), std::string::npos);
  EXPECT_EQ(text.find("vigie_service_uptime_ratio{" + api + ",window=\"7d\"}"), std::string::npos);
  EXPECT_EQ(text.find("vigie_service_uptime_ratio{" + db), std::string::npos);
  EXPECT_EQ(text.find("vigie_service_cause{" + db), std::string::npos);
  EXPECT_EQ(text.find("vigie_service_last_state_change_timestamp_seconds{" + db),
            std::string::npos);
  // A degraded cluster is ready.
  snap->clusters[0].state = ServiceState::degraded;
  snap->clusters[0].ready = true;
  const std::string degraded = render(*snap);
  EXPECT_TRUE(hasLine(degraded, "vigie_cluster_ready{cluster=\"front\"} 1")) << degraded;
  EXPECT_TRUE(hasLine(degraded, "vigie_cluster_state{cluster=\"front\",state=\"degraded\"} 1"));
  const auto [status, output] = promtool(text);
  EXPECT_EQ(status, 0) << output;
}

TEST(Metrics, DirectWriterMatchesTextSerializer) {
  auto snap = sampleSnapshot();
  auto odd = std::make_shared<CheckStatus>(*snap->checks[0]);
  Result r = *odd->last;
  // Values whose formatting differs between naive printers.
  r.duration = 1.0 / 3.0;
  r.phases = {0.1, 1e-7, 123456789.125, 1e20, -0.0};
  r.cert_expiry = 1e16 + 2;
  r.body_bytes = 1ULL << 53;
  r.components = {{"a\"b\\c\nd", Status::warn, ""}};
  odd->last = r;
  snap->checks.push_back(odd);
  const std::string direct = render(*snap);
  EXPECT_EQ(direct, renderViaCollectable(*snap));
  // Services, clusters, causes, uptime ratios, flapping: hostile names included.
  auto agg = aggregatedSnapshot();
  agg->services[0].causes = {"d\"b\\x\ny", std::string("bad\xff"
                                                       "cause")};
  agg->services[1].uptime = {1.0 / 7.0, 2.0 / 3.0, 1e-9, 0.0};
  const std::string with_services = render(*agg);
  ASSERT_NE(with_services.find("vigie_service_cause{"), std::string::npos);
  ASSERT_NE(with_services.find("vigie_cluster_ready{"), std::string::npos);
  ASSERT_NE(with_services.find("vigie_check_uptime_ratio{"), std::string::npos);
  EXPECT_EQ(with_services, renderViaCollectable(*agg));
  Snapshot empty;
  EXPECT_EQ(render(empty), renderViaCollectable(empty));
  EXPECT_EQ(renderSnapshotMetrics(nullptr, "", {}),
            renderMetrics({}) +
                "# HELP vigie_build_info vigie's version; the value is always 1.\n# TYPE "
                "vigie_build_info gauge\nvigie_build_info{version=\"unknown\"} 1\n");
}

TEST(Metrics, IngressTargetsPerAddress) {
  CheckConfig ing;
  ing.name = "public";
  ing.key = "api/public";
  IngressSpec spec;
  spec.url = "https://api.example/health";
  spec.addresses = {"192.0.2.10", "2001:db8::1"};
  ing.spec = spec;
  auto cfg = makeConfig({{"api", {ing}}});
  auto snap = std::make_shared<Snapshot>();
  snap->config = cfg;
  auto st = statusOf(cfg, 0, 0);
  Result r = Result::failure(Reason::connect, "2001:db8::1: connect: Connection refused");
  r.started = at(1700000000);
  r.targets = {{"192.0.2.10", Status::ok, Reason::none, "", 200, 0.25, 1800000000.0},
               {"2001:db8::1", Status::fail, Reason::connect, "Connection refused", 0, 0.5, {}}};
  st->last = r;
  st->state = CheckState::down;
  snap->checks = {st};
  const std::string text = render(*snap);
  const std::string base =
      R"(service="api",check="public",group="web",probe="ingress",location="osug")";
  for (const std::string& line : std::vector<std::string>{
           "vigie_check_target_success{" + base + R"(,address="192.0.2.10"} 1)",
           "vigie_check_target_success{" + base + R"(,address="2001:db8::1"} 0)",
           "vigie_check_target_duration_seconds{" + base + R"(,address="2001:db8::1"} 0.5)",
           "vigie_check_target_http_status_code{" + base + R"(,address="192.0.2.10"} 200)",
           "vigie_check_target_failure{" + base + R"(,address="2001:db8::1",reason="connect"} 1)",
           "vigie_check_target_cert_expiry_timestamp_seconds{" + base +
               R"(,address="192.0.2.10"} 1800000000)",
       }) {
    EXPECT_TRUE(hasLine(text, line)) << line << "\n" << text;
  }
  EXPECT_EQ(text.find(R"(vigie_check_target_failure{)" + base + R"(,address="192.0.2.10")"),
            std::string::npos);
  EXPECT_EQ(text, renderViaCollectable(*snap));
  EXPECT_EQ(promtool(text).first, 0) << promtool(text).second;

  const auto o = checkJson(*st);
  const auto& targets = o.at("last_result").at("targets").as_array();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[1].at("address").as_string(), "2001:db8::1");
  EXPECT_EQ(targets[1].at("reason").as_string(), "connect");
  EXPECT_EQ(targets[0].at("http_status").as_int64(), 200);
  EXPECT_EQ(targets[0].at("cert_expiry").as_string(), "2027-01-15T08:00:00.000Z");
  EXPECT_TRUE(targets[1].at("cert_expiry").is_null());
}

TEST(Api, TargetsOfSecretKindsAreSafe) {
  CheckConfig pg;
  pg.name = "db";
  pg.key = "api/db";
  PostgresSpec p;
  p.dsn = "postgresql://vigie:hunter2hunter2@db.example:5432/app";
  pg.spec = p;
  CheckConfig hb;
  hb.name = "sync";
  hb.key = "api/sync";
  HeartbeatSpec h;
  h.token = "tok-tok-tok-tok-tok";
  hb.spec = h;
  auto cfg = makeConfig({{"api", {pg, hb}}});
  const auto db = checkJson(*statusOf(cfg, 0, 0));
  EXPECT_EQ(db.at("target").as_string(), "postgresql://vigie:***@db.example:5432/app");
  const auto sync = checkJson(*statusOf(cfg, 0, 1));
  EXPECT_EQ(sync.at("target").as_string(), "/api/v1/push/api/sync");
}

TEST(Metrics, NoResultYetMeansNoProbeSeries) {
  auto cfg = makeConfig({{"svc", {httpCheck("svc", "new", "http://x/")}}});
  Snapshot snap;
  snap.config = cfg;
  snap.checks = {statusOf(cfg, 0, 0)};
  const std::string text = render(snap);
  const std::string l = R"(service="svc",check="new",group="web",probe="http",location="osug")";
  EXPECT_TRUE(hasLine(text, "vigie_check_state{" + l + ",state=\"unknown\"} 1")) << text;
  EXPECT_EQ(text.find("probe_success"), std::string::npos) << text;
  EXPECT_EQ(text.find("probe_http_status_code"), std::string::npos) << text;
}

TEST(Metrics, RemovedCheckLeavesNoStaleSeries) {
  auto first = sampleSnapshot();
  auto current = std::shared_ptr<const Snapshot>(first);
  SnapshotCollectable collectable([&current] { return current; }, "0.1.0");
  const std::string before = renderMetrics({&collectable});
  ASSERT_NE(before.find("check=\"ping\""), std::string::npos);

  // A reload drops api/ping and adds other/tcp.
  auto cfg = makeConfig({{"api", {httpCheck("api", "health", "http://api/")}}, {"other", {}}});
  CheckConfig tcp;
  tcp.name = "port";
  tcp.key = "other/port";
  tcp.spec = TcpSpec{"127.0.0.1:5432"};
  cfg->services[1].checks.push_back(tcp);
  auto next = std::make_shared<Snapshot>();
  next->config = cfg;
  next->checks = {statusOf(cfg, 0, 0), statusOf(cfg, 1, 0)};
  current = next;
  const std::string after = renderMetrics({&collectable});
  EXPECT_EQ(after.find("check=\"ping\""), std::string::npos) << after;
  EXPECT_NE(after.find(R"(check="port",group="web",probe="tcp")"), std::string::npos) << after;
  EXPECT_TRUE(hasLine(after, "vigie_checks 2"));
  // Families that only the removed results had are gone entirely.
  EXPECT_EQ(after.find("vigie_check_failure"), std::string::npos) << after;
  EXPECT_EQ(after.find("vigie_health_component_status"), std::string::npos) << after;
}

TEST(Metrics, HostileLabelValuesAreEscapedAndBounded) {
  auto snap = sampleSnapshot();
  auto health = std::make_shared<CheckStatus>(*snap->checks[0]);
  Result r = *health->last;
  r.components = {{"q\"uote\\back\nnl", Status::ok, ""},
                  {std::string("bad\xff\xfeutf8"), Status::ok, ""},
                  {std::string(1000, 'x'), Status::ok, ""},
                  {std::string(255, 'y') + "\xc3\xa9", Status::ok, ""}};  // é straddles 256
  r.version = "v\"1\"";
  health->last = r;
  snap->checks[0] = health;
  const std::string text = render(*snap);
  const std::string h = kHealth;
  EXPECT_TRUE(hasLine(text, "vigie_health_component_status{" + h +
                                R"(,component="q\"uote\\back\nnl",status="ok"} 1)"))
      << text;
  EXPECT_TRUE(hasLine(text, "vigie_health_component_status{" + h +
                                ",component=\"bad\xEF\xBF\xBD\xEF\xBF\xBDutf8\",status=\"ok\"} 1"))
      << text;
  EXPECT_TRUE(hasLine(text, "vigie_health_component_status{" + h + ",component=\"" +
                                std::string(256, 'x') + "\",status=\"ok\"} 1"));
  EXPECT_TRUE(hasLine(text, "vigie_health_component_status{" + h + ",component=\"" +
                                std::string(255, 'y') + "\",status=\"ok\"} 1"));
  EXPECT_TRUE(hasLine(text, "vigie_target_info{" + h + R"(,version="v\"1\"",release_id="abc"} 1)"))
      << text;
  EXPECT_TRUE(isValidUtf8(text));
  const auto [status, output] = promtool(text);
  EXPECT_EQ(status, 0) << output;
}

TEST(Metrics, PassesPromtool) {
  prometheus::Registry self;
  auto& lag = prometheus::BuildCounter()
                  .Name("vigie_scheduler_late_starts_total")
                  .Help("Probes started late.")
                  .Register(self);
  lag.Add({}).Increment(4);
  // A family the snapshot also produces: kept once.
  prometheus::BuildGauge().Name("vigie_checks").Help("dup").Register(self).Add({}).Set(99);
  auto snap = sampleSnapshot();
  const std::string text = renderSnapshotMetrics(snap.get(), "0.1.0", {&self});
  EXPECT_TRUE(hasLine(text, "vigie_scheduler_late_starts_total 4")) << text;
  EXPECT_TRUE(hasLine(text, "vigie_checks 2"));
  EXPECT_FALSE(hasLine(text, "vigie_checks 99"));
  const auto [status, output] = promtool(text);
  EXPECT_EQ(status, 0) << output << "\n--- input:\n" << text;
}

TEST(Metrics, PromtoolRejectsBrokenText) {
  // Guards the promtool helper itself: a counter without _total fails the lint.
  const auto [status, output] = promtool("# HELP x_bytes y\n# TYPE x_bytes counter\nx_bytes 1\n");
  EXPECT_NE(status, 0) << output;
}

TEST(Metrics, WithoutSnapshotOnlyBuildInfo) {
  SnapshotCollectable c([] { return std::shared_ptr<const Snapshot>(); }, "");
  const std::string text = renderMetrics({&c});
  EXPECT_TRUE(hasLine(text, "vigie_build_info{version=\"unknown\"} 1")) << text;
  EXPECT_EQ(text.find("vigie_checks"), std::string::npos);
}

TEST(Metrics, FiftyThousandChecksScrapeQuickly) {
  std::vector<std::pair<std::string, std::vector<CheckConfig>>> services;
  for (int s = 0; s < 5000; ++s) {
    const std::string name = "service-" + std::to_string(s);
    std::vector<CheckConfig> checks;
    for (int c = 0; c < 10; ++c) {
      checks.push_back(httpCheck(name, "check-" + std::to_string(c), "http://x/"));
    }
    services.emplace_back(name, std::move(checks));
  }
  auto cfg = makeConfig(services);
  auto snap = std::make_shared<Snapshot>();
  snap->config = cfg;
  Result r = okResult();
  r.components.clear();
  r.conditions.clear();
  for (std::size_t s = 0; s < cfg->services.size(); ++s) {
    for (std::size_t c = 0; c < cfg->services[s].checks.size(); ++c) {
      auto st = statusOf(cfg, s, c);
      st->state = CheckState::up;
      st->last = r;
      snap->checks.push_back(std::move(st));
    }
  }
  const auto t0 = SteadyClock::now();
  const std::string text = renderSnapshotMetrics(snap.get(), "0.1.0", {});
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  std::printf("50000 checks: %zu bytes in %.3f s\n", text.size(), elapsed);
  EXPECT_TRUE(hasLine(text, "vigie_checks 50000"));
  // In 1 MiB pieces: the same text.
  const auto s0 = SteadyClock::now();
  MetricsStream stream(snap, "0.1.0", {});
  std::size_t at = 0;
  bool same = true;
  for (std::string p = stream.next(1 << 20); !p.empty(); p = stream.next(1 << 20)) {
    same = same && text.compare(at, p.size(), p) == 0;
    at += p.size();
  }
  const double streamed = std::chrono::duration<double>(SteadyClock::now() - s0).count();
  std::printf("50000 checks: streamed in 1 MiB pieces in %.3f s\n", streamed);
  EXPECT_TRUE(same);
  EXPECT_EQ(at, text.size());
  // No timing asserted: the figures are bench/'s (vigie_bench_render, bench/run.sh).

  const auto a0 = SteadyClock::now();
  std::string doc;
  ASSERT_TRUE(checksDocument(*snap, "", SystemClock::now(), doc));
  const double api = std::chrono::duration<double>(SteadyClock::now() - a0).count();
  std::printf("50000 checks: /api/v1/checks %zu bytes in %.3f s\n", doc.size(), api);
  EXPECT_GT(doc.size(), 50000u * 100);
}

// --- the JSON API ---

TEST(Api, ChecksDocumentFields) {
  auto snap = sampleSnapshot();
  std::string out;
  ASSERT_TRUE(checksDocument(*snap, "", at(1700000002), out));
  const auto doc = boost::json::parse(out).as_object();
  EXPECT_EQ(doc.at("generated_at").as_string(), "2023-11-14T22:13:22.000Z");
  const auto& checks = doc.at("checks").as_array();
  ASSERT_EQ(checks.size(), 2u);
  const auto& h = checks[0].as_object();
  EXPECT_EQ(h.at("key").as_string(), "api/health");
  EXPECT_EQ(h.at("service").as_string(), "api");
  EXPECT_EQ(h.at("kind").as_string(), "http");
  EXPECT_EQ(h.at("target").as_string(), "https://api.example/health");
  EXPECT_EQ(h.at("state").as_string(), "up");
  EXPECT_TRUE(h.at("reason").is_null());
  EXPECT_EQ(h.at("interval_seconds").as_double(), 30.0);
  EXPECT_EQ(h.at("consecutive_successes").as_int64(), 4);
  EXPECT_EQ(h.at("last_change").as_string(), "2023-11-14T21:56:40.000Z");
  EXPECT_TRUE(h.at("last_failure").is_null());
  const auto& last = h.at("last_result").as_object();
  EXPECT_EQ(last.at("at").as_string(), "2023-11-14T22:13:20.500Z");
  EXPECT_EQ(last.at("http_status").as_int64(), 200);
  EXPECT_EQ(last.at("phases").as_object().at("connect").as_double(), 0.25);
  EXPECT_EQ(last.at("cert_expiry").as_string(), "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(last.at("components").as_array().size(), 2u);
  EXPECT_EQ(last.at("components").as_array()[0].as_object().at("status").as_string(), "fail");
  EXPECT_EQ(last.at("info").as_object().at("release_id").as_string(), "abc");
  EXPECT_EQ(h.at("recent").as_array().size(), 1u);
  const auto& p = checks[1].as_object();
  EXPECT_EQ(p.at("state").as_string(), "down");
  EXPECT_EQ(p.at("reason").as_string(), "timeout");
  EXPECT_EQ(p.at("last_failure_detail").as_string(), "no answer within 5s");
  EXPECT_EQ(out.find("secret"), std::string::npos);
}

TEST(Api, StateFilter) {
  auto snap = sampleSnapshot();
  const std::vector<std::pair<std::string, std::size_t>> cases = {
      {"down", 1}, {"up", 1}, {"up,down", 2}, {"degraded", 0}, {"", 2}};
  for (const auto& [filter, count] : cases) {
    std::string out;
    ASSERT_TRUE(checksDocument(*snap, filter, at(0), out)) << filter;
    EXPECT_EQ(boost::json::parse(out).at("checks").as_array().size(), count) << filter;
  }
  std::string out = "untouched";
  EXPECT_FALSE(checksDocument(*snap, "sideways", at(0), out));
  EXPECT_EQ(out, "untouched");
}

TEST(Api, OneCheckAndHostileStrings) {
  auto snap = sampleSnapshot();
  auto ping = std::make_shared<CheckStatus>(*snap->checks[1]);
  ping->last.edit().detail = std::string("line1\n\"quoted\" \x01 \xff end");
  snap->checks[1] = ping;
  HttpRequest req;
  req.path = "/api/v1/checks/api/p%69ng";
  HttpResponse res;
  handleCheckOne(snap.get(), req, res);
  ASSERT_EQ(res.status, 200u) << res.body;
  EXPECT_TRUE(isValidUtf8(res.body));
  const auto v = boost::json::parse(res.body);
  EXPECT_EQ(v.at("detail").as_string(), "line1\n\"quoted\" \x01 \xEF\xBF\xBD end");
  ASSERT_EQ(res.headers.size(), 2u);
  EXPECT_EQ(res.headers[0], std::make_pair(std::string("Cache-Control"), std::string("no-store")));
  EXPECT_EQ(res.headers[1], std::make_pair(std::string("ETag"), bodyEtag(res.body)));

  for (std::string path :
       {"/api/v1/checks/api/nope", "/api/v1/checks/api", "/api/v1/checks/a/b/c"}) {
    HttpResponse miss;
    req.path = path;
    handleCheckOne(snap.get(), req, miss);
    EXPECT_EQ(miss.status, 404u) << path;
    EXPECT_EQ(miss.content_type, "application/json");
    EXPECT_TRUE(boost::json::parse(miss.body).as_object().contains("error"));
  }
}

// --- the text format of vigie's own registries ---

TEST(Metrics, TextFormatIsTextSerializersByteForByte) {
  prometheus::Registry reg;
  auto& counters = prometheus::BuildCounter().Name("t_requests_total").Help("Requests.").Register(reg);
  counters.Add({{"path", "/a\"b\\c\nd"}, {"code", "200"}}).Increment(3);
  counters.Add({}).Increment(1e6);
  auto& gauges = prometheus::BuildGauge().Name("t_level").Help("").Register(reg);
  gauges.Add({{"x", "1"}}).Set(0.1 + 0.2);
  gauges.Add({{"x", "2"}}).Set(-2.5e-7);
  gauges.Add({{"x", "3"}}).Set(1e300);
  gauges.Add({{"x", "4"}}).Set(std::numeric_limits<double>::infinity());
  gauges.Add({{"x", "5"}}).Set(std::nan(""));
  gauges.Add({{"x", "6"}}).Set(123456789012.0);
  auto& hist = prometheus::BuildHistogram().Name("t_lag_seconds").Help("Lag.").Register(reg);
  auto& h = hist.Add({{"k", "v"}}, prometheus::Histogram::BucketBoundaries{
                                        0.0005, 0.005, 0.01, 0.025, 0.25, 1, 2.5, 10, 60});
  for (double v : {0.0001, 0.003, 0.02, 0.7, 5.0, 100.0}) h.Observe(v);
  auto& sums = prometheus::BuildSummary().Name("t_size_bytes").Help("Sizes.").Register(reg);
  auto& sm = sums.Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.99, 0.001}});
  for (double v : {10.0, 20.0, 35.5}) sm.Observe(v);
  std::vector<prometheus::MetricFamily> fams = reg.Collect();
  prometheus::MetricFamily stamped;
  stamped.name = "t_stamped";
  stamped.help = "With a timestamp.";
  stamped.type = prometheus::MetricType::Untyped;
  prometheus::ClientMetric m;
  m.untyped.value = 42;
  m.timestamp_ms = 1795929563896;
  m.label = {{"a", "b"}};
  stamped.metric.push_back(m);
  fams.push_back(stamped);

  std::ostringstream expected;
  prometheus::TextSerializer().Serialize(expected, fams);
  std::string got;
  appendTextFormat(fams, got);
  EXPECT_EQ(got, expected.str());
}

// --- caches for the routes under load ---

TEST(Metrics, CacheRendersEachSnapshotOnceWithFreshOthers) {
  prometheus::Registry self;
  auto& counter = prometheus::BuildCounter()
                      .Name("vigie_scheduler_late_starts_total")
                      .Help("Probes started late.")
                      .Register(self)
                      .Add({});
  SnapshotMetricsCache cache;
  std::shared_ptr<const Snapshot> snap = sampleSnapshot();
  EXPECT_EQ(cache.render(snap, "0.1.0", self.Collect()).joined(),
            renderSnapshotMetrics(snap.get(), "0.1.0", {&self}));
  counter.Increment(7);  // the others are collected at every call
  const std::string second = cache.render(snap, "0.1.0", self.Collect()).joined();
  EXPECT_EQ(second, renderSnapshotMetrics(snap.get(), "0.1.0", {&self}));
  EXPECT_TRUE(hasLine(second, "vigie_scheduler_late_starts_total 7"));
  // Answers of one snapshot share its text (sent without a copy), found without
  // rendering; a snapshot never rendered is not found.
  std::vector<prometheus::MetricFamily> others = self.Collect();
  const auto found = cache.find(snap, "0.1.0", others);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->snapshot_part, cache.render(snap, "0.1.0", {}).snapshot_part);
  EXPECT_EQ(found->joined(), second);
  std::vector<prometheus::MetricFamily> none;
  EXPECT_FALSE(cache.find(sampleSnapshot(), "0.1.0", none).has_value());
  EXPECT_FALSE(cache.find(snap, "0.2.0", none).has_value());
  // A new snapshot (one status replaced) is rendered again.
  auto next = std::make_shared<Snapshot>(*snap);
  auto down = std::make_shared<CheckStatus>(*next->checks[0]);
  down->state = CheckState::down;
  next->checks[0] = down;
  EXPECT_EQ(cache.render(next, "0.1.0", self.Collect()).joined(),
            renderSnapshotMetrics(next.get(), "0.1.0", {&self}));
  EXPECT_EQ(cache.render(nullptr, "0.1.0", {}).joined(), renderSnapshotMetrics(nullptr, "0.1.0", {}));
  // The cache does not keep a snapshot alive, and a new one never passes for it.
  std::weak_ptr<const Snapshot> gone = next;
  next.reset();
  EXPECT_TRUE(gone.expired());
  auto fresh = sampleSnapshot();
  EXPECT_EQ(cache.render(fresh, "0.1.0", {}).joined(), renderSnapshotMetrics(fresh.get(), "0.1.0", {}));
}

// A big /metrics is written in pieces (MetricsStream): joined, byte for byte the
// whole text, each piece whole lines, about the size asked.
TEST(Metrics, StreamedTextIsTheWholeTextByteForByte) {
  prometheus::Registry self;
  prometheus::BuildCounter().Name("vigie_scheduler_late_starts_total").Help("Late.").Register(self).Add({}).Increment(3);
  // A family the snapshot writes too: dropped from the others, as in the whole text.
  prometheus::BuildGauge().Name("vigie_checks").Help("Duplicate.").Register(self).Add({}).Set(9);

  std::vector<std::shared_ptr<const Snapshot>> snaps;
  auto odd = sampleSnapshot();
  auto c = std::make_shared<CheckStatus>(*odd->checks[0]);
  Result r = *c->last;
  r.components = {{"a\"b\\c\nd", Status::warn, ""}, {"db", Status::fail, "down"}};
  r.version = "1.2.3";
  r.info = {{"commit", "abc"}, {"bad-name", "x"}};
  r.targets = {{"192.0.2.10", Status::ok, Reason::none, "", 200, 0.25, 1800000000.0},
               {"2001:db8::1", Status::fail, Reason::connect, "refused", 0, 0.5, {}}};
  c->last = r;
  odd->checks.push_back(c);
  odd->checks.push_back(nullptr);
  snaps.push_back(odd);
  auto agg = aggregatedSnapshot();
  agg->services[0].causes = {"d\"b\\x\ny", "other"};
  snaps.push_back(agg);
  auto sharded = std::make_shared<Snapshot>(*aggregatedSnapshot());
  auto cfg = std::make_shared<Config>(*sharded->config);
  cfg->shard.count = 3;
  cfg->shard.index = 1;
  sharded->config = cfg;
  snaps.push_back(sharded);
  snaps.push_back(std::make_shared<Snapshot>());
  snaps.push_back(nullptr);

  for (const auto& snap : snaps) {
    const std::string whole = renderSnapshotMetricsWith(snap.get(), "0.1.0", self.Collect());
    ASSERT_NE(whole.find("vigie_scheduler_late_starts_total 3"), std::string::npos);
    for (std::size_t piece : {std::size_t{1}, std::size_t{200}, std::size_t{4096},
                              std::size_t{1} << 20}) {
      MetricsStream stream(snap, "0.1.0", self.Collect());
      std::string joined;
      std::size_t pieces = 0;
      for (std::string p = stream.next(piece); !p.empty(); p = stream.next(piece)) {
        ++pieces;
        EXPECT_EQ(p.back(), '\n');
        joined += p;
      }
      EXPECT_TRUE(stream.finished());
      EXPECT_EQ(stream.next(piece), "");
      EXPECT_EQ(joined, whole) << "piece " << piece;
      if (piece == 200 && snap) {
        EXPECT_GT(pieces, whole.size() / 1000);
      }
      if (piece == (std::size_t{1} << 20)) {
        EXPECT_EQ(pieces, 1u);
      }
    }
  }
  // The stream holds its snapshot until destroyed, not longer.
  std::shared_ptr<const Snapshot> held = sampleSnapshot();
  std::weak_ptr<const Snapshot> watch = held;
  auto stream = std::make_unique<MetricsStream>(std::move(held), "0.1.0",
                                                std::vector<prometheus::MetricFamily>{});
  EXPECT_FALSE(stream->next(100).empty());
  EXPECT_FALSE(watch.expired());
  stream.reset();
  EXPECT_TRUE(watch.expired());
}

TEST(Api, ListCacheAnswersByteForByteAsTheHandler) {
  namespace http = boost::beast::http;
  auto run = [](const std::shared_ptr<const Snapshot>& snap, ChecksListCache* cache,
                const std::string& state, const std::string& if_none_match) {
    http::request<http::string_body> raw;
    if (!if_none_match.empty()) raw.set("If-None-Match", if_none_match);
    HttpRequest req;
    req.path = req.target = "/api/v1/checks";
    if (!state.empty()) req.query = {{"state", state}};
    req.raw = &raw;
    HttpResponse res;
    if (cache) {
      cache->handle(snap, req, res);
    } else {
      handleChecksList(snap.get(), req, res);
    }
    return res;
  };
  // Without a snapshot time "generated_at" is the clock's, which may tick between the
  // two answers: compared without it (and without the ETag made of it) then.
  auto untimed = [](std::string text) {
    static const std::regex stamp(R"re("generated_at":[^,}]*)re");
    return std::regex_replace(text, stamp, "\"generated_at\":_");
  };
  auto same = [&](const std::shared_ptr<const Snapshot>& snap, ChecksListCache& cache,
                  const std::string& state, const std::string& inm = "") {
    const HttpResponse a = run(snap, &cache, state, inm);
    const HttpResponse b = run(snap, nullptr, state, inm);
    const bool timed_snapshot = snap && snap->at != SystemClock::time_point{};
    EXPECT_EQ(a.status, b.status) << state;
    if (!timed_snapshot) {
      EXPECT_EQ(untimed(a.body), untimed(b.body)) << state;
      return a;
    }
    EXPECT_EQ(a.body, b.body) << state;
    EXPECT_EQ(a.headers, b.headers) << state;
    EXPECT_EQ(a.content_type, b.content_type) << state;
    return a;
  };
  ChecksListCache cache;
  same(sampleSnapshot(), cache, "");  // no time: "generated_at" is now, never reused
  auto timed = sampleSnapshot();
  timed->at = at(1700000002);
  std::shared_ptr<const Snapshot> snap = timed;
  const HttpResponse first = same(snap, cache, "");
  ASSERT_EQ(first.status, 200u);
  same(snap, cache, "");  // from the cache now
  same(snap, cache, "down");
  same(snap, cache, "sideways");  // 400
  // One status replaced: a new answer, the other check's JSON reused.
  auto next = std::make_shared<Snapshot>(*snap);
  auto changed = std::make_shared<CheckStatus>(*next->checks[1]);
  changed->state = CheckState::up;
  changed->last.edit().detail = "back";
  next->checks[1] = changed;
  next->at = at(1700000003);
  const HttpResponse second = same(next, cache, "");
  EXPECT_NE(second.body, first.body);
  same(next, cache, "down");
  // A matching If-None-Match: 304 without a body, as the handler does.
  std::string etag;
  for (const auto& [k, v] : second.headers) {
    if (k == "ETag") etag = v;
  }
  const HttpResponse not_modified = same(next, cache, "", etag);
  EXPECT_EQ(not_modified.status, 304u);
  EXPECT_TRUE(not_modified.body.empty());
  // The cache's answer for a snapshot does not outlive it: back to the first.
  EXPECT_EQ(same(snap, cache, "").body, first.body);
  same(nullptr, cache, "");
}

// --- shared helpers ---

TEST(JsonUtil, Rfc3339) {
  EXPECT_EQ(formatRfc3339(SystemClock::time_point{}), "");
  EXPECT_EQ(formatRfc3339(at(0.001)), "1970-01-01T00:00:00.001Z");
  EXPECT_EQ(formatRfc3339(at(951782400)), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(formatRfc3339(at(1700000000.999)), "2023-11-14T22:13:20.999Z");
}

TEST(JsonUtil, StripUserinfo) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"https://u:p@host/x", "https://host/x"},
      {"http://user@host:8080/a?b=c@d", "http://host:8080/a?b=c@d"},
      {"http://host/path@x", "http://host/path@x"},
      {"https://a:b@c@host", "https://host"},
      {"host:5432", "host:5432"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(stripUrlUserinfo(in), want) << in;
}

TEST(JsonUtil, Utf8) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plain", "plain"},
      {"caf\xc3\xa9", "caf\xc3\xa9"},
      {"\xc0\xaf", "\xEF\xBF\xBD\xEF\xBF\xBD"},                                  // overlong '/'
      {"\xed\xa0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},                  // surrogate
      {"\xf4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // > U+10FFFF
      {"ok\xe2\x82", "ok\xEF\xBF\xBD\xEF\xBF\xBD"},  // truncated sequence
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(sanitizeUtf8(in), want);
    EXPECT_EQ(isValidUtf8(in), in == want);
  }
  EXPECT_EQ(sanitizeUtf8("ab\xc3\xa9", 3), "ab");  // never cuts inside a character
  EXPECT_EQ(percentDecode("a%2Fb+c%zz"), "a/b+c%zz");
  EXPECT_EQ(percentDecode("a+b", true), "a b");
}

}  // namespace
}  // namespace vigie
