#include "exporters/dashboard.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>
#include <set>

#include "collector/history.h"
#include "collector/shard.h"
#include "exporters/index_page.h"
#include "exporters/json_util.h"
#include "exporters/dashboard_assets.h"  // generated from dashboards/assets/

namespace vigie {
namespace {

namespace http = boost::beast::http;

// Text from a target or a config: valid UTF-8, bounded, escaped.
std::string esc(std::string_view s, std::size_t max = 300) {
  return htmlEscape(sanitizeUtf8(s, max));
}

// A path segment for links (names are letters, digits, - _ . by config rules;
// anything else is percent-encoded anyway).
std::string seg(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

int rank(ServiceState s) {
  switch (s) {
    case ServiceState::down: return 0;
    case ServiceState::degraded: return 1;
    case ServiceState::maintenance: return 2;
    case ServiceState::unknown: return 3;
    case ServiceState::up: return 4;
  }
  return 3;
}

std::string stateSpan(std::string_view state, bool chip = false) {
  return fmt::format("<span class=\"{}state s-{}\">{}</span>", chip ? "chip " : "", state, state);
}

std::string when(SystemClock::time_point t) {
  if (t == SystemClock::time_point{}) return "";
  const std::time_t tt = SystemClock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string ago(SystemClock::time_point then, SystemClock::time_point now) {
  if (then == SystemClock::time_point{}) return "never";
  const auto s = std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::seconds>(now - then).count());
  std::string rel = s < 120     ? fmt::format("{} s ago", s)
                    : s < 7200  ? fmt::format("{} min ago", s / 60)
                    : s < 172800 ? fmt::format("{} h ago", s / 3600)
                                 : fmt::format("{} d ago", s / 86400);
  return fmt::format("<time datetime=\"{}\" title=\"{}\">{}</time>", formatRfc3339(then),
                     when(then), rel);
}

std::string percent(const std::optional<double>& r) {
  if (!r) return "&ndash;";
  const double p = *r * 100.0;
  if (p >= 99.995) return "100%";
  if (p >= 99) return fmt::format("{:.2f}%", std::floor(p * 100) / 100);
  return fmt::format("{:.1f}%", std::floor(p * 10) / 10);
}

std::string reasonOf(const Result& r) {
  return std::string(r.status == Status::warn ? "health_warn" : reasonName(r.reason));
}

// The last results as one bar; runs of the same outcome are merged into one
// rectangle, so a quiet check costs a few bytes whatever the history length.
std::string bar(const std::vector<ResultSummary>& recent, std::size_t slots) {
  const std::size_t n = std::min(recent.size(), slots);
  std::size_t ok = 0, warn = 0, fail = 0;
  std::string rects;
  const std::size_t first = recent.size() - n;
  const std::size_t pad = slots - n;
  if (pad > 0) rects += fmt::format("<rect class=\"none\" width=\"{}\" height=\"16\"/>", pad * 4 - 1);
  for (std::size_t i = first; i < recent.size();) {
    std::size_t j = i;
    while (j < recent.size() && recent[j].status == recent[i].status) ++j;
    const auto count = j - i;
    const char* cls = recent[i].status == Status::ok ? "ok" : recent[i].status == Status::warn ? "warn" : "fail";
    (recent[i].status == Status::ok ? ok : recent[i].status == Status::warn ? warn : fail) += count;
    rects += fmt::format("<rect class=\"{}\" x=\"{}\" width=\"{}\" height=\"16\"/>", cls,
                         (pad + i - first) * 4, count * 4 - 1);
    i = j;
  }
  return fmt::format(
      "<svg class=\"bar\" viewBox=\"0 0 {} 16\" preserveAspectRatio=\"none\" role=\"img\" "
      "aria-label=\"last {} results: {} ok, {} warn, {} failed\"><title>last {} results: {} ok, "
      "{} warn, {} failed</title>{}</svg>",
      slots * 4 - 1, n, ok, warn, fail, n, ok, warn, fail, rects);
}

// Distinct versions reported by a service's checks.
std::vector<std::string> versionsOf(const Snapshot& snap, const ServiceStatus& svc) {
  std::vector<std::string> out;
  for (std::size_t i : svc.checks) {
    const auto& c = *snap.checks[i];
    if (c.last && !c.last->version.empty() &&
        std::find(out.begin(), out.end(), c.last->version) == out.end()) {
      out.push_back(c.last->version);
    }
  }
  return out;
}

std::string head(std::string_view title) {
  return fmt::format(
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>{} &middot; vigie</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\">"
      "<link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">"
      "<noscript><meta http-equiv=\"refresh\" content=\"30\"></noscript>"
      "<script src=\"/assets/dashboard.js\" defer></script></head><body>\n",
      title);
}

std::string header(const Snapshot& snap, SystemClock::time_point now) {
  std::array<std::size_t, 5> counts{};
  for (const auto& s : snap.services) ++counts[static_cast<std::size_t>(s.state)];
  std::string nav;
  for (ServiceState s : {ServiceState::down, ServiceState::degraded, ServiceState::maintenance,
                         ServiceState::unknown, ServiceState::up}) {
    const auto n = counts[static_cast<std::size_t>(s)];
    if (n == 0) continue;
    nav += fmt::format("<span class=\"chip s-{}\">{} {}</span>", serviceStateName(s), n,
                       serviceStateName(s));
  }
  const std::string location = snap.config ? snap.config->location : "";
  std::string where = location.empty() ? "" : "<small>from " + esc(location) + "</small>";
  if (snap.config && snap.config->shard.count > 1) {
    where += fmt::format(
        " <small title=\"this replica runs its share of the checks and reads the others' from "
        "its peers\">shard {}</small>",
        shardName(snap.config->shard));
  }
  return fmt::format(
      "<header><h1><a href=\"/\">vigie</a></h1>{}<nav aria-label=\"summary\">{}</nav>"
      "<small>updated {} &middot; <a href=\"/api/v1/services\">JSON</a> &middot; "
      "<a href=\"/checks\">all checks</a> &middot; <a href=\"/metrics\">metrics</a></small>"
      "</header>\n",
      where, nav,
      ago(now, now).empty() ? "" : when(now));
}

std::string footer() {
  return "<footer>vigie &middot; this page refreshes itself every 10 s</footer></body></html>\n";
}

std::string serviceCard(const Snapshot& snap, const ServiceStatus& svc,
                        SystemClock::time_point now) {
  const auto state = serviceStateName(svc.state);
  const std::string& name = svc.service->name;
  std::string out = fmt::format("<li class=\"svc b-{}\" data-service=\"{}\" data-state=\"{}\">",
                                state, esc(name), state);
  out += fmt::format("<div class=\"head\">{} <a class=\"name\" href=\"/services/{}\">{}</a>",
                     stateSpan(state), seg(name), esc(name));
  if (svc.flapping) out += " <span class=\"flap\" title=\"state changes too often\">flapping</span>";
  out += "</div>";
  if (!svc.cause.empty()) {
    out += fmt::format(
        "<div class=\"cause s-down\">down because <a href=\"/services/{}\">{}</a> is down</div>",
        seg(svc.cause), esc(svc.cause));
  }
  if (svc.state == ServiceState::maintenance) {
    out += fmt::format("<div class=\"maint s-maintenance\">maintenance: {} (checks find it {})</div>",
                       esc(svc.maintenance), serviceStateName(svc.underlying));
  }
  out += "<div class=\"meta\">";
  const auto versions = versionsOf(snap, svc);
  if (!versions.empty()) {
    std::string v;
    for (const auto& x : versions) v += (v.empty() ? "" : ", ") + esc(x, 64);
    out += "<span>version " + v + "</span>";
  }
  out += fmt::format("<span>changed {}</span>", ago(svc.last_change, now));
  out += fmt::format("<span title=\"uptime over 24 hours, 7 days, 30 days\">uptime {} &middot; {} &middot; {}</span>",
                     percent(svc.uptime[1]), percent(svc.uptime[2]), percent(svc.uptime[3]));
  out += "</div><ul class=\"checks\">";
  for (std::size_t i : svc.checks) {
    const CheckStatus& c = *snap.checks[i];
    const auto cs = checkStateName(c.state);
    out += fmt::format("<li><span>{} {}</span>{}", stateSpan(cs), esc(c.check->name),
                       bar(c.recent, 30));
    if (c.last && c.last->status != Status::ok) {
      out += fmt::format("<span class=\"why\"><strong>{}</strong> {}</span>", reasonOf(*c.last),
                         esc(c.last->detail));
    }
    out += "</li>";
  }
  out += "</ul></li>\n";
  return out;
}

std::string servicesList(const Snapshot& snap, std::vector<std::size_t> services,
                         SystemClock::time_point now) {
  std::stable_sort(services.begin(), services.end(), [&](std::size_t a, std::size_t b) {
    return rank(snap.services[a].state) < rank(snap.services[b].state);
  });
  std::string out = "<ul class=\"services\">\n";
  for (std::size_t i : services) out += serviceCard(snap, snap.services[i], now);
  return out + "</ul>\n";
}

std::string summaryLine(const Snapshot& snap, const std::vector<std::size_t>& services) {
  std::array<std::size_t, 5> n{};
  for (std::size_t i : services) ++n[static_cast<std::size_t>(snap.services[i].state)];
  return fmt::format(
      "<p class=\"summary\"><strong>{} services</strong>: {} down, {} degraded, {} in "
      "maintenance, {} unknown, {} up</p>\n",
      services.size(), n[static_cast<std::size_t>(ServiceState::down)],
      n[static_cast<std::size_t>(ServiceState::degraded)],
      n[static_cast<std::size_t>(ServiceState::maintenance)],
      n[static_cast<std::size_t>(ServiceState::unknown)], n[static_cast<std::size_t>(ServiceState::up)]);
}

std::string clusterChips(const Snapshot& snap) {
  if (snap.clusters.empty()) return "";
  std::string out = "<div class=\"clusters\" aria-label=\"clusters\">";
  for (const auto& cl : snap.clusters) {
    out += fmt::format(
        "<a class=\"chip s-{}\" href=\"/clusters/{}\" title=\"{}\">cluster {}: {}{}</a>",
        serviceStateName(cl.state), seg(cl.cluster->name), esc(cl.reason), esc(cl.cluster->name),
        serviceStateName(cl.state), cl.ready ? " (ready)" : " (not ready)");
  }
  return out + "</div>\n";
}

// Response times of the recent results: an inline SVG line, failures marked.
std::string chart(const std::vector<ResultSummary>& recent) {
  if (recent.empty()) return "<p class=\"muted\">No results yet.</p>";
  constexpr double kW = 600, kH = 140, kLeft = 48, kRight = 592, kTop = 10, kBottom = 118;
  double max_ms = 1;
  for (const auto& r : recent) max_ms = std::max(max_ms, r.duration * 1000.0);
  max_ms *= 1.1;
  const std::size_t slots = std::max<std::size_t>(recent.size(), 2) - 1;
  std::string points, marks;
  for (std::size_t i = 0; i < recent.size(); ++i) {
    const double x = kLeft + (kRight - kLeft) * static_cast<double>(i) / static_cast<double>(slots);
    const double y = kBottom - (kBottom - kTop) * (recent[i].duration * 1000.0 / max_ms);
    points += fmt::format("{:.1f},{:.1f} ", x, y);
    if (recent[i].status != Status::ok) {
      marks += fmt::format("<circle class=\"pt-{}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\"><title>{}: {}</title></circle>",
                           recent[i].status == Status::warn ? "warn" : "fail", x, y,
                           when(recent[i].at),
                           recent[i].status == Status::warn ? "health_warn" : reasonName(recent[i].reason));
    }
  }
  return fmt::format(
      "<svg class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"response time of the "
      "last {} results, up to {:.1f} ms\">"
      "<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>"
      "<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>"
      "<text x=\"2\" y=\"{}\">{:.1f} ms</text><text x=\"2\" y=\"{}\">0 ms</text>"
      "<text x=\"{}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>"
      "<polyline class=\"line\" points=\"{}\"/>{}</svg>",
      kW, kH, recent.size(), max_ms, kLeft, kTop, kRight, kTop, kLeft, kBottom, kRight, kBottom,
      kTop + 4, max_ms, kBottom, kLeft, kH - 4, when(recent.front().at), kRight, kH - 4,
      when(recent.back().at), points, marks);
}

std::string changesTable(std::vector<StateChange> changes, SystemClock::time_point now) {
  if (changes.empty()) return "<p class=\"muted\">No state change recorded.</p>";
  std::sort(changes.begin(), changes.end(),
            [](const StateChange& a, const StateChange& b) { return a.at > b.at; });
  std::string out = "<table><thead><tr><th>When</th><th>What</th><th>Change</th><th>Reason</th></tr></thead><tbody>";
  for (const auto& e : changes) {
    out += fmt::format("<tr><td>{}</td><td>{} {}</td><td>{} &rarr; {}</td><td>{}{}{}</td></tr>",
                       ago(e.at, now), subjectName(e.subject), esc(e.name), stateSpan(esc(e.from)),
                       stateSpan(esc(e.to)),
                       e.reason == Reason::none ? "" : "<strong>" + std::string(reasonName(e.reason)) + "</strong> ",
                       esc(e.detail),
                       e.cause.empty() ? "" : " (because " + esc(e.cause) + " is down)");
  }
  return out + "</tbody></table>";
}

std::string targetOf(const CheckConfig& c) {
  return std::visit(
      [](const auto& s) -> std::string {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, HttpSpec> || std::is_same_v<T, IngressSpec>) {
          return stripUrlUserinfo(s.url);
        } else if constexpr (std::is_same_v<T, TcpSpec>) {
          return s.address;
        } else if constexpr (std::is_same_v<T, DiskSpec>) {
          return s.path;
        } else if constexpr (std::is_same_v<T, PostgresSpec>) {
          return redactDsn(s.dsn);
        } else {
          return "pushed by the job";
        }
      },
      c.spec);
}

// Sharded, which replica runs the check: "this replica" or "shard 2/3" (read
// from that peer). Empty when not sharded.
std::string runBy(const Snapshot& snap, const CheckConfig& cfg) {
  if (!snap.config || snap.config->shard.count <= 1) return "";
  const ShardSpec& mine = snap.config->shard;
  const unsigned owner = shardOf(cfg.key, mine.count);
  if (owner == mine.index) return " &middot; run by this replica";
  return fmt::format(" &middot; <span class=\"remote\">run by shard {}/{}</span>", owner, mine.count);
}

std::string checkSection(const Snapshot& snap, const CheckStatus& c, SystemClock::time_point now) {
  const CheckConfig& cfg = *c.check;
  std::string out = fmt::format(
      "<section class=\"check\" id=\"check-{}\"><h3>{} {} <small class=\"muted\">{} &middot; "
      "<code>{}</code>{}{}</small>{}</h3>",
      seg(cfg.name), stateSpan(checkStateName(c.state)), esc(cfg.name), probeKindLabel(cfg.spec),
      esc(targetOf(cfg), 200), cfg.critical ? "" : " &middot; not critical", runBy(snap, cfg),
      c.flapping ? fmt::format(" <span class=\"flap\">flapping ({:.0f}%)</span>", c.flap_percent) : "");
  if (!c.last) return out + "<p class=\"muted\">No result yet.</p></section>";
  const Result& r = *c.last;
  out += fmt::format("<p>Last result {}: <strong>{}</strong>{} in {:.1f} ms{}</p>", ago(r.started, now),
                     statusName(r.status), r.status == Status::ok ? "" : " (" + reasonOf(r) + ")",
                     r.duration * 1000.0, r.http_status ? fmt::format(", HTTP {}", r.http_status) : "");
  if (!r.detail.empty()) out += "<pre>" + esc(r.detail, 1000) + "</pre>";
  if (c.last_failure_result && r.status == Status::ok) {
    out += fmt::format("<p class=\"muted\">Last failure {}: {} {}</p>", ago(c.last_failure, now),
                       reasonOf(*c.last_failure_result), esc(c.last_failure_result->detail));
  }
  if (!r.conditions.empty()) {
    out += "<h4>Conditions</h4><ul>";
    for (const auto& cond : r.conditions) {
      out += fmt::format("<li class=\"{}\">{} {}{}</li>", cond.ok ? "cond-ok" : "cond-fail",
                         cond.ok ? "passed:" : "FAILED:", esc(cond.name),
                         cond.detail.empty() ? "" : " &mdash; " + esc(cond.detail));
    }
    out += "</ul>";
  }
  if (!r.components.empty()) {
    out += "<h4>Components reported by the health page</h4><table><thead><tr><th>Component</th>"
           "<th>Status</th><th>Detail</th></tr></thead><tbody>";
    for (const auto& comp : r.components) {
      const auto st = comp.status == Status::ok ? "up" : comp.status == Status::warn ? "degraded" : "down";
      out += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"detail\">{}</td></tr>", esc(comp.name),
                         stateSpan(st), esc(comp.detail));
    }
    out += "</tbody></table>";
  }
  if (!r.targets.empty()) {
    out += "<h4>Front-end addresses</h4><table><thead><tr><th>Address</th><th>Result</th>"
           "<th>HTTP</th><th>Time</th><th>Detail</th></tr></thead><tbody>";
    for (const auto& t : r.targets) {
      out += fmt::format("<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.1f} ms</td><td class=\"detail\">{}</td></tr>",
                         esc(t.address), stateSpan(t.status == Status::fail ? "down" : "up"),
                         t.http_status, t.duration * 1000.0,
                         t.status == Status::fail ? std::string(reasonName(t.reason)) + ": " + esc(t.detail) : "");
    }
    out += "</tbody></table>";
  }
  if (!r.version.empty() || !r.info.empty()) {
    out += "<h4>Reported</h4><table><tbody>";
    if (!r.version.empty()) out += "<tr><th>version</th><td>" + esc(r.version) + "</td></tr>";
    for (const auto& [k, v] : r.info) out += "<tr><th>" + esc(k, 64) + "</th><td class=\"detail\">" + esc(v) + "</td></tr>";
    out += "</tbody></table>";
  }
  out += fmt::format("<h4>Response time, last {} results</h4>", c.recent.size());
  out += chart(c.recent);
  out += fmt::format("<p class=\"muted\">uptime 1 h {} &middot; 24 h {} &middot; 7 d {} &middot; 30 d {}</p>",
                     percent(c.uptime[0]), percent(c.uptime[1]), percent(c.uptime[2]), percent(c.uptime[3]));
  return out + "</section>";
}

const ServiceStatus* findService(const Snapshot& snap, std::string_view name) {
  for (const auto& s : snap.services) {
    if (s.service->name == name) return &s;
  }
  return nullptr;
}

// Width of `s` in Verdana 11px, as shields.io lays text out, approximately.
double textWidth(std::string_view s) {
  double w = 0;
  for (unsigned char c : s) {
    if (c >= 0x80 && (c & 0xC0) == 0x80) continue;  // UTF-8 continuation
    if (std::strchr("iIl.,:;|!'", c)) w += 3.5;
    else if (std::strchr("fjrt()[] ", c)) w += 4.5;
    else if (std::strchr("mwMW%", c)) w += 10.5;
    else if (std::isupper(c) || std::isdigit(c)) w += 7.5;
    else w += 6.6;
  }
  return w;
}

const char* badgeColor(ServiceState s) {
  switch (s) {
    case ServiceState::up: return "#4c1";
    case ServiceState::degraded: return "#dfb317";
    case ServiceState::down: return "#e05d44";
    case ServiceState::maintenance: return "#007ec6";
    case ServiceState::unknown: return "#9f9f9f";
  }
  return "#9f9f9f";
}

const char* uptimeColor(double ratio) {
  const double p = ratio * 100;
  if (p >= 99.9) return "#4c1";
  if (p >= 99) return "#97ca00";
  if (p >= 95) return "#dfb317";
  if (p >= 90) return "#fe7d37";
  return "#e05d44";
}

void page(HttpResponse& res, std::string body) {
  res.content_type = "text/html; charset=utf-8";
  res.body = std::move(body);
  res.headers.emplace_back("Content-Security-Policy", kDashboardCsp);
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  res.headers.emplace_back("Referrer-Policy", "no-referrer");
  res.headers.emplace_back("Cache-Control", "no-store");
}

void notFound(HttpResponse& res, std::string_view what) {
  res.status = 404;
  page(res, head("not found") + "<main id=\"main\"><p>" + esc(what) +
                " &middot; <a href=\"/\">all services</a></p></main>" + footer());
}

bool wantsFragment(const HttpRequest& req) {
  const auto* f = req.param("fragment");
  return f && *f == "1";
}

std::string lastSegment(const HttpRequest& req, std::string_view prefix) {
  std::string_view p = req.path;
  p.remove_prefix(std::min(p.size(), prefix.size()));
  return percentDecode(p);
}

}  // namespace

