#include "probes/probe.h"

#include <algorithm>
#include <array>
#include <utility>

namespace vigie {
namespace {

constexpr std::array<std::pair<Reason, std::string_view>, 26> kReasonNames{{
    {Reason::none, ""},
    {Reason::timeout, "timeout"},
    {Reason::dns, "dns"},
    {Reason::connect, "connect"},
    {Reason::tls, "tls"},
    {Reason::cert_expiring, "cert_expiring"},
    {Reason::http_status, "http_status"},
    {Reason::http_protocol, "http_protocol"},
    {Reason::body_too_large, "body_too_large"},
    {Reason::body, "body"},
    {Reason::latency, "latency"},
    {Reason::health_fail, "health_fail"},
    {Reason::health_warn, "health_warn"},
    {Reason::health_parse, "health_parse"},
    {Reason::auth, "auth"},
    {Reason::database, "database"},
    {Reason::query, "query"},
    {Reason::disk_write, "disk_write"},
    {Reason::disk_read, "disk_read"},
    {Reason::disk_verify, "disk_verify"},
    {Reason::disk_full, "disk_full"},
    {Reason::read_only, "read_only"},
    {Reason::permission, "permission"},
    {Reason::heartbeat_missed, "heartbeat_missed"},
    {Reason::heartbeat_fail, "heartbeat_fail"},
    {Reason::internal, "internal"},
}};

}  // namespace

std::string_view reasonName(Reason r) {
  for (const auto& [reason, name] : kReasonNames) {
    if (reason == r) return name;
  }
  return "internal";
}

std::optional<Reason> reasonFromName(std::string_view name) {
  for (const auto& [reason, n] : kReasonNames) {
    if (n == name) return reason;
  }
  return std::nullopt;
}

std::string_view statusName(Status s) {
  switch (s) {
    case Status::ok: return "ok";
    case Status::warn: return "warn";
    case Status::fail: return "fail";
  }
  return "fail";
}

namespace {

void scrubText(std::string& text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.size() < 6) continue;
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
}

}  // namespace

void scrubSecrets(Result& r, const std::vector<std::string>& secrets) {
  if (secrets.empty()) return;
  // Longest first: a secret that contains another is masked whole.
  std::vector<std::string> sorted = secrets;
  std::sort(sorted.begin(), sorted.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  scrubText(r.detail, sorted);
  scrubText(r.version, sorted);
  for (auto& [key, value] : r.info) scrubText(value, sorted);
  for (auto& c : r.components) {
    scrubText(c.name, sorted);
    scrubText(c.detail, sorted);
  }
  for (auto& c : r.conditions) {
    scrubText(c.name, sorted);
    scrubText(c.detail, sorted);
  }
  for (auto& t : r.targets) scrubText(t.detail, sorted);
}

}  // namespace vigie
