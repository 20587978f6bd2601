#include "collector/aggregate.h"

#include <fmt/format.h>

#include <algorithm>

namespace vigie {
namespace {

int severity(ServiceState s) {
  switch (s) {
    case ServiceState::up: return 0;
    case ServiceState::unknown: return 1;
    case ServiceState::maintenance: return 2;
    case ServiceState::degraded: return 3;
    case ServiceState::down: return 4;
  }
  return 1;
}

bool counts(ServiceState s) {
  return s == ServiceState::up || s == ServiceState::degraded || s == ServiceState::down;
}

bool good(ServiceState s) { return s == ServiceState::up || s == ServiceState::degraded; }

std::string bounded(std::string s, std::size_t max = 256) {
  if (s.size() <= max) return s;
  std::size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s + "...";
}

// The check that explains a service's state: the first critical check down, else
// the first check down, else the first degraded one.
const CheckStatus* explaining(const Snapshot& snap, const ServiceStatus& svc) {
  const CheckStatus* down = nullptr;
  const CheckStatus* degraded = nullptr;
  for (std::size_t i : svc.checks) {
    const CheckStatus& c = *snap.checks[i];
    if (c.state == CheckState::down) {
      if (c.check && c.check->critical) return &c;
      if (!down) down = &c;
    } else if (c.state == CheckState::degraded && !degraded) {
      degraded = &c;
    }
  }
  return down ? down : degraded;
}

std::string describe(const Snapshot& snap, const ServiceStatus& svc) {
  std::string out = fmt::format("{}: {}", svc.service->name, serviceStateName(svc.state));
  if (svc.state == ServiceState::maintenance) return out + " (" + svc.maintenance + ")";
  if (!svc.cause.empty()) return out + " (because " + svc.cause + " is down)";
  if (const CheckStatus* c = explaining(snap, svc); c && c->last) {
    out += fmt::format(" ({} {}: {})", c->check->name,
                       c->last->status == Status::warn ? "health_warn" : reasonName(c->last->reason),
                       c->last->detail);
  }
  return out;
}

}  // namespace

const MaintenanceWindow* maintenanceFor(const Config& cfg, const std::string& service,
                                        SystemClock::time_point now) {
  for (const MaintenanceWindow& w : cfg.maintenance) {
    if (now < w.start || now >= w.start + w.duration) continue;
    if (w.services.empty() ||
        std::find(w.services.begin(), w.services.end(), service) != w.services.end()) {
      return &w;
    }
  }
  return nullptr;
}

void aggregate(Snapshot& snap, SystemClock::time_point now) {
  snap.services.clear();
  snap.groups.clear();
  snap.clusters.clear();
  if (!snap.config) return;
  const Config& cfg = *snap.config;

  // Services by name, built only when something needs it: at 50,000 services this
  // runs every second, and most configurations have no dependency nor cluster.
  std::unordered_map<std::string_view, std::size_t> index;
  const auto byName = [&]() -> const std::unordered_map<std::string_view, std::size_t>& {
    if (index.empty() && !cfg.services.empty()) {
      index.reserve(cfg.services.size());
      for (std::size_t i = 0; i < cfg.services.size(); ++i) index.emplace(cfg.services[i].name, i);
    }
    return index;
  };
  snap.services.resize(cfg.services.size());
  for (std::size_t i = 0; i < cfg.services.size(); ++i) {
    snap.services[i].service = std::shared_ptr<const ServiceConfig>(snap.config, &cfg.services[i]);
  }
  const ServiceConfig* first = cfg.services.data();
  for (std::size_t i = 0; i < snap.checks.size(); ++i) {
    const auto& c = snap.checks[i];
    if (!c || !c->service) continue;
    // A check's service points into the same config (the engine applies both at
    // once); by name only for one that does not.
    const ServiceConfig* sc = c->service.get();
    if (sc >= first && sc < first + cfg.services.size()) {
      snap.services[static_cast<std::size_t>(sc - first)].checks.push_back(i);
    } else if (auto it = byName().find(sc->name); it != byName().end()) {
      snap.services[it->second].checks.push_back(i);
    }
  }

  for (ServiceStatus& svc : snap.services) {
    bool any = false, critical_down = false, other_down = false, degraded = false;
    for (std::size_t i : svc.checks) {
      const CheckStatus& c = *snap.checks[i];
      svc.flapping = svc.flapping || c.flapping;
      if (c.state == CheckState::unknown) continue;
      any = true;
      if (c.state == CheckState::down) {
        (c.check && !c.check->critical ? other_down : critical_down) = true;
      } else if (c.state == CheckState::degraded) {
        degraded = true;
      }
    }
    svc.underlying = !any            ? ServiceState::unknown
                     : critical_down ? ServiceState::down
                     : (other_down || degraded) ? ServiceState::degraded
                                                : ServiceState::up;
    svc.state = svc.underlying;
    if (const MaintenanceWindow* w = maintenanceFor(cfg, svc.service->name, now)) {
      svc.state = ServiceState::maintenance;
      svc.maintenance = w->reason.empty() ? "maintenance window" : w->reason;
    }
  }

  // Causes, depth first with memo; the loader refuses cycles, `visiting` guards anyway.
  std::vector<char> done(snap.services.size(), 0);
  std::vector<char> visiting(snap.services.size(), 0);
  std::function<void(std::size_t)> resolve = [&](std::size_t i) {
    if (done[i] || visiting[i]) return;
    visiting[i] = 1;
    ServiceStatus& svc = snap.services[i];
    if (svc.underlying == ServiceState::down) {
      for (const std::string& dep : svc.service->depends_on) {
        auto it = byName().find(dep);
        if (it == byName().end()) continue;
        resolve(it->second);
        const ServiceStatus& d = snap.services[it->second];
        if (d.underlying != ServiceState::down) continue;
        const std::vector<std::string> roots =
            d.causes.empty() ? std::vector<std::string>{d.service->name} : d.causes;
        for (const auto& r : roots) {
          if (std::find(svc.causes.begin(), svc.causes.end(), r) == svc.causes.end()) {
            svc.causes.push_back(r);
          }
        }
      }
      if (!svc.causes.empty()) svc.cause = svc.causes.front();
    }
    visiting[i] = 0;
    done[i] = 1;
  };
  // Only a service down with dependencies can have a cause (resolve() reaches the
  // dependencies it needs): the others cost nothing, every second, at any scale.
  for (std::size_t i = 0; i < snap.services.size(); ++i) {
    const ServiceStatus& svc = snap.services[i];
    if (svc.underlying == ServiceState::down && !svc.service->depends_on.empty()) resolve(i);
  }

  // Groups: configured ones in order, then "" for services without a group.
  std::unordered_map<std::string_view, std::size_t> groups;
  for (const GroupConfig& g : cfg.groups) {
    groups.emplace(g.name, snap.groups.size());
    snap.groups.push_back(GroupStatus{g.name, g.description});
  }
  for (std::size_t i = 0; i < snap.services.size(); ++i) {
    const ServiceStatus& svc = snap.services[i];
    auto it = groups.find(svc.service->group);
    if (it == groups.end()) {
      it = groups.emplace(svc.service->group, snap.groups.size()).first;
      snap.groups.push_back(GroupStatus{svc.service->group, ""});
    }
    snap.groups[it->second].services.push_back(i);
  }
  auto worst = [&](const std::vector<std::size_t>& services, std::array<std::size_t, 5>* n) {
    ServiceState w = ServiceState::up;
    bool any = false;
    for (std::size_t i : services) {
      const ServiceState s = snap.services[i].state;
      if (n) ++(*n)[static_cast<std::size_t>(s)];
      if (!any || severity(s) > severity(w)) w = s;
      any = true;
    }
    return any ? w : ServiceState::unknown;
  };
  for (GroupStatus& g : snap.groups) g.state = worst(g.services, &g.counts);

  for (const ClusterConfig& c : cfg.clusters) {
    ClusterStatus cl;
    cl.cluster = std::shared_ptr<const ClusterConfig>(snap.config, &c);
    for (const std::string& name : c.services) {
      auto it = byName().find(name);
      if (it != byName().end()) cl.services.push_back(it->second);
    }
    cl.state = worst(cl.services, nullptr);
    cl.ready = good(cl.state);
    for (std::size_t i : cl.services) {
      const ServiceStatus& svc = snap.services[i];
      if (svc.state == ServiceState::up) continue;
      if (!cl.reason.empty()) cl.reason += "; ";
      cl.reason += describe(snap, svc);
    }
    cl.reason = bounded(std::move(cl.reason));
    snap.clusters.push_back(std::move(cl));
  }
}

void Aggregator::note(Memory& m, StateChange::Subject subject, const std::string& name,
                      ServiceState to, Reason reason, const std::string& detail,
                      const std::string& cause, SystemClock::time_point now) {
  const ServiceState from = m.state;
  m.state = to;
  m.since = now;
  // Coming up from unknown (a start, a new service) is not news; coming down is.
  if (from == ServiceState::unknown && to == ServiceState::up) return;
  StateChange e;
  e.at = now;
  e.subject = subject;
  e.name = name;
  e.from = std::string(serviceStateName(from));
  e.to = std::string(serviceStateName(to));
  e.reason = reason;
  e.detail = bounded(detail);
  e.cause = cause;
  const StateChange& stored = log_.append(std::move(e));
  if (store_) store_->recordChange(stored);
  auto changes = std::make_shared<std::vector<StateChange>>();
  if (m.changes) {
    const auto& old = *m.changes;
    const std::size_t keep = std::min(old.size(), kRecentChanges - 1);
    changes->assign(old.end() - static_cast<std::ptrdiff_t>(keep), old.end());
  }
  changes->push_back(stored);
  m.changes = std::move(changes);
}

namespace {

// Service uptime ratios are recomputed at most every this many seconds, unless they
// cannot have moved (see settled()) or the state changed: scanning 94 buckets of
// every service every second was 5.7 % of vigie's CPU samples at 50,000 services.
constexpr std::int64_t kRatioRefreshSeconds = 10;

// A service up (or down) whose every window is exactly 1 (or 0) stays there while
// the state holds: adding good time to all-good buckets, or dropping one as the
// window slides, keeps the ratio exact.
bool settled(const UptimeRatios& r, ServiceState state) {
  if (!counts(state)) return false;
  const double value = good(state) ? 1.0 : 0.0;
  return std::all_of(r.begin(), r.end(), [&](const auto& v) { return v && *v == value; });
}

}  // namespace

void Aggregator::update(Snapshot& snap, SystemClock::time_point now) {
  // Marks instead of a set of seen names: no allocation per service per second.
  ++generation_;
  // Same config as last time: the services line up with slots_ (map nodes are stable).
  const bool same = snap.config != nullptr && snap.config == slots_config_.lock() &&
                    slots_.size() == snap.services.size();
  if (!same) slots_.assign(snap.services.size(), nullptr);
  for (std::size_t i = 0; i < snap.services.size(); ++i) {
    ServiceStatus& svc = snap.services[i];
    const std::string& name = svc.service->name;
    bool fresh = false;
    if (slots_[i] == nullptr) {
      auto [it, inserted] = services_.try_emplace(name);
      slots_[i] = &it->second;
      fresh = inserted;
    }
    Memory& m = *slots_[i];
    m.seen = generation_;
    if (fresh) m.accounted = now;
    if (counts(m.state)) m.uptime.addSpan(m.accounted, now, good(m.state));
    m.accounted = now;
    const bool cause_changed = svc.state == m.state && svc.cause != m.cause;
    if (svc.state != m.state || cause_changed) {
      Reason reason = Reason::none;
      std::string detail;
      if (svc.state == ServiceState::maintenance) {
        detail = svc.maintenance;
      } else if (const CheckStatus* c = explaining(snap, svc); c && c->last) {
        reason = c->last->status == Status::warn ? Reason::health_warn : c->last->reason;
        detail = fmt::format("{}: {}", c->check->name, c->last->detail);
      }
      note(m, StateChange::Subject::service, name, svc.state, reason, detail, svc.cause, now);
      m.cause = svc.cause;
      m.ratios_at.reset();
    }
    svc.last_change = m.since;
    // Staggered by position, so that the refreshes spread over the seconds.
    const auto second = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
    // A window left empty while the state counts gets its first figure at once.
    const bool empty = counts(m.state) && std::any_of(m.ratios.begin(), m.ratios.end(),
                                                      [](const auto& v) { return !v; });
    const bool due = !m.ratios_at || empty || second - *m.ratios_at >= kRatioRefreshSeconds ||
                     (second + static_cast<std::int64_t>(i)) % kRatioRefreshSeconds == 0;
    if (due && !(m.ratios_at && settled(m.ratios, m.state))) {
      m.ratios = m.uptime.ratios(now);
      m.ratios_at = second;
    }
    svc.uptime = m.ratios;
    svc.changes = m.changes;
  }
  if (!same) {
    std::erase_if(services_, [&](const auto& kv) { return kv.second.seen != generation_; });
    slots_config_ = snap.config;
  }

  for (ClusterStatus& cl : snap.clusters) {
    const std::string& name = cl.cluster->name;
    Memory& m = clusters_[name];
    m.seen = generation_;
    if (cl.state != m.state) {
      note(m, StateChange::Subject::cluster, name, cl.state, Reason::none, cl.reason, "", now);
    }
    cl.last_change = m.since;
    cl.changes = m.changes;
  }
  std::erase_if(clusters_, [&](const auto& kv) { return kv.second.seen != generation_; });
}

void Aggregator::restoreService(const std::string& name,
                                const std::vector<UptimeTracker::StoredBucket>& b) {
  Memory& m = services_[name];
  m.uptime.restore(b);
  m.ratios_at.reset();
  slots_.clear();  // a new node may have been made: look every name up again
}

std::vector<std::pair<std::string, std::vector<UptimeTracker::StoredBucket>>>
Aggregator::serviceBuckets(SystemClock::time_point now) {
  std::vector<std::pair<std::string, std::vector<UptimeTracker::StoredBucket>>> out;
  out.reserve(services_.size());
  for (auto& [name, m] : services_) {
    if (counts(m.state)) m.uptime.addSpan(m.accounted, now, good(m.state));
    if (now > m.accounted) m.accounted = now;
    out.emplace_back(name, m.uptime.buckets(now));
  }
  return out;
}

}  // namespace vigie
