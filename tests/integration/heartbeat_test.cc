// Heartbeat checks: the evaluation rules on a board with time passed in, and the
// push endpoint end to end on the vigie binary (tokens, status=fail, exit codes,
// a missed period), all on loopback.

#include <gtest/gtest.h>

#include <curl/curl.h>
#include <fmt/format.h>

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <thread>

#include "probes/heartbeat_probe.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"
#include "tests/support/http_client.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;

HeartbeatSpec spec(Duration period, Duration grace) {
  HeartbeatSpec s;
  s.period = period;
  s.grace = grace;
  s.token = "0123456789abcdef0123";
  return s;
}

TEST(HeartbeatEvaluate, WaitsForTheFirstPushUntilPeriodAndGraceHavePassed) {
  const auto t0 = SteadyClock::now();
  HeartbeatBoard board;
  board.watch("s/c", t0);
  const auto s = spec(60s, 10s);
  auto r = HeartbeatProbe::evaluate(s, board.find("s/c"), t0 + 69s);
  EXPECT_TRUE(r.inconclusive);
  EXPECT_EQ(r.detail, "waiting for the first push, expected every 1m (+10s grace)");
  r = HeartbeatProbe::evaluate(s, board.find("s/c"), t0 + 71s);
  EXPECT_FALSE(r.inconclusive);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_EQ(r.reason, Reason::heartbeat_missed);
  EXPECT_EQ(r.detail, "no push received in 1m11s, expected every 1m (+10s grace)");
  // A second watch (a reload) keeps the clock running.
  board.watch("s/c", t0 + 70s);
  EXPECT_EQ(HeartbeatProbe::evaluate(s, board.find("s/c"), t0 + 71s).reason,
            Reason::heartbeat_missed);
  EXPECT_TRUE(HeartbeatProbe::evaluate(s, nullptr, t0).inconclusive);
}

TEST(HeartbeatEvaluate, PushesDecide) {
  const auto t0 = SteadyClock::now();
  HeartbeatBoard board;
  board.watch("s/c", t0);
  const auto s = spec(60s, 0s);
  HeartbeatPush ok;
  ok.steady = t0 + 5s;
  ok.at = SystemClock::from_time_t(1795000000);
  board.record("s/c", ok);

  auto r = HeartbeatProbe::evaluate(s, board.find("s/c"), t0 + 35s);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.detail, "last push 30s ago");
  EXPECT_EQ(r.info.at("pushes"), "1");
  EXPECT_EQ(r.info.at("last_push"), "2026-11-18T11:06:40Z");

  r = HeartbeatProbe::evaluate(s, board.find("s/c"), t0 + 85s);
  EXPECT_EQ(r.reason, Reason::heartbeat_missed);
  EXPECT_EQ(r.detail, "last push 1m20s ago, expected every 1m");

  HeartbeatPush bad;
  ASSERT_FALSE(parseHeartbeatPush("", "3", "rsync: connection unexpectedly closed", bad));
  bad.steady = t0 + 90s;
  board.record("s/c", bad);
  r = HeartbeatProbe::evaluate(s, board.find("s/c"), t0 + 100s);
  EXPECT_EQ(r.reason, Reason::heartbeat_fail);
  EXPECT_EQ(r.detail,
            "job reported failure (exit code 3) 10s ago: rsync: connection unexpectedly closed");
  EXPECT_EQ(r.info.at("exit_code"), "3");
  EXPECT_EQ(r.info.at("pushes"), "2");
  board.forget("s/c");
  EXPECT_EQ(board.find("s/c"), nullptr);
}

