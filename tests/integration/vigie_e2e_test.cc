// The vigie binary as a user runs it: the demo, a real nginx target, reloads,
// signals, check-config and probe. Everything on loopback, bounded in time.

#include <gtest/gtest.h>

#include <curl/curl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/support/http_client.h"
#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;

std::string metricLine(const std::string& metrics, const std::string& prefix) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

const boost::json::object* findCheck(const boost::json::value& doc, const std::string& key) {
  for (const auto& c : doc.at("checks").as_array()) {
    if (c.at("key").as_string() == key) return &c.as_object();
  }
  return nullptr;
}

struct Run {
  int status = -1;
  std::string output;
};

Run runVigie(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  const auto dir = makeTempDir("vigie-cli");
  args.insert(args.begin(), VIGIE_BINARY);
  Process p({args, env, dir + "/out.txt", ""});
  auto st = p.wait(20s);
  Run r;
  r.status = st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
  r.output = p.output();
  removeTree(dir);
  return r;
}

TEST(Demo, ShowsEveryTargetWithinOneInterval) {
  const int port = freePort();
  const auto dir = makeTempDir("vigie-demo");
  Process vigie({{VIGIE_BINARY, "demo", "--listen", fmt::format("127.0.0.1:{}", port)},
                 {},
                 dir + "/log.txt",
                 ""});
  const auto base = fmt::format("http://127.0.0.1:{}", port);
  std::string metrics;
  // The demo's interval is 5 s: every target has a result within it; the heartbeat
  // has one as soon as the demo's first push (after 2 s) lands.
  ASSERT_TRUE(eventually(8s, [&] {
    metrics = httpGet(base + "/metrics").body;
    int n = 0;
    std::istringstream in(metrics);
    for (std::string line; std::getline(in, line);) n += line.rfind("probe_success{", 0) == 0;
    return n == 8;
  })) << metrics << vigie.output();
  EXPECT_NE(metricLine(metrics, "probe_success{service=\"obsportal\"").find("} 1"), std::string::npos);
  EXPECT_NE(metricLine(metrics, "probe_success{service=\"searchcal\"").find("} 0"), std::string::npos);
  EXPECT_NE(metrics.find("vigie_target_info{service=\"obsportal\""), std::string::npos);
  EXPECT_NE(metrics.find("version=\"2.4.1\""), std::string::npos);

  const auto api = httpGet(base + "/api/v1/checks");
  ASSERT_EQ(api.status, 200);
  const auto doc = boost::json::parse(api.body);
  const auto* degraded = findCheck(doc, "catalog/health");
  ASSERT_TRUE(degraded);
  EXPECT_EQ(degraded->at("state").as_string(), "degraded");
  EXPECT_EQ(degraded->at("reason").as_string(), "health_warn");
  const auto* failing = findCheck(doc, "searchcal/health");
  ASSERT_TRUE(failing);
  EXPECT_EQ(failing->at("state").as_string(), "down");
  EXPECT_EQ(failing->at("reason").as_string(), "http_status");
  EXPECT_NE(std::string(failing->at("detail").as_string()).find("database"), std::string::npos);
  const auto* disk = findCheck(doc, "legacy-archive/scratch-volume");
  ASSERT_TRUE(disk);
  EXPECT_EQ(disk->at("state").as_string(), "up") << boost::json::serialize(*disk);
  EXPECT_EQ(disk->at("kind").as_string(), "disk");
  const auto* beat = findCheck(doc, "backup-job/nightly");
  ASSERT_TRUE(beat);
  EXPECT_EQ(beat->at("state").as_string(), "up") << boost::json::serialize(*beat);
  EXPECT_EQ(beat->at("kind").as_string(), "heartbeat");
  const auto* healthy = findCheck(doc, "aspro/health");
  ASSERT_TRUE(healthy);
  EXPECT_EQ(healthy->at("state").as_string(), "up");

  EXPECT_EQ(httpGet(base + "/healthz").status, 200);
  EXPECT_EQ(httpGet(base + "/readyz").status, 200);
  EXPECT_EQ(httpGet(base + "/api/v1/checks/nope/nothing").status, 404);
  removeTree(dir);
}

