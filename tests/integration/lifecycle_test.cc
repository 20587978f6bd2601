// The vigie binary's own lifecycle under full load: 2,000 checks every 2 s
// (1,000 probes/s) against a real nginx, an eighth of them on a slow page so that hundreds of
// attempts are in flight at any moment. A SIGHUP with an invalid file keeps the
// running configuration; a SIGHUP with a valid file that removes 500 checks and
// adds 500 leaves no series of the removed ones, keeps every kept check's
// counters and state, and loses none of their results (every gap in a kept
// check's results around the reload is a turn the scheduler says it skipped);
// SIGTERM then ends the process cleanly within 2 s.

#include <curl/curl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;

constexpr int kChecks = 2000;
constexpr int kRemoved = 500;  // svc1500..svc1999 go, new0..new499 come
constexpr int kSlowEvery = 8;  // svc0, svc8, ... read a page nginx sends slowly

std::string get(const std::string& url, long* status = nullptr) {
  std::string body;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* ud) -> size_t {
        static_cast<std::string*>(ud)->append(p, s * n);
        return s * n;
      });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  long code = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (status) *status = code;
  curl_easy_cleanup(c);
  return body;
}

bool eventually(std::chrono::milliseconds limit, const std::function<bool()>& pred) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

double metricValue(const std::string& metrics, const std::string& name) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// Per service: the sum of vigie_check_results_total over its results.
std::map<std::string, double> resultsPerService(const std::string& metrics) {
  std::map<std::string, double> out;
  std::istringstream in(metrics);
  const std::string family = "vigie_check_results_total{";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(family, 0) != 0) continue;
    const auto s = line.find("service=\"");
    if (s == std::string::npos) continue;
    const auto e = line.find('"', s + 9);
    out[line.substr(s + 9, e - s - 9)] += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return out;
}

// "2026-03-01T12:00:00.123Z" -> seconds since the epoch.
double parseTime(const std::string& t) {
  std::tm tm{};
  const char* rest = strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  double frac = 0;
  if (rest && *rest == '.') frac = std::stod(std::string("0") + std::string(rest).substr(0, 7));
  return static_cast<double>(timegm(&tm)) + frac;
}

double wallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Lifecycle : public ::testing::Test {
 protected:
  static NginxOptions nginxOptions() {
    NginxOptions o;
    // 1 KiB at once, the rest when nginx's rate limiter lets it go, at the next
    // turn of its clock's second: each attempt on /slow.txt stays in flight for
    // up to a second.
    o.locations = {{"= /slow.txt", "limit_rate 1024;"}};
    return o;
  }

  void SetUp() override {
    dir_ = makeTempDir("vigie-lifecycle");
    writeFile(nginx_.root() + "/ok.txt", "OK\n");
    writeFile(nginx_.root() + "/slow.txt", "OK\n" + std::string(1300, ' ') + "\n");
    port_ = freePort();
    base_ = fmt::format("http://127.0.0.1:{}", port_);
  }
  void TearDown() override { removeTree(dir_); }

  // Services `names`, one http check each, every 2 s.
  std::string config(const std::vector<std::string>& names) const {
    std::string y = fmt::format(
        "listen: \"127.0.0.1:{}\"\nlocation: test\n"
        "defaults: {{interval: 2s, timeout: 1500ms, failure_threshold: 1}}\nservices:\n",
        port_);
    y.reserve(names.size() * 120);
    for (const auto& n : names) {
      const bool slow = n.rfind("svc", 0) == 0 && std::stoi(n.substr(3)) % kSlowEvery == 0;
      y += fmt::format("  - name: {}\n    checks:\n      - name: health\n        http: {{url: \"{}\"}}\n",
                       n, nginx_.url(slow ? "/slow.txt" : "/ok.txt"));
    }
    return y;
  }

  Nginx nginx_{nginxOptions()};
  std::string dir_;
  int port_ = 0;
  std::string base_;
};

