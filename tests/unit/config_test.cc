// Configuration: units, the tree with lines, the loader's model and every error
// message it gives (each invalid input paired with its exact text).

#include "collector/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "collector/config_tree.h"
#include "collector/units.h"
#include "tests/support/paths.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;

const std::string kData = std::string(VIGIE_SOURCE_DIR) + "/tests/data/config/";

std::vector<std::string> errorsOf(const std::string& text,
                                  const std::map<std::string, std::string>& env = {},
                                  const std::string& file = "t.yaml") {
  try {
    parseConfig(text, file, &env);
  } catch (const ConfigException& e) {
    std::vector<std::string> out;
    for (const auto& err : e.errors()) out.push_back(err.str());
    return out;
  }
  return {};
}

std::vector<std::string> fileErrors(const std::string& name) {
  try {
    loadConfig(kData + name);
  } catch (const ConfigException& e) {
    std::vector<std::string> out;
    for (const auto& err : e.errors()) out.push_back(err.str());
    return out;
  }
  return {};
}

// ---------------------------------------------------------------- units

TEST(Units, Durations) {
  struct Case {
    const char* text;
    long long ms;
  };
  for (const Case& c :
       {Case{"500ms", 500}, Case{"15s", 15'000}, Case{"5m", 300'000}, Case{"1h", 3'600'000},
        Case{"7d", 604'800'000}, Case{"1m30s", 90'000}, Case{"1h0m5s", 3'605'000},
        Case{"1.5s", 1'500}, Case{"0s", 0}, Case{" 2s ", 2'000}}) {
    std::string err;
    auto d = parseDuration(c.text, &err);
    ASSERT_TRUE(d) << c.text << ": " << err;
    EXPECT_EQ(d->count(), c.ms) << c.text;
  }
}

TEST(Units, BadDurations) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : {
           Case{"abc", "expected a duration like 30s, got \"abc\""},
           Case{"", "expected a duration like 30s, got \"\""},
           Case{"-5s", "expected a duration like 30s, got \"-5s\""},
           Case{"30",
                "expected a duration like 30s, got \"30\": a unit is required (ms, s, m, h, d)"},
           Case{"1m30",
                "expected a duration like 30s, got \"1m30\": a unit is required (ms, s, m, h, d)"},
           Case{"5x", "unknown unit \"x\" in duration \"5x\" (use ms, s, m, h, d)"},
           Case{"5 s",
                "expected a duration like 30s, got \"5 s\": a unit is required (ms, s, m, h, d)"},
           Case{"99999999d", "duration \"99999999d\" is too large"},
       }) {
    std::string err;
    EXPECT_FALSE(parseDuration(c.text, &err)) << c.text;
    EXPECT_EQ(err, c.error) << c.text;
  }
}

