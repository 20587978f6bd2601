// vigie: the command line. Subcommands: run (default), check-config, probe, demo.

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "collector/config.h"
#include "collector/config_watch.h"
#include "collector/curl_driver.h"
#include "collector/demo.h"
#include "collector/engine.h"
#include "collector/fd_limit.h"
#include "collector/history_pg.h"
#include "collector/log.h"
#include "collector/peers.h"
#include "collector/probe_cli.h"
#include "collector/shard.h"
#include "exporters/auth.h"
#include "exporters/blackbox_probe.h"
#include "exporters/haproxy_agent.h"
#include "exporters/http_server.h"
#include "exporters/json_util.h"
#include "exporters/dashboard.h"
#include "exporters/push.h"
#include "exporters/routes.h"
#include "probes/registry.h"

#ifndef VIGIE_VERSION
#define VIGIE_VERSION "dev"
#endif

namespace vigie {
namespace {

std::string envOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

void printConfigErrors(const ConfigException& e) {
  for (const auto& err : e.errors()) std::cerr << err.str() << "\n";
  std::cerr << fmt::format("{} error{} found\n", e.errors().size(),
                           e.errors().size() == 1 ? "" : "s");
}

int checkConfig(const std::vector<std::string>& files) {
  int rc = 0;
  for (const auto& f : files) {
    try {
      auto cfg = loadConfig(f);
      std::size_t checks = 0;
      for (const auto& s : cfg->services) {
        checks += s.checks.size();
        for (const auto& c : s.checks) {
          if (!probeKindAvailable(c.spec)) {
            std::cerr << fmt::format("{}:{}: {}: probe kind \"{}\" is not available in this build\n",
                                     *c.pos.file, c.pos.line, c.key, probeKindName(c.spec));
            rc = 1;
          }
        }
      }
      if (rc == 0) {
        std::cout << fmt::format("{}: ok ({} services, {} checks)\n", f, cfg->services.size(),
                                 checks);
      }
    } catch (const ConfigException& e) {
      printConfigErrors(e);
      rc = 1;
    } catch (const std::exception& e) {
      std::cerr << f << ": " << e.what() << "\n";
      rc = 1;
    }
  }
  return rc;
}

struct RunOptions {
  std::string config_path;        // empty with demo: the embedded demo config
  std::string listen;             // overrides config/env when set
  bool demo = false;
  // Sharding (README "Sharding"): resolved by resolveShard(); peers for the whole picture.
  std::string shard;        // --shard N/M
  std::string shard_count;  // --shard-count M (with the pod name's ordinal)
  std::string peers;        // --peers host:port,...; env VIGIE_PEERS
  std::string peers_dns;    // --peers-dns name:port; env VIGIE_PEERS_DNS
  double peers_interval = 5;  // seconds
  double watch_interval = 0;  // seconds between looks at the config file; 0: no watch
};

// The answer to POST /-/reload. Config errors name the file and line, never a
// secret (the loader redacts DSNs and never quotes tokens).
HttpResponse reloadResponse(unsigned status, const std::string& message) {
  HttpResponse res;
  res.headers.emplace_back("Cache-Control", "no-store");
  res.status = status;
  res.content_type = "application/json";
  boost::json::object o;
  if (status == 200) {
    o["reloaded"] = true;
    o["summary"] = message;
  } else {
    o["reloaded"] = false;
    o["error"] = status == 422 ? "the file was refused, the running configuration stays" : message;
    boost::json::array errors;
    std::size_t start = 0;
    while (status == 422 && start < message.size()) {
      const auto nl = message.find('\n', start);
      const auto line = message.substr(start, nl == std::string::npos ? std::string::npos
                                                                       : nl - start);
      if (!line.empty()) errors.emplace_back(sanitizeUtf8(line, 1024));
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
    if (status == 422) o["errors"] = std::move(errors);
  }
  res.body = boost::json::serialize(o) + "\n";
  return res;
}

// The key's owner when another replica runs it, for heartbeat pushes sent to us.
std::optional<PushElsewhere> pushOwner(const Config& full, const PeerCollector* peers,
                                       const std::string& key) {
  for (const auto& s : full.services) {
    for (const auto& c : s.checks) {
      if (c.key != key) continue;
      const unsigned owner = shardOf(key, full.shard.count);
      if (owner == full.shard.index) return std::nullopt;
      return PushElsewhere{owner, full.shard.count, peers ? peers->urlOfShard(owner) : ""};
    }
  }
  return std::nullopt;
}

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos
                                                                      : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int run(const RunOptions& opts) {
  std::shared_ptr<const Config> config;
  try {
    if (opts.demo && opts.config_path.empty()) {
      config = parseConfig(std::string(demoConfigText()), "demo.yaml");
    } else {
      config = loadConfig(opts.config_path);
    }
  } catch (const ConfigException& e) {
    printConfigErrors(e);
    return 2;
  }
  const std::string listen = !opts.listen.empty() ? opts.listen
                                                  : envOr("VIGIE_LISTEN", config->listen);
  ShardSpec shard;
  try {
    shard = resolveShard(opts.shard, opts.shard_count);
  } catch (const std::invalid_argument& e) {
    std::cerr << "bad shard: " << e.what() << "\n";
    return 2;
  }
  // `full` is every check (the dashboard's whole picture); the engine runs `config`,
  // this replica's share. Unsharded, both are the file's config.
  std::shared_ptr<const Config> full = config;
  if (shard.count > 1) {
    auto whole = std::make_shared<Config>(*config);
    whole->shard = shard;
    full = whole;
    config = std::make_shared<const Config>(filterForShard(*config, shard));
  }

  boost::asio::io_context io(1);
  auto registry = std::make_shared<prometheus::Registry>();
  // Descriptors: the soft limit raised to the hard one; a quarter for HTTP clients,
  // the engine fits its probes in the rest (README "Limits").
  const std::size_t fd_limit = raiseFdLimit();
  Engine engine(io, registry);
  HttpServerOptions server_options;
  server_options.max_connections =
      std::min(server_options.max_connections, httpConnectionsFor(fd_limit));
  HttpServer server(io, server_options);
  std::unique_ptr<PeerCollector> peers;
  const std::vector<std::string> peer_list = splitList(opts.peers);
  if (shard.count > 1 && (!peer_list.empty() || !opts.peers_dns.empty())) {
    PeerOptions po;
    po.peers = peer_list;
    po.dns = opts.peers_dns;
    po.interval = std::chrono::milliseconds(
        static_cast<long>(std::max(0.1, opts.peers_interval) * 1000));
    po.timeout = std::min(po.interval, std::chrono::milliseconds(4000));
    try {
      peers = std::make_unique<PeerCollector>(io, std::move(po), full);
    } catch (const std::invalid_argument& e) {
      std::cerr << "bad peers: " << e.what() << "\n";
      return 2;
    }
  }
  if (shard.count == 1 && (!peer_list.empty() || !opts.peers_dns.empty())) {
    spdlog::warn("--peers/--peers-dns ignored: this replica is not sharded (--shard N/M)");
  }
  // The dashboard and the services API show every shard's checks; /metrics and
  // the /api/v1/checks list only this replica's.
  const SnapshotSource whole = [&engine, &peers] {
    auto local = engine.snapshot();
    return peers ? peers->view(std::move(local)) : local;
  };
  // Cluster states need every service: sharded, they come from the whole picture.
  HaproxyAgents agents(io, whole);
  if (config->history.store == "postgres") {
    spdlog::info("history store: postgres {}", redactDsn(config->history.dsn));
    engine.setHistoryStore(makePostgresHistoryStore(config->history, registry));
  }
  try {
    engine.apply(config);
    engine.noteReload(true, opts.config_path);
    engine.restoreHistory();
    server.listen(listen);
    agents.start(*config);
  } catch (const std::exception& e) {
    spdlog::error("cannot start: {}", e.what());
    return 2;
  }
  registerStandardRoutes(server, [&engine] { return engine.snapshot(); }, *registry,
                         [&engine] { return engine.ready(); }, VIGIE_VERSION, whole);
  registerDashboardRoutes(server, whole);
  if (shard.count > 1) {
    registerPushRoutes(server, engine, [&full, &peers](const std::string& key) {
      return pushOwner(*full, peers.get(), key);
    });
  } else {
    registerPushRoutes(server, engine);
  }
  // blackbox_exporter's /probe, on the file's modules (`full` follows reloads).
  BlackboxEndpoint blackbox(engine.probeContext(), [&full] { return full; }, *registry);
  blackbox.registerRoutes(server);
  if (peers) peers->start();
  if (shard.count > 1) {
    std::size_t mine = 0, all = 0;
    for (const auto& s : config->services) mine += s.checks.size();
    for (const auto& s : full->services) all += s.checks.size();
    spdlog::info("shard {}: runs {} of {} checks; peers [{}] dns [{}]", shardName(shard), mine,
                 all, opts.peers, opts.peers_dns);
  }
  if (opts.demo) {
    registerDemoRoutes(server);
    std::string self = listen;
    if (self.rfind("0.0.0.0:", 0) == 0) self = "127.0.0.1:" + self.substr(8);
    startDemoHeartbeat(io, self);
  }

  std::size_t checks = 0;
  for (const auto& s : config->services) checks += s.checks.size();
  spdlog::info("vigie {} listening on {} (port {}), {} services, {} checks, config {}",
               VIGIE_VERSION, listen, server.port(), config->services.size(), checks,
               opts.config_path.empty() ? "(demo)" : opts.config_path);

  // Reload: read and validate off the loop (a 50,000-check file takes a while),
  // then apply on the loop, all or nothing. `done(status, message)` runs on the
  // loop: 200 applied, 409 not started, 422 refused (for POST /-/reload).
  std::thread reloader;
  bool reloading = false;
  using ReloadDone = std::function<void(unsigned, const std::string&)>;
  // One reload at a time, whatever asked for it (SIGHUP, a changed file, POST /-/reload).
  std::function<void(std::string_view, ReloadDone)> reload = [&](std::string_view why,
                                                                  ReloadDone done) {
    if (!done) done = [](unsigned, const std::string&) {};
    if (opts.config_path.empty()) {
      spdlog::warn("{} ignored: the demo runs on its embedded configuration", why);
      done(409, "the demo runs on its embedded configuration");
      return;
    }
    if (reloading) {
      spdlog::warn("{} ignored: a reload is already running", why);
      done(409, "a reload is already running");
      return;
    }
    reloading = true;
    spdlog::info("reloading {} after {}", opts.config_path, why);
    if (reloader.joinable()) reloader.join();
    reloader = std::thread([&io, &engine, &agents, &reloading, &full, &peers, shard,
                            path = opts.config_path, done = std::move(done)] {
      std::shared_ptr<const Config> next;
      std::string error;
      try {
        next = loadConfig(path);
      } catch (const std::exception& e) {
        error = e.what();
      }
      std::shared_ptr<const Config> mine = next;
      if (next && shard.count > 1) {
        auto whole = std::make_shared<Config>(*next);
        whole->shard = shard;
        mine = std::make_shared<const Config>(filterForShard(*next, shard));
        next = whole;
      }
      boost::asio::post(io, [&engine, &agents, &reloading, &full, &peers, next, mine, error, path,
                             done] {
        reloading = false;
        if (!next) {
          spdlog::error("reload of {} refused, the running configuration stays:\n{}", path, error);
          engine.noteReload(false, path);
          done(422, error);
          return;
        }
        try {
          engine.apply(mine);
          engine.noteReload(true, path);
          full = next;
          if (peers) peers->setConfig(next);
          agents.reload(*next);  // logs what it cannot bind; keeps the old listener
          std::size_t n = 0;
          for (const auto& s : next->services) n += s.checks.size();
          spdlog::info("reloaded {}: {} services, {} checks", path, next->services.size(), n);
          done(200, fmt::format("{} services, {} checks", next->services.size(), n));
        } catch (const std::exception& e) {
          spdlog::error("reload of {} refused, the running configuration stays: {}", path,
                        e.what());
          engine.noteReload(false, path);
          done(422, e.what());
        }
      });
    });
  };

  boost::asio::signal_set hup(io, SIGHUP);
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      wait_hup();
      reload("SIGHUP", nullptr);
    });
  };
  wait_hup();
  // As Prometheus' lifecycle endpoint; the guard lets only auth.admin_token through.
  server.routeAsync(boost::beast::http::verb::post, "/-/reload",
                    [&reload](const HttpRequest&, HttpRespond respond) {
                      reload("POST /-/reload", [respond](unsigned status,
                                                         const std::string& message) {
                        respond(reloadResponse(status, message));
                      });
                    });
  server.setGuard(makeAuthGuard([&full] { return full; }));

