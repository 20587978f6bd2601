// Sharding end to end: three vigie processes on loopback share one config of 66
// checks as shards 0/3, 1/3 and 2/3, each told the others' addresses. Every check
// is run by exactly one of them (their /api/v1/checks are disjoint, cover every
// key, and each key sits where FNV-1a 64 says), each /metrics exports only its own
// checks with the shard label, replica 0's services API and dashboard show every
// service with the states its peers found, a heartbeat pushed to the wrong
// replica is redirected (307) to the right one and following it works, and once a
// peer is gone its checks turn unknown and its pushes answer 421.

#include <curl/curl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/http_client.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

constexpr unsigned kShards = 3;

// Written here from the published algorithm, not taken from vigie: the README
// promises users they can compute a check's shard themselves.
unsigned ownerOf(const std::string& key) {
  std::uint64_t h = 14695981039346656037ULL;
  for (char c : key) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return static_cast<unsigned>(h % kShards);
}

struct Http {
  long status = 0;
  std::string body;
  std::string location;
};

Http request(const std::string& url, const std::string* post_body = nullptr, bool follow = false) {
  Http out;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (post_body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_body->c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(post_body->size()));
  }
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* ud) -> size_t {
        static_cast<std::string*>(ud)->append(p, s * n);
        return s * n;
      });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
  if (curl_easy_perform(c) == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
    char* loc = nullptr;
    if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc) out.location = loc;
  }
  curl_easy_cleanup(c);
  return out;
}

json::object getJson(const std::string& url) {
  const Http r = request(url);
  if (r.status != 200) return {};
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  return std::move(v.as_object());
}

class Sharding : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = makeTempDir("shard");
    // 12 services x 5 disk checks, and 6 heartbeats in one more service.
    std::string yaml =
        "defaults: {interval: 500ms, timeout: 450ms, failure_threshold: 1}\n"
        "groups: [{name: ops}]\n"
        "services:\n";
    for (int s = 0; s < 12; ++s) {
      const std::string name = fmt::format("svc-{:02}", s);
      services_.insert(name);
      yaml += fmt::format("  - name: {}\n    group: ops\n    checks:\n", name);
      for (int c = 0; c < 5; ++c) {
        yaml += fmt::format("      - name: disk-{}\n        disk: {{path: \"{}\"}}\n", c, dir_);
        keys_.insert(fmt::format("{}/disk-{}", name, c));
      }
    }
    services_.insert("jobs");
    yaml += "  - name: jobs\n    group: ops\n    checks:\n";
    for (int c = 0; c < 6; ++c) {
      yaml += fmt::format(
          "      - name: job-{}\n        heartbeat: {{period: 1h, grace: 1m, token: \"{}\"}}\n", c,
          kToken);
      keys_.insert(fmt::format("jobs/job-{}", c));
    }
    writeFile(dir_ + "/vigie.yaml", yaml);
    for (auto& p : ports_) p = freePort();
    for (unsigned i = 0; i < kShards; ++i) start(i);
  }

  void TearDown() override {
    for (auto& p : procs_) p.reset();
    removeTree(dir_);
  }

  void start(unsigned i) {
    std::string peers;
    for (unsigned j = 0; j < kShards; ++j) {
      if (j == i) continue;
      if (!peers.empty()) peers += ",";
      peers += fmt::format("127.0.0.1:{}", ports_[j]);
    }
    procs_[i] = std::make_unique<Process>(Process::Options{
        {VIGIE_BINARY, "--config", dir_ + "/vigie.yaml", "--listen",
         fmt::format("127.0.0.1:{}", ports_[i]), "--shard", fmt::format("{}/{}", i, kShards),
         "--peers", peers, "--peers-interval", "0.3"},
        {},
        fmt::format("{}/log-{}.txt", dir_, i),
        ""});
  }

  std::string base(unsigned i) const { return fmt::format("http://127.0.0.1:{}", ports_[i]); }

  std::string logs() const {
    std::string out;
    for (unsigned i = 0; i < kShards; ++i) {
      out +=
          fmt::format("--- replica {}:\n{}\n", i, readFile(fmt::format("{}/log-{}.txt", dir_, i)));
    }
    return out;
  }

  // The keys a replica's /api/v1/checks lists; empty when it does not answer or
  // does not say it is shard i of 3.
  std::set<std::string> localKeys(unsigned i) {
    const auto doc = getJson(base(i) + "/api/v1/checks");
    std::set<std::string> keys;
    if (!doc.contains("shard") ||
        doc.at("shard") != json::value(json::object{{"index", i}, {"count", kShards}})) {
      return keys;
    }
    for (const auto& c : doc.at("checks").as_array()) {
      keys.insert(std::string(c.at("key").as_string()));
    }
    return keys;
  }

  static constexpr const char* kToken = "sharding-test-token-0123456789";
  std::string dir_;
  std::set<std::string> keys_;
  std::set<std::string> services_;
  std::array<int, kShards> ports_{};
  std::array<std::unique_ptr<Process>, kShards> procs_;
};

