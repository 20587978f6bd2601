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
#include "probes/health_page.h"
#include "probes/registry.h"

namespace vigie {
namespace {

std::string yamlQuoted(const std::string& s) { return "\"" + jsonEscape(s) + "\""; }

// The options become a one-check configuration, so `vigie probe` validates and
// behaves exactly as a configured check does.
std::string toYaml(const ProbeCliOptions& o) {
  std::string y = "services:\n  - name: cli\n    checks:\n      - name: probe\n";
  y += fmt::format("        timeout: {}\n        interval: {}\n", yamlQuoted(o.timeout), yamlQuoted(o.timeout));
  y += "        http:\n";
  y += fmt::format("          url: {}\n          method: {}\n", yamlQuoted(o.url), yamlQuoted(o.method));
  y += fmt::format("          health_format: {}\n", yamlQuoted(o.format));
  y += fmt::format("          max_body: {}\n", yamlQuoted(o.max_body));
  y += fmt::format("          follow_redirects: {}\n", o.follow_redirects ? "true" : "false");
  if (o.cert_min_days > 0) y += fmt::format("          cert_min_days: {}\n", o.cert_min_days);
  if (!o.expect_status.empty()) {
    y += "          expect_status: [";
    for (std::size_t i = 0; i < o.expect_status.size(); ++i) {
      y += fmt::format("{}{}", i ? ", " : "", o.expect_status[i]);
    }
    y += "]\n";
  }
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
  y += fmt::format("          tls: {{verify: {}{}}}\n", o.insecure ? "false" : "true",
                   o.ca_file.empty() ? "" : ", ca_file: " + yamlQuoted(o.ca_file));
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

std::string ms(double seconds) { return fmt::format("{:.1f} ms", seconds * 1000); }

std::string isoTime(double unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void print(const CheckConfig& check, const Result& r) {
  const auto& http = std::get<HttpSpec>(check.spec);
  std::cout << fmt::format("{} {}\n", http.method, redactDsn(http.url));
  std::string verdict = std::string(statusName(r.status));
  if (r.status != Status::ok) verdict += fmt::format(" ({})", reasonName(r.reason));
  std::cout << fmt::format("  result      {}\n", verdict);
  if (!r.detail.empty()) std::cout << fmt::format("  detail      {}\n", r.detail);
  if (r.http_status) {
    std::cout << fmt::format("  status      {} (HTTP/{})\n", r.http_status,
                             r.http_version == 20 ? "2" : r.http_version == 10 ? "1.0" : "1.1");
  }
  std::cout << fmt::format("  duration    {}\n", ms(r.duration));
  const auto& p = r.phases;
  std::cout << fmt::format("  phases      resolve {} | connect {} | tls {} | processing {} | transfer {}\n",
                           ms(p.resolve), ms(p.connect), ms(p.tls), ms(p.processing), ms(p.transfer));
  std::cout << fmt::format("  body        {} bytes{}\n", r.body_bytes,
                           r.redirects ? fmt::format(", {} redirects", r.redirects) : "");
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
  cmd.add_option("url", o.url, "http:// or https:// URL")->required();
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
    cfg = parseConfig(toYaml(opts), "command line");
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
  ProbeContext ctx{io, curl, ""};
  auto probe = makeProbe(ctx, check);
  std::optional<Result> result;
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
    result = Result::failure(Reason::timeout, "no result within the timeout");
  });
  io.run();
  if (!result) result = Result::failure(Reason::internal, "probe ended without a result");
  print(check, *result);
  return result->status == Status::fail ? 1 : 0;
}

}  // namespace vigie