  // A Kubernetes ConfigMap volume updates by swapping a symlink (..data): the
  // file's path stays, its target changes. Watch the file's identity (the
  // resolved path, inode, size, mtime) and reload when it changes.
  std::unique_ptr<ConfigWatcher> watcher;
  if (!opts.config_path.empty() && opts.watch_interval > 0) {
    watcher = std::make_unique<ConfigWatcher>(
        io, opts.config_path,
        std::chrono::milliseconds(static_cast<long>(opts.watch_interval * 1000)),
        [&reload] { reload("a change of the configuration file", nullptr); });
    watcher->start();
  }

  boost::asio::signal_set term(io, SIGTERM, SIGINT);
  term.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    engine.stop();
    blackbox.stop();
    server.stop();
    agents.stop();
    if (peers) peers->stop();
    hup.cancel();
    if (watcher) watcher->stop();
    io.stop();
  });

  io.run();
  if (reloader.joinable()) reloader.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace vigie

int main(int argc, char** argv) {
  using namespace vigie;
  CLI::App app{"vigie: health-check aggregator. Polls services' health pages, databases, disks "
               "and public URLs; exports Prometheus metrics, a JSON API and a status page."};
  app.set_version_flag("--version", std::string("vigie ") + VIGIE_VERSION);
  app.require_subcommand(0, 1);

  RunOptions run_opts;
  std::string log_format = envOr("VIGIE_LOG_FORMAT", "text");
  std::string log_level = envOr("VIGIE_LOG_LEVEL", "info");
  run_opts.config_path = envOr("VIGIE_CONFIG", "");
  app.add_option("-c,--config", run_opts.config_path, "configuration file (YAML or JSON); env VIGIE_CONFIG");
  app.add_option("-l,--listen", run_opts.listen,
                 "address:port of the HTTP server; env VIGIE_LISTEN; default: the file's `listen`");
  app.add_option("--log-format", log_format, "text or json; env VIGIE_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error; env VIGIE_LOG_LEVEL");
  run_opts.peers = envOr("VIGIE_PEERS", "");
  run_opts.peers_dns = envOr("VIGIE_PEERS_DNS", "");
  app.add_option("--shard", run_opts.shard,
                 "N/M: run only the checks whose key hashes to N of M replicas (FNV-1a 64 of "
                 "\"service/check\" mod M); env VIGIE_SHARD");
  app.add_option("--shard-count", run_opts.shard_count,
                 "M: shard by the ordinal of the pod name (env POD_NAME or HOSTNAME, e.g. "
                 "vigie-2); env VIGIE_SHARD_COUNT");
  app.add_option("--peers", run_opts.peers,
                 "host:port,...: the other replicas, read for the whole picture on the dashboard "
                 "and for heartbeat redirects; env VIGIE_PEERS");
  app.add_option("--peers-dns", run_opts.peers_dns,
                 "name:port of a headless Service whose A/AAAA records are the replicas; env "
                 "VIGIE_PEERS_DNS");
  app.add_option("--peers-interval", run_opts.peers_interval,
                 "seconds between reads of the peers (default 5)")
      ->check(CLI::Range(0.1, 3600.0));

  const std::string watch_env = envOr("VIGIE_WATCH_CONFIG", "");
  if (!watch_env.empty()) {
    try {
      run_opts.watch_interval = std::stod(watch_env);
    } catch (const std::exception&) {
      std::cerr << "VIGIE_WATCH_CONFIG: expected seconds, got \"" << watch_env << "\"\n";
      return 2;
    }
  }
  app.add_option("--watch-config", run_opts.watch_interval,
                 "seconds between looks at the configuration file (a ConfigMap's symlink swap "
                 "included); a change reloads it as SIGHUP does; 0: off (default); env "
                 "VIGIE_WATCH_CONFIG")
      ->check(CLI::Range(0.0, 3600.0));

  std::vector<std::string> check_files;
  auto* check_cmd = app.add_subcommand("check-config", "validate configuration files and exit (0: valid)");
  check_cmd->add_option("file", check_files, "files to check")->required();

  ProbeCliOptions probe_opts;
  auto* probe_cmd = app.add_subcommand(
      "probe", "run one check of any kind now and print the result (exit 0 ok/warn, 1 fail, 2 bad options)");
  addProbeCliOptions(*probe_cmd, probe_opts);

  std::string demo_listen = "127.0.0.1:9877";
  auto* demo_cmd = app.add_subcommand(
      "demo", "run vigie on its demo configuration, serving the demo's own sample health pages");
  demo_cmd->add_option("-l,--listen", demo_listen, "address:port (default 127.0.0.1:9877)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    setupLogging(log_format, log_level);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }

  if (*check_cmd) return checkConfig(check_files);
  if (*probe_cmd) return runProbeCli(probe_opts);
  if (*demo_cmd) {
    // The demo's targets are vigie's own /demo pages: point them at our address.
    std::string addr = demo_listen;
    if (addr.rfind("0.0.0.0:", 0) == 0) addr = "127.0.0.1:" + addr.substr(8);
    setenv("VIGIE_DEMO_ADDR", addr.c_str(), 1);
    run_opts.demo = true;
    run_opts.listen = demo_listen;
    run_opts.config_path.clear();
    return run(run_opts);
  }
  if (run_opts.config_path.empty()) {
    std::cerr << "no configuration: use --config FILE (or VIGIE_CONFIG), or `vigie demo`\n"
              << app.help();
    return 2;
  }
  return run(run_opts);
}
