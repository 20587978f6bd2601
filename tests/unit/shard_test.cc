// Sharding: N/M parsing from the flag, the environment and a pod name; ownership
// is a partition; filterForShard keeps every service; a peer's /api/v1/checks
// read back into statuses; the merged snapshot and the shard fields of the API
// and metrics.

#include "collector/shard.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "collector/peers.h"
#include "exporters/api.h"
#include "exporters/metrics.h"
#include "exporters/services_api.h"

namespace vigie {
namespace {

namespace json = boost::json;

using Env = std::map<std::string, std::string>;

std::function<const char*(const char*)> envOf(const Env& env) {
  return [&env](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
}

TEST(Shard, HashIsFnv1a64) {
  // Published FNV-1a 64 test vectors: users can compute the owner themselves.
  EXPECT_EQ(shardHash(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(shardHash("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(shardHash("foobar"), 0x85944171f73967e8ULL);
  EXPECT_EQ(shardOf("foobar", 3), 0x85944171f73967e8ULL % 3);
  EXPECT_EQ(shardOf("anything", 1), 0u);
}

TEST(Shard, ParseForms) {
  struct Case {
    std::string text;
    bool ok;
    unsigned index, count;
    std::string error_has;
  };
  const std::vector<Case> cases = {
      {"0/1", true, 0, 1, ""},
      {"0/3", true, 0, 3, ""},
      {"2/3", true, 2, 3, ""},
      {"9999/10000", true, 9999, 10000, ""},
      {"3/3", false, 0, 0, "below the number of shards (0 to 2)"},
      {"0/0", false, 0, 0, "between 1 and 10000"},
      {"0/10001", false, 0, 0, "between 1 and 10000"},
      {"1", false, 0, 0, "not of the form N/M"},
      {"", false, 0, 0, "not of the form N/M"},
      {"-1/3", false, 0, 0, "decimal numbers"},
      {"a/3", false, 0, 0, "decimal numbers"},
      {" 1/3", false, 0, 0, "decimal numbers"},
      {"1/3/4", false, 0, 0, "decimal numbers"},
      {"1/", false, 0, 0, "decimal numbers"},
  };
  for (const auto& c : cases) {
    std::string error;
    const auto spec = parseShardSpec(c.text, error);
    ASSERT_EQ(spec.has_value(), c.ok) << c.text << ": " << error;
    if (c.ok) {
      EXPECT_EQ(spec->index, c.index) << c.text;
      EXPECT_EQ(spec->count, c.count) << c.text;
    } else {
      EXPECT_NE(error.find(c.error_has), std::string::npos) << c.text << ": " << error;
    }
  }
}

TEST(Shard, PodOrdinal) {
  EXPECT_EQ(podOrdinal("vigie-2"), 2u);
  EXPECT_EQ(podOrdinal("vigie-shard-10"), 10u);
  EXPECT_EQ(podOrdinal("vigie-0"), 0u);
  EXPECT_FALSE(podOrdinal("vigie"));
  EXPECT_FALSE(podOrdinal("vigie-"));
  EXPECT_FALSE(podOrdinal("vigie-7f9c6d-x2x4q"));
}

TEST(Shard, ResolveOrder) {
  struct Case {
    std::string flag, count_flag;
    Env env;
    unsigned index, count;
  };
  const std::vector<Case> cases = {
      {"", "", {}, 0, 1},
      {"1/3", "", {{"VIGIE_SHARD", "2/3"}}, 1, 3},  // the flag wins
      {"", "", {{"VIGIE_SHARD", "2/3"}}, 2, 3},
      {"", "", {{"VIGIE_SHARD_COUNT", "4"}, {"HOSTNAME", "vigie-3"}}, 3, 4},
      {"", "", {{"VIGIE_SHARD_COUNT", "4"}, {"POD_NAME", "vigie-1"}, {"HOSTNAME", "x-3"}}, 1, 4},
      {"", "4", {{"HOSTNAME", "vigie-2"}}, 2, 4},
      {"", "1", {{"HOSTNAME", "vigie-0"}}, 0, 1},
      {"1/3", "3", {}, 1, 3},                     // a count that agrees is fine
      {"", "", {{"HOSTNAME", "vigie-2"}}, 0, 1},  // a pod name alone does not shard
  };
  for (const auto& c : cases) {
    const ShardSpec s = resolveShard(c.flag, c.count_flag, envOf(c.env));
    EXPECT_EQ(s.index, c.index) << c.flag << " " << c.count_flag;
    EXPECT_EQ(s.count, c.count) << c.flag << " " << c.count_flag;
  }
}

TEST(Shard, ResolveErrorsNameTheirSource) {
  struct Case {
    std::string flag, count_flag;
    Env env;
    std::string message_has;
  };
  const std::vector<Case> cases = {
      {"3/3", "", {}, "--shard \"3/3\": the shard index must be below"},
      {"", "", {{"VIGIE_SHARD", "x"}}, "VIGIE_SHARD \"x\" is not of the form N/M"},
      {"1/3", "4", {}, "--shard 1/3 says 3 shards but --shard-count says 4"},
      {"",
       "",
       {{"VIGIE_SHARD", "1/3"}, {"VIGIE_SHARD_COUNT", "2"}},
       "VIGIE_SHARD 1/3 says 3 shards but VIGIE_SHARD_COUNT says 2"},
      {"", "zero", {}, "--shard-count \"zero\""},
      {"", "0", {}, "--shard-count \"0\""},
      {"", "", {{"VIGIE_SHARD_COUNT", "-2"}}, "VIGIE_SHARD_COUNT=\"-2\""},
      {"", "3", {}, "neither POD_NAME nor HOSTNAME"},
      {"", "3", {{"HOSTNAME", "box"}}, "HOSTNAME=\"box\" does not end in -<ordinal>"},
      {"", "3", {{"POD_NAME", "vigie-3"}}, "the ordinal 3 of POD_NAME=\"vigie-3\" is not below"},
  };
  for (const auto& c : cases) {
    try {
      resolveShard(c.flag, c.count_flag, envOf(c.env));
      ADD_FAILURE() << "no error for " << c.flag << " " << c.count_flag;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.message_has), std::string::npos) << e.what();
    }
  }
}

TEST(Shard, OwnershipIsABalancedPartition) {
  constexpr unsigned kShards = 3;
  constexpr int kKeys = 10000;
  std::array<int, kShards> per{};
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = "service-" + std::to_string(i / 7) + "/check-" + std::to_string(i);
    int owners = 0;
    for (unsigned n = 0; n < kShards; ++n) {
      if (ownsCheck(ShardSpec{n, kShards}, key)) {
        ++owners;
        ++per[n];
      }
    }
    ASSERT_EQ(owners, 1) << key;
  }
  for (unsigned n = 0; n < kShards; ++n) {
    EXPECT_GT(per[n], kKeys / 3 - 300) << "shard " << n;
    EXPECT_LT(per[n], kKeys / 3 + 300) << "shard " << n;
  }
}

std::shared_ptr<Config> manyChecks(int services, int checks_each) {
  auto cfg = std::make_shared<Config>();
  cfg->groups = {{"g", ""}};
  for (int s = 0; s < services; ++s) {
    ServiceConfig svc;
    svc.name = "svc" + std::to_string(s);
    svc.group = "g";
    for (int c = 0; c < checks_each; ++c) {
      CheckConfig ck;
      ck.name = "c" + std::to_string(c);
      ck.key = svc.name + "/" + ck.name;
      ck.spec = DiskSpec{"/tmp"};
      svc.checks.push_back(ck);
    }
    cfg->services.push_back(std::move(svc));
  }
  cfg->clusters = {{"all", {"svc0", "svc1"}, ""}};
  return cfg;
}

TEST(Shard, FilterKeepsEveryServiceAndOnlyOwnedChecks) {
  const auto cfg = manyChecks(20, 3);  // some services will have no local check
  std::set<std::string> seen;
  bool some_service_empty = false;
  for (unsigned n = 0; n < 3; ++n) {
    const Config part = filterForShard(*cfg, ShardSpec{n, 3});
    EXPECT_EQ(part.shard.index, n);
    EXPECT_EQ(part.shard.count, 3u);
    ASSERT_EQ(part.services.size(), cfg->services.size());
    EXPECT_EQ(part.groups.size(), 1u);
    EXPECT_EQ(part.clusters.size(), 1u);
    for (std::size_t i = 0; i < part.services.size(); ++i) {
      EXPECT_EQ(part.services[i].name, cfg->services[i].name);
      some_service_empty = some_service_empty || part.services[i].checks.empty();
      for (const auto& c : part.services[i].checks) {
        EXPECT_EQ(shardOf(c.key, 3), n);
        EXPECT_TRUE(seen.insert(c.key).second) << c.key << " in two shards";
      }
    }
  }
  EXPECT_EQ(seen.size(), 60u);
  EXPECT_TRUE(some_service_empty);
  const Config one = filterForShard(*cfg, ShardSpec{});
  EXPECT_EQ(one.services[5].checks.size(), 3u);
}

// A status with most fields set, as a peer would hold it.
std::shared_ptr<CheckStatus> richStatus(const std::shared_ptr<const Config>& cfg, std::size_t s,
                                        std::size_t c) {
  auto st = std::make_shared<CheckStatus>();
  st->service = std::shared_ptr<const ServiceConfig>(cfg, &cfg->services[s]);
  st->check = std::shared_ptr<const CheckConfig>(cfg, &cfg->services[s].checks[c]);
  st->state = CheckState::down;
  st->pending = true;
  st->consecutive_failures = 4;
  Result r = Result::failure(Reason::http_status, "got 503");
  r.started = SystemClock::time_point(std::chrono::milliseconds(1700000000123));
  r.duration = 0.25;
  r.http_status = 503;
  r.version = "1.2.3";
  r.info["release_id"] = "r7";
  r.components.push_back({"db", Status::fail, "DOWN"});
  r.conditions.push_back({"status in [200]", false, "got 503"});
  st->last = r;
  st->last_failure = r.started;
  st->last_failure_result = r;
  st->last_change = r.started;
  st->recent.push_back({r.started, Status::fail, Reason::http_status, 0.25f});
  st->results_total = {5, 1, 4};
  st->state_changes = 2;
  st->flapping = true;
  st->flap_percent = 42.5;
  st->uptime = {0.5, std::nullopt, 0.75, std::nullopt};
  StateChange ch;
  ch.id = 9;
  ch.at = r.started;
  ch.name = st->check->key;
  ch.from = "up";
  ch.to = "down";
  ch.reason = Reason::http_status;
  ch.detail = "got 503";
  st->changes = std::make_shared<std::vector<StateChange>>(std::vector<StateChange>{ch});
  return st;
}

TEST(Peers, ReportReadsBackWhatTheApiWrites) {
  auto base = manyChecks(2, 2);
  base->shard = {1, 3};
  std::shared_ptr<const Config> cfg = base;
  Snapshot snap;
  snap.config = cfg;
  snap.checks.push_back(richStatus(cfg, 1, 0));
  snap.at = SystemClock::time_point(std::chrono::seconds(1700000001));
  std::string doc;
  ASSERT_TRUE(checksDocument(snap, "", snap.at, doc));

  PeerReport report;
  std::string error;
  ASSERT_TRUE(parsePeerReport(doc, report, error)) << error;
  EXPECT_EQ(report.shard.index, 1u);
  EXPECT_EQ(report.shard.count, 3u);
  ASSERT_EQ(report.checks.size(), 1u);
  EXPECT_EQ(report.checks[0].first, "svc1/c0");
  const CheckStatus& back = *report.checks[0].second;
  const CheckStatus& orig = *snap.checks[0];
  EXPECT_EQ(back.state, CheckState::down);
  EXPECT_TRUE(back.pending);
  EXPECT_EQ(back.consecutive_failures, 4);
  ASSERT_TRUE(back.last);
  EXPECT_EQ(back.last->reason, Reason::http_status);
  EXPECT_EQ(back.last->detail, "got 503");
  EXPECT_EQ(back.last->started, orig.last->started);
  EXPECT_EQ(back.last->http_status, 503);
  EXPECT_EQ(back.last->version, "1.2.3");
  EXPECT_EQ(back.last->info.at("release_id"), "r7");
  ASSERT_EQ(back.last->components.size(), 1u);
  EXPECT_EQ(back.last->components[0].status, Status::fail);
  ASSERT_EQ(back.last->conditions.size(), 1u);
  EXPECT_FALSE(back.last->conditions[0].ok);
  EXPECT_EQ(back.last_failure, orig.last_failure);
  ASSERT_TRUE(back.last_failure_result);
  EXPECT_EQ(back.last_failure_result->reason, Reason::http_status);
  ASSERT_EQ(back.recent.size(), 1u);
  EXPECT_EQ(back.recent[0].reason, Reason::http_status);
  EXPECT_EQ(back.results_total, orig.results_total);
  EXPECT_EQ(back.state_changes, 2u);
  EXPECT_TRUE(back.flapping);
  EXPECT_DOUBLE_EQ(back.flap_percent, 42.5);
  EXPECT_EQ(back.uptime, orig.uptime);
  ASSERT_TRUE(back.changes);
  ASSERT_EQ(back.changes->size(), 1u);
  EXPECT_EQ(back.changes->front().to, "down");
  // Serialized again (bound to the config), the check reads the same.
  auto bound = std::make_shared<CheckStatus>(back);
  bound->check = orig.check;
  bound->service = orig.service;
  EXPECT_EQ(json::serialize(checkJson(*bound, &cfg->shard)),
            json::serialize(checkJson(orig, &cfg->shard)));

  for (const std::string bad : {"", "[]", "{\"checks\":1}",
                                "{\"checks\":[],\"shard\":{\"index\":3,"
                                "\"count\":3}}",
                                "{\"checks\":[{\"key\":"}) {
    EXPECT_FALSE(parsePeerReport(bad, report, error)) << bad;
  }
  ASSERT_TRUE(parsePeerReport("{\"checks\":[{\"state\":\"up\"}]}", report, error));
  EXPECT_EQ(report.shard.count, 1u);   // an unsharded vigie
  EXPECT_TRUE(report.checks.empty());  // no key: skipped
}

TEST(Peers, MergeShowsEveryCheckAndAggregates) {
  auto base = manyChecks(6, 2);
  base->shard = {0, 3};
  std::shared_ptr<const Config> full = base;
  const auto local_cfg = std::make_shared<const Config>(filterForShard(*full, full->shard));
  Snapshot local;
  local.config = local_cfg;
  for (const auto& s : local_cfg->services) {
    for (const auto& c : s.checks) {
      auto st = std::make_shared<CheckStatus>();
      st->check = std::shared_ptr<const CheckConfig>(local_cfg, &c);
      st->service = std::shared_ptr<const ServiceConfig>(local_cfg, &s);
      st->state = CheckState::up;
      local.checks.push_back(st);
    }
  }
  ASSERT_GT(local.checks.size(), 0u);
  ASSERT_LT(local.checks.size(), 12u);
  // Shard 1 is known and says down; shard 2 did not answer.
  std::map<std::string, std::shared_ptr<const CheckStatus>> remote;
  for (std::size_t s = 0; s < full->services.size(); ++s) {
    for (std::size_t c = 0; c < full->services[s].checks.size(); ++c) {
      if (shardOf(full->services[s].checks[c].key, 3) == 1) {
        remote[full->services[s].checks[c].key] = richStatus(full, s, c);
      }
    }
  }
  const auto merged = mergeSnapshot(
      local, full,
      [&remote](const std::string& key) -> std::shared_ptr<const CheckStatus> {
        const auto it = remote.find(key);
        return it == remote.end() ? nullptr : it->second;
      },
      SystemClock::now());
  ASSERT_EQ(merged->checks.size(), 12u);
  ASSERT_EQ(merged->services.size(), 6u);
  std::size_t i = 0;
  for (const auto& s : full->services) {
    bool any_down = false, all_unknown = true;
    for (const auto& c : s.checks) {
      const CheckStatus& st = *merged->checks[i++];
      EXPECT_EQ(st.check->key, c.key) << "config order";
      const unsigned owner = shardOf(c.key, 3);
      EXPECT_EQ(st.state, owner == 0   ? CheckState::up
                          : owner == 1 ? CheckState::down
                                       : CheckState::unknown)
          << c.key;
      any_down = any_down || owner == 1;
      all_unknown = all_unknown && owner == 2;
    }
    const ServiceStatus& svc = merged->services[&s - full->services.data()];
    EXPECT_EQ(svc.state, any_down      ? ServiceState::down
                         : all_unknown ? ServiceState::unknown
                                       : ServiceState::up)
        << s.name;
  }

  // The API of the merged view: shard at the top, each check's owner.
  std::string doc, bad;
  ASSERT_TRUE(servicesDocument(*merged, "", "", doc, bad));
  const auto v = json::parse(doc).as_object();
  EXPECT_EQ(v.at("shard"), (json::object{{"index", 0}, {"count", 3}}));
  for (const auto& svc : v.at("services").as_array()) {
    for (const auto& c : svc.at("checks").as_array()) {
      EXPECT_EQ(c.at("shard").to_number<unsigned>(),
                shardOf(std::string(c.at("key").as_string()), 3));
    }
  }
}

TEST(Shard, MetricsCarryTheShardOnlyWhenSharded) {
  auto base = manyChecks(1, 1);
  std::shared_ptr<const Config> cfg = base;
  auto render = [](const std::shared_ptr<const Config>& c) {
    Snapshot snap;
    snap.config = c;
    auto st = std::make_shared<CheckStatus>();
    st->check = std::shared_ptr<const CheckConfig>(c, &c->services[0].checks[0]);
    st->service = std::shared_ptr<const ServiceConfig>(c, &c->services[0]);
    st->state = CheckState::up;
    snap.checks.push_back(st);
    return renderSnapshotMetrics(&snap, "1", {});
  };
  const std::string plain = render(cfg);
  EXPECT_NE(plain.find("vigie_check_state{service=\"svc0\",check=\"c0\",group=\"g\",probe=\"disk\","
                       "location=\"\",state=\"up\"} 1\n"),
            std::string::npos)
      << plain;
  EXPECT_EQ(plain.find("shard"), std::string::npos);

  auto sharded = std::make_shared<Config>(*base);
  sharded->shard = {2, 3};
  const std::string text = render(sharded);
  EXPECT_NE(text.find("vigie_check_state{service=\"svc0\",check=\"c0\",group=\"g\",probe=\"disk\","
                      "location=\"\",shard=\"2\",state=\"up\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vigie_shard_info{shard=\"2\",shards=\"3\"} 1\n"), std::string::npos);
  // Both ways of writing metrics agree.
  Snapshot snap;
  snap.config = sharded;
  auto st = std::make_shared<CheckStatus>();
  st->check = std::shared_ptr<const CheckConfig>(snap.config, &sharded->services[0].checks[0]);
  st->service = std::shared_ptr<const ServiceConfig>(snap.config, &sharded->services[0]);
  snap.checks.push_back(st);
  SnapshotCollectable collectable(
      [&snap] { return std::shared_ptr<const Snapshot>(&snap, [](auto*) {}); }, "1");
  EXPECT_EQ(renderSnapshotMetrics(&snap, "1", {}), renderMetrics({&collectable}));
}

TEST(Peers, SplitHostPort) {
  std::string h, p;
  ASSERT_TRUE(splitHostPort("127.0.0.1:9877", h, p));
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(p, "9877");
  ASSERT_TRUE(splitHostPort("[::1]:80", h, p));
  EXPECT_EQ(h, "::1");
  ASSERT_TRUE(splitHostPort("vigie-headless.mon.svc:9877", h, p));
  EXPECT_EQ(h, "vigie-headless.mon.svc");
  for (const char* bad : {"", "host", "host:", ":80", "::1:80", "[::1]80", "h:8x"}) {
    EXPECT_FALSE(splitHostPort(bad, h, p)) << bad;
  }
}

}  // namespace
}  // namespace vigie