TEST_F(Sharding, EveryCheckRunsOnceAndAnyReplicaShowsAll) {
  // 1. A partition of the keys, where the hash says.
  std::array<std::set<std::string>, kShards> local;
  ASSERT_TRUE(eventually(15s, [&] {
    for (unsigned i = 0; i < kShards; ++i) {
      local[i] = localKeys(i);
      if (local[i].empty()) return false;
    }
    return true;
  })) << logs();
  std::set<std::string> all;
  for (unsigned i = 0; i < kShards; ++i) {
    for (const auto& k : local[i]) {
      EXPECT_EQ(ownerOf(k), i) << k << " listed by replica " << i;
      EXPECT_TRUE(all.insert(k).second) << k << " listed by two replicas";
    }
  }
  EXPECT_EQ(all, keys_);
  for (unsigned i = 0; i < kShards; ++i) EXPECT_LT(local[i].size(), keys_.size()) << i;

  // 2. Replica 0's services API: every service, every disk check up, including
  // those its peers run; each check says which shard runs it.
  std::map<std::string, std::pair<std::string, unsigned>> seen;  // key -> (state, shard)
  std::set<std::string> seen_services;
  std::string last_doc;
  ASSERT_TRUE(eventually(15s,
                         [&] {
                           const auto doc = getJson(base(0) + "/api/v1/services");
                           if (!doc.contains("services")) return false;
                           last_doc = json::serialize(doc);
                           seen.clear();
                           seen_services.clear();
                           for (const auto& s : doc.at("services").as_array()) {
                             seen_services.insert(std::string(s.at("name").as_string()));
                             for (const auto& c : s.at("checks").as_array()) {
                               seen[std::string(c.at("key").as_string())] = {
                                   std::string(c.at("state").as_string()),
                                   c.at("shard").to_number<unsigned>()};
                             }
                           }
                           for (const auto& k : keys_) {
                             if (k.rfind("jobs/", 0) == 0) continue;  // heartbeats wait for a push
                             if (!seen.count(k) || seen[k].first != "up") return false;
                           }
                           return true;
                         }))
      << last_doc << logs();
  EXPECT_EQ(seen_services, services_);
  std::set<unsigned> shards_seen;
  for (const auto& [k, v] : seen) {
    EXPECT_EQ(v.second, ownerOf(k)) << k;
    shards_seen.insert(v.second);
  }
  EXPECT_EQ(shards_seen.size(), kShards);
  const auto svc_doc = getJson(base(0) + "/api/v1/services");
  for (const auto& s : svc_doc.at("services").as_array()) {
    if (s.at("name") != "jobs") {
      EXPECT_EQ(s.at("state"), "up") << json::serialize(s);
    }
  }
  // One remote check in full, read through replica 0.
  std::string remote_key;
  for (const auto& k : keys_) {
    if (ownerOf(k) == 2 && k.rfind("jobs/", 0) != 0) remote_key = k;
  }
  ASSERT_FALSE(remote_key.empty());
  const auto one = getJson(base(0) + "/api/v1/checks/" + remote_key);
  EXPECT_EQ(one.at("state"), "up");
  EXPECT_EQ(one.at("shard"), 2);
  EXPECT_EQ(one.at("kind"), "disk");

  // The dashboard of replica 0 names every service.
  const Http page = request(base(0) + "/");
  ASSERT_EQ(page.status, 200);
  for (const auto& s : services_) EXPECT_NE(page.body.find(s), std::string::npos) << s;

  // 3. /metrics: own checks only, each with the shard label.
  for (unsigned i = 0; i < kShards; ++i) {
    const Http m = request(base(i) + "/metrics");
    ASSERT_EQ(m.status, 200);
    EXPECT_NE(m.body.find(fmt::format("vigie_shard_info{{shard=\"{}\",shards=\"3\"}} 1\n", i)),
              std::string::npos);
    std::set<std::string> exported;
    std::istringstream in(m.body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("vigie_check_state{", 0) != 0) continue;
      EXPECT_NE(line.find(fmt::format(",shard=\"{}\",", i)), std::string::npos) << line;
      const auto s0 = line.find("service=\"") + 9;
      const auto c0 = line.find("check=\"") + 7;
      exported.insert(line.substr(s0, line.find('"', s0) - s0) + "/" +
                      line.substr(c0, line.find('"', c0) - c0));
    }
    EXPECT_EQ(exported, local[i]) << "replica " << i;
  }

  // 4. A heartbeat pushed to the wrong replica: 307 to the owner, which takes it.
  std::string job;
  for (const auto& k : keys_) {
    if (k.rfind("jobs/", 0) == 0 && ownerOf(k) == 1) job = k;
  }
  ASSERT_FALSE(job.empty()) << "no heartbeat owned by shard 1: change the check names";
  const std::string path = fmt::format("/api/v1/push/{}?token={}", job, kToken);
  const std::string body = "backup done";
  const Http redirect = request(base(0) + path, &body, false);
  EXPECT_EQ(redirect.status, 307) << redirect.body;
  EXPECT_EQ(redirect.location, base(1) + path);
  const auto why = json::parse(redirect.body).as_object();
  EXPECT_EQ(why.at("shard"), 1);
  const Http followed = request(base(0) + path, &body, true);
  ASSERT_EQ(followed.status, 200) << followed.body;
  EXPECT_EQ(json::parse(followed.body).at("accepted"), true);
  EXPECT_TRUE(eventually(5s, [&] {
    const auto c = getJson(base(1) + "/api/v1/checks/" + job);
    return c.contains("state") && c.at("state") == "up";
  }));
  // A check nobody runs is still 404.
  const Http unknown = request(base(0) + "/api/v1/push/jobs/nope?token=" + kToken, &body);
  EXPECT_EQ(unknown.status, 404);

  // 5. Replica 2 goes away: its checks turn unknown on replica 0, and a push for
  // one of them answers 421 with the shard to use.
  procs_[2]->stop();
  EXPECT_TRUE(eventually(10s, [&] {
    const auto c = getJson(base(0) + "/api/v1/checks/" + remote_key);
    return c.contains("state") && c.at("state") == "unknown";
  }));
  std::string job2;
  for (const auto& k : keys_) {
    if (k.rfind("jobs/", 0) == 0 && ownerOf(k) == 2) job2 = k;
  }
  if (!job2.empty()) {
    const Http misdirected =
        request(base(0) + fmt::format("/api/v1/push/{}?token={}", job2, kToken), &body);
    EXPECT_EQ(misdirected.status, 421) << misdirected.body;
    EXPECT_EQ(json::parse(misdirected.body).at("shard"), 2);
  }
}

