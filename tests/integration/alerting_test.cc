// The monitoring stack end to end, with the example files of dashboards/ as
// shipped (only addresses and timings swapped): a real nginx as the targets,
// vigie probing it, a real Prometheus scraping vigie and evaluating
// dashboards/alerts/vigie-rules.yaml (every `for:` shortened to 3 s), a real
// Alertmanager routing by group and inhibiting dependents, and a webhook
// receiver in this test collecting the notifications.
//
// Breaking `web` delivers VigieServiceDown{service="web",reason="http_status"}
// to its team; breaking `shared-db` (and with it app1 and app2, which depend on
// it) delivers one VigieServiceDown for shared-db and nothing for app1/app2;
// restoring delivers the resolved notifications. Then every PromQL expression
// of the Grafana dashboards runs against that Prometheus and must succeed and
// return data.

#include <gtest/gtest.h>

#include <curl/curl.h>
#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/tls_cert.h"
#include "tests/support/paths.h"

namespace vigie::test {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

const std::string kSource = VIGIE_SOURCE_DIR;

// ---------------------------------------------------------------- small
// helpers

struct Http {
  long status = 0;
  std::string body;
};

Http get(const std::string &url) {
  Http out;
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION,
      +[](char *p, size_t s, size_t n, void *ud) -> size_t {
        static_cast<std::string *>(ud)->append(p, s * n);
        return s * n;
      });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
  curl_easy_cleanup(c);
  return out;
}

std::string escape(const std::string &s) {
  CURL *c = curl_easy_init();
  char *e = curl_easy_escape(c, s.c_str(), static_cast<int>(s.size()));
  std::string out(e);
  curl_free(e);
  curl_easy_cleanup(c);
  return out;
}

bool eventually(std::chrono::milliseconds limit,
                const std::function<bool()> &pred) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred())
      return true;
    std::this_thread::sleep_for(100ms);
  }
  return pred();
}

// Replaces every `from` in `text`; a missing `from` means the example file
// changed under the test, which must then be updated.
std::string replaceAll(std::string text, const std::string &from,
                       const std::string &to) {
  std::size_t n = 0;
  for (auto at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
    ++n;
  }
  if (n == 0)
    throw std::runtime_error("example file has no '" + from + "'");
  return text;
}

double nowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- webhook
// receiver

struct Alert {
  std::string status; // firing | resolved
  std::map<std::string, std::string> labels;
};

struct Notification {
  std::string path; // the receiver's URL path: /team-a, /data, /ops
  std::string status;
  std::vector<Alert> alerts;
  std::chrono::steady_clock::time_point at;
};

// Alertmanager's webhook target: one thread accepting on 127.0.0.1:0, one
// request per connection (answered with Connection: close), bodies parsed as
// they come.
class WebhookReceiver {
public:
  WebhookReceiver()
      : acceptor_(
            io_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { run(); });
  }
  ~WebhookReceiver() {
    stop_ = true;
    // Wakes the blocking accept.
    try {
      boost::asio::io_context io;
      tcp::socket s(io);
      s.connect(
          tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_));
    } catch (const std::exception &) {
    }
    thread_.join();
  }
  int port() const { return port_; }

  std::vector<Notification> notifications() const {
    std::lock_guard lock(mu_);
    return notifications_;
  }
  /// Alerts received so far with this alertname and status (and service when
  /// given).
  std::vector<std::pair<std::string, Alert>>
  find(const std::string &alertname, const std::string &status,
       const std::string &service = "") const {
    std::vector<std::pair<std::string, Alert>> out;
    for (const auto &n : notifications()) {
      for (const auto &a : n.alerts) {
        const auto name = a.labels.find("alertname");
        const auto svc = a.labels.find("service");
        if (name == a.labels.end() || name->second != alertname ||
            a.status != status)
          continue;
        if (!service.empty() &&
            (svc == a.labels.end() || svc->second != service))
          continue;
        out.emplace_back(n.path, a);
      }
    }
    return out;
  }
  std::string dump() const {
    std::string out;
    for (const auto &n : notifications()) {
      out += n.path + " " + n.status + ":";
      for (const auto &a : n.alerts) {
        out += " [" + a.status;
        for (const auto &[k, v] : a.labels)
          out += " " + k + "=" + v;
        out += "]";
      }
      out += "\n";
    }
    return out;
  }

