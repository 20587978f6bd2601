#include "exporters/index_page.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "exporters/json_util.h"

namespace vigie {

std::string htmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

int severity(CheckState s) {
  switch (s) {
    case CheckState::down: return 0;
    case CheckState::degraded: return 1;
    case CheckState::unknown: return 2;
    case CheckState::up: return 3;
  }
  return 3;
}

std::string ago(SystemClock::time_point then, SystemClock::time_point now) {
  if (then == SystemClock::time_point{}) return "never";
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(now - then).count();
  if (s < 120) return fmt::format("{} s ago", s);
  if (s < 7200) return fmt::format("{} min ago", s / 60);
  if (s < 172800) return fmt::format("{} h ago", s / 3600);
  return fmt::format("{} d ago", s / 86400);
}

// Text from a target: valid UTF-8, bounded, then escaped.
std::string text(std::string_view s) { return htmlEscape(sanitizeUtf8(s, 300)); }

}  // namespace

std::string renderIndexPage(const Snapshot* snap, SystemClock::time_point now) {
  std::string out;
  out.reserve(4096 + (snap ? snap->checks.size() * 600 : 0));
  out += R"(<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10"><title>vigie</title><style>
:root{color-scheme:light dark;--up:#1a7f37;--degraded:#9a6700;--down:#cf222e;--unknown:#6e7781}
body{font:14px/1.4 system-ui,sans-serif;margin:1rem auto;max-width:1200px;padding:0 1rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #8884;vertical-align:top}
.state{font-weight:600;white-space:nowrap}.state::before{content:"\25CF  "}
.up{color:var(--up)}.degraded{color:var(--degraded)}.down{color:var(--down)}.unknown{color:var(--unknown)}
.detail{font-family:ui-monospace,monospace;font-size:12px;word-break:break-word}
.bar{display:flex;gap:1px}.bar i{display:inline-block;width:4px;height:14px;background:var(--up)}
.bar i.warn{background:var(--degraded)}.bar i.fail{background:var(--down)}
small{color:var(--unknown)}</style></head><body>
<h1>vigie</h1>)";
  if (!snap || !snap->config) {
    out += "<p>No configuration loaded yet.</p></body></html>";
    return out;
  }
  std::array<std::size_t, 4> counts{};
  std::vector<const CheckStatus*> rows;
  rows.reserve(snap->checks.size());
  for (const auto& c : snap->checks) {
    rows.push_back(c.get());
    ++counts[static_cast<std::size_t>(c->state)];
  }
  std::stable_sort(rows.begin(), rows.end(), [](const CheckStatus* a, const CheckStatus* b) {
    return severity(a->state) < severity(b->state);
  });
  out += fmt::format(
      "<p><strong>{} checks</strong>: <span class=\"down\">{} down</span>, "
      "<span class=\"degraded\">{} degraded</span>, <span class=\"up\">{} up</span>, "
      "<span class=\"unknown\">{} unknown</span>. <small>Updated {} &middot; "
      "<a href=\"/api/v1/checks\">JSON</a> &middot; <a href=\"/metrics\">metrics</a></small></p>\n",
      rows.size(), counts[3], counts[2], counts[1], counts[0], formatRfc3339(now));
  out += "<table><thead><tr><th>Service / check</th><th>State</th><th>Reason and detail</th>"
         "<th>Version</th><th>Last results</th><th>Changed</th></tr></thead><tbody>\n";
  for (const auto* c : rows) {
    const auto state = checkStateName(c->state);
    out += "<tr><td>";
    out += text(c->check->key);
    if (c->service && !c->service->group.empty()) {
      out += "<br><small>" + text(c->service->group) + "</small>";
    }
    out += fmt::format("</td><td class=\"state {}\">{}{}</td><td>", state, state,
                       c->pending ? " <small>(pending)</small>" : "");
    if (c->last && c->last->status != Status::ok) {
      out += "<strong>";
      out += c->last->status == Status::warn ? "health_warn" : reasonName(c->last->reason);
      out += "</strong> <span class=\"detail\">" + text(c->last->detail) + "</span>";
    }
    out += "</td><td>";
    if (c->last) out += text(c->last->version);
    out += "</td><td><span class=\"bar\">";
    for (const auto& r : c->recent) {
      out += r.status == Status::ok ? "<i></i>" : r.status == Status::warn ? "<i class=\"warn\"></i>"
                                                                           : "<i class=\"fail\"></i>";
    }
    out += "</span></td><td>" + ago(c->last_change, now) + "</td></tr>\n";
  }
  out += "</tbody></table></body></html>\n";
  return out;
}

}  // namespace vigie
