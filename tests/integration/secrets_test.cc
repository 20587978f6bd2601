// Secrets and access, end to end: vigie runs with every kind of secret a user
// gives it (a PostgreSQL password in a check and in the history store, a wrong
// one, a bearer token and an API key in HTTP headers, basic auth in a URL, a
// heartbeat token, the admin and read tokens of `auth:`), against a real
// PostgreSQL and a real nginx that echoes the credentials it receives. Then
// every surface is read (text and JSON logs, /metrics, every /api/v1 document,
// every page and badge, POST /-/reload answers, `vigie probe` and `vigie
// check-config` output) and searched for each secret in every form it could take
// (raw, percent-encoded, base64 as in a Basic header). The bearer-token
// protection of the API, the page, /metrics and /-/reload is checked on the way.

#include <curl/curl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "tests/support/http_client.h"
#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/paths.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;

struct Http {
  long status = 0;
  std::string body;
  std::string headers;
};

Http request(const std::string& method, const std::string& url,
             const std::vector<std::string>& headers = {}, const std::string& userpwd = "") {
  Http out;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  }
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if (!userpwd.empty()) curl_easy_setopt(c, CURLOPT_USERPWD, userpwd.c_str());
  const auto append = +[](char* p, size_t s, size_t n, void* ud) -> size_t {
    static_cast<std::string*>(ud)->append(p, s * n);
    return s * n;
  };
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, append);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &out.headers);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return out;
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char ch : in) {
    acc = (acc << 8) | ch;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += k[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += k[(acc << (6 - bits)) & 63];
  while (out.size() % 4) out += '=';
  return out;
}

std::string percentEncoded(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    out += std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~'
               ? std::string(1, static_cast<char>(c))
               : fmt::format("%{:02X}", c);
  }
  return out;
}

// One server for the binary; stopped after the last test.
std::unique_ptr<Postgres>& server() {
  static std::unique_ptr<Postgres> instance;
  return instance;
}
class PgEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { server() = std::make_unique<Postgres>(); }
  void TearDown() override { server().reset(); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PgEnvironment);

// Every secret of the run, by name, and each in every form it could leak in.
struct Secrets {
  std::map<std::string, std::string> values;

  std::vector<std::pair<std::string, std::string>> forms() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [name, v] : values) {
      out.emplace_back(name, v);
      if (percentEncoded(v) != v) out.emplace_back(name + " (percent-encoded)", percentEncoded(v));
      out.emplace_back(name + " (base64)", base64(v));
      if (v.find('\'') != std::string::npos) {
        std::string sql, backslashed;
        for (char c : v) {
          sql += c == '\'' ? std::string("''") : std::string(1, c);
          backslashed += c == '\'' ? std::string("\\'") : std::string(1, c);
        }
        out.emplace_back(name + " (SQL-quoted)", sql);
        out.emplace_back(name + " (backslash-quoted)", backslashed);
      }
    }
    // What curl sends for basic auth in a URL.
    out.emplace_back("basic credentials (base64)", base64("vigie:" + values.at("BASIC_PW")));
    return out;
  }
};

class SecretsTest : public ::testing::Test {
 protected:
  static NginxOptions nginxOptions() {
    NginxOptions o;
    o.locations = {
        // A debugging endpoint that echoes what it was sent, as httpbin's /headers does.
        {"= /echo",
         "default_type text/plain; return 503 'seen: $http_authorization $http_x_api_key';"},
        {"= /echo.json",
         "default_type application/json; return 200 '{\"status\":\"fail\",\"version\":"
         "\"$http_x_api_key\",\"checks\":{\"$http_x_api_key:auth\":[{\"status\":\"fail\","
         "\"output\":\"$http_authorization\"}]}}';"},
        {"/basic/", "auth_basic \"vigie test\"; auth_basic_user_file htpasswd;"},
    };
    return o;
  }

