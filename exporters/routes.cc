#include "exporters/routes.h"

#include <prometheus/client_metric.h>
#include <malloc.h>
#include <pthread.h>
#include <prometheus/metric_family.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <exception>
#include <memory>
#include <utility>
#include <vector>

#include "exporters/api.h"
#include "exporters/services_api.h"

namespace vigie {
namespace {

namespace http = boost::beast::http;

// The server's counters as metric families. Holds the server by reference: the
// routes that use it belong to that same server.
class ServerStatsCollectable : public prometheus::Collectable {
 public:
  explicit ServerStatsCollectable(const HttpServer& server) : server_(server) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const HttpServerStats& s = server_.stats();
    std::vector<prometheus::MetricFamily> out;
    out.reserve(7);
    auto one = [&out](const char* name, const char* help, prometheus::MetricType type,
                      double value) {
      prometheus::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = type;
      prometheus::ClientMetric m;
      if (type == prometheus::MetricType::Counter) {
        m.counter.value = value;
      } else {
        m.gauge.value = value;
      }
      f.metric.push_back(std::move(m));
      out.push_back(std::move(f));
    };
    one("vigie_http_requests_total", "HTTP requests read by vigie's server.",
        prometheus::MetricType::Counter, static_cast<double>(s.requests));
    one("vigie_http_handler_errors_total",
        "HTTP handlers that threw (answered 500); each is a vigie bug.",
        prometheus::MetricType::Counter, static_cast<double>(s.handler_errors));
    one("vigie_http_connections", "Open HTTP connections.", prometheus::MetricType::Gauge,
        static_cast<double>(s.connections_open));
    one("vigie_http_unauthorized_total",
        "Requests refused for a missing or wrong token (401) or a disabled endpoint (403).",
        prometheus::MetricType::Counter, static_cast<double>(s.unauthorized));
    one("vigie_http_accept_pauses_total",
        "Times the server stopped accepting because max connections was reached.",
        prometheus::MetricType::Counter, static_cast<double>(s.accept_pauses));
    one("vigie_http_accept_errors_total",
        "Times accepting a connection failed (no file descriptor left, ...); retried after "
        "100 ms.",
        prometheus::MetricType::Counter, static_cast<double>(s.accept_errors));
    one("vigie_http_requests_deferred_total",
        "Requests that waited a moment because request handlers had used their share "
        "(half) of the loop's time, which the probes share.",
        prometheus::MetricType::Counter, static_cast<double>(s.deferred));
    return out;
  }

 private:
  const HttpServer& server_;
};

// Snapshots of more checks than this are streamed to /metrics in pieces (about
// 4.7 KB of text per check: 10,000 checks make 45 MiB) instead of rendered whole and
// shared: a scrape then holds a few MiB whatever the size. Smaller ones keep the
// shared text, rendered once per snapshot, for floods of scrapes (issue 9).
constexpr std::size_t kStreamMetricsAbove = 2000;
constexpr std::size_t kMetricsPieceBytes = 1 << 20;

// The /metrics text of a big snapshot, each piece made on the render thread when the
// server asks for it (it asks for the next while writing one).
class MetricsSource : public HttpBodySource {
 public:
  MetricsSource(std::shared_ptr<boost::asio::thread_pool> renderer, boost::asio::io_context& io,
                MetricsStream stream)
      : renderer_(std::move(renderer)),
        io_(io),
        state_(std::make_shared<MetricsStream>(std::move(stream))) {}

  void pull(Give give) override {
    boost::asio::post(*renderer_, [state = state_, give = std::move(give), &io = io_]() mutable {
      pthread_setname_np(pthread_self(), "vigie-metrics");
      std::string piece;
      bool failed = false;
      try {
        piece = state->next(kMetricsPieceBytes);
      } catch (const std::exception&) {
        failed = true;
      }
      // The pieces were freed on the loop thread into this thread's arena: give
      // what is left back to the system at the end of each scrape.
      if (piece.empty()) ::malloc_trim(0);
      // Given, and the stream (with its snapshot) released, on the loop.
      boost::asio::post(io, [state = std::move(state), give = std::move(give),
                             piece = std::move(piece), failed]() mutable {
        give(std::move(piece), failed);
      });
    });
  }

 private:
  std::shared_ptr<boost::asio::thread_pool> renderer_;
  boost::asio::io_context& io_;
  std::shared_ptr<MetricsStream> state_;  // used by one render job at a time
};

}  // namespace

