#include "collector/probe_cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <ctime>
#include <iostream>

#include "collector/config.h"
#include "collector/curl_driver.h"
#include "collector/log.h"
#include "collector/worker_pool.h"
#include "probes/health_page.h"
#include "probes/registry.h"

namespace vigie {
namespace {

std::string yamlQuoted(const std::string& s) { return "\"" + jsonEscape(s) + "\""; }

std::string kindOf(const ProbeCliOptions& o) {
  if (!o.kind.empty()) return o.kind;
  const auto starts = [&](std::string_view p) { return o.url.rfind(p, 0) == 0; };
  if (starts("http://") || starts("https://")) return o.addresses.empty() ? "http" : "ingress";
  if (starts("postgres://") || starts("postgresql://")) return "postgres";
  // A key=value DSN ("host=pg dbname=app user=vigie password=..."), as libpq reads it.
  if (o.url.find("://") == std::string::npos &&
      (o.url.find("dbname=") != std::string::npos || starts("host=") ||
       o.url.find(" host=") != std::string::npos)) {
    return "postgres";
  }
  if (starts("tcp://")) return "tcp";
  if (starts("/") || starts("file://")) return "disk";
  return "http";  // the http loader names what is wrong with the URL
}

std::string statusList(const std::vector<int>& codes) {
  std::string y = "[";
  for (std::size_t i = 0; i < codes.size(); ++i) y += fmt::format("{}{}", i ? ", " : "", codes[i]);
  return y + "]";
}

std::string tlsYaml(const ProbeCliOptions& o, const char* indent) {
  return fmt::format("{}tls: {{verify: {}{}}}\n", indent, o.insecure ? "false" : "true",
                     o.ca_file.empty() ? "" : ", ca_file: " + yamlQuoted(o.ca_file));
}

std::string httpYaml(const ProbeCliOptions& o) {
  std::string y = "        http:\n";
  y += fmt::format("          url: {}\n          method: {}\n", yamlQuoted(o.url), yamlQuoted(o.method));
  y += fmt::format("          health_format: {}\n", yamlQuoted(o.format));
  y += fmt::format("          max_body: {}\n", yamlQuoted(o.max_body));
  y += fmt::format("          follow_redirects: {}\n", o.follow_redirects ? "true" : "false");
  if (o.cert_min_days > 0) y += fmt::format("          cert_min_days: {}\n", o.cert_min_days);
  if (!o.expect_status.empty()) y += "          expect_status: " + statusList(o.expect_status) + "\n";
  if (!o.headers.empty()) {
    y += "          headers:\n";
    for (const auto& h : o.headers) {
      auto colon = h.find(':');
      if (colon == std::string::npos) throw std::invalid_argument("header \"" + h + "\" is not Name: value");
      auto value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      y += fmt::format("            {}: {}\n", yamlQuoted(h.substr(0, colon)), yamlQuoted(value));
    }
  }
  y += tlsYaml(o, "          ");
  if (!o.conditions.empty()) {
    y += "          conditions:\n";
    for (const auto& c : o.conditions) {
      auto colon = c.find(':');
      const auto kind = c.substr(0, colon);
      const auto arg = colon == std::string::npos ? "" : c.substr(colon + 1);
      if (kind == "json") {
        auto eq = arg.find('=');
        if (eq == std::string::npos) {
          y += fmt::format("            - {{json: {}}}\n", yamlQuoted(arg));
        } else {
          y += fmt::format("            - {{json: {}, equals: {}}}\n", yamlQuoted(arg.substr(0, eq)),
                           yamlQuoted(arg.substr(eq + 1)));
        }
      } else if (kind == "body") {
        y += fmt::format("            - {{body_matches: {}}}\n", yamlQuoted(arg));
      } else if (kind == "latency") {
        y += fmt::format("            - {{latency_below: {}}}\n", yamlQuoted(arg));
      } else {
        throw std::invalid_argument("condition \"" + c +
                                    "\": expected json:/pointer=value, body:REGEX or latency:800ms");
      }
    }
  }
  return y;
}

// The options become a one-check configuration, so `vigie probe` validates and
// behaves exactly as a configured check does.
std::string toYaml(const ProbeCliOptions& o, const std::string& kind) {
  std::string y = "services:\n  - name: cli\n    checks:\n      - name: probe\n";
  y += fmt::format("        timeout: {}\n        interval: {}\n", yamlQuoted(o.timeout), yamlQuoted(o.timeout));
  if (kind == "http") return y + httpYaml(o);
  if (kind == "ingress") {
    y += fmt::format("        ingress:\n          url: {}\n          mode: {}\n", yamlQuoted(o.url),
                     yamlQuoted(o.mode));
    if (!o.addresses.empty()) {
      y += "          addresses: [";
      for (std::size_t i = 0; i < o.addresses.size(); ++i) {
        y += (i ? ", " : "") + yamlQuoted(o.addresses[i]);
      }
      y += "]\n";
    }
    y += fmt::format("          cert_min_days: {}\n", o.cert_min_days > 0 ? o.cert_min_days : 14);
    y += fmt::format("          expect_https_redirect: {}\n", o.expect_https_redirect ? "true" : "false");
    if (!o.expect_status.empty()) y += "          expect_status: " + statusList(o.expect_status) + "\n";
    return y + tlsYaml(o, "          ");
  }
  if (kind == "postgres") {
    y += fmt::format("        postgres:\n          dsn: {}\n", yamlQuoted(o.url));
    if (!o.query.empty()) y += fmt::format("          query: {}\n", yamlQuoted(o.query));
    if (!o.expect.empty()) y += fmt::format("          expect: {}\n", yamlQuoted(o.expect));
    return y;
  }
  if (kind == "tcp") {
    std::string address = o.url;
    if (address.rfind("tcp://", 0) == 0) address = address.substr(6);
    if (!address.empty() && address.back() == '/') address.pop_back();
    y += fmt::format("        tcp:\n          address: {}\n", yamlQuoted(address));
    if (!o.send.empty()) y += fmt::format("          send: {}\n", yamlQuoted(o.send));
    if (!o.expect.empty()) y += fmt::format("          expect: {}\n", yamlQuoted(o.expect));
    return y;
  }
  if (kind == "disk") {
    std::string path = o.url;
    if (path.rfind("file://", 0) == 0) path = path.substr(7);
    y += fmt::format("        disk:\n          path: {}\n          write: {}\n", yamlQuoted(path),
                     o.no_write ? "false" : "true");
    if (!o.min_free.empty()) y += fmt::format("          min_free: {}\n", yamlQuoted(o.min_free));
    return y;
  }
  if (kind == "heartbeat") {
    throw std::invalid_argument(
        "a heartbeat is pushed by the job, not probed: POST /api/v1/push/{service}/{check} with "
        "`Authorization: Bearer <token>` (add ?status=fail or ?exit_code=N on failure), e.g. "
        "curl -fsS -X POST -H \"Authorization: Bearer $TOKEN\" "
        "http://vigie:9877/api/v1/push/backup/nightly");
  }
  throw std::invalid_argument("--kind must be http, ingress, postgres, tcp, disk or heartbeat, got \"" +
                              kind + "\"");
}

std::string ms(double seconds) { return fmt::format("{:.1f} ms", seconds * 1000); }

std::string isoTime(double unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// What was probed, first line: never a secret (the DSN's password is masked).
std::string headline(const CheckConfig& check) {
  return std::visit(
      [](const auto& s) -> std::string {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, HttpSpec>) {
          return fmt::format("{} {}", s.method, redactDsn(s.url));
        } else if constexpr (std::is_same_v<T, IngressSpec>) {
          std::string pins;
          for (const auto& a : s.addresses) pins += (pins.empty() ? "" : ", ") + a;
          return fmt::format("ingress {}{}", redactDsn(s.url),
                             pins.empty() ? "" : fmt::format(" via {} (mode {})", pins,
                                                             s.mode == IngressSpec::Mode::all ? "all" : "any"));
        } else if constexpr (std::is_same_v<T, PostgresSpec>) {
          return fmt::format("postgres {} ({})", redactDsn(s.dsn), s.query);
        } else if constexpr (std::is_same_v<T, TcpSpec>) {
          return fmt::format("tcp {}", s.address);
        } else if constexpr (std::is_same_v<T, DiskSpec>) {
          return fmt::format("disk {}{}", s.path, s.write ? "" : " (read-only check)");
        } else {
          return "heartbeat";
        }
      },
      check.spec);
}

bool httpLike(const CheckConfig& check) {
  return std::holds_alternative<HttpSpec>(check.spec) || std::holds_alternative<IngressSpec>(check.spec);
}

void print(const CheckConfig& check, const Result& r) {
  std::cout << headline(check) << "\n";
  std::string verdict = std::string(statusName(r.status));
  if (r.status != Status::ok) verdict += fmt::format(" ({})", reasonName(r.reason));
  std::cout << fmt::format("  result      {}\n", verdict);
  if (!r.detail.empty()) std::cout << fmt::format("  detail      {}\n", r.detail);
  if (r.http_status) {
    std::cout << fmt::format("  status      {} (HTTP/{})\n", r.http_status,
                             r.http_version == 20 ? "2" : r.http_version == 10 ? "1.0" : "1.1");
  }
  std::cout << fmt::format("  duration    {}\n", ms(r.duration));
  if (httpLike(check)) {
    const auto& p = r.phases;
    std::cout << fmt::format("  phases      resolve {} | connect {} | tls {} | processing {} | transfer {}\n",
                             ms(p.resolve), ms(p.connect), ms(p.tls), ms(p.processing), ms(p.transfer));
    std::cout << fmt::format("  body        {} bytes{}\n", r.body_bytes,
                             r.redirects ? fmt::format(", {} redirects", r.redirects) : "");
  }
  if (r.cert_expiry) {
    const double days = (*r.cert_expiry - static_cast<double>(std::time(nullptr))) / 86400.0;
    std::cout << fmt::format("  certificate expires {} (in {:.1f} days)\n", isoTime(*r.cert_expiry), days);
  }
  if (!r.version.empty()) std::cout << fmt::format("  version     {}\n", r.version);
  for (const auto& [k, v] : r.info) std::cout << fmt::format("  {:<11} {}\n", k, v);
  if (!r.components.empty()) {
    std::cout << "  components\n";
    for (const auto& c : r.components) {
      std::cout << fmt::format("    {:<4} {}{}\n", statusName(c.status), c.name,
                               c.detail.empty() ? "" : "  (" + c.detail + ")");
    }
  }
  if (!r.targets.empty()) {
    std::cout << "  front-end addresses\n";
    for (const auto& t : r.targets) {
      std::string line = fmt::format("    {:<4} {:<16} {}", statusName(t.status), t.address, ms(t.duration));
      if (t.http_status) line += fmt::format("  HTTP {}", t.http_status);
      if (t.status != Status::ok) line += fmt::format("  {}: {}", reasonName(t.reason), t.detail);
      std::cout << line << "\n";
    }
  }
  if (!r.conditions.empty()) {
    std::cout << "  conditions\n";
    for (const auto& c : r.conditions) {
      std::cout << fmt::format("    {:<4} {}{}\n", c.ok ? "ok" : "FAIL", c.name,
                               c.detail.empty() ? "" : "  (" + c.detail + ")");
    }
  }
}

}  // namespace

void addProbeCliOptions(CLI::App& cmd, ProbeCliOptions& o) {
  cmd.add_option("target", o.url,
                 "http(s):// URL, postgres:// DSN, tcp://host:port, or a /path for a disk check")
      ->required();
  cmd.add_option("--kind", o.kind,
                 "http, ingress, postgres, tcp, disk (default: from the target; a key=value DSN "
                 "with host= or dbname= is postgres)");
  cmd.add_option("--address", o.addresses,
                 "ingress: front-end address to pin the URL's host to, as curl --resolve "
                 "(repeatable; implies --kind ingress)");
  cmd.add_option("--mode", o.mode, "ingress: all (every address must pass) or any");
  cmd.add_flag("--expect-https-redirect", o.expect_https_redirect,
               "ingress: the http:// form must redirect to https://");
  cmd.add_option("--query", o.query, "postgres: the query (default SELECT 1)");
  cmd.add_option("--expect", o.expect, "postgres: expected first value; tcp: regex on the reply");
  cmd.add_option("--send", o.send, "tcp: text to send once connected");
  cmd.add_option("--min-free", o.min_free, "disk: minimum free space, 5% or 10GiB");
  cmd.add_flag("--no-write", o.no_write, "disk: only statvfs, no write/read-back");
  cmd.add_option("-f,--format", o.format,
                 "health page format: auto, health+json, spring, microprofile, text, none");
  cmd.add_option("-X,--method", o.method, "HTTP method");
  cmd.add_option("-H,--header", o.headers, "request header \"Name: value\" (repeatable)");
  cmd.add_option("--expect-status", o.expect_status, "expected status codes (default any 2xx)");
  cmd.add_option("--timeout", o.timeout, "e.g. 5s, 800ms");
  cmd.add_option("--max-body", o.max_body, "e.g. 1MiB");
  cmd.add_flag("-k,--insecure", o.insecure, "do not verify the TLS certificate");
  cmd.add_option("--ca-file", o.ca_file, "CA bundle to verify the server with");
  cmd.add_flag("-L,--follow-redirects", o.follow_redirects, "follow redirects");
  cmd.add_option("--cert-min-days", o.cert_min_days, "fail when the certificate expires sooner");
  cmd.add_option("-C,--condition", o.conditions,
                 "json:/pointer=value | body:REGEX | latency:800ms (repeatable)");
}

int runProbeCli(const ProbeCliOptions& opts) {
  std::shared_ptr<const Config> cfg;
  try {
    cfg = parseConfig(toYaml(opts, kindOf(opts)), "command line");
  } catch (const ConfigException& e) {
    for (const auto& err : e.errors()) {
      std::cerr << "vigie probe: " << err.path << ": " << err.message << "\n";
    }
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "vigie probe: " << e.what() << "\n";
    return 2;
  }
  const CheckConfig& check = cfg->services.front().checks.front();
  boost::asio::io_context io(1);
  CurlDriver curl(io);
  WorkerPool blocking(io, 1, "vigie-probe");
  ProbeContext ctx{io, curl, "", &blocking, &blocking, nullptr};
  std::unique_ptr<Probe> probe;
  try {
    probe = makeProbe(ctx, check);
  } catch (const std::exception& e) {
    std::cerr << "vigie probe: " << e.what() << "\n";
    return 2;
  }
  std::optional<Result> result;
  bool timed_out = false;
  const auto deadline = SteadyClock::now() + check.timeout;
  boost::asio::steady_timer guard(io);
  probe->start(deadline, [&](Result r) {
    result = std::move(r);
    guard.cancel();
  });
  guard.expires_at(deadline + std::chrono::milliseconds(100));
  guard.async_wait([&](const boost::system::error_code& ec) {
    if (ec || result) return;
    probe->cancel();
    timed_out = true;
    result = Result::failure(Reason::timeout, "no result within the timeout");
  });
  io.run();
  // A probe that answered left its worker idle: join it, so that the thread's
  // library state (libpq's, OpenSSL's) is released before exit. A job still stuck
  // after the timeout (a hung disk) is abandoned: the command must end.
  blocking.shutdown(timed_out ? std::chrono::milliseconds(0) : std::chrono::milliseconds(2000));
  if (!result) result = Result::failure(Reason::internal, "probe ended without a result");
  print(check, *result);
  return result->status == Status::fail ? 1 : 0;
}

}  // namespace vigie