class WithNginx : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = makeTempDir("vigie-e2e");
    writeFile(nginx_.root() + "/ok", "OK\n");
    writeFile(nginx_.root() + "/health.json",
              R"({"status":"pass","version":"7.1","checks":{"db:ping":[{"status":"pass"}]}})");
    port_ = freePort();
    base_ = fmt::format("http://127.0.0.1:{}", port_);
  }
  void TearDown() override { removeTree(dir_); }

  std::string config(const std::vector<std::string>& checks, int interval_ms = 200) {
    std::string y = fmt::format("listen: \"127.0.0.1:{}\"\nlocation: test\n", port_);
    y += fmt::format("defaults: {{interval: {}ms, timeout: {}ms, failure_threshold: 1}}\n",
                     interval_ms, interval_ms);
    y += "services:\n";
    for (const auto& c : checks) {
      y += fmt::format("  - name: {}\n    checks:\n      - name: health\n        http:\n"
                       "          url: \"{}\"\n",
                       c, nginx_.url(c == "web" ? "/health.json" : "/ok"));
    }
    return y;
  }

  Nginx nginx_;
  std::string dir_;
  int port_ = 0;
  std::string base_;
};

TEST_F(WithNginx, ReloadRefusesABadFileKeepsTheRunningOneAndAppliesAGoodOne) {
  const auto file = dir_ + "/vigie.yaml";
  writeFile(file, config({"web", "legacy"}));
  Process vigie({{VIGIE_BINARY, "--config", file, "--log-format", "json"}, {}, dir_ + "/log", ""});
  ASSERT_TRUE(eventually(5s, [&] {
    return httpGet(base_ + "/metrics").body.find("probe_success{service=\"legacy\"") != std::string::npos;
  })) << vigie.output();

  writeFile(file, "services:\n  - name: web\n    checks: [{name: a, http: {url: \"ftp://x\"}}]\n");
  kill(vigie.pid(), SIGHUP);
  ASSERT_TRUE(eventually(5s, [&] {
    return metricLine(httpGet(base_ + "/metrics").body, "vigie_config_last_reload_successful ") ==
           "vigie_config_last_reload_successful 0";
  })) << vigie.output();
  auto metrics = httpGet(base_ + "/metrics").body;
  EXPECT_NE(metrics.find("probe_success{service=\"legacy\""), std::string::npos);
  EXPECT_NE(vigie.output().find("vigie.yaml:3: services[0].checks[0].http.url"), std::string::npos)
      << vigie.output();

  // Every log line is one JSON object.
  std::istringstream log(vigie.output());
  int lines = 0;
  for (std::string line; std::getline(log, line); ++lines) {
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    ASSERT_FALSE(ec) << line;
    EXPECT_TRUE(v.as_object().contains("msg"));
  }
  EXPECT_GE(lines, 2);

  writeFile(file, config({"web", "newcomer"}));  // legacy removed, newcomer added
  kill(vigie.pid(), SIGHUP);
  ASSERT_TRUE(eventually(5s, [&] {
    metrics = httpGet(base_ + "/metrics").body;
    return metrics.find("probe_success{service=\"newcomer\"") != std::string::npos;
  })) << vigie.output();
  EXPECT_EQ(metricLine(metrics, "vigie_config_last_reload_successful "),
            "vigie_config_last_reload_successful 1");
  EXPECT_EQ(metrics.find("service=\"legacy\""), std::string::npos) << "stale series";
  EXPECT_NE(metrics.find("vigie_health_component_status{service=\"web\""), std::string::npos);
}

// A Kubernetes ConfigMap volume: vigie.yaml -> ..data/vigie.yaml, ..data -> a
// timestamped directory, swapped atomically by the kubelet. --watch-config sees
// the swap and reloads without a signal.
TEST_F(WithNginx, WatchConfigReloadsOnAConfigMapSymlinkSwap) {
  const auto publish = [this](int version, const std::string& text) {
    const auto d = fmt::format("..2026_11_29_{}", version);
    mkdir((dir_ + "/" + d).c_str(), 0755);
    writeFile(dir_ + "/" + d + "/vigie.yaml", text);
    ASSERT_EQ(symlink(d.c_str(), (dir_ + "/..data_tmp").c_str()), 0);
    ASSERT_EQ(rename((dir_ + "/..data_tmp").c_str(), (dir_ + "/..data").c_str()), 0);
  };
  publish(1, config({"web", "legacy"}));
  ASSERT_EQ(symlink("..data/vigie.yaml", (dir_ + "/vigie.yaml").c_str()), 0);
  Process vigie({{VIGIE_BINARY, "--config", dir_ + "/vigie.yaml", "--watch-config", "0.2"},
                 {},
                 dir_ + "/log",
                 ""});
  ASSERT_TRUE(eventually(5s, [&] {
    return httpGet(base_ + "/metrics").body.find("probe_success{service=\"legacy\"") != std::string::npos;
  })) << vigie.output();

  publish(2, config({"web", "newcomer"}));
  std::string metrics;
  ASSERT_TRUE(eventually(5s, [&] {
    metrics = httpGet(base_ + "/metrics").body;
    return metrics.find("probe_success{service=\"newcomer\"") != std::string::npos;
  })) << vigie.output();
  EXPECT_EQ(metrics.find("service=\"legacy\""), std::string::npos) << "stale series";
  EXPECT_NE(vigie.output().find("a change of the configuration file"), std::string::npos)
      << vigie.output();

  // A broken version is refused and the running one stays; the next good one applies.
  publish(3, "services: [\n");
  ASSERT_TRUE(eventually(5s, [&] {
    return metricLine(httpGet(base_ + "/metrics").body, "vigie_config_last_reload_successful ") ==
           "vigie_config_last_reload_successful 0";
  })) << vigie.output();
  EXPECT_NE(httpGet(base_ + "/metrics").body.find("probe_success{service=\"newcomer\""),
            std::string::npos);
}