  void SetUp() override {
    dir_ = makeTempDir("vigie-secrets");
    writeFile(nginx_.root() + "/basic/ok.txt", "ok\n");
    // nginx reads {PLAIN} passwords (no hashing tool needed), on each request, from
    // beside its nginx.conf.
    writeFile(nginx_.prefix() + "/htpasswd", "vigie:{PLAIN}" + secrets_.values.at("BASIC_PW") + "\n");
    port_ = freePort();
    base_ = fmt::format("http://127.0.0.1:{}", port_);
    Postgres& pg = *server();
    pg.sql("DROP DATABASE IF EXISTS secrets_history WITH (FORCE)");
    pg.sql(fmt::format("CREATE DATABASE secrets_history OWNER \"{}\"", Postgres::user()));
  }
  void TearDown() override { removeTree(dir_); }

  std::map<std::string, std::string> env() const {
    Postgres& pg = *server();
    auto e = secrets_.values;
    e["DB_DSN"] = pg.dsn(Postgres::user(), Postgres::password(), Postgres::database());
    e["DB_KV_DSN"] = pg.keyValueDsn(Postgres::user(), Postgres::password(), Postgres::database());
    e["BAD_DSN"] = pg.dsn(Postgres::user(), secrets_.values.at("WRONG_DB_PW"), Postgres::database());
    e["HISTORY_DSN"] = pg.dsn(Postgres::user(), Postgres::password(), "secrets_history");
    e["DB_PW"] = Postgres::password();
    return e;
  }

  std::string configText(const std::string& extra_service = "") const {
    const std::string host = fmt::format("127.0.0.1:{}", nginx_.port());
    return fmt::format(
        R"(listen: "127.0.0.1:{port}"
defaults: {{interval: 500ms, timeout: 500ms, failure_threshold: 1}}
auth:
  admin_token: "${{ADMIN_TOKEN}}"
  read_token: "${{READ_TOKEN}}"
groups:
  - name: team
services:
  - name: db
    group: team
    checks:
      - name: pg
        postgres: {{dsn: "${{DB_DSN}}"}}
      - name: pg-kv
        postgres: {{dsn: "${{DB_KV_DSN}}", query: "SELECT 1", expect: "1"}}
      - name: pg-wrong-password
        postgres: {{dsn: "${{BAD_DSN}}"}}
  - name: web
    group: team
    depends_on: [db]
    checks:
      - name: echo
        http:
          url: "http://{host}/echo"
          headers: {{Authorization: "Bearer ${{API_TOKEN}}", X-Api-Key: "${{API_KEY}}"}}
      - name: echo-json
        http:
          url: "http://{host}/echo.json"
          headers: {{Authorization: "Bearer ${{API_TOKEN}}", X-Api-Key: "${{API_KEY}}"}}
      - name: basic
        http: {{url: "http://vigie:${{BASIC_PW}}@{host}/basic/ok.txt"}}
      - name: basic-wrong
        http: {{url: "http://vigie:${{WRONG_BASIC_PW}}@{host}/basic/ok.txt"}}
  - name: jobs
    group: team
    checks:
      - name: nightly
        heartbeat: {{period: 1h, token: "${{HEARTBEAT_TOKEN}}"}}
{extra}clusters:
  - name: front
    services: [web]
history:
  store: postgres
  dsn: "${{HISTORY_DSN}}"
)",
        fmt::arg("port", port_), fmt::arg("host", host), fmt::arg("extra", extra_service));
  }

  // Everything vigie serves, each surface named.
  std::vector<std::pair<std::string, std::string>> collect() const {
    std::vector<std::pair<std::string, std::string>> out;
    const std::vector<std::string> auth = {"Authorization: Bearer " +
                                           secrets_.values.at("READ_TOKEN")};
    auto get = [&](const std::string& path) {
      const Http r = request("GET", base_ + path, auth);
      // The cluster is down (its service depends on a failing check): 503 says so.
      EXPECT_EQ(r.status, path.ends_with("/ready") ? 503 : 200) << path << ": " << r.body;
      out.emplace_back(path, r.headers + r.body);
      return r.body;
    };
    get("/metrics");
    get("/healthz");
    get("/readyz");
    const auto checks = boost::json::parse(get("/api/v1/checks"));
    for (const auto& c : checks.at("checks").as_array()) {
      const std::string key(c.at("key").as_string());
      get("/api/v1/checks/" + key);
    }
    for (const auto* list : {"services", "groups", "clusters"}) {
      const auto doc = boost::json::parse(get(std::string("/api/v1/") + list));
      for (const auto& item : doc.at(list).as_array()) {
        const std::string name(item.at("name").as_string());
        get(fmt::format("/api/v1/{}/{}", list, name));
        if (std::string(list) != "clusters") get(fmt::format("/{}/{}", list, name));
      }
    }
    get("/clusters/front");
    get("/api/v1/clusters/front/ready");
    get("/api/v1/events");
    get("/");
    get("/checks");
    get("/badge/web.svg");
    get("/badge/db/uptime/24h.svg");
    return out;
  }

  void expectNoSecret(const std::vector<std::pair<std::string, std::string>>& surfaces) {
    for (const auto& [surface, text] : surfaces) {
      for (const auto& [name, value] : secrets_.forms()) {
        EXPECT_EQ(text.find(value), std::string::npos)
            << surface << " shows " << name << ":\n"
            << text.substr(text.find(value) > 300 ? text.find(value) - 300 : 0, 600);
      }
    }
  }

  Secrets secrets_{{
      {"API_TOKEN", "api-tok-7Hq2xWv9Lm4Kp8Rz"},
      {"API_KEY", "api-key-Zt5Nc3Vb6Xm1Qa9W"},
      {"BASIC_PW", "basic-pw-Jd8Fk2Lp0Ws7Ey"},
      {"WRONG_BASIC_PW", "wrong-basic-Gh3Tr6Yu9Io"},
      {"WRONG_DB_PW", "wrong-db-pw-Bn4Mq7Xc2Vz"},
      {"HEARTBEAT_TOKEN", "hb-token-Ue5Ri8Oy1Tp4Aw"},
      {"ADMIN_TOKEN", "admin-tok-Sx9Dc2Fv5Gb8Hn"},
      {"READ_TOKEN", "read-tok-Kj6Lh3Mg0Nf7Pd"},
      {"GUESSED_TOKEN", "guess-tok-Qw1Er4Ty7Ui0"},
      {"DB_PW", Postgres::password()},
  }};
  Nginx nginx_{nginxOptions()};
  std::string dir_;
  int port_ = 0;
  std::string base_;
};

