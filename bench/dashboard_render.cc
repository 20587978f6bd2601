// How long the read side takes to render at scale, with no network in the way:
// the dashboard's overview and one service page, the /api/v1/services document
// and /metrics, for N services of three checks each (a health page with five
// components and a version, a database, a volume), each with its 60 recent
// results; one service in twenty down, half of those because of a dependency.
//
//   vigie_bench_render [--services 1000] [--runs 21]
//
// Prints the median and the p90 of the runs per surface, and the size of what
// was rendered. Wall time of the rendering thread (steady_clock); the machine
// may be shared, so run it a few times and keep the medians.

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "collector/aggregate.h"
#include "collector/config.h"
#include "collector/snapshot.h"
#include "exporters/dashboard.h"
#include "exporters/metrics.h"
#include "exporters/services_api.h"

namespace vigie {
namespace {

std::shared_ptr<Snapshot> buildSnapshot(int services) {
  auto cfg = std::make_shared<Config>();
  cfg->location = "bench";
  const auto now = SystemClock::now();
  for (int i = 0; i < services; ++i) {
    ServiceConfig s;
    s.name = fmt::format("service-{:04}", i);
    s.group = fmt::format("team-{:02}", i % 25);
    s.description = "A scientific web service of the observatory";
    if (i % 40 == 1) s.depends_on = {fmt::format("service-{:04}", i - 1)};
    for (const char* kind : {"health", "database", "volume"}) {
      CheckConfig c;
      c.name = kind;
      c.key = s.name + "/" + kind;
      if (std::strcmp(kind, "health") == 0) {
        HttpSpec h;
        h.url = fmt::format("https://{}.obs.example/health", s.name);
        c.spec = h;
      } else if (std::strcmp(kind, "database") == 0) {
        PostgresSpec p;
        p.dsn = fmt::format("postgresql://app:secret@db.obs.example/{}", s.name);
        c.spec = p;
      } else {
        DiskSpec d;
        d.path = "/data/" + s.name;
        c.spec = d;
      }
      s.checks.push_back(std::move(c));
    }
    cfg->services.push_back(std::move(s));
  }

  auto snap = std::make_shared<Snapshot>();
  snap->config = cfg;
  snap->at = now;
  for (std::size_t si = 0; si < cfg->services.size(); ++si) {
    const ServiceConfig& s = cfg->services[si];
    const bool down = si % 20 == 0 || si % 40 == 1;
    for (std::size_t ci = 0; ci < s.checks.size(); ++ci) {
      auto st = std::make_shared<CheckStatus>();
      st->service = std::shared_ptr<const ServiceConfig>(cfg, &s);
      st->check = std::shared_ptr<const CheckConfig>(cfg, &s.checks[ci]);
      const bool fails = down && ci == 0;
      Result r = fails ? Result::failure(Reason::timeout, "no answer within 5s")
                       : Result::ok();
      r.started = now - std::chrono::seconds(3);
      r.duration = 0.012;
      if (ci == 0) {
        r.http_status = fails ? 0 : 200;
        r.version = fmt::format("2.{}.{}", si % 7, si % 3);
        for (const char* comp : {"db", "disk", "cache", "queue", "auth"}) {
          r.components.push_back({comp, Status::ok, "UP"});
        }
      }
      st->state = fails ? CheckState::down : CheckState::up;
      st->last = r;
      st->last_change = now - std::chrono::minutes(static_cast<int>(si % 300));
      for (std::size_t k = 0; k < CheckStatus::kRecentResults; ++k) {
        st->recent.push_back({now - std::chrono::seconds(30 * (60 - static_cast<long>(k))),
                              fails && k > 55 ? Status::fail : Status::ok,
                              fails && k > 55 ? Reason::timeout : Reason::none,
                              0.010f + 0.0001f * static_cast<float>(k)});
      }
      st->results_total = {1000, 0, fails ? 4u : 0u};
      st->uptime = {0.999, 0.998, 0.997, 0.99};
      snap->checks.push_back(std::move(st));
    }
  }
  aggregate(*snap, now);
  return snap;
}

struct Figures {
  double median_ms = 0, p90_ms = 0;
  std::size_t bytes = 0;
};

Figures measure(int runs, const std::function<std::size_t()>& render) {
  std::vector<double> ms;
  std::size_t bytes = 0;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    bytes = render();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)], bytes};
}

int main(int argc, char** argv) {
  int services = 1000, runs = 21;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--services") == 0) services = std::max(1, std::atoi(argv[i + 1]));
    else if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
    else {
      fmt::print(stderr, "usage: {} [--services N] [--runs R]\n", argv[0]);
      return 2;
    }
  }
  const auto snap = buildSnapshot(services);
  const auto now = SystemClock::now();
  const std::string one = snap->services[0].service->name;

  fmt::print("read side at {} services, {} checks; {} runs each (wall ms of one render)\n",
             services, snap->checks.size(), runs);
  fmt::print("{:<34} {:>10} {:>10} {:>12}\n", "surface", "median ms", "p90 ms", "bytes");
  const auto row = [](const char* what, const Figures& f) {
    fmt::print("{:<34} {:>10.2f} {:>10.2f} {:>12}\n", what, f.median_ms, f.p90_ms, f.bytes);
  };
  row("dashboard / (whole page)", measure(runs, [&] {
        return renderOverview(*snap, {}, now, false).size();
      }));
  row("dashboard /services/{name}", measure(runs, [&] {
        return renderServicePage(*snap, one, now, false).size();
      }));
  row("/api/v1/services", measure(runs, [&] {
        std::string out, bad;
        servicesDocument(*snap, "", "", out, bad);
        return out.size();
      }));
  row("/metrics (snapshot families)", measure(runs, [&] {
        return renderSnapshotMetrics(snap.get(), "bench", {}).size();
      }));
  return 0;
}

}  // namespace
}  // namespace vigie

int main(int argc, char** argv) { return vigie::main(argc, argv); }