TEST_F(Lifecycle, ReloadsAndStopsUnderFullLoad) {
  // The slow page is slow (else this test proves less than it says).
  const auto t_slow = std::chrono::steady_clock::now();
  ASSERT_EQ(get(nginx_.url("/slow.txt")).size(), 1304u);
  const double slow_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_slow).count();
  EXPECT_LT(slow_s, 1.3) << "/slow.txt would time out";

  std::vector<std::string> first;
  for (int i = 0; i < kChecks; ++i) first.push_back(fmt::format("svc{}", i));
  const std::string file = dir_ + "/vigie.yaml";
  writeFile(file, config(first));
  Process vigie({{VIGIE_BINARY, "--config", file}, {}, dir_ + "/log", ""});

  std::string metrics;
  std::map<std::string, double> before;
  ASSERT_TRUE(eventually(15s, [&] {
    metrics = get(base_ + "/metrics");
    before = resultsPerService(metrics);
    if (before.size() != static_cast<std::size_t>(kChecks)) return false;
    for (const auto& [service, n] : before) {
      if (n < 1) return false;
    }
    return true;
  })) << before.size() << " checks with results\n"
      << vigie.output();
  EXPECT_EQ(metricValue(metrics, "vigie_checks"), kChecks);
  const double in_flight = metricValue(metrics, "vigie_probes_in_flight");
  std::cout << fmt::format("{} checks every 2 s, {} in flight at a scrape, /slow.txt took {:.2f} s\n",
                           kChecks, in_flight, slow_s);
  EXPECT_GT(in_flight, 20) << "the slow page keeps attempts in flight";

  // --- SIGHUP with an invalid file: refused, the running configuration stays.
  writeFile(file, config(first) + "  - name: svc0\n    checks: [{name: x, http: {url: \"ftp://x\"}}]\n");
  kill(vigie.pid(), SIGHUP);
  ASSERT_TRUE(eventually(15s, [&] {
    metrics = get(base_ + "/metrics");
    return metricValue(metrics, "vigie_config_last_reload_successful") == 0;
  })) << vigie.output();
  EXPECT_EQ(metricValue(metrics, "vigie_config_reload_failures_total"), 1);
  EXPECT_EQ(metricValue(metrics, "vigie_checks"), kChecks);
  EXPECT_NE(vigie.output().find("reload of " + file + " refused"), std::string::npos);
  const auto at_refusal = resultsPerService(metrics);
  ASSERT_TRUE(eventually(15s, [&] {
    const auto now = resultsPerService(get(base_ + "/metrics"));
    if (now.size() != static_cast<std::size_t>(kChecks)) return false;
    for (const auto& [service, n] : at_refusal) {
      const auto it = now.find(service);
      if (it == now.end() || it->second <= n) return false;
    }
    return true;
  })) << "every check keeps running after a refused reload";

  // --- SIGHUP with a valid file: 500 checks go, 500 come, 1,500 stay.
  std::vector<std::string> second(first.begin(), first.end() - kRemoved);
  for (int i = 0; i < kRemoved; ++i) second.push_back(fmt::format("new{}", i));
  writeFile(file, config(second));
  metrics = get(base_ + "/metrics");
  const auto at_reload = resultsPerService(metrics);
  const double skipped_before = metricValue(metrics, "vigie_probes_skipped_total");
  const double late_before = metricValue(metrics, "vigie_probe_late_completions_total");
  const double t_reload = wallNow();
  const auto t0 = std::chrono::steady_clock::now();
  kill(vigie.pid(), SIGHUP);
  ASSERT_TRUE(eventually(15s, [&] {
    metrics = get(base_ + "/metrics");
    return metricValue(metrics, "vigie_config_last_reload_successful") == 1;
  })) << vigie.output();
  std::cout << fmt::format("SIGHUP to applied (seen in /metrics): {} ms\n",
                           std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - t0)
                               .count());
  // Two more turns for everyone: new checks report, kept ones go on.
  std::map<std::string, double> after;
  ASSERT_TRUE(eventually(15s, [&] {
    metrics = get(base_ + "/metrics");
    after = resultsPerService(metrics);
    if (after.size() != static_cast<std::size_t>(kChecks)) return false;
    for (const auto& [service, n] : after) {
      const auto it = at_reload.find(service);
      if (n < (it == at_reload.end() ? 1 : it->second + 2)) return false;
    }
    return true;
  })) << after.size() << " checks\n"
      << vigie.output();
  EXPECT_EQ(metricValue(metrics, "vigie_checks"), kChecks);
  // No stale series: nothing of the removed checks in /metrics or the API.
  for (int i = kChecks - kRemoved; i < kChecks; ++i) {
    const std::string label = fmt::format("service=\"svc{}\"", i);
    ASSERT_EQ(metrics.find(label), std::string::npos) << "stale series " << label;
  }
  for (int i = 0; i < kRemoved; ++i) {
    ASSERT_NE(metrics.find(fmt::format("probe_success{{service=\"new{}\"", i)), std::string::npos)
        << "new" << i;
  }
  // Kept checks keep their counters (no reset) and their state.
  for (int i = 0; i < kChecks - kRemoved; ++i) {
    const std::string s = fmt::format("svc{}", i);
    ASSERT_GE(after.at(s), at_reload.at(s) + 2) << s;
  }

  // No lost result: around the reload, each kept check's results follow each other
  // one interval (2 s) apart; a gap of two intervals is a lost result unless the
  // scheduler counted a skipped turn for it.
  long status = 0;
  const std::string api = get(base_ + "/api/v1/checks", &status);
  ASSERT_EQ(status, 200);
  const auto doc = boost::json::parse(api);
  metrics = get(base_ + "/metrics");
  const double skipped = metricValue(metrics, "vigie_probes_skipped_total") - skipped_before;
  const double late = metricValue(metrics, "vigie_probe_late_completions_total") - late_before;
  int kept = 0, gaps = 0, straddled_slow = 0;
  double worst = 0;
  for (const auto& c : doc.at("checks").as_array()) {
    const std::string key(c.at("key").as_string());
    if (key.rfind("svc", 0) != 0) {
      EXPECT_EQ(key.rfind("new", 0), 0u) << key;
      continue;
    }
    const int n = std::stoi(key.substr(3));
    ASSERT_LT(n, kChecks - kRemoved) << key << " was removed";
    ++kept;
    std::vector<double> at;
    for (const auto& r : c.at("recent").as_array()) at.push_back(parseTime(std::string(r.at("at").as_string())));
    // The result started just before the reload and the one just after.
    for (std::size_t i = 1; i < at.size(); ++i) {
      if (at[i - 1] <= t_reload && at[i] > t_reload) {
        const double gap = at[i] - at[i - 1];
        worst = std::max(worst, gap);
        if (gap >= 3.8) ++gaps;
        if (n % kSlowEvery == 0) ++straddled_slow;
      }
    }
  }
  EXPECT_EQ(kept, kChecks - kRemoved);
  std::cout << fmt::format(
      "reload: {} kept checks, {} slow ones straddling it, widest gap {:.2f} s, {} gaps of 2 "
      "intervals, {} turns skipped, {} late completions\n",
      kept, straddled_slow, worst, gaps, skipped, late);
  EXPECT_GT(straddled_slow, (kChecks - kRemoved) / kSlowEvery / 2);
  EXPECT_LE(gaps, skipped) << "results lost at the reload";

  // --- SIGTERM under the same load: a clean exit within 2 s.
  const auto t_term = std::chrono::steady_clock::now();
  kill(vigie.pid(), SIGTERM);
  const auto st = vigie.wait(3s);
  const auto took = std::chrono::steady_clock::now() - t_term;
  ASSERT_TRUE(st) << "still running 3 s after SIGTERM";
  std::cout << fmt::format("SIGTERM to exit: {} ms\n",
                           std::chrono::duration_cast<std::chrono::milliseconds>(took).count());
  EXPECT_LT(took, 2s);
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by signal " << WTERMSIG(*st) << "\n" << vigie.output();
  EXPECT_EQ(WEXITSTATUS(*st), 0);
  const std::string log = vigie.output();
  for (const char* crash : {"terminate called", "Segmentation", "Sanitizer", "runtime error",
                            "Assertion", "double free", "critical"}) {
    EXPECT_EQ(log.find(crash), std::string::npos) << crash << " in:\n" << log;
  }
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

}  // namespace
}  // namespace vigie::test