std::string renderOverview(const Snapshot& snap, const DashboardView& view,
                           SystemClock::time_point now, bool fragment) {
  std::string main;
  std::string title = "status";
  if (view.kind == DashboardView::Kind::all) {
    std::vector<std::size_t> all(snap.services.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    main += summaryLine(snap, all);
    main += clusterChips(snap);
    // Groups with problems first, then in config order.
    std::vector<std::size_t> order(snap.groups.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return rank(snap.groups[a].state) < rank(snap.groups[b].state);
    });
    for (std::size_t gi : order) {
      const GroupStatus& g = snap.groups[gi];
      if (g.services.empty()) continue;
      main += fmt::format(
          "<section class=\"group\"><h2>{} {}{}</h2>",
          g.name.empty() ? std::string("Other services")
                         : fmt::format("<a href=\"/groups/{}\">{}</a>", seg(g.name), esc(g.name)),
          stateSpan(serviceStateName(g.state), true),
          g.description.empty() ? "" : " <span class=\"desc\">" + esc(g.description) + "</span>");
      main += servicesList(snap, g.services, now) + "</section>\n";
    }
    if (snap.services.empty()) main += "<p>No services configured.</p>";
  } else if (view.kind == DashboardView::Kind::group) {
    const GroupStatus* g = nullptr;
    for (const auto& x : snap.groups) {
      if (x.name == view.name && !x.name.empty()) g = &x;
    }
    if (!g) return "";
    title = "group " + esc(g->name);
    main += fmt::format("<h2>group {} {}{}</h2>", esc(g->name), stateSpan(serviceStateName(g->state), true),
                        g->description.empty() ? "" : " <span class=\"desc\">" + esc(g->description) + "</span>");
    main += summaryLine(snap, g->services) + servicesList(snap, g->services, now);
  } else {
    const ClusterStatus* cl = nullptr;
    for (const auto& x : snap.clusters) {
      if (x.cluster->name == view.name) cl = &x;
    }
    if (!cl) return "";
    title = "cluster " + esc(cl->cluster->name);
    main += fmt::format("<h2>cluster {} {} <span class=\"desc\">{}{}</span></h2>",
                        esc(cl->cluster->name), stateSpan(serviceStateName(cl->state), true),
                        cl->ready ? "ready: the front end may send it traffic" : "not ready",
                        cl->reason.empty() ? "" : " &mdash; " + esc(cl->reason));
    main += summaryLine(snap, cl->services) + servicesList(snap, cl->services, now);
    main += "<h3>Recent changes</h3>" +
            changesTable(cl->changes ? *cl->changes : std::vector<StateChange>{}, now);
  }
  if (fragment) return main;
  return head(title) + header(snap, now) + "<main id=\"main\">" + main + "</main>" + footer();
}