TEST(HeartbeatPushParams, StatusAndExitCode) {
  struct Case {
    std::string status, exit_code;
    bool error, failed;
  };
  const Case cases[] = {
      {"", "", false, false},        {"ok", "", false, false},     {"success", "", false, false},
      {"fail", "", false, true},     {"failure", "", false, true}, {"", "0", false, false},
      {"", "1", false, true},        {"ok", "255", false, true},   {"maybe", "", true, false},
      {"", "256", true, false},      {"", "-1", true, false},      {"", "3x", true, false},
  };
  for (const auto& c : cases) {
    HeartbeatPush p;
    const auto err = parseHeartbeatPush(c.status, c.exit_code, "", p);
    EXPECT_EQ(err.has_value(), c.error) << c.status << "/" << c.exit_code;
    if (!err) {
      EXPECT_EQ(p.failed, c.failed) << c.status << "/" << c.exit_code;
    }
  }
  HeartbeatPush p;
  ASSERT_FALSE(parseHeartbeatPush("", "", std::string(5000, 'x') + "\xff", p));
  EXPECT_LE(p.message.size(), 1024u);
}

TEST(HeartbeatToken, ComparesWholeTokens) {
  EXPECT_TRUE(tokenMatches("0123456789abcdef", "0123456789abcdef"));
  EXPECT_FALSE(tokenMatches("0123456789abcdef", "0123456789abcdeF"));
  EXPECT_FALSE(tokenMatches("0123456789abcdef", "0123456789abcde"));
  EXPECT_FALSE(tokenMatches("0123456789abcdef", ""));
  EXPECT_FALSE(tokenMatches("", ""));
}

// --- the binary ---------------------------------------------------------------

struct Http {
  long status = 0;
  std::string body;
  std::string www_authenticate;
};

Http request(const std::string& method, const std::string& url,
             const std::vector<std::string>& headers = {}, const std::string& body = "") {
  Http out;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION,
                   +[](char* p, size_t s, size_t n, void* ud) -> size_t {
                     static_cast<std::string*>(ud)->append(p, s * n);
                     return s * n;
                   });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION,
                   +[](char* p, size_t s, size_t n, void* ud) -> size_t {
                     std::string line(p, s * n);
                     if (line.rfind("WWW-Authenticate:", 0) == 0 ||
                         line.rfind("www-authenticate:", 0) == 0) {
                       *static_cast<std::string*>(ud) = line;
                     }
                     return s * n;
                   });
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &out.www_authenticate);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return out;
}


constexpr const char* kToken = "s3cr3t-heartbeat-token-4f9a";

class PushEndpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = makeTempDir("vigie-heartbeat");
    port_ = freePort();
    base_ = fmt::format("http://127.0.0.1:{}", port_);
    writeFile(dir_ + "/vigie.yaml",
              fmt::format("listen: \"127.0.0.1:{}\"\n"
                          "defaults: {{interval: 200ms, timeout: 200ms}}\n"
                          "services:\n"
                          "  - name: backup\n"
                          "    checks:\n"
                          "      - name: nightly\n"
                          "        heartbeat: {{period: 1s, grace: 500ms, token: \"{}\"}}\n"
                          "      - name: never\n"
                          "        heartbeat: {{period: 1s, grace: 0s, token: \"{}\"}}\n"
                          "      - name: scratch\n"
                          "        disk: {{path: \"{}\"}}\n",
                          port_, kToken, kToken, dir_));
    vigie_ = std::make_unique<Process>(Process::Options{
        {VIGIE_BINARY, "--config", dir_ + "/vigie.yaml"}, {}, dir_ + "/log.txt", ""});
    ASSERT_TRUE(eventually(5s, [&] { return request("GET", base_ + "/readyz").status == 200; }))
        << vigie_->output();
  }
  void TearDown() override {
    vigie_.reset();
    removeTree(dir_);
  }

  boost::json::object check(const std::string& key) {
    const auto r = request("GET", base_ + "/api/v1/checks/" + key);
    EXPECT_EQ(r.status, 200) << r.body;
    return boost::json::parse(r.body).as_object();
  }
  std::string state(const std::string& key) {
    return std::string(check(key).at("state").as_string());
  }
  std::string push(const std::string& suffix, const std::vector<std::string>& headers = {},
                   const std::string& body = "", long expect = 200) {
    const auto r = request("POST", base_ + "/api/v1/push/" + suffix, headers, body);
    EXPECT_EQ(r.status, expect) << suffix << ": " << r.body;
    return r.body;
  }

  std::string dir_;
  int port_ = 0;
  std::string base_;
  std::unique_ptr<Process> vigie_;
};