void registerStandardRoutes(HttpServer& server, SnapshotSource snapshots,
                            prometheus::Registry& self, ReadinessFn ready, std::string version,
                            SnapshotSource whole) {
  if (!whole) whole = snapshots;
  auto server_metrics = std::make_shared<ServerStatsCollectable>(server);
  // /metrics is rendered on a thread of its own: at 50,000 checks the text is over
  // 200 MB and takes a second or more, during which the loop would start no probe.
  // The snapshot is immutable, so that thread may read it; what is not (the server's
  // counters, the self registry) is collected here, on the loop. One thread: scrapes
  // that overlap are rendered one after the other.
  auto renderer = std::make_shared<boost::asio::thread_pool>(1);
  // Ended with the server, while the loop is alive: a render job posts its piece to
  // the loop, and the last reference may otherwise go with a connection destroyed
  // inside the io_context's destructor (the pool would join there, and its job post
  // into a dying io_context). join() lets the queued jobs finish (a piece each, a few
  // milliseconds): abandoned ones would hold their connection, which holds the
  // routes, which hold the pool.
  server.onStop([renderer] { renderer->join(); });
  // Under a flood of scrapes, a snapshot's families are rendered once (on that thread).
  auto metrics_cache = std::make_shared<SnapshotMetricsCache>();
  auto checks_cache = std::make_shared<ChecksListCache>();
  server.routeAsync(
      http::verb::get, "/metrics",
      [snapshots, version = std::move(version), server_metrics, &self, renderer, metrics_cache,
       &io = server.io()](const HttpRequest&, HttpRespond respond) {
        auto snap = snapshots ? snapshots() : nullptr;
        std::vector<prometheus::MetricFamily> others = server_metrics->Collect();
        for (auto& f : self.Collect()) others.push_back(std::move(f));
        if (snap && snap->checks.size() > kStreamMetricsAbove) {
          HttpResponse res;
          res.source = std::make_shared<MetricsSource>(
              renderer, io, MetricsStream(std::move(snap), version, std::move(others)));
          res.content_type = std::string(kMetricsContentType);
          res.headers.emplace_back("Cache-Control", "no-store");
          return respond(std::move(res));
        }
        auto answer = [](MetricsText text) {
          HttpResponse res;
          res.shared_body = std::move(text.snapshot_part);
          res.body = std::move(text.others_part);
          res.content_type = std::string(kMetricsContentType);
          res.headers.emplace_back("Cache-Control", "no-store");
          return res;
        };
        // This snapshot's text is rendered already: only the others' (small) here.
        if (auto hit = metrics_cache->find(snap, version, others)) {
          return respond(answer(std::move(*hit)));
        }
        boost::asio::post(*renderer, [snap = std::move(snap), version, others = std::move(others),
                                      respond = std::move(respond), metrics_cache, answer,
                                      &io]() mutable {
          // Named, so that its CPU shows apart in /proc (top -H, bench/).
          pthread_setname_np(pthread_self(), "vigie-metrics");
          HttpResponse res;
          try {
            res = answer(metrics_cache->render(snap, version, std::move(others)));
          } catch (const std::exception& e) {
            res = HttpResponse{};
            res.status = 500;
            res.body = std::string("cannot render metrics: ") + e.what() + "\n";
          }
          // Answered, and the snapshot released, on the loop.
          boost::asio::post(io, [snap = std::move(snap), res = std::move(res),
                                 respond = std::move(respond)]() mutable {
            respond(std::move(res));
          });
        });
      });

  server.route(http::verb::get, std::string(kChecksPath),
               [snapshots, checks_cache](const HttpRequest& req, HttpResponse& res) {
                 const auto snap = snapshots ? snapshots() : nullptr;
                 checks_cache->handle(snap, req, res);
               });
  server.route(http::verb::get, std::string(kChecksPath) + "/*",
               [whole](const HttpRequest& req, HttpResponse& res) {
                 const auto snap = whole ? whole() : nullptr;
                 handleCheckOne(snap.get(), req, res);
               });

  // Services, groups, clusters and events: a list at the exact path, one item below it.
  using SnapshotHandler = void (*)(const Snapshot*, const HttpRequest&, HttpResponse&);
  const auto add = [&server, &whole](std::string path, SnapshotHandler handler) {
    server.route(http::verb::get, std::move(path),
                 [whole, handler](const HttpRequest& req, HttpResponse& res) {
                   const auto snap = whole ? whole() : nullptr;
                   handler(snap.get(), req, res);
                 });
  };
  add(std::string(kServicesPath), handleServicesList);
  add(std::string(kServicesPath) + "/*", handleServiceOne);
  add(std::string(kGroupsPath), handleGroupsList);
  add(std::string(kGroupsPath) + "/*", handleGroupOne);
  add(std::string(kClustersPath), handleClustersList);
  add(std::string(kClustersPath) + "/*", handleClusterOne);
  add(std::string(kEventsPath), handleEvents);

  server.route(http::verb::get, "/healthz", [](const HttpRequest&, HttpResponse& res) {
    res.body = "ok\n";
    res.headers.emplace_back("Cache-Control", "no-store");
  });
  server.route(http::verb::get, "/readyz",
               [ready = std::move(ready)](const HttpRequest&, HttpResponse& res) {
                 const bool ok = ready && ready();
                 res.status = ok ? 200 : 503;
                 res.body = ok ? "ready\n" : "not ready\n";
                 res.headers.emplace_back("Cache-Control", "no-store");
               });
}

}  // namespace vigie