std::string renderServicePage(const Snapshot& snap, std::string_view name,
                              SystemClock::time_point now, bool fragment) {
  const ServiceStatus* svc = findService(snap, name);
  if (!svc) return "";
  const ServiceConfig& cfg = *svc->service;
  std::string main = fmt::format("<h2>{} {}{}</h2>", esc(cfg.name),
                                 stateSpan(serviceStateName(svc->state), true),
                                 cfg.description.empty() ? "" : " <span class=\"desc\">" + esc(cfg.description) + "</span>");
  if (!svc->cause.empty()) {
    main += fmt::format("<p class=\"cause s-down\">Down because <a href=\"/services/{}\">{}</a> is down.</p>",
                        seg(svc->cause), esc(svc->cause));
  }
  if (svc->state == ServiceState::maintenance) {
    main += fmt::format("<p class=\"maint s-maintenance\">In maintenance: {}. Its checks find it {}; no alert is due.</p>",
                        esc(svc->maintenance), serviceStateName(svc->underlying));
  }
  main += "<div class=\"meta\">";
  if (!cfg.group.empty()) main += fmt::format("<span>group <a href=\"/groups/{}\">{}</a></span>", seg(cfg.group), esc(cfg.group));
  if (!cfg.depends_on.empty()) {
    std::string deps;
    for (const auto& d : cfg.depends_on) deps += fmt::format("{}<a href=\"/services/{}\">{}</a>", deps.empty() ? "" : ", ", seg(d), esc(d));
    main += "<span>depends on " + deps + "</span>";
  }
  for (const auto& [k, v] : cfg.labels) main += "<span>" + esc(k, 64) + "=" + esc(v, 64) + "</span>";
  main += fmt::format("<span>changed {}</span>", ago(svc->last_change, now));
  main += fmt::format("<span>uptime 1 h {} &middot; 24 h {} &middot; 7 d {} &middot; 30 d {}</span>",
                      percent(svc->uptime[0]), percent(svc->uptime[1]), percent(svc->uptime[2]),
                      percent(svc->uptime[3]));
  const auto versions = versionsOf(snap, *svc);
  if (!versions.empty()) {
    std::string v;
    for (const auto& x : versions) v += (v.empty() ? "" : ", ") + esc(x, 64);
    main += "<span>version " + v + "</span>";
  }
  main += "</div>";
  main += fmt::format(
      "<p class=\"muted\">JSON: <a href=\"/api/v1/services/{0}\"><code>curl -s "
      "http://&lt;vigie&gt;/api/v1/services/{0}</code></a> &middot; badge: <img "
      "src=\"/badge/{0}.svg\" alt=\"{1} state badge\"> <code>/badge/{0}.svg</code></p>",
      seg(cfg.name), esc(cfg.name));
  std::vector<StateChange> changes;
  if (svc->changes) changes = *svc->changes;
  for (std::size_t i : svc->checks) {
    const CheckStatus& c = *snap.checks[i];
    main += checkSection(snap, c, now);
    if (c.changes) changes.insert(changes.end(), c.changes->begin(), c.changes->end());
  }
  main += "<h3>Recent state changes</h3>" + changesTable(std::move(changes), now);
  if (fragment) return main;
  return head(esc(cfg.name)) + header(snap, now) + "<main id=\"main\">" + main + "</main>" + footer();
}