private:
  void run() {
    while (!stop_) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_)
        continue;
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec)
        continue;
      record(std::string(req.target()), req.body());
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::connection, "close");
      res.body() = "ok";
      res.prepare_payload();
      http::write(socket, res, ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
    }
  }
  void record(const std::string &path, const std::string &body) {
    Notification n{path, "", {}, std::chrono::steady_clock::now()};
    boost::system::error_code ec;
    const auto v = json::parse(body, ec);
    if (!ec && v.is_object()) {
      const auto &o = v.as_object();
      if (const auto *s = o.if_contains("status"); s && s->is_string())
        n.status = s->as_string();
      if (const auto *as = o.if_contains("alerts"); as && as->is_array()) {
        for (const auto &a : as->as_array()) {
          Alert alert;
          alert.status = a.at("status").as_string();
          for (const auto &[k, lv] : a.at("labels").as_object()) {
            alert.labels[std::string(k)] = std::string(lv.as_string());
          }
          n.alerts.push_back(std::move(alert));
        }
      }
    }
    std::lock_guard lock(mu_);
    notifications_.push_back(std::move(n));
  }

  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Notification> notifications_;
  std::thread thread_;
};

// ---------------------------------------------------------------- Grafana
// dashboards

struct DashboardQuery {
  std::string file;
  std::string where; // panel title, or "variable <name>"
  std::string expr;
};

json::value readJson(const std::string &path) {
  return json::parse(readFile(path));
}