TEST_F(SecretsTest, NoSecretInLogsMetricsApiPagesOrProbeOutput) {
  const std::string file = dir_ + "/vigie.yaml";
  writeFile(file, configText());
  auto environment = env();
  std::vector<std::pair<std::string, std::string>> surfaces;

  for (const std::string format : {"text", "json"}) {
    SCOPED_TRACE(format);
    Process vigie({{VIGIE_BINARY, "--config", file, "--log-format", format, "--log-level", "debug"},
                   environment,
                   dir_ + "/log-" + format,
                   ""});
    const std::vector<std::string> read = {"Authorization: Bearer " +
                                           secrets_.values.at("READ_TOKEN")};
    // Every check has a result, and the echoes came back (scrubbed).
    std::string checks;
    ASSERT_TRUE(eventually(15s, [&] {
      const Http r = request("GET", base_ + "/api/v1/checks", read);
      if (r.status != 200) return false;
      checks = r.body;
      const auto parsed = boost::json::parse(r.body);
      for (const auto& c : parsed.at("checks").as_array()) {
        if (c.at("kind") != "heartbeat" && c.at("last_result").is_null()) return false;
      }
      return true;
    })) << checks << vigie.output();
    const auto doc = boost::json::parse(checks);
    std::map<std::string, boost::json::object> by_key;
    for (const auto& c : doc.at("checks").as_array()) {
      by_key[std::string(c.at("key").as_string())] = c.as_object();
    }
    EXPECT_EQ(by_key.at("db/pg").at("state"), "up") << boost::json::serialize(by_key.at("db/pg"));
    EXPECT_EQ(by_key.at("db/pg-kv").at("state"), "up");
    EXPECT_EQ(by_key.at("db/pg-wrong-password").at("reason"), "auth");
    EXPECT_EQ(by_key.at("web/basic").at("state"), "up")
        << "the URL's credentials are sent: " << boost::json::serialize(by_key.at("web/basic"));
    EXPECT_EQ(by_key.at("web/basic-wrong").at("reason"), "http_status");
    // The echoes are shown, with the secrets masked.
    const std::string echo = boost::json::serialize(by_key.at("web/echo"));
    EXPECT_NE(echo.find("seen: Bearer ***"), std::string::npos) << echo;
    const std::string echo_json = boost::json::serialize(by_key.at("web/echo-json"));
    EXPECT_NE(echo_json.find("Bearer ***"), std::string::npos) << echo_json;
    EXPECT_EQ(by_key.at("web/basic").at("target").as_string(),
              fmt::format("http://127.0.0.1:{}/basic/ok.txt", nginx_.port()));

    // Heartbeat pushes: the token in the header, in the query, a wrong one.
    const std::string push = base_ + "/api/v1/push/jobs/nightly";
    EXPECT_EQ(request("POST", push, {"Authorization: Bearer " +
                                     secrets_.values.at("HEARTBEAT_TOKEN")})
                  .status,
              200);
    EXPECT_EQ(request("POST", push + "?token=" + secrets_.values.at("HEARTBEAT_TOKEN")).status, 200);
    EXPECT_EQ(request("POST", push + "?token=" + secrets_.values.at("GUESSED_TOKEN")).status, 401);
    EXPECT_EQ(request("POST", push, {"Authorization: Bearer " +
                                     secrets_.values.at("GUESSED_TOKEN")})
                  .status,
              401);

    // Access: the read token opens the API and the page, as Bearer or as Basic
    // (what a browser sends); nothing else does.
    EXPECT_EQ(request("GET", base_ + "/", {}, "anyone:" + secrets_.values.at("READ_TOKEN")).status,
              200);
    const Http page = request("GET", base_ + "/");
    EXPECT_EQ(page.status, 401);
    EXPECT_NE(page.headers.find("WWW-Authenticate: Basic realm=\"vigie\""), std::string::npos)
        << page.headers;
    const Http api = request("GET", base_ + "/api/v1/services",
                             {"Authorization: Bearer " + secrets_.values.at("GUESSED_TOKEN")});
    EXPECT_EQ(api.status, 401);
    EXPECT_NE(api.headers.find("WWW-Authenticate: Bearer realm=\"vigie\", error=\"invalid_token\""),
              std::string::npos)
        << api.headers;
    EXPECT_EQ(request("GET", base_ + "/api/v1/checks/web/echo").status, 401);
    EXPECT_EQ(request("GET", base_ + "/badge/web.svg").status, 401);
    EXPECT_EQ(request("GET", base_ + "/metrics").status, 200) << "open unless protect_metrics";
    EXPECT_EQ(request("GET", base_ + "/healthz").status, 200);
    EXPECT_EQ(request("GET", base_ + "/readyz").status, 200);
    EXPECT_EQ(request("GET", base_ + "/api/v1/checks",
                      {"Authorization: Bearer " + secrets_.values.at("ADMIN_TOKEN")})
                  .status,
              200)
        << "the admin token reads too";

    // Reload over HTTP: only the admin token.
    EXPECT_EQ(request("POST", base_ + "/-/reload").status, 401);
    EXPECT_EQ(request("POST", base_ + "/-/reload", read).status, 401);
    const Http reloaded = request("POST", base_ + "/-/reload",
                                  {"Authorization: Bearer " + secrets_.values.at("ADMIN_TOKEN")});
    EXPECT_EQ(reloaded.status, 200) << reloaded.body;
    EXPECT_NE(reloaded.body.find("\"reloaded\":true"), std::string::npos) << reloaded.body;
    surfaces.emplace_back("POST /-/reload", reloaded.headers + reloaded.body);

    // A refused reload whose errors sit next to secrets, by HTTP and by SIGHUP.
    writeFile(file, configText(fmt::format(
                        "  - name: broken\n    checks:\n      - name: ftp\n        http: {{url: "
                        "\"ftp://vigie:${{BASIC_PW}}@127.0.0.1/\"}}\n      - name: pg\n        "
                        "postgres: {{dsn: \"mysql://u:${{DB_PW}}@h/x\"}}\n")));
    const Http refused = request("POST", base_ + "/-/reload",
                                 {"Authorization: Bearer " + secrets_.values.at("ADMIN_TOKEN")});
    EXPECT_EQ(refused.status, 422) << refused.body;
    EXPECT_NE(refused.body.find("must use http or https"), std::string::npos) << refused.body;
    EXPECT_NE(refused.body.find("ftp://vigie:***@127.0.0.1/"), std::string::npos) << refused.body;
    surfaces.emplace_back("POST /-/reload refused", refused.headers + refused.body);
    auto refusals = [&] {
      const std::string out = vigie.output();
      int n = 0;
      for (auto at = out.find("reload of " + file + " refused"); at != std::string::npos;
           at = out.find("reload of " + file + " refused", at + 1)) {
        ++n;
      }
      return n;
    };
    EXPECT_EQ(refusals(), 1);
    kill(vigie.pid(), SIGHUP);
    ASSERT_TRUE(eventually(5s, [&] { return refusals() == 2; })) << vigie.output();
    writeFile(file, configText());

    auto served = collect();
    surfaces.insert(surfaces.end(), served.begin(), served.end());
    EXPECT_EQ(vigie.stop(), 0);
    surfaces.emplace_back(format + " log", vigie.output());
    if (format == "json") {
      // The restart restored events and results from PostgreSQL: shown scrubbed too.
      EXPECT_NE(vigie.output().find("history store: restored"), std::string::npos);
    }
  }

  // `vigie probe` and `vigie check-config`, passing and failing, with secrets.
  const std::string host = fmt::format("127.0.0.1:{}", nginx_.port());
  const std::vector<std::vector<std::string>> commands = {
      {"probe", environment.at("DB_DSN"), "--query", "SELECT 1", "--expect", "1"},
      {"probe", environment.at("BAD_DSN")},
      {"probe", environment.at("DB_KV_DSN")},
      {"probe", "http://" + host + "/echo", "-H",
       "Authorization: Bearer " + secrets_.values.at("API_TOKEN"), "-H",
       "X-Api-Key: " + secrets_.values.at("API_KEY")},
      {"probe", "http://" + host + "/echo.json", "-H",
       "Authorization: Bearer " + secrets_.values.at("API_TOKEN"), "-H",
       "X-Api-Key: " + secrets_.values.at("API_KEY")},
      {"probe", "http://vigie:" + secrets_.values.at("BASIC_PW") + "@" + host + "/basic/ok.txt"},
      {"probe",
       "http://vigie:" + secrets_.values.at("WRONG_BASIC_PW") + "@" + host + "/basic/ok.txt"},
      {"probe", "ftp://vigie:" + secrets_.values.at("BASIC_PW") + "@" + host + "/"},
      {"check-config", file},
  };
  for (const auto& args : commands) {
    std::vector<std::string> argv = {VIGIE_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string out_file = fmt::format("{}/cli-{}.txt", dir_, surfaces.size());
    Process p({argv, environment, out_file, ""});
    const auto st = p.wait(20s);
    ASSERT_TRUE(st) << args[0] << " " << args[1];
    std::string name = "vigie";
    for (const auto& a : args) name += " " + a.substr(0, 40);
    surfaces.emplace_back(name, p.output());
    // The good ones pass: what they print was produced by a real check.
    if (args[0] == "probe" &&
        ((args[1] == environment.at("DB_DSN") && args.size() == 6) ||
         args[1] == environment.at("DB_KV_DSN") || args[1].ends_with("@" + host + "/basic/ok.txt")) &&
        args[1].find("wrong") == std::string::npos) {
      EXPECT_EQ(WEXITSTATUS(*st), 0) << p.output();
    }
  }
  std::size_t bytes = 0;
  for (const auto& [name, text] : surfaces) bytes += text.size();
  std::cout << fmt::format("searched {} surfaces ({} KiB) for {} forms of {} secrets\n",
                           surfaces.size(), bytes / 1024, secrets_.forms().size(),
                           secrets_.values.size());
  expectNoSecret(surfaces);
}

}  // namespace
}  // namespace vigie::test