TEST_F(WithNginx, SigtermUnderLoadExitsCleanlyWithinTwoSeconds) {
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) names.push_back(fmt::format("svc{}", i));
  const auto file = dir_ + "/vigie.yaml";
  writeFile(file, config(names, 300));
  Process vigie({{VIGIE_BINARY, "--config", file}, {}, dir_ + "/log", ""});
  ASSERT_TRUE(eventually(5s, [&] {
    return metricLine(httpGet(base_ + "/metrics").body, "vigie_probes_total{result=\"ok\"}")
               .find(" 0") == std::string::npos &&
           !metricLine(httpGet(base_ + "/metrics").body, "vigie_probes_total{result=\"ok\"}").empty();
  })) << vigie.output();
  std::this_thread::sleep_for(500ms);
  const auto t0 = std::chrono::steady_clock::now();
  kill(vigie.pid(), SIGTERM);
  auto st = vigie.wait(2s);
  ASSERT_TRUE(st) << "still running 2 s after SIGTERM";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by a signal: " << WTERMSIG(*st);
  EXPECT_EQ(WEXITSTATUS(*st), 0);
}

TEST_F(WithNginx, CheckConfigAndProbeCommands) {
  const auto good = dir_ + "/good.yaml";
  writeFile(good, config({"web"}));
  auto r = runVigie({"check-config", good});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ok (1 services, 1 checks)"), std::string::npos) << r.output;

  r = runVigie({"check-config", std::string(VIGIE_SOURCE_DIR) + "/tests/data/config/invalid-many.yaml"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("invalid-many.yaml:13: services[0].checks[0].timeout:"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("8 errors found"), std::string::npos) << r.output;

  r = runVigie({"probe", nginx_.url("/health.json"), "-C", "json:/version=7.1"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("result      ok"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("version     7.1"), std::string::npos) << r.output;

  r = runVigie({"probe", nginx_.url("/missing")});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("fail (http_status)"), std::string::npos) << r.output;

  r = runVigie({"probe", "ftp://example"});
  EXPECT_EQ(r.status, 2) << r.output;

  r = runVigie({"probe", "http://user:s3cret@" + nginx_.url("/ok").substr(7)});
  EXPECT_EQ(r.output.find("s3cret"), std::string::npos) << r.output;

  // Every kind: tcp, disk; a heartbeat explains how to push.
  const auto host_port = nginx_.url("/").substr(7, nginx_.url("/").size() - 8);
  r = runVigie({"probe", "tcp://" + host_port, "--send", "HEAD /ok HTTP/1.0\r\n\r\n", "--expect",
                "^HTTP/1\\.[01] 200"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("tcp " + host_port), std::string::npos) << r.output;
  r = runVigie({"probe", "tcp://" + host_port, "--send", "HEAD /ok HTTP/1.0\r\n\r\n", "--expect",
                "^SSH-"});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("fail (body)"), std::string::npos) << r.output;
  r = runVigie({"probe", dir_, "--min-free", "0.1%"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("disk " + dir_), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("free_ratio"), std::string::npos) << r.output;
  r = runVigie({"probe", dir_ + "/does-not-exist"});
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("fail (disk_read)"), std::string::npos) << r.output;
  r = runVigie({"probe", "--kind", "heartbeat", "x"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("/api/v1/push/"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vigie::test