std::string renderBadge(std::string_view label, std::string_view message, std::string_view color) {
  const std::string l = htmlEscape(sanitizeUtf8(label, 64));
  const std::string m = htmlEscape(sanitizeUtf8(message, 64));
  const int lw = static_cast<int>(std::ceil(textWidth(sanitizeUtf8(label, 64)))) + 10;
  const int mw = static_cast<int>(std::ceil(textWidth(sanitizeUtf8(message, 64)))) + 10;
  const int w = lw + mw;
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"20\" role=\"img\" "
      "aria-label=\"{3}: {4}\"><title>{3}: {4}</title><linearGradient id=\"s\" x2=\"0\" "
      "y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" stop-opacity=\".1\"/><stop offset=\"1\" "
      "stop-opacity=\".1\"/></linearGradient><clipPath id=\"r\"><rect width=\"{0}\" height=\"20\" "
      "rx=\"3\" fill=\"#fff\"/></clipPath><g clip-path=\"url(#r)\"><rect width=\"{1}\" "
      "height=\"20\" fill=\"#555\"/><rect x=\"{1}\" width=\"{2}\" height=\"20\" fill=\"{5}\"/><rect "
      "width=\"{0}\" height=\"20\" fill=\"url(#s)\"/></g><g fill=\"#fff\" text-anchor=\"middle\" "
      "font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" font-size=\"11\"><text x=\"{6}\" "
      "y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{3}</text><text x=\"{6}\" y=\"14\">{3}</text>"
      "<text x=\"{7}\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">{4}</text><text x=\"{7}\" "
      "y=\"14\">{4}</text></g></svg>",
      w, lw, mw, l, m, htmlEscape(color), lw / 2.0, lw + mw / 2.0);
}