TEST(Units, Sizes) {
  struct Case {
    const char* text;
    std::uint64_t bytes;
  };
  for (const Case& c : {Case{"512KiB", 512 * 1024}, Case{"1MiB", 1024 * 1024},
                        Case{"10GiB", 10ULL * 1024 * 1024 * 1024}, Case{"1MB", 1'000'000},
                        Case{"1048576", 1048576}, Case{"100B", 100}, Case{"2kb", 2000},
                        Case{"1.5KiB", 1536}, Case{"1 TiB", 1024ULL * 1024 * 1024 * 1024}}) {
    std::string err;
    auto s = parseSize(c.text, &err);
    ASSERT_TRUE(s) << c.text << ": " << err;
    EXPECT_EQ(*s, c.bytes) << c.text;
  }
  std::string err;
  EXPECT_FALSE(parseSize("abc", &err));
  EXPECT_EQ(err, "expected a size like 10MiB or 1048576, got \"abc\"");
  EXPECT_FALSE(parseSize("10XB", &err));
  EXPECT_EQ(err,
            "unknown unit \"XB\" in size \"10XB\" (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
  EXPECT_FALSE(parseSize("-1", &err));
  EXPECT_EQ(err, "expected a size like 10MiB or 1048576, got \"-1\"");
}

TEST(Units, Percent) {
  std::string err;
  auto p = parsePercent("5%", &err);
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(*p, 0.05);
  EXPECT_DOUBLE_EQ(*parsePercent("12.5%"), 0.125);
  EXPECT_DOUBLE_EQ(*parsePercent("100%"), 1.0);
  EXPECT_FALSE(parsePercent("5", &err));
  EXPECT_EQ(err, "expected a percentage like 5%, got \"5\"");
  EXPECT_FALSE(parsePercent("150%", &err));
  EXPECT_EQ(err, "a percentage must be between 0% and 100%, got \"150%\"");
}

TEST(Units, FormatDurationReadsBack) {
  for (long long ms :
       {0LL, 1LL, 500LL, 1000LL, 90'000LL, 3'605'000LL, 604'800'000LL, 90'061'001LL}) {
    const std::string text = formatDuration(std::chrono::milliseconds(ms));
    auto back = parseDuration(text);
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(back->count(), ms) << text;
  }
  EXPECT_EQ(formatDuration(90s), "1m30s");
  EXPECT_EQ(formatDuration(500ms), "500ms");
}

// ---------------------------------------------------------------- tree

TEST(ConfigTree, KeepsLinesKindsAndOrder) {
  const std::string text =
      "a: 1\n"
      "b:\n"
      "  - x\n"
      "  - {k: \"v\"}\n"
      "c: ~\n"
      "d: \"true\"\n";
  ConfigTree t;
  std::vector<TreeError> errors;
  ASSERT_TRUE(readConfigTree(text, nullptr, t, errors));
  EXPECT_EQ(t.data().kind, NodeKind::map);
  std::vector<std::string> keys;
  for (const auto& [k, v] : t) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c", "d"}));
  const auto& b = t.get_child("b");
  EXPECT_EQ(b.data().kind, NodeKind::sequence);
  EXPECT_EQ(b.data().key_line, 2);
  ASSERT_EQ(b.size(), 2u);
  auto it = b.begin();
  EXPECT_EQ(it->first, "");
  EXPECT_EQ(it->second.data().value, "x");
  EXPECT_EQ(it->second.data().line, 3);
  ++it;
  EXPECT_EQ(it->second.data().kind, NodeKind::map);
  EXPECT_EQ(it->second.get_child("k").data().line, 4);
  EXPECT_TRUE(it->second.get_child("k").data().quoted);
  EXPECT_EQ(t.get_child("c").data().kind, NodeKind::null);
  EXPECT_EQ(t.get_child("d").data().value, "true");
  EXPECT_TRUE(t.get_child("d").data().quoted);
  EXPECT_FALSE(t.get_child("a").data().quoted);
}

TEST(ConfigTree, AnchorsAliasesAndMergeKeys) {
  const std::string text =
      "base: &b {interval: 10s, timeout: 2s}\n"
      "one:\n"
      "  <<: *b\n"
      "  timeout: 3s\n"
      "two: *b\n";
  ConfigTree t;
  std::vector<TreeError> errors;
  ASSERT_TRUE(readConfigTree(text, nullptr, t, errors));
  EXPECT_EQ(t.get_child("one").get_child("interval").data().value, "10s");
  EXPECT_EQ(t.get_child("one").get_child("timeout").data().value, "3s");
  EXPECT_EQ(t.get_child("one").count("<<"), 0u);
  EXPECT_EQ(t.get_child("two").get_child("timeout").data().value, "2s");
}

TEST(ConfigTree, AliasExpansionIsBounded) {
  // Each level multiplies by ten: 10^9 values once expanded.
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 8; ++i) {
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) text += (j ? ", *a" : "*a") + std::to_string(i - 1);
    text += "]\n";
  }
  ConfigTree t;
  std::vector<TreeError> errors;
  EXPECT_FALSE(readConfigTree(text, nullptr, t, errors, 100'000));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "the document expands to more than 100000 values (aliases?)");
  EXPECT_EQ(errors[0].line, 5);
  // The same aliases within the bound expand fully.
  errors.clear();
  ASSERT_TRUE(readConfigTree("a: &a [x, x]\nb: [*a, *a]\n", nullptr, t, errors, 100));
  EXPECT_EQ(t.get_child("b").size(), 2u);
  EXPECT_EQ(t.get_child("b").front().second.size(), 2u);
}

TEST(ConfigTree, EnvSubstitution) {
  std::map<std::string, std::string> env{{"A", "alpha"}, {"B_2", "beta"}};
  std::vector<std::string> missing;
  std::string err;
  EXPECT_EQ(substituteEnv("x${A}y${B_2}z", &env, missing, &err), "xalphaybetaz");
  EXPECT_EQ(substituteEnv("$${A} costs $5", &env, missing, &err), "${A} costs $5");
  EXPECT_TRUE(missing.empty());
  EXPECT_TRUE(err.empty());
  substituteEnv("${NOPE}-${A}-${ALSO}", &env, missing, &err);
  EXPECT_EQ(missing, (std::vector<std::string>{"NOPE", "ALSO"}));
  substituteEnv("${A", &env, missing, &err);
  EXPECT_EQ(err, "unterminated \"${\" (write \"$${\" for a literal \"${\")");
  err.clear();
  substituteEnv("${1A}", &env, missing, &err);
  EXPECT_EQ(err, "invalid environment variable reference \"${1A}\"");
}

// ---------------------------------------------------------------- full example

std::map<std::string, std::string> fullEnv() {
  return {{"OBSPORTAL_DB_PASSWORD", "s3cret"},
          {"OBSPORTAL_SYNC_TOKEN", "tok-1234567890abcdef"},
          {"VIGIE_HISTORY_DSN", "postgresql://vigie:hpass@pg/vigie"}};
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void expectFullExample(const Config& c) {
  EXPECT_EQ(c.listen, "0.0.0.0:9877");
  EXPECT_EQ(c.location, "osug");
  EXPECT_EQ(c.defaults.interval, 30s);
  EXPECT_EQ(c.defaults.timeout, 5s);
  EXPECT_EQ(c.defaults.failure_threshold, 3);
  EXPECT_EQ(c.defaults.success_threshold, 1);
  EXPECT_EQ(c.max_in_flight, 4096);
  ASSERT_EQ(c.groups.size(), 1u);
  EXPECT_EQ(c.groups[0].name, "jmmc");
  EXPECT_EQ(c.groups[0].description, "JMMC web services");
  ASSERT_EQ(c.services.size(), 2u);

  const ServiceConfig& s = c.services[0];
  EXPECT_EQ(s.name, "obsportal");
  EXPECT_EQ(s.group, "jmmc");
  EXPECT_EQ(s.labels, (std::map<std::string, std::string>{{"color", "blue"}, {"env", "prod"}}));
  EXPECT_EQ(s.depends_on, std::vector<std::string>{"shared-postgres"});
  ASSERT_EQ(s.checks.size(), 5u);

  const CheckConfig& health = s.checks[0];
  EXPECT_EQ(health.key, "obsportal/health");
  EXPECT_EQ(health.interval, 15s);  // overridden
  EXPECT_EQ(health.timeout, 5s);    // from defaults
  EXPECT_EQ(health.failure_threshold, 3);
  EXPECT_TRUE(health.critical);
  EXPECT_STREQ(probeKindName(health.spec), "http");
  const auto& h = std::get<HttpSpec>(health.spec);
  EXPECT_EQ(h.url, "http://obsportal.jmmc.svc:8080/health");
  EXPECT_EQ(h.method, "GET");
  ASSERT_EQ(h.headers.size(), 1u);
  EXPECT_EQ(h.headers[0],
            (std::pair<std::string, std::string>{"Accept", "application/health+json"}));
  EXPECT_EQ(h.expect_status, std::vector<int>{200});
  EXPECT_EQ(h.health_format, HealthFormat::auto_detect);
  ASSERT_EQ(h.conditions.size(), 3u);
  EXPECT_EQ(h.conditions[0].kind, ConditionSpec::Kind::json_equals);
  EXPECT_EQ(h.conditions[0].pointer, "/status");
  EXPECT_EQ(h.conditions[0].value, "pass");
  EXPECT_EQ(h.conditions[1].kind, ConditionSpec::Kind::body_matches);
  EXPECT_EQ(h.conditions[1].value, "database.*ok");
  EXPECT_TRUE(h.conditions[1].regex);
  EXPECT_EQ(h.conditions[2].kind, ConditionSpec::Kind::latency_below);
  EXPECT_EQ(h.conditions[2].latency, 800ms);
  EXPECT_EQ(h.max_body, 1024u * 1024);
  EXPECT_FALSE(h.follow_redirects);
  EXPECT_TRUE(h.tls->verify);
  EXPECT_EQ(h.tls->ca_file, "/etc/ssl/osug-ca.pem");

  const CheckConfig& db = s.checks[1];
  EXPECT_EQ(db.interval, 30s);  // from defaults
  const auto& p = std::get<PostgresSpec>(db.spec);
  EXPECT_EQ(p.dsn, "postgresql://obsportal:s3cret@pg.osug.fr:5432/obsportal");
  EXPECT_EQ(p.query, "SELECT 1");

  const auto& d = std::get<DiskSpec>(s.checks[2].spec);
  EXPECT_EQ(d.path, "/mnt/obsportal/data");
  ASSERT_TRUE(d.min_free_ratio);
  EXPECT_DOUBLE_EQ(*d.min_free_ratio, 0.05);
  EXPECT_FALSE(d.min_free_bytes);
  EXPECT_TRUE(d.write);

  EXPECT_TRUE(s.checks[3].critical);
  const auto& g = std::get<IngressSpec>(s.checks[3].spec);
  EXPECT_EQ(g.url, "https://obs.jmmc.fr/health");
  EXPECT_EQ(g.addresses, (std::vector<std::string>{"193.48.1.10", "193.48.1.11"}));
  EXPECT_EQ(g.mode, IngressSpec::Mode::all);
  EXPECT_EQ(g.cert_min_days, 14);
  EXPECT_TRUE(g.expect_https_redirect);

  EXPECT_FALSE(s.checks[4].critical);
  const auto& hb = std::get<HeartbeatSpec>(s.checks[4].spec);
  EXPECT_EQ(hb.period, 1h);
  EXPECT_EQ(hb.grace, 10min);
  EXPECT_EQ(hb.token, "tok-1234567890abcdef");

  const auto& t = std::get<TcpSpec>(c.services[1].checks[0].spec);
  EXPECT_EQ(t.address, "pg.osug.fr:5432");
  EXPECT_EQ(c.services[1].checks[0].key, "shared-postgres/tcp");

  ASSERT_EQ(c.clusters.size(), 1u);
  EXPECT_EQ(c.clusters[0].name, "cattle-blue");
  EXPECT_EQ(c.clusters[0].services, std::vector<std::string>{"obsportal"});
  EXPECT_EQ(c.clusters[0].agent_listen, "0.0.0.0:9878");

  ASSERT_EQ(c.maintenance.size(), 1u);
  EXPECT_EQ(c.maintenance[0].services, std::vector<std::string>{"obsportal"});
  EXPECT_EQ(
      std::chrono::duration_cast<std::chrono::seconds>(c.maintenance[0].start.time_since_epoch())
          .count(),
      1796104800);  // date -d 2026-12-01T06:00:00Z +%s
  EXPECT_EQ(c.maintenance[0].duration, 2h);

  ASSERT_EQ(c.modules.count("http_2xx"), 1u);
  const ModuleConfig& m = c.modules.at("http_2xx");
  EXPECT_EQ(m.prober, "http");
  EXPECT_EQ(m.timeout, 5s);
  const auto& mh = std::get<HttpSpec>(m.spec);
  EXPECT_EQ(mh.url, "");
  EXPECT_EQ(mh.expect_status, std::vector<int>{200});
  EXPECT_TRUE(mh.follow_redirects);  // blackbox's default
  EXPECT_EQ(mh.health_format, HealthFormat::none);

  EXPECT_EQ(c.history.store, "memory");
  EXPECT_EQ(c.history.dsn, "postgresql://vigie:hpass@pg/vigie");
  EXPECT_EQ(c.history.retention, 24h * 30);

  EXPECT_EQ(c.findService("obsportal"), &c.services[0]);
  EXPECT_EQ(c.findService("obsportal/sync"), &c.services[0]);
  EXPECT_EQ(c.findService("shared-postgres/tcp"), &c.services[1]);
  EXPECT_EQ(c.findService("obsportal/nope"), nullptr);
  EXPECT_EQ(c.findService("nope"), nullptr);
}

TEST(Config, FullExampleLoads) {
  const auto env = fullEnv();
  auto cfg = parseConfig(readFile(std::string(VIGIE_SOURCE_DIR) + "/examples/full.yaml"),
                         "examples/full.yaml", &env);
  expectFullExample(*cfg);
  EXPECT_EQ(*cfg->services[0].checks[0].pos.file, "full.yaml");
  EXPECT_EQ(cfg->services[0].checks[0].pos.line, 21);
}

TEST(Config, JsonEquivalentLoads) {
  const auto env = fullEnv();
  auto cfg = parseConfig(readFile(kData + "valid-full.json"), "valid-full.json", &env);
  expectFullExample(*cfg);
}

TEST(Config, CompactAndTabIndentedJson) {
  const std::string compact =
      R"({"listen":"127.0.0.1:1","services":[{"name":"a","checks":[{"name":"b","tcp":{"address":"a:1"}}]}]})";
  auto cfg = parseConfig(compact, "c.json");
  EXPECT_EQ(cfg->listen, "127.0.0.1:1");
  EXPECT_EQ(cfg->services[0].checks[0].key, "a/b");
  const std::string tabs =
      "{\n\t\"location\": \"x\",\n\t\"services\": [\n\t\t{\"name\": \"a\", \"labels\": {\"k\": "
      "\"v\\/w\"}}\n\t]\n}\n";
  cfg = parseConfig(tabs, "t.json");
  EXPECT_EQ(cfg->location, "x");
  EXPECT_EQ(cfg->services[0].labels.at("k"), "v/w");
  // An error in JSON names its line like YAML does.
  EXPECT_EQ(errorsOf("{\n\t\"location\": \"x\",\n\t\"max_in_flight\": -3\n}\n", {}, "t.json"),
            std::vector<std::string>{"t.json:3: max_in_flight: must be at least 1, got -3"});
}

TEST(Config, LoadConfigUsesTheProcessEnvironment) {
  for (const auto& [k, v] : fullEnv()) setenv(k.c_str(), v.c_str(), 1);
  auto cfg = loadConfig(std::string(VIGIE_SOURCE_DIR) + "/examples/full.yaml");
  expectFullExample(*cfg);
  EXPECT_EQ(cfg->source_file, std::string(VIGIE_SOURCE_DIR) + "/examples/full.yaml");
  unsetenv("OBSPORTAL_SYNC_TOKEN");
  EXPECT_THROW(loadConfig(std::string(VIGIE_SOURCE_DIR) + "/examples/full.yaml"), ConfigException);
}

TEST(Config, DemoExampleLoads) {
  std::map<std::string, std::string> env{{"VIGIE_DEMO_ADDR", "127.0.0.1:9877"}};
  auto cfg = parseConfig(readFile(std::string(VIGIE_SOURCE_DIR) + "/examples/demo.yaml"),
                         "demo.yaml", &env);
  ASSERT_EQ(cfg->services.size(), 7u);
  const auto& oidb = cfg->services[5];
  EXPECT_EQ(oidb.name, "oidb");
  EXPECT_EQ(oidb.checks[0].interval, 3s);
  EXPECT_EQ(oidb.checks[0].timeout, 2s);
  EXPECT_EQ(oidb.checks[0].failure_threshold, 2);
  // The heartbeat the demo pushes itself fails at once when it misses, by default.
  const auto& backup = cfg->services.back();
  EXPECT_EQ(backup.name, "backup-job");
  EXPECT_TRUE(std::holds_alternative<HeartbeatSpec>(backup.checks[0].spec));
  EXPECT_EQ(backup.checks[0].failure_threshold, 1);
}

TEST(Config, DefaultsAndOverrides) {
  const std::string text =
      "defaults: {interval: 1m, timeout: 10s, failure_threshold: 5, success_threshold: 2}\n"
      "services:\n"
      "  - name: web\n"
      "    checks:\n"
      "      - name: a\n"
      "        tcp: {address: \"web:80\", tls: {verify: false}}\n"
      "      - name: b\n"
      "        interval: 20s\n"
      "        failure_threshold: 1\n"
      "        critical: false\n"
      "        http: {url: \"https://web/\", method: post, max_body: 512KiB}\n"
      "      - name: c\n"
      "        disk: {path: /data, min_free: 10GiB, write: false}\n";
  auto cfg = parseConfig(text, "t.yaml");
  const auto& checks = cfg->services[0].checks;
  EXPECT_EQ(checks[0].interval, 1min);
  EXPECT_EQ(checks[0].timeout, 10s);
  EXPECT_EQ(checks[0].failure_threshold, 5);
  EXPECT_EQ(checks[0].success_threshold, 2);
  EXPECT_TRUE(checks[0].critical);
  const auto& t = std::get<TcpSpec>(checks[0].spec);
  EXPECT_TRUE(t.tls);
  EXPECT_FALSE(t.tls_config->verify);
  EXPECT_EQ(checks[1].interval, 20s);
  EXPECT_EQ(checks[1].timeout, 10s);
  EXPECT_EQ(checks[1].failure_threshold, 1);
  EXPECT_EQ(checks[1].success_threshold, 2);
  EXPECT_FALSE(checks[1].critical);
  const auto& h = std::get<HttpSpec>(checks[1].spec);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.max_body, 512u * 1024);
  EXPECT_EQ(h.max_redirects, 10);
  EXPECT_TRUE(h.expect_status.empty());
  const auto& d = std::get<DiskSpec>(checks[2].spec);
  EXPECT_EQ(d.min_free_bytes, 10ULL << 30);
  EXPECT_FALSE(d.min_free_ratio);
  EXPECT_FALSE(d.write);
  // Without a file: the model's own defaults.
  auto empty = parseConfig("services: []\n", "t.yaml");
  EXPECT_EQ(empty->listen, "0.0.0.0:9877");
  EXPECT_EQ(empty->max_in_flight, 4096);
  EXPECT_EQ(empty->history.store, "memory");
}

// Checks without a tls block share one default TlsSpec (copy on write); one with a
// block has its own; the services vector keeps no spare capacity.
TEST(Config, ChecksWithoutTlsShareTheDefault) {
  std::string text = "services:\n";
  for (int i = 0; i < 5; ++i) {
    text += "  - {name: s" + std::to_string(i) +
            ", checks: [{name: h, http: {url: \"http://127.0.0.1/" + std::to_string(i) + "\"}}]}\n";
  }
  text += "  - {name: t, checks: [{name: h, http: {url: \"https://t/\", tls: {verify: false, "
          "ca_file: /ca.pem}}}]}\n";
  const auto cfg = parseConfig(text, "vigie.yaml");
  ASSERT_EQ(cfg->services.size(), 6u);
  EXPECT_EQ(cfg->services.capacity(), cfg->services.size());
  const auto& first = std::get<HttpSpec>(cfg->services[0].checks[0].spec);
  for (int i = 0; i < 5; ++i) {
    const auto& h = std::get<HttpSpec>(cfg->services[i].checks[0].spec);
    EXPECT_TRUE(h.tls.sharedDefault()) << i;
    EXPECT_EQ(&*h.tls, &*first.tls) << i;
    EXPECT_TRUE(h.tls->verify);
    EXPECT_EQ(h.tls->ca_file, "");
  }
  const auto& own = std::get<HttpSpec>(cfg->services[5].checks[0].spec);
  EXPECT_FALSE(own.tls.sharedDefault());
  EXPECT_FALSE(own.tls->verify);
  EXPECT_EQ(own.tls->ca_file, "/ca.pem");
  EXPECT_TRUE(first.tls->verify) << "the default is not changed by a check's own";

  HttpSpec a;
  a.tls.edit().server_name = "a.example";
  EXPECT_FALSE(a.tls.sharedDefault());
  HttpSpec b = a;  // shares a's settings until one of them edits
  EXPECT_EQ(&*b.tls, &*a.tls);
  b.tls.edit().server_name = "b.example";
  EXPECT_EQ(a.tls->server_name, "a.example");
  EXPECT_EQ(b.tls->server_name, "b.example");
  EXPECT_EQ(HttpSpec{}.tls->server_name, "");
  TlsSpec plain;
  plain.ca_file = "/x.pem";
  HttpSpec c;
  c.tls = plain;  // as the ingress probe gives its HTTPS attempts its settings
  EXPECT_EQ(c.tls->ca_file, "/x.pem");
  EXPECT_TRUE(HttpSpec{}.tls.sharedDefault());
}

// TCP checks share the default TlsSpec as HTTP checks do, and every position read
// from one file shares its name: neither is copied per check.
TEST(Config, TcpChecksAndPositionsShareWhatTheyDoNotChange) {
  const std::string text =
      "services:\n"
      "  - {name: a, checks: [{name: t, tcp: {address: \"127.0.0.1:1\"}},\n"
      "                       {name: u, tcp: {address: \"127.0.0.1:2\", tls: true}}]}\n"
      "  - {name: b, checks: [{name: t, tcp: {address: \"127.0.0.1:3\", tls: {verify: false}}}]}\n";
  const auto cfg = parseConfig(text, "a-rather-long-config-file-name.yaml");
  const auto& plain = std::get<TcpSpec>(cfg->services[0].checks[0].spec);
  const auto& on = std::get<TcpSpec>(cfg->services[0].checks[1].spec);
  const auto& own = std::get<TcpSpec>(cfg->services[1].checks[0].spec);
  EXPECT_FALSE(plain.tls);
  EXPECT_TRUE(plain.tls_config.sharedDefault());
  EXPECT_TRUE(on.tls);
  EXPECT_TRUE(on.tls_config.sharedDefault());
  EXPECT_TRUE(on.tls_config->verify);
  EXPECT_TRUE(own.tls);
  EXPECT_FALSE(own.tls_config.sharedDefault());
  EXPECT_FALSE(own.tls_config->verify);
  EXPECT_TRUE(SharedTlsSpec{}->verify) << "the default is not changed by a check's own";

  const auto& c0 = cfg->services[0].checks[0].pos;
  EXPECT_EQ(*c0.file, "a-rather-long-config-file-name.yaml");
  EXPECT_EQ(c0.line, 2);
  EXPECT_EQ(cfg->services[0].checks[1].pos.line, 3);
  EXPECT_EQ(cfg->services[1].checks[0].pos.line, 4);
  EXPECT_EQ(&*c0.file, &*cfg->services[0].checks[1].pos.file);
  EXPECT_EQ(&*c0.file, &*cfg->services[1].checks[0].pos.file);
  EXPECT_EQ(&*c0.file, &*cfg->services[1].pos.file);

  // One CopyOnWrite for every shared setting: a copy shares until it edits.
  CopyOnWrite<std::string> x = std::string("x");
  CopyOnWrite<std::string> y = x;
  EXPECT_EQ(&*x, &*y);
  y.edit() += "y";
  EXPECT_EQ(*x, "x");
  EXPECT_EQ(*y, "xy");
  EXPECT_TRUE(CopyOnWrite<std::string>{}.sharedDefault());
  EXPECT_FALSE(x.sharedDefault());

  // The TCP spec is no longer the widest kind: the variant is as wide as HttpSpec.
  EXPECT_LT(sizeof(TcpSpec), sizeof(HttpSpec));
  EXPECT_LE(sizeof(ProbeSpec), sizeof(HttpSpec) + 8);
  EXPECT_LE(sizeof(HttpSpec), 288u);
}

TEST(Config, EveryKindAndOption) {
  const std::string text =
      "services:\n"
      "  - name: s\n"
      "    group: anything\n"  // no groups: declared, so any group is fine
      "    checks:\n"
      "      - name: custom\n"
      "        http:\n"
      "          url: \"http://s/health\"\n"
      "          health_format: custom\n"
      "          custom: {status: /state, up: [green], warn: [yellow], components: /parts, "
      "version: /v}\n"
      "          conditions:\n"
      "            - {json: /checks}\n"
      "            - {body_contains: OK}\n"
      "            - {status: [200, 204]}\n"
      "          follow_redirects: true\n"
      "          max_redirects: 3\n"
      "          cert_min_days: 7\n"
      "          ip_version: ip6\n"
      "          body: '{\"q\": 1}'\n"
      "          tls: {verify: false, cert_file: /c.pem, key_file: /k.pem, server_name: "
      "s.example}\n"
      "      - name: tcp\n"
      "        tcp: {address: \"[::1]:5432\", send: \"PING\\r\\n\", expect: \"^\\\\+PONG\", tls: "
      "true}\n"
      "      - name: pg\n"
      "        postgres: {dsn: \"host=pg dbname=x password=secret\", query: \"SELECT 2\", expect: "
      "2}\n"
      "      - name: in\n"
      "        ingress: {url: \"https://x/\", mode: any, expect_status: 301, addresses: "
      "[\"::1\"]}\n"
      "      - name: hb\n"
      "        heartbeat: {period: 5m, grace: 0s, token: 0123456789abcdef}\n";
  auto cfg = parseConfig(text, "t.yaml");
  const auto& c = cfg->services[0].checks;
  const auto& h = std::get<HttpSpec>(c[0].spec);
  EXPECT_EQ(h.health_format, HealthFormat::custom);
  EXPECT_EQ(h.custom->status_pointer, "/state");
  EXPECT_EQ(h.custom->up_values, std::vector<std::string>{"green"});
  EXPECT_EQ(h.custom->warn_values, std::vector<std::string>{"yellow"});
  EXPECT_EQ(h.custom->components_pointer, "/parts");
  EXPECT_EQ(h.custom->version_pointer, "/v");
  // The default mapping is one object shared by every check that keeps it.
  EXPECT_NE(&*h.custom, &*HttpSpec{}.custom);
  EXPECT_EQ(HttpSpec{}.custom->status_pointer, "/status");
  EXPECT_EQ(&*HttpSpec{}.custom, &*HttpSpec{}.custom);
  HttpSpec own;
  own.custom.edit().status_pointer = "/mine";
  EXPECT_EQ(own.custom->status_pointer, "/mine");
  EXPECT_EQ(HttpSpec{}.custom->status_pointer, "/status");
  HttpSpec copy = own;
  copy.custom.edit().status_pointer = "/copy";
  EXPECT_EQ(own.custom->status_pointer, "/mine");
  ASSERT_EQ(h.conditions.size(), 3u);
  EXPECT_EQ(h.conditions[0].kind, ConditionSpec::Kind::json_exists);
  EXPECT_EQ(h.conditions[1].kind, ConditionSpec::Kind::body_contains);
  EXPECT_EQ(h.conditions[1].value, "OK");
  EXPECT_EQ(h.conditions[2].statuses, (std::vector<int>{200, 204}));
  EXPECT_TRUE(h.follow_redirects);
  EXPECT_EQ(h.max_redirects, 3);
  EXPECT_EQ(h.cert_min_days, 7);
  EXPECT_EQ(h.ip_version, "ip6");
  EXPECT_EQ(h.body, "{\"q\": 1}");
  EXPECT_FALSE(h.tls->verify);
  EXPECT_EQ(h.tls->server_name, "s.example");
  const auto& t = std::get<TcpSpec>(c[1].spec);
  EXPECT_EQ(t.address, "[::1]:5432");
  EXPECT_EQ(t.send, "PING\r\n");
  EXPECT_EQ(t.expect, "^\\+PONG");
  EXPECT_TRUE(t.tls);
  const auto& p = std::get<PostgresSpec>(c[2].spec);
  EXPECT_EQ(p.query, "SELECT 2");
  EXPECT_EQ(p.expect, "2");
  const auto& g = std::get<IngressSpec>(c[3].spec);
  EXPECT_EQ(g.mode, IngressSpec::Mode::any);
  EXPECT_EQ(g.expect_status, std::vector<int>{301});
  const auto& hb = std::get<HeartbeatSpec>(c[4].spec);
  EXPECT_EQ(hb.period, 5min);
  EXPECT_EQ(hb.grace, 0s);
  EXPECT_STREQ(probeKindName(c[4].spec), "heartbeat");
}

TEST(Config, BlackboxModules) {
  const std::string text =
      "modules:\n"
      "  http_post:\n"
      "    prober: http\n"
      "    timeout: 3s\n"
      "    http:\n"
      "      method: POST\n"
      "      headers: {Host: example.org}\n"
      "      body: '{}'\n"
      "      valid_status_codes: [200, 201]\n"
      "      valid_http_versions: [\"HTTP/1.1\", \"HTTP/2.0\"]\n"
      "      no_follow_redirects: true\n"
      "      fail_if_not_ssl: true\n"
      "      fail_if_body_matches_regexp: [\"error\"]\n"
      "      fail_if_body_not_matches_regexp: [\"ok\"]\n"
      "      tls_config: {insecure_skip_verify: true, ca_file: /ca.pem}\n"
      "      preferred_ip_protocol: ip4\n"
      "  banner:\n"
      "    prober: tcp\n"
      "    tcp:\n"
      "      query_response:\n"
      "        - expect: \"^SSH-2.0-\"\n"
      "        - send: \"QUIT\"\n"
      "          starttls: false\n"
      "      tls: true\n"
      "      tls_config: {insecure_skip_verify: false}\n";
  auto cfg = parseConfig(text, "t.yaml");
  const auto& m = cfg->modules.at("http_post");
  EXPECT_EQ(m.name, "http_post");
  EXPECT_EQ(m.timeout, 3s);
  const auto& h = std::get<HttpSpec>(m.spec);
  EXPECT_EQ(h.url, "");
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.body, "{}");
  EXPECT_EQ(h.expect_status, (std::vector<int>{200, 201}));
  EXPECT_EQ(h.valid_http_versions, (std::vector<std::string>{"HTTP/1.1", "HTTP/2.0"}));
  EXPECT_FALSE(h.follow_redirects);
  EXPECT_TRUE(h.fail_if_not_ssl);
  EXPECT_FALSE(h.fail_if_ssl);
  ASSERT_EQ(h.conditions.size(), 2u);
  EXPECT_EQ(h.conditions[0].kind, ConditionSpec::Kind::body_matches);
  EXPECT_EQ(h.conditions[0].value, "\\A(?![\\s\\S]*?(?:error))");
  EXPECT_TRUE(h.conditions[0].regex);
  EXPECT_EQ(h.conditions[1].value, "ok");
  EXPECT_FALSE(h.tls->verify);
  EXPECT_EQ(h.tls->ca_file, "/ca.pem");
  EXPECT_EQ(h.ip_version, "ip4");
  const auto& t = std::get<TcpSpec>(cfg->modules.at("banner").spec);
  EXPECT_EQ(t.address, "");
  ASSERT_EQ(t.query_response.size(), 2u);
  EXPECT_EQ(t.query_response[0].expect, "^SSH-2.0-");
  EXPECT_EQ(t.query_response[1].send, "QUIT");
  EXPECT_TRUE(t.tls);
  EXPECT_TRUE(t.tls_config->verify);
}

TEST(Config, EnvSubstitutionAtLoad) {
  std::map<std::string, std::string> env{{"WHERE", "grenoble"}, {"PORT", "9000"}};
  auto cfg = parseConfig("location: \"${WHERE}-$${literal}\"\nlisten: \"127.0.0.1:${PORT}\"\n",
                         "t.yaml", &env);
  EXPECT_EQ(cfg->location, "grenoble-${literal}");
  EXPECT_EQ(cfg->listen, "127.0.0.1:9000");
  // Substituted before typing: a duration may come from the environment.
  env["EVERY"] = "45s";
  cfg = parseConfig("defaults: {interval: \"${EVERY}\"}\n", "t.yaml", &env);
  EXPECT_EQ(cfg->defaults.interval, 45s);
}

// ---------------------------------------------------------------- errors

struct ErrorCase {
  const char* name;
  std::string text;
  std::vector<std::string> errors;
};

const std::string kSvc = "services:\n  - name: web\n    checks:\n      - name: up\n";  // 4 lines

TEST(ConfigErrors, Table) {
  const std::vector<ErrorCase> cases = {
      {"unknown key with suggestion",
       "locaton: x\n",
       {"t.yaml:1: unknown key \"locaton\" (did you mean \"location\"?)"}},
      {"unknown key", "foo: 1\n", {"t.yaml:1: unknown key \"foo\""}},
      {"duplicate key",
       "location: a\nlocation: b\n",
       {"t.yaml:2: duplicate key \"location\" (first at line 1)"}},
      {"top level not a map",
       "- a\n",
       {"t.yaml:1: expected a mapping at the top level, got a sequence"}},
      {"empty file", "", {"t.yaml: the file is empty"}},
      {"bad duration",
       "defaults:\n  interval: abc\n",
       {"t.yaml:2: defaults.interval: expected a duration like 30s, got \"abc\""}},
      {"duration without unit",
       "defaults:\n  timeout: 30\n",
       {"t.yaml:2: defaults.timeout: expected a duration like 30s, got \"30\": a unit is required "
        "(ms, s, m, h, d)"}},
      {"duration as a map",
       "defaults:\n  interval: {a: 1}\n",
       {"t.yaml:2: defaults.interval: expected a duration like 30s, got a mapping"}},
      {"zero interval",
       "defaults:\n  interval: 0s\n",
       {"t.yaml:2: defaults.interval: must be longer than 0s, got \"0s\""}},
      {"default timeout over interval",
       "defaults: {interval: 5s, timeout: 6s}\n",
       {"t.yaml:1: defaults.timeout: the timeout 6s is longer than the interval 5s"}},
      {"threshold",
       "defaults:\n  failure_threshold: 0\n",
       {"t.yaml:2: defaults.failure_threshold: must be at least 1, got 0"}},
      {"not an integer",
       "max_in_flight: lots\n",
       {"t.yaml:1: max_in_flight: expected an integer, got \"lots\""}},
      {"max_in_flight",
       "max_in_flight: 0\n",
       {"t.yaml:1: max_in_flight: must be at least 1, got 0"}},
      {"listen",
       "listen: \"9877\"\n",
       {"t.yaml:1: listen: expected host:port like 0.0.0.0:9877, got \"9877\""}},
      {"listen port",
       "listen: \"host:99999\"\n",
       {"t.yaml:1: listen: expected host:port like 0.0.0.0:9877, got \"host:99999\""}},
      {"services not a list",
       "services: {a: 1}\n",
       {"t.yaml:1: services: expected a sequence, got a mapping"}},
      {"no probe kind",
       kSvc,
       {"t.yaml:4: services[0].checks[0]: no probe kind (one of http, tcp, postgres, disk, "
        "ingress, heartbeat)"}},
      {"two probe kinds",
       kSvc + "        http: {url: \"http://a/\"}\n        tcp: {address: \"a:80\"}\n",
       {"t.yaml:6: services[0].checks[0]: two probe kinds: http and tcp"}},
      {"expect_status",
       kSvc + "        http:\n          url: \"http://a/\"\n          expect_status: [200, 99]\n",
       {"t.yaml:7: services[0].checks[0].http.expect_status: 99 is not an HTTP status"}},
      {"missing check name",
       "services:\n  - name: web\n    checks:\n      - tcp: {address: \"a:1\"}\n",
       {"t.yaml:4: services[0].checks[0]: missing required key \"name\""}},
      // Found by the config fuzzer: an empty item loaded as a check with no name.
      {"empty check",
       "services:\n  - name: web\n    checks:\n      - \n",
       {"t.yaml:5: services[0].checks[0]: missing required key \"name\"",
        "t.yaml:5: services[0].checks[0]: no probe kind (one of http, tcp, postgres, disk, "
        "ingress, heartbeat)"}},
      {"empty module",
       "modules:\n  http_2xx:\n",
       {"t.yaml:3: modules.http_2xx: missing required key \"prober\""}},
      {"bad name",
       "services:\n  - name: \"a b\"\n",
       {"t.yaml:2: services[0].name: invalid name \"a b\": use letters, digits, '-', '_' and '.'"}},
      {"duplicate service",
       "services:\n  - name: web\n  - name: web\n",
       {"t.yaml:3: services[1].name: duplicate service name \"web\" (first at line 2)"}},
      {"duplicate check",
       kSvc +
           "        tcp: {address: \"a:1\"}\n      - name: up\n        tcp: {address: \"a:1\"}\n",
       {"t.yaml:6: services[0].checks[1].name: duplicate check name \"up\" (first at line 4)"}},
      {"unknown key in check",
       kSvc + "        tcp: {address: \"a:1\"}\n        intervall: 5s\n",
       {"t.yaml:6: services[0].checks[0]: unknown key \"intervall\" (did you mean \"interval\"?)"}},
      {"unknown group",
       "groups:\n  - name: a\nservices:\n  - name: web\n    group: b\n",
       {"t.yaml:5: services[0].group: unknown group \"b\" (groups: a)"}},
      {"unknown dependency",
       "services:\n  - name: web\n    depends_on: [db]\n",
       {"t.yaml:3: services[0].depends_on: unknown service \"db\""}},
      {"self dependency",
       "services:\n  - name: web\n    depends_on: [web]\n",
       {"t.yaml:3: services[0].depends_on: dependency cycle: web -> web"}},
      {"timeout over interval",
       kSvc + "        interval: 5s\n        timeout: 10s\n        tcp: {address: \"a:80\"}\n",
       {"t.yaml:6: services[0].checks[0].timeout: the timeout 10s is longer than the interval 5s"}},
      {"interval under default timeout",
       kSvc + "        interval: 1s\n        tcp: {address: \"a:80\"}\n",
       {"t.yaml:5: services[0].checks[0].interval: the timeout 5s is longer than the interval 1s"}},
      {"url scheme",
       kSvc + "        http: {url: \"ftp://a/\"}\n",
       {"t.yaml:5: services[0].checks[0].http.url: URL \"ftp://a/\" must use http or https"}},
      {"url no host",
       kSvc + "        http: {url: \"http:///x\"}\n",
       {"t.yaml:5: services[0].checks[0].http.url: URL \"http:///x\" has no host"}},
      {"url redacted",
       kSvc + "        http: {url: \"gopher://u:pw@a/\"}\n",
       {"t.yaml:5: services[0].checks[0].http.url: URL \"gopher://u:***@a/\" must use http or "
        "https"}},
      {"missing url",
       kSvc + "        http: {method: GET}\n",
       {"t.yaml:5: services[0].checks[0].http: missing required key \"url\""}},
      {"bad bool",
       kSvc + "        http: {url: \"http://a/\", follow_redirects: yes}\n",
       {"t.yaml:5: services[0].checks[0].http.follow_redirects: expected true or false, got "
        "\"yes\""}},
      {"health format",
       kSvc + "        http: {url: \"http://a/\", health_format: xml}\n",
       {"t.yaml:5: services[0].checks[0].http.health_format: \"xml\" is not one of auto, "
        "health+json, spring, microprofile, text, custom, none"}},
      {"custom without custom format",
       kSvc + "        http: {url: \"http://a/\", custom: {status: /s}}\n",
       {"t.yaml:5: services[0].checks[0].http.custom: only used with health_format: custom"}},
      {"condition with two kinds",
       kSvc + "        http:\n          url: \"http://a/\"\n          conditions:\n            - "
              "{json: /a, status: 200}\n",
       {"t.yaml:8: services[0].checks[0].http.conditions[0]: one condition per item, got json and "
        "status"}},
      {"condition without kind",
       kSvc + "        http:\n          url: \"http://a/\"\n          conditions:\n            - "
              "{equals: x}\n",
       {"t.yaml:8: services[0].checks[0].http.conditions[0]: expected one of json, body_matches, "
        "body_contains, latency_below, status"}},
      {"json pointer",
       kSvc + "        http:\n          url: \"http://a/\"\n          conditions: [{json: status, "
              "equals: ok}]\n",
       {"t.yaml:7: services[0].checks[0].http.conditions[0].json: a JSON pointer starts with "
        "\"/\", got \"status\""}},
      {"max_body",
       kSvc + "        http: {url: \"http://a/\", max_body: lots}\n",
       {"t.yaml:5: services[0].checks[0].http.max_body: expected a size like 10MiB or 1048576, got "
        "\"lots\""}},
      {"method",
       kSvc + "        http: {url: \"http://a/\", method: \"GE T\"}\n",
       {"t.yaml:5: services[0].checks[0].http.method: invalid HTTP method \"GE T\""}},
      {"tcp address",
       kSvc + "        tcp: {address: \"db\"}\n",
       {"t.yaml:5: services[0].checks[0].tcp.address: expected host:port like 0.0.0.0:9877, got "
        "\"db\""}},
      {"dsn redacted",
       kSvc + "        postgres: {dsn: \"mysql://u:secret@h/db\"}\n",
       {"t.yaml:5: services[0].checks[0].postgres.dsn: expected a PostgreSQL DSN "
        "(postgresql://user@host/db or host=... dbname=...), got \"mysql://u:***@h/db\""}},
      {"disk relative",
       kSvc + "        disk: {path: data}\n",
       {"t.yaml:5: services[0].checks[0].disk.path: must be an absolute path, got \"data\""}},
      {"disk min_free",
       kSvc + "        disk: {path: /d, min_free: 5 percent}\n",
       {"t.yaml:5: services[0].checks[0].disk.min_free: expected a size like 10GiB or a percentage "
        "like 5%, got \"5 percent\""}},
      {"disk percent",
       kSvc + "        disk: {path: /d, min_free: 120%}\n",
       {"t.yaml:5: services[0].checks[0].disk.min_free: a percentage must be between 0% and 100%, "
        "got \"120%\""}},
      {"ingress mode",
       kSvc + "        ingress: {url: \"https://a/\", mode: some}\n",
       {"t.yaml:5: services[0].checks[0].ingress.mode: \"some\" is not one of all, any"}},
      {"ingress address",
       kSvc + "        ingress: {url: \"https://a/\", addresses: [front.example]}\n",
       {"t.yaml:5: services[0].checks[0].ingress.addresses: \"front.example\" is not an IP "
        "address"}},
      {"service not a map",
       "services:\n  - web\n",
       {"t.yaml:2: services[0]: expected a mapping, got a scalar \"web\""}},
      {"secret in the wrong place",
       kSvc + "        postgres: \"postgresql://u:pw@h/db\"\n",
       {"t.yaml:5: services[0].checks[0].postgres: expected a mapping, got a scalar "
        "\"postgresql://u:***@h/db\""}},
      {"probe not a map",
       kSvc + "        tcp: \"a:80\"\n",
       {"t.yaml:5: services[0].checks[0].tcp: expected a mapping, got a scalar \"a:80\""}},
      {"label name",
       "services:\n  - name: web\n    labels: {\"bad-label\": x}\n",
       {"t.yaml:3: services[0].labels: invalid label name \"bad-label\": use letters, digits and "
        "'_', not starting with a digit"}},
      {"cluster service",
       "clusters:\n  - name: c\n    services: [web]\n",
       {"t.yaml:3: clusters[0].services: unknown service \"web\""}},
      {"cluster agent",
       "clusters:\n  - name: c\n    services: []\n    agent_listen: nowhere\n",
       {"t.yaml:4: clusters[0].agent_listen: expected host:port like 0.0.0.0:9877, got "
        "\"nowhere\""}},
      {"maintenance",
       "maintenance:\n  - services: [web]\n    start: tomorrow\n    duration: 2h\n",
       {"t.yaml:2: maintenance[0].services: unknown service \"web\"",
        "t.yaml:3: maintenance[0].start: expected an RFC 3339 time like 2026-12-01T06:00:00Z, got "
        "\"tomorrow\""}},
      // Found by tests/fuzz/config_fuzz: the year 4060 overflowed system_clock (UBSan).
      {"maintenance far future",
       "maintenance:\n  - services: []\n    start: \"4060-01-01T00:00:00Z\"\n    duration: 2h\n",
       {"t.yaml:3: maintenance[0].start: \"4060-01-01T00:00:00Z\" is not between the years 1970 "
        "and 2100"}},
      {"maintenance before 1970",
       "maintenance:\n  - services: []\n    start: 1969-12-31T23:59:59Z\n    duration: 2h\n",
       {"t.yaml:3: maintenance[0].start: \"1969-12-31T23:59:59Z\" is not between the years 1970 "
        "and 2100"}},
      {"maintenance missing",
       "maintenance:\n  - reason: x\n",
       {"t.yaml:2: maintenance[0]: missing required key \"services\"",
        "t.yaml:2: maintenance[0]: missing required key \"start\"",
        "t.yaml:2: maintenance[0]: missing required key \"duration\""}},
      {"history postgres without dsn",
       "history:\n  store: postgres\n",
       {"t.yaml:2: history: missing required key \"dsn\" (store is postgres)"}},
      {"history store",
       "history: {store: redis}\n",
       {"t.yaml:1: history.store: \"redis\" is not one of memory, postgres"}},
      {"module unsupported key",
       "modules:\n  m:\n    prober: http\n    http:\n      compression: gzip\n",
       {"t.yaml:5: modules.m.http: \"compression\" is not supported yet by vigie"}},
      {"module unsupported prober",
       "modules:\n  m:\n    prober: icmp\n",
       {"t.yaml:3: modules.m.prober: prober \"icmp\" is not supported yet by vigie"}},
      {"module unknown key",
       "modules:\n  m:\n    prober: http\n    http: {valid_status: [200]}\n",
       {"t.yaml:4: modules.m.http: unknown key \"valid_status\""}},
      {"auth short token",
       "auth: {admin_token: short}\n",
       {"t.yaml:1: auth.admin_token: the token is 5 characters long, at least 16 are needed "
        "(anyone who can reach vigie could guess it): try `openssl rand -hex 16`"}},
      {"auth token with a space",
       "auth: {read_token: \"0123456789 abcdef\"}\n",
       {"t.yaml:1: auth.read_token: the token must be printable ASCII without spaces (it is sent "
        "as `Authorization: Bearer <token>`)"}},
      {"auth same tokens",
       "auth:\n  admin_token: 0123456789abcdef\n  read_token: 0123456789abcdef\n",
       {"t.yaml:3: auth.read_token: must differ from admin_token (whoever reads could also "
        "reload)"}},
      {"auth protect_metrics without a read token",
       "auth: {admin_token: 0123456789abcdef, protect_metrics: true}\n",
       {"t.yaml:1: auth.protect_metrics: needs read_token (the token Prometheus sends as its "
        "bearer token)"}},
      {"auth protect_metrics not a boolean",
       "auth: {read_token: 0123456789abcdef, protect_metrics: yes please}\n",
       {"t.yaml:1: auth.protect_metrics: expected true or false, got \"yes please\""}},
      {"auth unknown key",
       "auth: {token: 0123456789abcdef}\n",
       {"t.yaml:1: auth: unknown key \"token\""}},
      {"auth not a map",
       "auth: 0123456789abcdef\n",
       {"t.yaml:1: auth: expected a mapping, got a scalar \"0123456789abcdef\""}},
      {"missing env",
       "location: \"${NOPE}\"\n",
       {"t.yaml:1: location: environment variable NOPE is not set"}},
      {"missing envs",
       "location: \"${NOPE}${NADA}\"\n",
       {"t.yaml:1: location: environment variables NOPE, NADA are not set"}},
      {"bad env reference",
       "location: \"${oops\"\n",
       {"t.yaml:1: location: unterminated \"${\" (write \"$${\" for a literal \"${\")"}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(errorsOf(c.text), c.errors) << c.name;
  }
}

TEST(ConfigErrors, InvalidRegexNamesThePattern) {
  auto errors =
      errorsOf(kSvc + "        http: {url: \"http://a/\", conditions: [{body_matches: \"(\"}]}\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("t.yaml:5: services[0].checks[0].http.conditions[0].body_matches: "
                            "invalid regex \"(\": ",
                            0),
            0u)
      << errors[0];
}

TEST(ConfigErrors, Files) {
  struct Case {
    const char* file;
    std::vector<std::string> errors;
  };
  const std::vector<Case> cases = {
      {"invalid-status.yaml",
       {"invalid-status.yaml:7: services[0].checks[0].http.expect_status: 99 is not an HTTP "
        "status"}},
      {"invalid-cycle.yaml",
       {"invalid-cycle.yaml:7: services[2].depends_on: dependency cycle: a -> b -> c -> a"}},
      {"invalid-env.yaml",
       {"invalid-env.yaml:6: services[0].checks[0].postgres.dsn: environment variable "
        "VIGIE_TEST_UNSET_DB_PASSWORD is not set"}},
      {"invalid-module.yaml",
       {"invalid-module.yaml:6: modules.http_2xx.http: \"compression\" is not supported yet by "
        "vigie",
        "invalid-module.yaml:8: modules.icmp.prober: prober \"icmp\" is not supported yet by "
        "vigie"}},
      {"invalid.json",
       {"invalid.json:7: services[0].checks[0].http.url: URL \"ftp://web.example/\" must use http "
        "or https"}},
      {"invalid-syntax.yaml",
       {"invalid-syntax.yaml:5: syntax error (column 1): end of sequence flow not found"}},
      // Every error of the file, in line order, not just the first.
      {"invalid-many.yaml",
       {"invalid-many.yaml:1: listen: expected host:port like 0.0.0.0:9877, got \"nowhere\"",
        "invalid-many.yaml:3: defaults.interval: expected a duration like 30s, got \"abc\"",
        "invalid-many.yaml:8: services[0].group: unknown group \"osug\" (groups: jmmc)",
        "invalid-many.yaml:9: services[0].depends_on: unknown service \"db\"",
        "invalid-many.yaml:13: services[0].checks[0].timeout: the timeout 10s is longer than the "
        "interval 5s",
        "invalid-many.yaml:15: services[0].checks[1].name: duplicate check name \"home\" (first at "
        "line 11)",
        "invalid-many.yaml:16: services[0].checks[1].heartbeat: missing required key \"token\"",
        "invalid-many.yaml:17: services[0].checks[1]: unknown key \"tpc\" (did you mean "
        "\"tcp\"?)"}},
      {"does-not-exist.yaml",
       {"does-not-exist.yaml: cannot read " + kData +
        "does-not-exist.yaml: No such file or directory"}},
  };
  unsetenv("VIGIE_TEST_UNSET_DB_PASSWORD");
  for (const auto& c : cases) EXPECT_EQ(fileErrors(c.file), c.errors) << c.file;
}

TEST(ConfigErrors, WhatJoinsEveryErrorOnItsOwnLine) {
  try {
    parseConfig("foo: 1\nbar: 2\n", "x/vigie.yaml");
    FAIL() << "no exception";
  } catch (const ConfigException& e) {
    EXPECT_STREQ(e.what(), "vigie.yaml:1: unknown key \"foo\"\nvigie.yaml:2: unknown key \"bar\"");
    ASSERT_EQ(e.errors().size(), 2u);
    EXPECT_EQ(e.errors()[0].path, "");
    EXPECT_EQ(e.errors()[0].message, "unknown key \"foo\"");
  }
}

TEST(ConfigErrors, SecretsStayOutOfMessages) {
  std::map<std::string, std::string> env{{"PW", "hunter2"}};
  auto errors = errorsOf(kSvc +
                             "        postgres: {dsn: \"pgsql://app:${PW}@db/app\"}\n"
                             "history: {store: postgres, dsn: \"redis://x:${PW}@h\"}\n",
                         env);
  ASSERT_EQ(errors.size(), 2u);
  for (const auto& e : errors) EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
}

TEST(Config, AuthTokensComeFromTheEnvironmentAndStayOutOfErrors) {
  const std::map<std::string, std::string> env{{"ADMIN", "admin-0123456789abcdef"},
                                               {"READ", "read-0123456789abcdef"}};
  auto cfg = parseConfig(
      "auth:\n  admin_token: \"${ADMIN}\"\n  read_token: \"${READ}\"\n  protect_metrics: true\n",
      "t.yaml", &env);
  EXPECT_EQ(cfg->auth.admin_token, "admin-0123456789abcdef");
  EXPECT_EQ(cfg->auth.read_token, "read-0123456789abcdef");
  EXPECT_TRUE(cfg->auth.protect_metrics);
  auto none = parseConfig("services: []\n", "t.yaml");
  EXPECT_TRUE(none->auth.admin_token.empty());
  EXPECT_TRUE(none->auth.read_token.empty());
  EXPECT_FALSE(none->auth.protect_metrics);
  // A token refused for its form is never quoted.
  const std::map<std::string, std::string> weak{{"ADMIN", "hunter2 hunter2 hunter2"}};
  for (const auto& e : errorsOf("auth: {admin_token: \"${ADMIN}\"}\n", weak)) {
    EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  }
  // Nor is one put where a mapping belongs.
  const std::map<std::string, std::string> token{{"ADMIN", "admin-0123456789abcdef"}};
  EXPECT_EQ(errorsOf("auth: \"${ADMIN}\"\n", token),
            std::vector<std::string>{
                "t.yaml:1: auth: expected a mapping, got a scalar set from the environment"});
}

TEST(RedactDsn, Forms) {
  struct Case {
    const char* in;
    const char* out;
  };
  for (const Case& c : {
           Case{"postgresql://user:pass@host:5432/db", "postgresql://user:***@host:5432/db"},
           Case{"postgres://user@host/db", "postgres://user@host/db"},
           Case{"postgresql://host/db?user=u&password=p&sslmode=require",
                "postgresql://host/db?user=u&password=***&sslmode=require"},
           Case{"postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"},
           Case{"http://u:pw@example.org/x", "http://u:***@example.org/x"},
           Case{"host=pg password=secret dbname=x", "host=pg password=*** dbname=x"},
           Case{"host=pg password = 'se cr\\'et' dbname=x", "host=pg password=*** dbname=x"},
           Case{"password=secret", "password=***"},
           Case{"host=pg dbname=x", "host=pg dbname=x"},
       }) {
    EXPECT_EQ(redactDsn(c.in), c.out) << c.in;
  }
}

// ---------------------------------------------------------------- scale

TEST(ConfigScale, FiftyThousandChecks) {
  std::string text = "defaults: {interval: 30s, timeout: 5s}\nservices:\n";
  text.reserve(8 << 20);
  const int services = 1000, per = 50;
  for (int s = 0; s < services; ++s) {
    text += "  - name: svc-" + std::to_string(s) + "\n    group: g\n";
    if (s > 0) text += "    depends_on: [svc-" + std::to_string(s - 1) + "]\n";
    text += "    checks:\n";
    for (int c = 0; c < per; ++c) {
      text += "      - name: c" + std::to_string(c) +
              "\n        http:\n          url: \"http://svc-" + std::to_string(s) +
              ".example:8080/health\"\n          conditions: [{json: /status, equals: pass}]\n";
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto cfg = parseConfig(text, "big.yaml");
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf("50,000 checks (%zu bytes) loaded in %lld ms\n", text.size(),
              static_cast<long long>(ms));
  ASSERT_EQ(cfg->services.size(), static_cast<std::size_t>(services));
  std::size_t checks = 0;
  for (const auto& s : cfg->services) checks += s.checks.size();
  EXPECT_EQ(checks, 50'000u);
  EXPECT_EQ(cfg->services.back().checks.back().key, "svc-999/c49");
  EXPECT_EQ(std::get<HttpSpec>(cfg->services[500].checks[7].spec).url,
            "http://svc-500.example:8080/health");
  EXPECT_EQ(cfg->findService("svc-999/c49"), &cfg->services.back());
}

TEST(Config, HeartbeatNeedsALongTokenAndFailsAtOnceByDefault) {
  const std::string head =
      "defaults: {failure_threshold: 3}\n"
      "services:\n"
      "  - name: s\n"
      "    checks:\n";
  auto cfg = parseConfig(head +
                             "      - name: hb\n"
                             "        heartbeat: {period: 1h, token: 0123456789abcdef}\n"
                             "      - name: hb3\n"
                             "        failure_threshold: 2\n"
                             "        heartbeat: {period: 1h, token: 0123456789abcdef}\n",
                         "t.yaml");
  EXPECT_EQ(cfg->services[0].checks[0].failure_threshold, 1);
  EXPECT_EQ(cfg->services[0].checks[1].failure_threshold, 2);
  try {
    parseConfig(head + "      - name: hb\n        heartbeat: {period: 1h, token: short}\n",
                "t.yaml");
    FAIL() << "a 5-character token was accepted";
  } catch (const ConfigException& e) {
    EXPECT_STREQ(e.what(),
                 "t.yaml:6: services[0].checks[0].heartbeat.token: the token is 5 characters "
                 "long, at least 16 are needed (anyone who can reach vigie could guess it): try "
                 "`openssl rand -hex 16`");
  }
}

}  // namespace
}  // namespace vigie
