#include "exporters/blackbox_probe.h"

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "exporters/metrics.h"
#include "probes/http_probe.h"
#include "probes/registry.h"
#include "probes/tcp_probe.h"

namespace vigie {

namespace {

constexpr double kTimeoutOffset = 0.5;  // blackbox's --timeout-offset default
constexpr std::string_view kDebugContentType = "text/plain";

// ---------------------------------------------------------------- text format

// Views: names, help texts and label names are literals, label values literals or
// strings of the Result being rendered, which outlives the rendering.
struct Sample {
  std::vector<std::pair<std::string_view, std::string_view>> labels;
  double value = 0;
};

struct Family {
  std::string_view name;
  std::string_view help;
  std::vector<Sample> samples;
};

void appendEscapedLabel(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

std::string render(std::vector<Family> families) {
  // The Go client gathers families sorted by name, samples by label values.
  std::sort(families.begin(), families.end(),
            [](const Family& a, const Family& b) { return a.name < b.name; });
  std::string out;
  out.reserve(2048);  // an http module's answer is about 1,900 bytes
  for (auto& f : families) {
    std::sort(f.samples.begin(), f.samples.end(),
              [](const Sample& a, const Sample& b) { return a.labels < b.labels; });
    out += "# HELP ";
    out += f.name;
    out += ' ';
    out += f.help;
    out += "\n# TYPE ";
    out += f.name;
    out += " gauge\n";
    for (const auto& s : f.samples) {
      out += f.name;
      if (!s.labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < s.labels.size(); ++i) {
          if (i > 0) out += ',';
          out += s.labels[i].first;
          out += "=\"";
          appendEscapedLabel(out, s.labels[i].second);
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      out += goFloat(s.value);
      out += '\n';
    }
  }
  return out;
}

// Go's durations are whole nanoseconds; differences of curl's microsecond
// timings carry float noise (3.499999999999998e-05) that this removes.
double ns(double seconds) { return std::round(seconds * 1e9) / 1e9; }

void gauge(std::vector<Family>& out, std::string_view name, std::string_view help,
           double value) {
  out.push_back(Family{name, help, {Sample{{}, value}}});
}

// blackbox 0.23's help texts, word for word (its TLS ones are its own).
void tlsFamilies(std::vector<Family>& out, const TlsFacts& tls) {
  if (tls.earliest_expiry) {
    gauge(out, "probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime",
          *tls.earliest_expiry);
  }
  if (tls.last_chain_expiry) {
    gauge(out, "probe_ssl_last_chain_expiry_timestamp_seconds",
          "Returns last SSL chain expiry in timestamp", *tls.last_chain_expiry);
  }
  if (!tls.fingerprint_sha256.empty()) {
    out.push_back(Family{"probe_ssl_last_chain_info",
                         "Contains SSL leaf certificate information",
                         {Sample{{{"fingerprint_sha256", tls.fingerprint_sha256},
                                  {"issuer", tls.issuer},
                                  {"subject", tls.subject},
                                  {"subjectalternative", tls.dns_names}},
                                 1}}});
  }
  out.push_back(Family{"probe_tls_version_info",
                       "Returns the TLS version used or NaN when unknown",
                       {Sample{{{"version", tls.version}}, 1}}});
}

// ---------------------------------------------------------------- debug text

std::string logTime(SystemClock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ns.count() / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ns.count() % 1'000'000'000);
}

// A logfmt value: bare when it can be, else a quoted Go string.
std::string logValue(std::string_view v) {
  const bool bare = !v.empty() && std::none_of(v.begin(), v.end(), [](char c) {
    return c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x21;
  });
  if (bare) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string yamlString(std::string_view v) {
  // JSON strings are YAML strings.
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string formatSeconds(Duration d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

bool containsNoCase(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    bool eq = true;
    for (std::size_t k = 0; k < needle.size() && eq; ++k) {
      eq = std::tolower(static_cast<unsigned char>(hay[i + k])) == needle[k];
    }
    if (eq) return true;
  }
  return false;
}

// fail_if_body_matches_regexp R is stored as a negative lookahead (config.cc).
constexpr std::string_view kNotMatchPrefix = "\\A(?![\\s\\S]*?(?:";
constexpr std::string_view kNotMatchSuffix = "))";

}  // namespace

// ---------------------------------------------------------------- pure helpers

std::optional<double> blackboxTimeout(std::string_view header, Duration module_timeout,
                                      std::string* error) {
  double scrape = 0;
  if (!header.empty()) {
    const std::string text(header);
    char* end = nullptr;
    errno = 0;
    scrape = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(scrape)) {
      if (error) {
        *error = fmt::format("Failed to parse timeout from Prometheus header: {:?} is not a number",
                             text.substr(0, 64));
      }
      return std::nullopt;
    }
  }
  if (scrape <= 0) scrape = 120;
  const double module = std::chrono::duration<double>(module_timeout).count();
  const double max = scrape - kTimeoutOffset;
  if ((module > 0 && module < max) || (max <= 0 && module > 0)) return module;
  if (max <= 0) return scrape;  // blackbox would give 0 and fail at once
  return max;
}

std::string goFloat(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return std::signbit(v) ? "-0" : "0";
  char buf[64];
  // Go's 'g' with the shortest precision writes %e when the decimal exponent is
  // below -4 or at least 6 ("1e+06", "3.668918509e+09"), else %f; both with the
  // shortest digits that round-trip, as to_chars gives them.
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string sci(buf, r.ptr);
  const int exp = std::atoi(sci.c_str() + sci.find('e') + 1);
  if (exp < -4 || exp >= 6) return sci;
  r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, r.ptr);
}

std::uint32_t ipAddrHash(const std::string& ip) {
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(ip, ec);
  if (ip.empty() || ec) return 0;
  std::uint32_t h = 2166136261u;
  auto feed = [&h](const unsigned char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 16777619u;
    }
  };
  if (addr.is_v4()) {
    const auto b = addr.to_v4().to_bytes();
    feed(b.data(), b.size());
  } else {
    const auto v6 = addr.to_v6();
    if (v6.is_v4_mapped()) {
      const auto b = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_bytes();
      feed(b.data(), b.size());
    } else {
      const auto b = v6.to_bytes();
      feed(b.data(), b.size());
    }
  }
  return h;
}

bool secretHeaderName(std::string_view name) {
  for (std::string_view s : {"authorization", "cookie", "token", "secret", "key", "password",
                             "passwd", "auth", "credential", "session"}) {
    if (containsNoCase(name, s)) return true;
  }
  return false;
}

std::string blackboxMetrics(const ModuleConfig& module, const Result& r, double duration) {
  std::vector<Family> fams;
  fams.reserve(24);
  const WireFacts none;
  const WireFacts& w = r.wire ? *r.wire : none;
  const bool ok = r.status != Status::fail;
  const bool dns_failed = r.reason == Reason::dns && r.status == Status::fail;
  gauge(fams, "probe_success", "Displays whether or not the probe was a success", ok ? 1 : 0);
  gauge(fams, "probe_duration_seconds", "Returns how long the probe took to complete in seconds",
        ns(duration));
  gauge(fams, "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds", ns(r.phases.resolve));
  gauge(fams, "probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6",
        w.ip.empty() ? 0 : (w.ip.find(':') != std::string::npos ? 6 : 4));
  gauge(fams, "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        ipAddrHash(w.ip));
  gauge(fams, "probe_failed_due_to_regex", "Indicates if probe failed due to regex",
        w.regex_failed ? 1 : 0);

  if (module.prober == "http") {
    const auto& spec = std::get<HttpSpec>(module.spec);
    Family phases{"probe_http_duration_seconds",
                  "Duration of http request by phase, summed over all redirects",
                  {Sample{{{"phase", "resolve"}}, ns(r.phases.resolve)}}};
    if (!dns_failed) {
      // blackbox makes the other phases only once the name resolved.
      phases.samples.push_back(Sample{{{"phase", "connect"}}, ns(r.phases.connect)});
      phases.samples.push_back(Sample{{{"phase", "tls"}}, ns(r.phases.tls)});
      phases.samples.push_back(Sample{{{"phase", "processing"}}, ns(r.phases.processing)});
      phases.samples.push_back(Sample{{{"phase", "transfer"}}, ns(r.phases.transfer)});
    }
    fams.push_back(std::move(phases));
    gauge(fams, "probe_http_status_code", "Response HTTP status code", r.http_status);
    // Without a response Go's http.Response is empty: 0.
    gauge(fams, "probe_http_content_length", "Length of http content response",
          r.http_status > 0 ? static_cast<double>(w.content_length) : 0);
    // Go's client calls CheckRedirect, and blackbox counts, once for a redirect it
    // then refuses to follow (no_follow_redirects); that refusal is an error, so
    // blackbox reads no body.
    const int s = r.http_status;
    const bool refused_redirect =
        !spec.follow_redirects && (s == 301 || s == 302 || s == 303 || s == 307 || s == 308);
    gauge(fams, "probe_http_uncompressed_body_length", "Length of uncompressed response body",
          s > 0 && !refused_redirect ? static_cast<double>(r.body_bytes) : 0);
    const int redirects = refused_redirect ? 1 : r.redirects;
    gauge(fams, "probe_http_redirects", "The number of redirects", redirects);
    gauge(fams, "probe_http_ssl", "Indicates if SSL was used for the final redirect",
          w.tls ? 1 : 0);
    gauge(fams, "probe_http_version", "Returns the version of HTTP of the probe response",
          r.http_status > 0 ? r.http_version / 10.0 : 0);
    if (w.last_modified) {
      gauge(fams, "probe_http_last_modified_timestamp_seconds",
            "Returns the Last-Modified HTTP response header in unixtime", *w.last_modified);
    }
  }
  if (w.tls) tlsFamilies(fams, *w.tls);
  return render(std::move(fams));
}

std::string blackboxModuleYaml(const ModuleConfig& m) {
  std::string out = fmt::format("prober: {}\n", m.prober);
  if (m.timeout.count() > 0) out += fmt::format("timeout: {}\n", formatSeconds(m.timeout));
  auto tls = [&out](const TlsSpec& t) {
    out += "  tls_config:\n";
    out += fmt::format("    insecure_skip_verify: {}\n", t.verify ? "false" : "true");
    if (!t.ca_file.empty()) out += fmt::format("    ca_file: {}\n", yamlString(t.ca_file));
    if (!t.cert_file.empty()) out += fmt::format("    cert_file: {}\n", yamlString(t.cert_file));
    if (!t.key_file.empty()) out += fmt::format("    key_file: {}\n", yamlString(t.key_file));
    if (!t.server_name.empty()) {
      out += fmt::format("    server_name: {}\n", yamlString(t.server_name));
    }
  };
  if (const auto* h = std::get_if<HttpSpec>(&m.spec)) {
    out += "http:\n";
    if (!h->expect_status.empty()) {
      out += "  valid_status_codes: [";
      for (std::size_t i = 0; i < h->expect_status.size(); ++i) {
        out += fmt::format("{}{}", i ? ", " : "", h->expect_status[i]);
      }
      out += "]\n";
    }
    if (!h->valid_http_versions.empty()) {
      out += "  valid_http_versions: [";
      for (std::size_t i = 0; i < h->valid_http_versions.size(); ++i) {
        out += (i ? ", " : "") + yamlString(h->valid_http_versions[i]);
      }
      out += "]\n";
    }
    out += fmt::format("  method: {}\n", h->method);
    if (!h->headers.empty()) {
      out += "  headers:\n";
      for (const auto& [k, v] : h->headers) {
        out += fmt::format("    {}: {}\n", yamlString(k),
                           secretHeaderName(k) ? "<secret>" : yamlString(v));
      }
    }
    // A body may carry credentials (a login form): its size only.
    if (!h->body.empty()) out += "  body: <secret>\n";
    out += fmt::format("  follow_redirects: {}\n", h->follow_redirects ? "true" : "false");
    if (h->fail_if_ssl) out += "  fail_if_ssl: true\n";
    if (h->fail_if_not_ssl) out += "  fail_if_not_ssl: true\n";
    std::vector<std::string> matches, not_matches;
    for (const auto& c : h->conditions) {
      if (c.kind != ConditionSpec::Kind::body_matches) continue;
      std::string_view v = c.value;
      if (v.substr(0, kNotMatchPrefix.size()) == kNotMatchPrefix &&
          v.size() >= kNotMatchPrefix.size() + kNotMatchSuffix.size()) {
        v.remove_prefix(kNotMatchPrefix.size());
        v.remove_suffix(kNotMatchSuffix.size());
        matches.emplace_back(v);
      } else {
        not_matches.emplace_back(v);
      }
    }
    auto list = [&out](const char* key, const std::vector<std::string>& items) {
      if (items.empty()) return;
      out += fmt::format("  {}:\n", key);
      for (const auto& i : items) out += "    - " + yamlString(i) + "\n";
    };
    list("fail_if_body_matches_regexp", matches);
    list("fail_if_body_not_matches_regexp", not_matches);
    if (!h->ip_version.empty()) out += fmt::format("  preferred_ip_protocol: {}\n", h->ip_version);
    if (h->max_body != std::numeric_limits<std::uint64_t>::max()) {
      out += fmt::format("  body_size_limit: {}\n", h->max_body);
    }
    tls(h->tls);
  } else if (const auto* t = std::get_if<TcpSpec>(&m.spec)) {
    out += "tcp:\n";
    if (!t->ip_version.empty()) out += fmt::format("  preferred_ip_protocol: {}\n", t->ip_version);
    if (!t->query_response.empty()) {
      out += "  query_response:\n";
      for (const auto& q : t->query_response) {
        std::string item;
        if (!q.expect.empty()) item += "expect: " + yamlString(q.expect);
        if (!q.send.empty())
          item += std::string(item.empty() ? "" : ", ") + "send: " + yamlString(q.send);
        if (q.starttls) item += std::string(item.empty() ? "" : ", ") + "starttls: true";
        out += "    - {" + item + "}\n";
      }
    }
    out += fmt::format("  tls: {}\n", t->tls ? "true" : "false");
    if (t->tls || std::any_of(t->query_response.begin(), t->query_response.end(),
                              [](const TcpQueryStep& q) { return q.starttls; })) {
      tls(t->tls_config);
    }
  }
  return out;
}

// ---------------------------------------------------------------- the endpoint

struct BlackboxEndpoint::State : std::enable_shared_from_this<BlackboxEndpoint::State> {
  struct Request {
    std::uint64_t id = 0;
    std::string module_name;
    // The module in `config`, the configuration of the moment when the request came:
    // held, not copied (a reload swaps the pointer, never this Config).
    std::shared_ptr<const Config> config;
    const ModuleConfig* module = nullptr;
    std::string target;
    bool debug = false;
    double timeout = 0;
    SystemClock::time_point wall_start;
    SteadyClock::time_point start;
    std::unique_ptr<Probe> probe;
    std::unique_ptr<boost::asio::steady_timer> guard;
    std::unique_ptr<boost::asio::ip::tcp::resolver> resolver;  // http with a host name
    double resolve_seconds = 0;  // our own resolution, before the probe
    std::string ip;              // the address chosen (or the URL's literal)
    HttpRespond respond;
  };

  State(ProbeContext& c, ConfigSource s, prometheus::Registry& self, BlackboxOptions o)
      : ctx(c), config(std::move(s)), options(o) {
    results = &prometheus::BuildCounter()
                   .Name("vigie_blackbox_probes_total")
                   .Help("/probe requests probed, by module and result (success, failure).")
                   .Register(self);
    rejected = &prometheus::BuildCounter()
                    .Name("vigie_blackbox_requests_rejected_total")
                    .Help(
                        "/probe requests answered without probing: bad_request (400), "
                        "over_limit (503: max_in_flight probes already running).")
                    .Register(self);
    bad_request = &rejected->Add({{"reason", "bad_request"}});
    over_limit = &rejected->Add({{"reason", "over_limit"}});
    in_flight_gauge = &prometheus::BuildGauge()
                           .Name("vigie_blackbox_probes_in_flight")
                           .Help("/probe requests probing now.")
                           .Register(self)
                           .Add({});
  }

  void handle(const HttpRequest& req, HttpRespond respond);
  void startHttp(std::uint64_t id, HttpSpec spec, SteadyClock::time_point deadline);
  void complete(std::uint64_t id, Result r);

  ProbeContext& ctx;
  ConfigSource config;
  BlackboxOptions options;
  bool stopped = false;
  std::uint64_t next_id = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Request>> running;
  prometheus::Family<prometheus::Counter>* results = nullptr;
  // results' success and failure counters by module name.
  std::unordered_map<std::string, std::pair<prometheus::Counter*, prometheus::Counter*>> outcomes{};
  prometheus::Family<prometheus::Counter>* rejected = nullptr;
  prometheus::Counter* bad_request = nullptr;
  prometheus::Counter* over_limit = nullptr;
  prometheus::Gauge* in_flight_gauge = nullptr;
};

namespace {

HttpResponse textError(unsigned status, std::string message) {
  HttpResponse res;
  res.status = status;
  res.content_type = "text/plain; charset=utf-8";
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  res.body = std::move(message) + "\n";
  return res;
}

std::string probeLog(const BlackboxEndpoint::State::Request& q, const Result& r, double duration) {
  const std::string shown = redactDsn(q.target);
  const std::string head =
      fmt::format("caller=vigie module={} target={}", logValue(q.module_name), logValue(shown));
  std::string out;
  SystemClock::time_point t = q.wall_start;
  auto line = [&](const char* level, const std::string& rest) {
    out += fmt::format("ts={} {} level={} {}\n", logTime(t), head, level, rest);
  };
  line("info", fmt::format("msg=\"Beginning probe\" probe={} timeout_seconds={}", q.module->prober,
                           goFloat(q.timeout)));
  const WireFacts none;
  const WireFacts& w = r.wire ? *r.wire : none;
  t = q.wall_start + std::chrono::duration_cast<SystemClock::duration>(
                         std::chrono::duration<double>(r.phases.resolve));
  if (!w.ip.empty()) {
    line("info", fmt::format("msg=\"Resolved target address\" ip={} lookup_seconds={}", w.ip,
                             goFloat(ns(r.phases.resolve))));
  }
  for (const auto& l : w.log) line("info", "msg=" + logValue(l));
  t = q.wall_start +
      std::chrono::duration_cast<SystemClock::duration>(std::chrono::duration<double>(duration));
  if (q.module->prober == "http") {
    if (r.http_status > 0) {
      line("info", fmt::format("msg=\"Received HTTP response\" status_code={} redirects={}",
                               r.http_status, r.redirects));
    }
    line("info", fmt::format("msg=\"Response timings\" resolve={} connect={} tls={} "
                             "processing={} transfer={}",
                             goFloat(ns(r.phases.resolve)), goFloat(ns(r.phases.connect)),
                             goFloat(ns(r.phases.tls)), goFloat(ns(r.phases.processing)),
                             goFloat(ns(r.phases.transfer))));
  }
  if (w.tls) {
    line("info",
         fmt::format("msg=\"TLS connection\" version={} subject={} issuer={}",
                     logValue(w.tls->version), logValue(w.tls->subject), logValue(w.tls->issuer)));
  }
  for (const auto& c : r.conditions) {
    line(c.ok ? "info" : "error", fmt::format("msg={} ok={} detail={}", logValue(c.name),
                                              c.ok ? "true" : "false", logValue(c.detail)));
  }
  if (r.status == Status::fail) {
    line("error",
         fmt::format("msg=\"Probe failed\" reason={} detail={} duration_seconds={}",
                     reasonName(r.reason), logValue(redactDsn(r.detail)), goFloat(ns(duration))));
  } else {
    line("info", fmt::format("msg=\"Probe succeeded\" duration_seconds={}", goFloat(ns(duration))));
  }
  return out;
}

}  // namespace

void BlackboxEndpoint::State::handle(const HttpRequest& req, HttpRespond respond) {
  if (stopped) {
    respond(textError(503, "vigie is stopping"));
    return;
  }
  const std::string* module_param = req.param("module");
  const std::string module_name =
      module_param && !module_param->empty() ? *module_param : std::string("http_2xx");
  const auto cfg = config ? config() : nullptr;
  const ModuleConfig* module = nullptr;
  if (cfg) {
    const auto it = cfg->modules.find(module_name);
    if (it != cfg->modules.end()) module = &it->second;
  }
  if (module == nullptr) {
    bad_request->Increment();
    respond(textError(400, fmt::format("Unknown module {:?}", module_name.substr(0, 200))));
    return;
  }
  std::string error;
  const auto timeout =
      blackboxTimeout(req.header("X-Prometheus-Scrape-Timeout-Seconds"), module->timeout, &error);
  if (!timeout) {
    bad_request->Increment();
    respond(textError(400, error));
    return;
  }
  const std::string* target = req.param("target");
  if (target == nullptr || target->empty()) {
    bad_request->Increment();
    respond(textError(400, "Target parameter is missing"));
    return;
  }
  if (running.size() >= options.max_in_flight) {
    over_limit->Increment();
    HttpResponse res = textError(
        503,
        fmt::format("too many probes running ({}, max_in_flight); retry later", running.size()));
    res.headers.emplace_back("Retry-After", "1");
    respond(std::move(res));
    return;
  }

  auto q = std::make_unique<Request>();
  q->id = next_id++;
  q->module_name = module_name;
  q->config = cfg;
  q->module = module;
  q->target = *target;
  const std::string* debug = req.param("debug");
  q->debug = debug != nullptr && *debug == "true";
  q->timeout = *timeout;
  q->respond = std::move(respond);
  q->wall_start = SystemClock::now();
  q->start = SteadyClock::now();
  const auto deadline = q->start + std::chrono::duration_cast<SteadyClock::duration>(
                                       std::chrono::duration<double>(*timeout));

  HttpSpec http_spec;
  bool resolve_first = false;
  std::string host, port;
  if (auto* h = std::get_if<HttpSpec>(&q->module->spec)) {
    http_spec = *h;
    http_spec.url = q->target;
    if (http_spec.url.rfind("http://", 0) != 0 && http_spec.url.rfind("https://", 0) != 0) {
      http_spec.url = "http://" + http_spec.url;  // as blackbox
    }
    // As blackbox, resolve the name first and connect to the address chosen by
    // preferred_ip_protocol (falling back to the other family), so the address
    // is known even when the connection fails; Host, SNI and the certificate
    // check keep the name.
    if (auto u = boost::urls::parse_uri(http_spec.url)) {
      if (u->host_type() == boost::urls::host_type::ipv4) {
        q->ip = u->host_ipv4_address().to_string();
      } else if (u->host_type() == boost::urls::host_type::ipv6) {
        q->ip = u->host_ipv6_address().to_string();
      } else if (u->host_type() == boost::urls::host_type::name) {
        resolve_first = true;
        host = std::string(u->encoded_host());
        port = u->has_port() ? std::string(u->port()) : (u->scheme() == "https" ? "443" : "80");
      }
    }
  } else if (auto* t = std::get_if<TcpSpec>(&q->module->spec)) {
    TcpSpec spec = *t;
    spec.address = q->target;
    TcpProbeOptions o;
    o.wire_facts = true;
    q->probe = std::make_unique<TcpProbe>(ctx, std::move(spec), o);
  } else if (!std::holds_alternative<HttpSpec>(q->module->spec)) {
    bad_request->Increment();
    q->respond(textError(
        400, fmt::format("module {:?}: prober {} is not supported", module_name, module->prober)));
    return;
  }

  // The probes stop at the deadline by themselves; this guard only makes sure the
  // request is answered even if one did not.
  q->guard = std::make_unique<boost::asio::steady_timer>(ctx.io);
  q->guard->expires_at(deadline + std::chrono::seconds(1));
  const std::uint64_t id = q->id;
  std::weak_ptr<State> weak = weak_from_this();
  q->guard->async_wait([weak, id](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    const auto it = self->running.find(id);
    if (it == self->running.end()) return;
    if (it->second->probe) it->second->probe->cancel();
    if (it->second->resolver) it->second->resolver->cancel();
    Result r = Result::failure(Reason::timeout, "the probe did not end by its deadline");
    self->complete(id, std::move(r));
  });
  Request& started = *q;
  running.emplace(id, std::move(q));
  in_flight_gauge->Set(static_cast<double>(running.size()));
  if (started.probe) {  // tcp
    started.probe->start(deadline, [weak, id](Result r) {
      if (auto self = weak.lock()) self->complete(id, std::move(r));
    });
    return;
  }
  if (!resolve_first) {
    startHttp(id, std::move(http_spec), deadline);
    return;
  }
  started.resolver = std::make_unique<boost::asio::ip::tcp::resolver>(ctx.io);
  started.resolver->async_resolve(
      host, port, boost::asio::ip::tcp::resolver::numeric_service,
      [weak, id, host, deadline, spec = std::move(http_spec)](
          const boost::system::error_code& ec,
          boost::asio::ip::tcp::resolver::results_type results) mutable {
        auto self = weak.lock();
        if (!self || ec == boost::asio::error::operation_aborted) return;
        const auto it = self->running.find(id);
        if (it == self->running.end()) return;
        Request& q = *it->second;
        q.resolve_seconds = std::chrono::duration<double>(SteadyClock::now() - q.start).count();
        const bool want6 = spec.ip_version != "ip4";
        std::string first, preferred;
        for (const auto& entry : results) {
          const auto addr = entry.endpoint().address();
          if (first.empty()) first = addr.to_string();
          if (preferred.empty() && addr.is_v6() == want6) preferred = addr.to_string();
        }
        if (ec || first.empty()) {
          Result r = Result::failure(Reason::dns,
                                     fmt::format("cannot resolve {}: {}", host,
                                                 ec ? ec.message() : std::string("no address")));
          r.wire = std::make_shared<WireFacts>();
          self->complete(id, std::move(r));
          return;
        }
        q.ip = preferred.empty() ? first : preferred;
        self->startHttp(id, std::move(spec), deadline);
      });
}

void BlackboxEndpoint::State::startHttp(std::uint64_t id, HttpSpec spec,
                                        SteadyClock::time_point deadline) {
  const auto it = running.find(id);
  if (it == running.end()) return;
  Request& q = *it->second;
  HttpProbeOptions o;
  o.wire_facts = true;
  if (q.resolver) {
    o.connect_address = q.ip;
    spec.ip_version.clear();  // the address is chosen already
  }
  q.probe = std::make_unique<HttpProbe>(ctx, std::move(spec), std::move(o));
  std::weak_ptr<State> weak = weak_from_this();
  q.probe->start(deadline, [weak, id](Result r) {
    if (auto self = weak.lock()) self->complete(id, std::move(r));
  });
}

void BlackboxEndpoint::State::complete(std::uint64_t id, Result r) {
  auto it = running.find(id);
  if (it == running.end()) return;
  std::unique_ptr<Request> q = std::move(it->second);
  running.erase(it);
  in_flight_gauge->Set(static_cast<double>(running.size()));
  q->guard->cancel();
  const double duration = std::chrono::duration<double>(SteadyClock::now() - q->start).count();
  // Our own name resolution came before the probe's; the address is the one
  // chosen even when the connection failed.
  r.phases.resolve += q->resolve_seconds;
  if (!q->ip.empty() && (!r.wire || r.wire->ip.empty())) {
    auto w = r.wire ? std::make_shared<WireFacts>(*r.wire) : std::make_shared<WireFacts>();
    w->ip = q->ip;
    r.wire = std::move(w);
  }
  const bool ok = r.status != Status::fail;
  // Family::Add hashes the labels at each call: each series is looked up once (and
  // made, as before, only when its outcome first happens).
  auto& [success, failure] = outcomes[q->module_name];
  prometheus::Counter*& counter = ok ? success : failure;
  if (counter == nullptr) {
    counter = &results->Add({{"module", q->module_name}, {"result", ok ? "success" : "failure"}});
  }
  counter->Increment();

  HttpResponse res;
  const std::string metrics = blackboxMetrics(*q->module, r, duration);
  if (q->debug) {
    res.content_type = std::string(kDebugContentType);
    res.body = "Logs for the probe:\n" + probeLog(*q, r, duration) +
               "\n\n\nMetrics that would have been returned:\n" + metrics +
               "\n\n\nModule configuration:\n" + blackboxModuleYaml(*q->module);
  } else {
    res.content_type = std::string(kMetricsContentType);
    res.body = metrics;
  }
  HttpRespond respond = std::move(q->respond);
  // The probe may be the caller (inside its done): destroy it after this returns.
  boost::asio::post(ctx.io, [q = std::shared_ptr<Request>(std::move(q))] {});
  respond(std::move(res));
}

BlackboxEndpoint::BlackboxEndpoint(ProbeContext& ctx, ConfigSource config,
                                   prometheus::Registry& self, BlackboxOptions options)
    : state_(std::make_shared<State>(ctx, std::move(config), self, options)) {}

BlackboxEndpoint::~BlackboxEndpoint() { stop(); }

void BlackboxEndpoint::registerRoutes(HttpServer& server) {
  std::weak_ptr<State> weak = state_;
  server.routeAsync(boost::beast::http::verb::get, "/probe",
                    [weak](const HttpRequest& req, HttpRespond respond) {
                      auto self = weak.lock();
                      if (!self) {
                        respond(textError(503, "vigie is stopping"));
                        return;
                      }
                      self->handle(req, std::move(respond));
                    });
}

void BlackboxEndpoint::stop() {
  state_->stopped = true;
  for (auto& [id, q] : state_->running) {
    if (q->probe) q->probe->cancel();
    if (q->resolver) q->resolver->cancel();
    q->guard->cancel();
  }
  state_->running.clear();
  state_->in_flight_gauge->Set(0);
}

std::size_t BlackboxEndpoint::inFlight() const { return state_->running.size(); }

}  // namespace vigie