TEST(ShardingStart, BadShardIsAClearStartError) {
  const auto dir = makeTempDir("shard-bad");
  writeFile(dir + "/vigie.yaml",
            "services:\n  - name: a\n    checks:\n      - name: d\n        disk: {path: /tmp}\n");
  Process p(
      {{VIGIE_BINARY, "--config", dir + "/vigie.yaml", "--listen", "127.0.0.1:0", "--shard", "3/3"},
       {},
       dir + "/log.txt",
       ""});
  const auto status = p.wait(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
  EXPECT_NE(p.output().find("--shard \"3/3\": the shard index must be below the number of shards"),
            std::string::npos)
      << p.output();
  Process q({{VIGIE_BINARY, "--config", dir + "/vigie.yaml", "--listen", "127.0.0.1:0"},
             {{"VIGIE_SHARD_COUNT", "3"}, {"POD_NAME", "vigie-web"}},
             dir + "/log2.txt",
             ""});
  const auto status2 = q.wait(10s);
  ASSERT_TRUE(status2.has_value());
  EXPECT_TRUE(WIFEXITED(*status2) && WEXITSTATUS(*status2) == 2);
  EXPECT_NE(q.output().find("POD_NAME=\"vigie-web\" does not end in -<ordinal>"), std::string::npos)
      << q.output();
  removeTree(dir);
}

}  // namespace
}  // namespace vigie::test