std::vector<std::string> dashboardFiles() {
  std::vector<std::string> out;
  for (const auto &e :
       fs::directory_iterator(kSource + "/dashboards/grafana")) {
    if (e.path().extension() == ".json")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void collectPanels(const json::array &panels, const std::string &file,
                   std::vector<DashboardQuery> &out) {
  for (const auto &p : panels) {
    const auto &o = p.as_object();
    const std::string title =
        o.contains("title") ? std::string(o.at("title").as_string()) : "";
    if (const auto *ts = o.if_contains("targets")) {
      for (const auto &t : ts->as_array()) {
        if (const auto *e = t.as_object().if_contains("expr")) {
          out.push_back({file, title, std::string(e->as_string())});
        }
      }
    }
    if (const auto *sub = o.if_contains("panels"))
      collectPanels(sub->as_array(), file, out);
  }
}

std::vector<DashboardQuery> dashboardQueries() {
  std::vector<DashboardQuery> out;
  for (const auto &f : dashboardFiles()) {
    const auto d = readJson(f).as_object();
    collectPanels(d.at("panels").as_array(), fs::path(f).filename(), out);
  }
  return out;
}

// Grafana's variables as the test's Prometheus knows them.
std::string substitute(std::string expr, const std::string &service) {
  static const std::vector<std::pair<std::string, std::string>> fixed = {
      {"$__rate_interval", "10s"}, {"$__range", "1h"},
      {"$__interval", "1s"},       {"$group", ".*"},
      {"$job", "vigie"},           {"$instance", ".+"}};
  for (const auto &[from, to] : fixed) {
    for (auto at = expr.find(from); at != std::string::npos;
         at = expr.find(from, at)) {
      expr.replace(at, from.size(), to);
    }
  }
  for (auto at = expr.find("$service"); at != std::string::npos;
       at = expr.find("$service", at)) {
    expr.replace(at, 8, service);
  }
  return expr;
}

// The dashboards are valid JSON, importable and provisionable: a stable uid, a
// schemaVersion, a `datasource` variable used by every panel and query
// variable.
TEST(GrafanaDashboards, ValidAndProvisionable) {
  const auto files = dashboardFiles();
  ASSERT_EQ(files.size(), 3u);
  std::set<std::string> uids;
  for (const auto &f : files) {
    SCOPED_TRACE(f);
    json::value v;
    ASSERT_NO_THROW(v = readJson(f));
    const auto &d = v.as_object();
    ASSERT_TRUE(d.contains("uid"));
    const std::string uid(d.at("uid").as_string());
    EXPECT_TRUE(std::regex_match(uid, std::regex("vigie-[a-z]+"))) << uid;
    EXPECT_TRUE(uids.insert(uid).second) << "duplicate uid " << uid;
    EXPECT_GE(d.at("schemaVersion").as_int64(), 36);
    EXPECT_FALSE(d.at("title").as_string().empty());
    bool has_ds = false;
    for (const auto &var : d.at("templating").at("list").as_array()) {
      const auto &o = var.as_object();
      if (o.at("type") == "datasource" && o.at("name") == "datasource") {
        has_ds = o.at("query") == "prometheus";
      }
      if (o.at("type") == "query") {
        EXPECT_EQ(o.at("datasource").at("uid"), "${datasource}")
            << json::serialize(o);
      }
    }
    EXPECT_TRUE(has_ds) << "no datasource variable";
    std::set<std::int64_t> ids;
    std::function<void(const json::array &)> walk =
        [&](const json::array &panels) {
          for (const auto &p : panels) {
            const auto &o = p.as_object();
            EXPECT_TRUE(ids.insert(o.at("id").as_int64()).second)
                << "duplicate panel id";
            if (o.at("type") != "row") {
              EXPECT_EQ(o.at("datasource").at("uid"), "${datasource}")
                  << o.at("title");
              EXPECT_FALSE(o.at("targets").as_array().empty()) << o.at("title");
            }
            if (const auto *sub = o.if_contains("panels"))
              walk(sub->as_array());
          }
        };
    walk(d.at("panels").as_array());
  }
  // The provisioning files point at the same kind of data source.
  for (const auto &f :
       {"/dashboards/grafana/provisioning/datasources/vigie-prometheus.yaml",
        "/dashboards/grafana/provisioning/dashboards/vigie.yaml"}) {
    EXPECT_NE(readFile(kSource + f).find("apiVersion: 1"), std::string::npos)
        << f;
  }
}

// ---------------------------------------------------------------- the stack

class Stack {
public:
  Stack() : dir_(makeTempDir("alerting")) {}
  ~Stack() {
    prometheus_.reset();
    alertmanager_.reset();
    vigie_.reset();
    nginx_.reset();
    removeTree(dir_);
  }

  void start() {
    ca_ = std::make_unique<TestCa>(dir_);
    NginxOptions no;
    // Ten days left: VigieCertificateExpiring (14-day warning) fires for
    // web/tls.
    no.tls.push_back(ca_->issue("web", -1h, std::chrono::hours(24 * 10)));
    nginx_ = std::make_unique<Nginx>(no);
    for (const auto &p : {"web/health.json", "db/health.json",
                          "app1/health.json", "app2/health.json"}) {
      restore(p);
    }

    vigie_port_ = freePort();
    writeFile(
        dir_ + "/vigie.yaml",
        fmt::format("listen: \"127.0.0.1:{0}\"\n"
                    "location: test\n"
                    "defaults: {{interval: 500ms, timeout: 400ms, "
                    "failure_threshold: 1}}\n"
                    "groups: [{{name: team-a}}, {{name: data}}]\n"
                    "services:\n"
                    "  - name: web\n"
                    "    group: team-a\n"
                    "    checks:\n"
                    "      - name: health\n"
                    "        http: {{url: \"{1}\"}}\n"
                    "      - name: tls\n"
                    "        critical: false\n"
                    "        http: {{url: \"{2}\", tls: {{verify: false}}}}\n"
                    "  - name: nightly\n"
                    "    group: team-a\n"
                    "    checks:\n"
                    "      - name: backup\n"
                    "        critical: false\n"
                    "        heartbeat: {{period: 1s, grace: 1s, token: "
                    "0123456789abcdef0123}}\n"
                    "  - name: shared-db\n"
                    "    group: data\n"
                    "    checks:\n"
                    "      - name: health\n"
                    "        http: {{url: \"{3}\"}}\n"
                    "  - name: app1\n"
                    "    group: data\n"
                    "    depends_on: [shared-db]\n"
                    "    checks:\n"
                    "      - name: health\n"
                    "        http: {{url: \"{4}\"}}\n"
                    "  - name: app2\n"
                    "    group: data\n"
                    "    depends_on: [shared-db]\n"
                    "    checks:\n"
                    "      - name: health\n"
                    "        http: {{url: \"{5}\"}}\n",
                    vigie_port_, nginx_->url("/web/health.json"),
                    nginx_->tlsUrl("/web/health.json"),
                    nginx_->url("/db/health.json"),
                    nginx_->url("/app1/health.json"),
                    nginx_->url("/app2/health.json")));
    vigie_ = std::make_unique<Process>(
        Process::Options{{VIGIE_BINARY, "--config", dir_ + "/vigie.yaml"},
                         {},
                         dir_ + "/vigie.log",
                         ""});

    // The rules as shipped, every `for:` shortened to 3 s: long enough to ride
    // out the moment a dependent's own check fails before the root's is seen.
    const auto rules =
        readFile(kSource + "/dashboards/alerts/vigie-rules.yaml");
    const std::regex for_line(R"((\n\s+for: )\S+)");
    const auto n_for = std::distance(
        std::sregex_iterator(rules.begin(), rules.end(), for_line),
        std::sregex_iterator());
    ASSERT_GE(n_for, 10);
    writeFile(dir_ + "/rules.yaml",
              std::regex_replace(rules, for_line, "$013s"));

    webhook_ = std::make_unique<WebhookReceiver>();
    am_port_ = freePort();
    auto am = readFile(kSource + "/dashboards/alertmanager/alertmanager.yml");
    am = replaceAll(am, "http://alert-relay.example.internal:8080",
                    fmt::format("http://127.0.0.1:{}", webhook_->port()));
    am = replaceAll(am, "group_wait: 30s", "group_wait: 1s");
    am = replaceAll(am, "group_interval: 5m", "group_interval: 1s");
    am = replaceAll(am, "repeat_interval: 4h", "repeat_interval: 1h");
    writeFile(dir_ + "/alertmanager.yml", am);
    alertmanager_ = std::make_unique<Process>(Process::Options{
        {"/usr/bin/prometheus-alertmanager",
         "--config.file=" + dir_ + "/alertmanager.yml",
         "--storage.path=" + dir_ + "/am",
         fmt::format("--web.listen-address=127.0.0.1:{}", am_port_),
         "--cluster.listen-address=", "--log.level=warn"},
        {},
        dir_ + "/alertmanager.log",
        ""});

    prom_port_ = freePort();
    auto prom = readFile(kSource + "/dashboards/prometheus/prometheus.yml");
    prom = replaceAll(prom, "scrape_interval: 15s", "scrape_interval: 1s");
    prom =
        replaceAll(prom, "evaluation_interval: 15s", "evaluation_interval: 1s");
    prom = replaceAll(prom, "/etc/prometheus/rules/vigie-rules.yaml",
                      dir_ + "/rules.yaml");
    prom = replaceAll(prom, "alertmanager:9093",
                      fmt::format("127.0.0.1:{}", am_port_));
    prom = replaceAll(prom, "vigie:9877",
                      fmt::format("127.0.0.1:{}", vigie_port_));
    writeFile(dir_ + "/prometheus.yml", prom);
    prometheus_ = std::make_unique<Process>(Process::Options{
        {"/usr/bin/prometheus", "--config.file=" + dir_ + "/prometheus.yml",
         "--storage.tsdb.path=" + dir_ + "/tsdb",
         fmt::format("--web.listen-address=127.0.0.1:{}", prom_port_),
         "--log.level=warn"},
        {},
        dir_ + "/prometheus.log",
        ""});

    ASSERT_TRUE(eventually(20s, [&] {
      if (!vigie_->running() || !alertmanager_->running() ||
          !prometheus_->running())
        return true;
      return get(fmt::format("http://127.0.0.1:{}/-/ready", am_port_)).status ==
                 200 &&
             get(fmt::format("http://127.0.0.1:{}/-/ready", prom_port_))
                     .status == 200 &&
             get(fmt::format("http://127.0.0.1:{}/readyz", vigie_port_))
                     .status == 200;
    })) << logs();
    ASSERT_TRUE(vigie_->running() && alertmanager_->running() &&
                prometheus_->running())
        << logs();
  }

  void remove(const std::string &path) {
    fs::remove(nginx_->root() + "/" + path);
  }
  void restore(const std::string &path) {
    std::string body = R"({"status":"pass"})";
    if (path == "web/health.json") {
      body =
          R"({"status":"pass","version":"1.4.2","releaseId":"1.4.2-7",)"
          R"("checks":{"db:connections":[{"status":"pass"}],"cache:ping":[{"status":"pass"}]}})";
    }
    writeFile(nginx_->root() + "/" + path, body);
  }

  /// Prometheus's answer to /api/v1/<what>, parsed ("status" is "success" or
  /// "error").
  json::object prom(const std::string &what) const {
    const auto r =
        get(fmt::format("http://127.0.0.1:{}/api/v1/{}", prom_port_, what));
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object())
      return json::object{{"status", "error"}, {"error", r.body}};
    return v.as_object();
  }
  /// Alerts as Prometheus sees them (state pending or firing) with this name.
  std::vector<json::object> promAlerts(const std::string &alertname) const {
    std::vector<json::object> out;
    const auto r = prom("alerts");
    if (r.at("status") != "success")
      return out;
    for (const auto &a : r.at("data").at("alerts").as_array()) {
      if (a.at("labels").at("alertname") == alertname.c_str())
        out.push_back(a.as_object());
    }
    return out;
  }
  json::array amAlerts() const {
    const auto r =
        get(fmt::format("http://127.0.0.1:{}/api/v2/alerts", am_port_));
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    return !ec && v.is_array() ? v.as_array() : json::array{};
  }

  std::string logs() const {
    std::string out;
    for (const auto &[name, p] :
         {std::pair{"vigie", vigie_.get()},
          std::pair{"prometheus", prometheus_.get()},
          std::pair{"alertmanager", alertmanager_.get()}}) {
      if (p)
        out +=
            fmt::format("--- {} ---\n{}\n", name, p->output().substr(0, 4000));
    }
    if (webhook_)
      out += "--- webhook ---\n" + webhook_->dump();
    return out;
  }

  WebhookReceiver &webhook() { return *webhook_; }

private:
  std::string dir_;
  std::unique_ptr<TestCa> ca_;
  std::unique_ptr<Nginx> nginx_;
  std::unique_ptr<WebhookReceiver> webhook_;
  std::unique_ptr<Process> vigie_;
  std::unique_ptr<Process> alertmanager_;
  std::unique_ptr<Process> prometheus_;
  int vigie_port_ = 0;
  int am_port_ = 0;
  int prom_port_ = 0;
};

std::string label(const Alert &a, const std::string &name) {
  const auto it = a.labels.find(name);
  return it == a.labels.end() ? "<none>" : it->second;
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
      .count();
}

TEST(Alerting, RootCausePagesOnceThroughPrometheusAndAlertmanager) {
  const double t_start = nowSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  Stack stack;
  ASSERT_NO_FATAL_FAILURE(stack.start());
  auto &hook = stack.webhook();
  // Healthy first: every service up as Prometheus scrapes it.
  ASSERT_TRUE(eventually(15s, [&] {
    const auto r =
        stack.prom("query?query=" +
                   escape(R"(count(vigie_service_state{state="up"} == 1))"));
    return r.at("status") == "success" &&
           !r.at("data").at("result").as_array().empty() &&
           r.at("data").at("result").as_array().at(0).at("value").as_array().at(
               1) == "4";
  })) << stack.logs();
  std::printf("stack up and healthy after %.1f s\n", secondsSince(t0));

  // 1. web breaks (404): its team gets VigieServiceDown with service and
  // reason.
  const auto t_break = std::chrono::steady_clock::now();
  stack.remove("web/health.json");
  ASSERT_TRUE(eventually(25s, [&] {
    return !hook.find("VigieServiceDown", "firing", "web").empty();
  })) << stack.logs();
  std::printf("web down -> firing notification after %.1f s\n",
              secondsSince(t_break));
  {
    const auto [path, a] =
        hook.find("VigieServiceDown", "firing", "web").front();
    EXPECT_EQ(path, "/team-a");
    EXPECT_EQ(label(a, "reason"), "http_status");
    EXPECT_EQ(label(a, "group"), "team-a");
    EXPECT_EQ(label(a, "severity"), "critical");
    EXPECT_EQ(label(a, "root_cause"), "web");
  }
  // The other rules ran too: the certificate with 10 days left, the heartbeat
  // never pushed (non-critical: nightly is degraded, not down).
  EXPECT_TRUE(eventually(10s, [&] {
    return !hook.find("VigieCertificateExpiring", "firing", "web").empty() &&
           !hook.find("VigieHeartbeatMissed", "firing", "nightly").empty();
  })) << stack.logs();
  for (const auto &[path, a] :
       hook.find("VigieCertificateExpiring", "firing", "web")) {
    EXPECT_EQ(path, "/team-a");
    EXPECT_EQ(label(a, "check"), "tls");
    EXPECT_EQ(label(a, "severity"), "warning");
  }
  EXPECT_TRUE(hook.find("VigieServiceDown", "firing", "nightly").empty());

  const auto t_restore = std::chrono::steady_clock::now();
  stack.restore("web/health.json");
  ASSERT_TRUE(eventually(25s, [&] {
    return !hook.find("VigieServiceDown", "resolved", "web").empty();
  })) << stack.logs();
  std::printf("web restored -> resolved notification after %.1f s\n",
              secondsSince(t_restore));

  // 2. The shared dependency breaks, and with it both services that depend on
  // it.
  const auto t_dep = std::chrono::steady_clock::now();
  for (const auto &p :
       {"db/health.json", "app1/health.json", "app2/health.json"}) {
    stack.remove(p);
  }
  ASSERT_TRUE(eventually(25s, [&] {
    return !hook.find("VigieServiceDown", "firing", "shared-db").empty();
  })) << stack.logs();
  std::printf("shared-db down -> one firing notification after %.1f s\n",
              secondsSince(t_dep));
  {
    const auto [path, a] =
        hook.find("VigieServiceDown", "firing", "shared-db").front();
    EXPECT_EQ(path, "/data");
    EXPECT_EQ(label(a, "reason"), "http_status");
  }
  // The dependents' alerts fire in Prometheus (info, naming their root)...
  ASSERT_TRUE(eventually(15s, [&] {
    int firing = 0;
    for (const auto &a : stack.promAlerts("VigieServiceDownByDependency")) {
      if (a.at("state") == "firing" &&
          a.at("labels").at("cause") == "shared-db")
        ++firing;
    }
    return firing == 2;
  })) << json::serialize(stack.prom("alerts"));
  // ... and Alertmanager holds them, inhibited by the root's alert.
  EXPECT_TRUE(eventually(5s, [&] {
    int inhibited = 0;
    for (const auto &a : stack.amAlerts()) {
      if (a.at("labels").at("alertname") == "VigieServiceDownByDependency" &&
          !a.at("status").at("inhibitedBy").as_array().empty()) {
        ++inhibited;
      }
    }
    return inhibited == 2;
  })) << json::serialize(stack.amAlerts());
  // Long enough for any dependent notification to have come out: several
  // evaluation, group_wait and group_interval rounds (1 s each).
  std::this_thread::sleep_for(4s);
  for (const std::string svc : {"app1", "app2"}) {
    EXPECT_TRUE(hook.find("VigieServiceDown", "firing", svc).empty())
        << svc << "\n"
        << hook.dump();
    EXPECT_TRUE(
        hook.find("VigieServiceDownByDependency", "firing", svc).empty())
        << svc << "\n"
        << hook.dump();
  }
  // And Prometheus never even had a VigieServiceDown for them.
  for (const auto &a : stack.promAlerts("VigieServiceDown")) {
    EXPECT_EQ(a.at("labels").at("service"), "shared-db") << json::serialize(a);
  }
  EXPECT_EQ(hook.find("VigieServiceDown", "firing", "shared-db").size(), 1u)
      << hook.dump();

  const auto t_fix = std::chrono::steady_clock::now();
  for (const auto &p :
       {"db/health.json", "app1/health.json", "app2/health.json"}) {
    stack.restore(p);
  }
  ASSERT_TRUE(eventually(25s, [&] {
    return !hook.find("VigieServiceDown", "resolved", "shared-db").empty();
  })) << stack.logs();
  std::printf("shared-db restored -> resolved notification after %.1f s\n",
              secondsSince(t_fix));
  EXPECT_TRUE(eventually(10s, [&] {
    return stack.promAlerts("VigieServiceDownByDependency").empty();
  }));
  for (const std::string svc : {"app1", "app2"}) {
    EXPECT_TRUE(hook.find("VigieServiceDown", "resolved", svc).empty())
        << hook.dump();
  }

  // 3. Every PromQL expression of the dashboards, over everything that happened
  // above: it parses, its metrics exist, it returns data (for `web` or `app1`
  // where the dashboard has a $service).
  const double t_end = nowSeconds();
  const auto queries = dashboardQueries();
  ASSERT_GE(queries.size(), 30u);
  for (const auto &q : queries) {
    SCOPED_TRACE(q.file + ": " + q.where + ": " + q.expr);
    bool data = false;
    for (const std::string service : {"web", "app1"}) {
      const auto expr = substitute(q.expr, service);
      ASSERT_EQ(expr.find('$'), std::string::npos) << expr;
      const auto r = stack.prom(
          fmt::format("query_range?query={}&start={:.3f}&end={:.3f}&step=1",
                      escape(expr), t_start, t_end));
      ASSERT_EQ(r.at("status"), "success") << json::serialize(r);
      data = data || !r.at("data").at("result").as_array().empty();
    }
    EXPECT_TRUE(data) << "no data";
  }
  // The query variables too (Grafana's label_values(metric, label)).
  for (const auto &f : dashboardFiles()) {
    const auto dashboard = readJson(f);
    for (const auto &var : dashboard.at("templating").at("list").as_array()) {
      if (var.at("type") != "query")
        continue;
      const std::string def(var.at("definition").as_string());
      std::smatch m;
      ASSERT_TRUE(std::regex_match(
          def, m, std::regex(R"(label_values\((.+), *(\w+)\))")))
          << def;
      const auto r =
          stack.prom("series?match[]=" + escape(substitute(m[1], "web")) +
                     fmt::format("&start={:.3f}", t_start));
      ASSERT_EQ(r.at("status"), "success") << def << json::serialize(r);
      bool found = false;
      for (const auto &s : r.at("data").as_array())
        found = found || s.as_object().contains(m[2].str());
      EXPECT_TRUE(found) << def;
    }
  }
  std::printf("%zu dashboard expressions checked; whole test %.1f s\n",
              queries.size(), secondsSince(t0));
}

} // namespace
} // namespace vigie::test