void registerDashboardRoutes(HttpServer& server, SnapshotSource snapshots) {
  auto overview = [snapshots](DashboardView::Kind kind, std::string_view prefix) {
    return [snapshots, kind, prefix = std::string(prefix)](const HttpRequest& req, HttpResponse& res) {
      const auto snap = snapshots ? snapshots() : nullptr;
      if (!snap || !snap->config) {
        page(res, head("starting") + "<main id=\"main\"><p>No configuration loaded yet.</p></main>" + footer());
        return;
      }
      DashboardView view{kind, prefix.empty() ? "" : lastSegment(req, prefix)};
      auto body = renderOverview(*snap, view, SystemClock::now(), wantsFragment(req));
      if (body.empty()) return notFound(res, "no such " + std::string(kind == DashboardView::Kind::group ? "group" : "cluster") + ": " + view.name);
      page(res, std::move(body));
    };
  };
  server.route(http::verb::get, "/", overview(DashboardView::Kind::all, ""));
  server.route(http::verb::get, "/groups/*", overview(DashboardView::Kind::group, "/groups/"));
  server.route(http::verb::get, "/clusters/*", overview(DashboardView::Kind::cluster, "/clusters/"));
  server.route(http::verb::get, "/services/*", [snapshots](const HttpRequest& req, HttpResponse& res) {
    const auto snap = snapshots ? snapshots() : nullptr;
    const std::string name = lastSegment(req, "/services/");
    auto body = snap ? renderServicePage(*snap, name, SystemClock::now(), wantsFragment(req)) : "";
    if (body.empty()) return notFound(res, "no such service: " + name);
    page(res, std::move(body));
  });
  server.route(http::verb::get, "/checks", [snapshots](const HttpRequest&, HttpResponse& res) {
    const auto snap = snapshots ? snapshots() : nullptr;
    res.content_type = "text/html; charset=utf-8";
    res.body = renderIndexPage(snap.get(), SystemClock::now());
    res.headers.emplace_back("Content-Security-Policy", kIndexPageCsp);
    res.headers.emplace_back("X-Content-Type-Options", "nosniff");
    res.headers.emplace_back("Cache-Control", "no-store");
  });
  server.route(http::verb::get, "/badge/*", [snapshots](const HttpRequest& req, HttpResponse& res) {
    const auto snap = snapshots ? snapshots() : nullptr;
    std::string rest = lastSegment(req, "/badge/");
    auto svg = [&res](std::string body) {
      res.content_type = "image/svg+xml";
      res.body = std::move(body);
      res.headers.emplace_back("Cache-Control", "no-cache");
      res.headers.emplace_back("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
      res.headers.emplace_back("X-Content-Type-Options", "nosniff");
    };
    constexpr std::string_view kSvg = ".svg";
    if (rest.size() <= kSvg.size() || rest.compare(rest.size() - kSvg.size(), kSvg.size(), kSvg) != 0) {
      res.jsonError(404, "badges end in .svg: /badge/{service}.svg or /badge/{service}/uptime/{window}.svg");
      return;
    }
    rest.resize(rest.size() - kSvg.size());
    std::string service = rest;
    std::string window;
    if (const auto at = rest.find("/uptime/"); at != std::string::npos) {
      service = rest.substr(0, at);
      window = rest.substr(at + 8);
    }
    const ServiceStatus* svc = snap ? findService(*snap, service) : nullptr;
    if (!svc) {
      res.status = 404;
      svg(renderBadge(service.empty() ? "vigie" : service, "not found", "#9f9f9f"));
      return;
    }
    if (window.empty()) {
      svg(renderBadge(service, serviceStateName(svc->state), badgeColor(svc->state)));
      return;
    }
    const auto w = std::find(kUptimeWindows.begin(), kUptimeWindows.end(), window);
    if (w == kUptimeWindows.end()) {
      res.jsonError(404, "uptime windows are 1h, 24h, 7d and 30d");
      return;
    }
    const auto& ratio = svc->uptime[static_cast<std::size_t>(w - kUptimeWindows.begin())];
    svg(renderBadge("uptime " + window, ratio ? percent(ratio) : "no data",
                    ratio ? uptimeColor(*ratio) : "#9f9f9f"));
  });
  server.route(http::verb::get, "/assets/dashboard.css", [](const HttpRequest&, HttpResponse& res) {
    res.content_type = "text/css; charset=utf-8";
    res.body = kDashboardCss;
    res.headers.emplace_back("Cache-Control", "max-age=300");
  });
  server.route(http::verb::get, "/assets/dashboard.js", [](const HttpRequest&, HttpResponse& res) {
    res.content_type = "text/javascript; charset=utf-8";
    res.body = kDashboardJs;
    res.headers.emplace_back("Cache-Control", "max-age=300");
  });
  // A lookout's eye; also at /favicon.ico, which browsers ask for on their own.
  const auto favicon = [](const HttpRequest&, HttpResponse& res) {
    res.content_type = "image/svg+xml";
    res.body =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">"
        "<circle cx=\"8\" cy=\"8\" r=\"7\" fill=\"#2e7d32\"/>"
        "<circle cx=\"8\" cy=\"8\" r=\"3\" fill=\"#fff\"/></svg>";
    res.headers.emplace_back("Cache-Control", "max-age=86400");
  };
  server.route(http::verb::get, "/favicon.svg", favicon);
  server.route(http::verb::get, "/favicon.ico", favicon);
}

}  // namespace vigie