TEST_F(PushEndpoint, TokensStatusesAndAMissedPeriod) {
  const std::string bearer = fmt::format("Authorization: Bearer {}", kToken);
  EXPECT_EQ(state("backup/nightly"), "unknown");

  // Missing or wrong tokens: 401, and nothing changes.
  push("backup/nightly", {}, "", 401);
  push("backup/nightly", {"Authorization: Bearer wrong-token-wrong-token"}, "", 401);
  push("backup/nightly?token=s3cr3t-heartbeat-token-4f9b", {}, "", 401);
  const auto denied = request("POST", base_ + "/api/v1/push/backup/nightly");
  EXPECT_NE(denied.www_authenticate.find("Bearer"), std::string::npos);
  EXPECT_NE(denied.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(state("backup/nightly"), "unknown");

  // A good push is applied before the answer.
  auto body = push("backup/nightly", {bearer}, "12 files copied");
  EXPECT_EQ(boost::json::parse(body).at("state").as_string(), "up") << body;
  EXPECT_EQ(state("backup/nightly"), "up");

  // status=fail with the token in the query, and the body as the message.
  body = push(fmt::format("backup/nightly?token={}&status=fail", kToken), {}, "disk full on /backup");
  EXPECT_EQ(boost::json::parse(body).at("state").as_string(), "down");
  auto c = check("backup/nightly");
  EXPECT_EQ(c.at("reason").as_string(), "heartbeat_fail");
  EXPECT_NE(std::string(c.at("detail").as_string()).find("disk full on /backup"), std::string::npos)
      << boost::json::serialize(c);

  // Recovery, then healthchecks.io's path forms: /fail and /{exit code}.
  push("backup/nightly", {bearer});
  EXPECT_EQ(state("backup/nightly"), "up");
  push("backup/nightly/3", {bearer});
  c = check("backup/nightly");
  EXPECT_EQ(c.at("state").as_string(), "down");
  EXPECT_NE(std::string(c.at("detail").as_string()).find("exit code 3"), std::string::npos);
  push("backup/nightly/0", {bearer});
  EXPECT_EQ(state("backup/nightly"), "up");
  push("backup/nightly/fail", {bearer});
  EXPECT_EQ(state("backup/nightly"), "down");
  // GET works too, for tools that cannot POST.
  EXPECT_EQ(request("GET", fmt::format("{}/api/v1/push/backup/nightly?token={}", base_, kToken))
                .status,
            200);
  EXPECT_EQ(state("backup/nightly"), "up");

  // Then silence: period 1 s + grace 0.5 s, evaluated every 200 ms.
  const auto silent_since = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually(3s, [&] { return state("backup/nightly") == "down"; }));
  const auto took = std::chrono::steady_clock::now() - silent_since;
  EXPECT_GE(took, 1400ms);
  c = check("backup/nightly");
  EXPECT_EQ(c.at("reason").as_string(), "heartbeat_missed");
  EXPECT_NE(std::string(c.at("detail").as_string()).find("expected every 1s (+500ms grace)"),
            std::string::npos);

  // A check never pushed goes down once its first period has passed.
  EXPECT_EQ(check("backup/never").at("reason").as_string(), "heartbeat_missed");

  // Bad requests.
  push("backup/nightly?exit_code=abc", {bearer}, "", 400);
  push("backup/nope", {bearer}, "", 404);
  push("backup", {bearer}, "", 404);
  push("backup/scratch", {bearer}, "", 409);

  // The token is a secret: not in the API, the metrics, the page or the log.
  for (const auto& path : {"/api/v1/checks", "/metrics", "/"}) {
    const auto r = request("GET", base_ + path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body.find(kToken), std::string::npos) << path;
  }
  EXPECT_EQ(vigie_->output().find(kToken), std::string::npos);
}

}  // namespace
}  // namespace vigie::test
