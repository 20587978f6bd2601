#include "collector/peers.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <ctime>
#include <set>
#include <stdexcept>

#include "collector/aggregate.h"
#include "collector/history.h"
#include "collector/shard.h"

namespace vigie {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

// ---- reading a /api/v1/checks document ----

const json::value* field(const json::object& o, std::string_view name) {
  const auto it = o.find(name);
  return it == o.end() ? nullptr : &it->value();
}

std::string str(const json::object& o, std::string_view name) {
  const json::value* v = field(o, name);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

double num(const json::object& o, std::string_view name) {
  const json::value* v = field(o, name);
  if (!v) return 0;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return 0;
}

std::uint64_t count(const json::object& o, std::string_view name) {
  const double d = num(o, name);
  return d > 0 ? static_cast<std::uint64_t>(d) : 0;
}

bool flag(const json::object& o, std::string_view name) {
  const json::value* v = field(o, name);
  return v && v->is_bool() && v->get_bool();
}

const json::object* obj(const json::object& o, std::string_view name) {
  const json::value* v = field(o, name);
  return v && v->is_object() ? &v->get_object() : nullptr;
}

const json::array* arr(const json::object& o, std::string_view name) {
  const json::value* v = field(o, name);
  return v && v->is_array() ? &v->get_array() : nullptr;
}

// "2024-05-01T12:34:56.789Z" as formatRfc3339 writes it; zero when absent or odd.
SystemClock::time_point time(const json::object& o, std::string_view name) {
  const std::string s = str(o, name);
  std::tm tm{};
  int ms = 0;
  char z = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &z) != 8 ||
      z != 'Z') {
    return {};
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return {};
  return SystemClock::from_time_t(t) + std::chrono::milliseconds(ms);
}

Status status(const json::object& o, std::string_view name) {
  const std::string s = str(o, name);
  if (s == "ok") return Status::ok;
  if (s == "warn") return Status::warn;
  return Status::fail;
}

Reason reason(const json::object& o, std::string_view name) {
  const std::string s = str(o, name);
  if (s.empty()) return Reason::none;
  return reasonFromName(s).value_or(Reason::internal);
}

CheckState checkState(std::string_view s) {
  for (CheckState st : {CheckState::up, CheckState::degraded, CheckState::down}) {
    if (checkStateName(st) == s) return st;
  }
  return CheckState::unknown;
}

Result resultFrom(const json::object& o) {
  Result r;
  r.status = status(o, "status");
  r.reason = reason(o, "reason");
  r.detail = str(o, "detail");
  r.started = time(o, "at");
  r.duration = num(o, "duration_seconds");
  r.http_status = static_cast<int>(num(o, "http_status"));
  if (const json::object* p = obj(o, "phases")) {
    r.phases = {num(*p, "resolve"), num(*p, "connect"), num(*p, "tls"), num(*p, "processing"),
                num(*p, "transfer")};
  }
  if (const auto t = time(o, "cert_expiry"); t != SystemClock::time_point{}) {
    r.cert_expiry = std::chrono::duration<double>(t.time_since_epoch()).count();
  }
  if (const json::array* a = arr(o, "conditions")) {
    for (const auto& v : *a) {
      if (!v.is_object()) continue;
      const auto& c = v.get_object();
      r.conditions.push_back({str(c, "name"), flag(c, "ok"), str(c, "detail")});
    }
  }
  if (const json::array* a = arr(o, "components")) {
    for (const auto& v : *a) {
      if (!v.is_object()) continue;
      const auto& c = v.get_object();
      r.components.push_back({str(c, "name"), status(c, "status"), str(c, "detail")});
    }
  }
  r.version = str(o, "version");
  if (const json::object* info = obj(o, "info")) {
    for (const auto& kv : *info) {
      if (kv.value().is_string()) r.info[std::string(kv.key())] = kv.value().get_string();
    }
  }
  if (const json::array* a = arr(o, "targets")) {
    for (const auto& v : *a) {
      if (!v.is_object()) continue;
      const auto& t = v.get_object();
      TargetResult tr;
      tr.address = str(t, "address");
      tr.status = status(t, "status");
      tr.reason = reason(t, "reason");
      tr.detail = str(t, "detail");
      tr.http_status = static_cast<int>(num(t, "http_status"));
      tr.duration = num(t, "duration_seconds");
      r.targets.push_back(std::move(tr));
    }
  }
  return r;
}

std::shared_ptr<CheckStatus> statusFrom(const json::object& o) {
  auto c = std::make_shared<CheckStatus>();
  c->state = checkState(str(o, "state"));
  c->pending = flag(o, "pending");
  c->consecutive_failures = static_cast<int>(num(o, "consecutive_failures"));
  c->consecutive_successes = static_cast<int>(num(o, "consecutive_successes"));
  if (const json::object* last = obj(o, "last_result")) c->last = resultFrom(*last);
  c->last_change = time(o, "last_change");
  c->last_success = time(o, "last_success");
  c->last_failure = time(o, "last_failure");
  if (c->last_failure != SystemClock::time_point{}) {
    Result failed =
        Result::failure(reason(o, "last_failure_reason"), str(o, "last_failure_detail"));
    failed.started = c->last_failure;
    c->last_failure_result = std::move(failed);
  }
  if (const json::array* a = arr(o, "recent")) {
    const std::size_t skip =
        a->size() > CheckStatus::kRecentResults ? a->size() - CheckStatus::kRecentResults : 0;
    c->recent.reserve(a->size() - skip);
    for (std::size_t i = skip; i < a->size(); ++i) {
      if (!(*a)[i].is_object()) continue;
      const auto& s = (*a)[i].get_object();
      c->recent.push_back({time(s, "at"), status(s, "status"), reason(s, "reason"),
                           static_cast<float>(num(s, "duration_seconds"))});
    }
  }
  if (const json::object* t = obj(o, "results_total")) {
    c->results_total = {count(*t, "ok"), count(*t, "warn"), count(*t, "fail")};
  }
  c->state_changes = count(o, "state_changes");
  c->flapping = flag(o, "flapping");
  c->flap_percent = num(o, "flap_percent");
  if (const json::object* u = obj(o, "uptime")) {
    for (std::size_t i = 0; i < kUptimeWindows.size(); ++i) {
      const json::value* v = field(*u, kUptimeWindows[i]);
      if (v && v->is_number()) c->uptime[i] = v->to_number<double>();
    }
  }
  if (const json::array* a = arr(o, "changes"); a && !a->empty()) {
    auto changes = std::make_shared<std::vector<StateChange>>();
    changes->reserve(std::min(a->size(), kRecentChanges));
    const std::size_t skip = a->size() > kRecentChanges ? a->size() - kRecentChanges : 0;
    for (std::size_t i = skip; i < a->size(); ++i) {
      if (!(*a)[i].is_object()) continue;
      const auto& e = (*a)[i].get_object();
      StateChange sc;
      sc.id = count(e, "id");
      sc.at = time(e, "at");
      sc.subject = StateChange::Subject::check;
      sc.name = str(e, "name");
      sc.from = str(e, "from");
      sc.to = str(e, "to");
      sc.reason = reason(e, "reason");
      sc.detail = str(e, "detail");
      sc.cause = str(e, "cause");
      changes->push_back(std::move(sc));
    }
    c->changes = std::move(changes);
  }
  return c;
}

std::string endpointText(const tcp::endpoint& ep) {
  const std::string a = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(ep.port());
}

}  // namespace

bool splitHostPort(std::string_view text, std::string& host, std::string& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return false;
  std::string_view h = text.substr(0, colon);
  const std::string_view p = text.substr(colon + 1);
  if (!std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return false;
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    return false;  // an IPv6 address must be bracketed
  }
  host = std::string(h);
  port = std::string(p);
  return true;
}

bool parsePeerReport(std::string_view body, PeerReport& out, std::string& error) {
  boost::system::error_code ec;
  json::parse_options opt;
  opt.max_depth = 64;
  json::value doc = json::parse(body, ec, {}, opt);
  if (ec) {
    error = "not JSON: " + ec.message();
    return false;
  }
  if (!doc.is_object() || !doc.get_object().contains("checks") ||
      !doc.get_object().at("checks").is_array()) {
    error = "not a /api/v1/checks document (no \"checks\" array)";
    return false;
  }
  const json::object& top = doc.get_object();
  out.shard = ShardSpec{};
  if (const json::object* s = obj(top, "shard")) {
    const std::uint64_t index = count(*s, "index");
    const std::uint64_t n = count(*s, "count");
    if (n < 1 || index >= n || n > 10000) {
      error = "bad \"shard\" in the document";
      return false;
    }
    out.shard = ShardSpec{static_cast<unsigned>(index), static_cast<unsigned>(n)};
  }
  const json::array& checks = top.at("checks").get_array();
  out.checks.clear();
  out.checks.reserve(checks.size());
  for (const auto& v : checks) {
    if (!v.is_object()) continue;
    std::string key = str(v.get_object(), "key");
    if (key.empty()) continue;
    out.checks.emplace_back(std::move(key), statusFrom(v.get_object()));
  }
  return true;
}

std::shared_ptr<Snapshot> mergeSnapshot(const Snapshot& local, std::shared_ptr<const Config> full,
                                        const RemoteLookup& remote, SystemClock::time_point now) {
  auto snap = std::make_shared<Snapshot>();
  snap->at = local.at;
  snap->events = local.events;
  snap->self = local.self;
  snap->config = full;
  if (!full) return snap;
  std::unordered_map<std::string_view, const std::shared_ptr<const CheckStatus>*> mine;
  mine.reserve(local.checks.size());
  for (const auto& c : local.checks) {
    if (c && c->check) mine.emplace(c->check->key, &c);
  }
  std::size_t n = 0;
  for (const ServiceConfig& s : full->services) n += s.checks.size();
  snap->checks.reserve(n);
  for (const ServiceConfig& s : full->services) {
    std::shared_ptr<const ServiceConfig> svc;
    for (const CheckConfig& c : s.checks) {
      if (const auto it = mine.find(c.key); it != mine.end()) {
        snap->checks.push_back(*it->second);
        continue;
      }
      if (remote) {
        if (auto r = remote(c.key)) {
          snap->checks.push_back(std::move(r));
          continue;
        }
      }
      if (!svc) svc = std::shared_ptr<const ServiceConfig>(full, &s);
      auto unknown = std::make_shared<CheckStatus>();
      unknown->check = std::shared_ptr<const CheckConfig>(full, &c);
      unknown->service = svc;
      snap->checks.push_back(std::move(unknown));
    }
  }
  aggregate(*snap, now);
  return snap;
}

// ---- the collector ----

struct PeerCollector::State : std::enable_shared_from_this<PeerCollector::State> {
  struct Shard {
    std::string address;
    SystemClock::time_point received{};
    std::unordered_map<std::string, std::shared_ptr<const CheckStatus>> checks;
  };

  State(asio::io_context& io, PeerOptions o, std::shared_ptr<const Config> f)
      : io(io), options(std::move(o)), full(std::move(f)), timer(io), resolver(io) {
    if (options.stale_after.count() == 0) {
      options.stale_after = 3 * options.interval + options.timeout;
    }
  }

  asio::io_context& io;
  PeerOptions options;
  std::shared_ptr<const Config> full;
  asio::steady_timer timer;
  tcp::resolver resolver;  // the headless Service name
  bool stopped = false;
  std::map<std::string, PeerInfo> peers;  // by address
  std::set<std::string> in_flight;
  std::vector<std::shared_ptr<void>> fetches;  // to cancel them on stop
  std::map<unsigned, Shard> shards;            // other shards' last good reports
  std::uint64_t generation = 0;                // bumped at each report or config

  // The view's cache and memory.
  std::shared_ptr<EventLog> events = std::make_shared<EventLog>(1000);
  std::unique_ptr<Aggregator> aggregator = std::make_unique<Aggregator>(*events, nullptr);
  std::shared_ptr<const Snapshot> cached_local;
  std::shared_ptr<const Snapshot> cached_view;
  std::uint64_t cached_generation = ~0ULL;
  std::vector<unsigned> cached_live;

  std::function<void(const PeerInfo&)>* on_fetch = nullptr;

  bool live(const Shard& s, SystemClock::time_point now) const {
    return s.received != SystemClock::time_point{} && now - s.received <= options.stale_after;
  }

  void round();
  void fetch(const std::string& address);
  void finished(const std::string& address, std::string error, std::string body);
};

namespace {

// One GET /api/v1/checks: resolve, connect, write, read under one deadline.
struct Fetch : std::enable_shared_from_this<Fetch> {
  Fetch(asio::io_context& io, std::string host, std::string port, std::size_t max_body,
        std::string token, std::function<void(std::string, std::string)> done)
      : resolver(io),
        stream(io),
        deadline(io),
        host(std::move(host)),
        port(std::move(port)),
        token(std::move(token)),
        done(std::move(done)) {
    parser.body_limit(max_body);
    parser.header_limit(16 * 1024);
  }

  void start(std::chrono::milliseconds timeout) {
    deadline.expires_after(timeout);
    deadline.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->finish("timed out");
    });
    req.method(http::verb::get);
    req.target("/api/v1/checks");
    req.version(11);
    req.set(http::field::host,
            host.find(':') != std::string::npos ? "[" + host + "]:" + port : host + ":" + port);
    req.set(http::field::user_agent, "vigie-peer");
    req.set(http::field::accept, "application/json");
    req.set(http::field::connection, "close");
    // Replicas share one configuration: its read token opens the peers' API.
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    resolver.async_resolve(
        host, port,
        [self = shared_from_this()](const boost::system::error_code& ec,
                                    const tcp::resolver::results_type& results) {
          if (self->over) return;
          if (ec) return self->finish("resolve: " + ec.message());
          self->stream.async_connect(
              results, [self](const boost::system::error_code& ec, const tcp::endpoint&) {
                if (self->over) return;
                if (ec) return self->finish("connect: " + ec.message());
                http::async_write(self->stream, self->req,
                                  [self](const boost::system::error_code& ec, std::size_t) {
                                    if (self->over) return;
                                    if (ec) return self->finish("write: " + ec.message());
                                    self->read();
                                  });
              });
        });
  }

  void read() {
    http::async_read(stream, buffer, parser,
                     [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                       if (self->over) return;
                       if (ec) return self->finish("read: " + ec.message());
                       auto& res = self->parser.get();
                       if (res.result_int() != 200) {
                         return self->finish("HTTP status " + std::to_string(res.result_int()));
                       }
                       self->body = std::move(res.body());
                       self->finish("");
                     });
  }

  // Exactly once: the first of completion, error, deadline or cancel().
  void finish(std::string error) {
    if (over) return;
    over = true;
    deadline.cancel();
    resolver.cancel();
    boost::system::error_code ignored;
    stream.socket().close(ignored);
    auto d = std::move(done);
    if (d) d(std::move(error), std::move(body));
  }

  void cancel() {
    done = nullptr;
    finish("cancelled");
  }

  tcp::resolver resolver;
  beast::tcp_stream stream;
  asio::steady_timer deadline;
  std::string host, port;
  std::string token;  // a secret: sent, never logged
  std::function<void(std::string, std::string)> done;
  http::request<http::empty_body> req;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  std::string body;
  bool over = false;
};

}  // namespace

void PeerCollector::State::round() {
  if (stopped) return;
  std::set<std::string> addresses(options.peers.begin(), options.peers.end());
  auto proceed = [self = shared_from_this()](std::set<std::string> addresses) {
    if (self->stopped) return;
    // Addresses gone from the DNS answer are forgotten (a scaled-down replica).
    std::erase_if(self->peers, [&](const auto& kv) { return !addresses.count(kv.first); });
    for (const auto& a : addresses) self->fetch(a);
    self->timer.expires_after(self->options.interval);
    self->timer.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->round();
    });
  };
  if (options.dns.empty()) return proceed(std::move(addresses));
  std::string host, port;
  splitHostPort(options.dns, host, port);  // validated by the constructor
  resolver.async_resolve(
      host, port,
      [self = shared_from_this(), addresses, proceed, name = options.dns](
          const boost::system::error_code& ec, const tcp::resolver::results_type& results) mutable {
        if (self->stopped) return;
        if (ec) {
          spdlog::warn("peers: cannot resolve {}: {}", name, ec.message());
        } else {
          for (const auto& r : results) addresses.insert(endpointText(r.endpoint()));
        }
        proceed(std::move(addresses));
      });
}

void PeerCollector::State::fetch(const std::string& address) {
  if (stopped || in_flight.count(address)) return;
  PeerInfo& info = peers[address];
  info.address = address;
  std::string host, port;
  if (!splitHostPort(address, host, port)) return;
  in_flight.insert(address);
  auto f = std::make_shared<Fetch>(
      io, host, port, options.max_body,
      full ? (full->auth.read_token.empty() ? full->auth.admin_token : full->auth.read_token)
           : std::string(),
      [weak = weak_from_this(), address](std::string error, std::string body) {
        if (auto self = weak.lock()) self->finished(address, std::move(error), std::move(body));
      });
  fetches.push_back(f);
  f->start(options.timeout);
}

void PeerCollector::State::finished(const std::string& address, std::string error,
                                    std::string body) {
  in_flight.erase(address);
  std::erase_if(fetches, [](const std::shared_ptr<void>& p) {
    return static_cast<const Fetch*>(p.get())->over;
  });
  if (stopped) return;
  auto pit = peers.find(address);
  if (pit == peers.end()) return;  // forgotten meanwhile
  PeerInfo& info = pit->second;
  const bool was_ok = info.ok || info.last_ok == SystemClock::time_point{};
  PeerReport report;
  if (error.empty() && !parsePeerReport(body, report, error)) error = "bad answer: " + error;
  const ShardSpec mine = full ? full->shard : ShardSpec{};
  if (error.empty()) {
    info.shard = report.shard;
    info.checks = report.checks.size();
    if (report.shard.count != mine.count) {
      error = fmt::format("runs shard {} of a different count (this replica is {}): ignored",
                          shardName(report.shard), shardName(mine));
    } else if (report.shard.index == mine.index) {
      error = "this replica itself (or another with the same shard): ignored";
    }
  }
  info.ok = error.empty();
  info.error = error;
  if (!info.ok) {
    if (was_ok) spdlog::warn("peer {}: {}", address, error);
  } else {
    if (!was_ok)
      spdlog::info("peer {}: answering again (shard {})", address, shardName(report.shard));
    info.last_ok = SystemClock::now();
    Shard& shard = shards[report.shard.index];
    shard.address = address;
    shard.received = info.last_ok;
    shard.checks.clear();
    // Bind each status to our own copy of the configuration; a check we do not
    // know (the peer runs another config version) or that is not the peer's is left out.
    std::unordered_map<std::string_view, std::pair<const ServiceConfig*, const CheckConfig*>>
        by_key;
    for (const ServiceConfig& s : full->services) {
      for (const CheckConfig& c : s.checks) by_key.emplace(c.key, std::make_pair(&s, &c));
    }
    for (auto& [key, status] : report.checks) {
      const auto it = by_key.find(key);
      if (it == by_key.end() || shardOf(key, mine.count) != report.shard.index) continue;
      status->service = std::shared_ptr<const ServiceConfig>(full, it->second.first);
      status->check = std::shared_ptr<const CheckConfig>(full, it->second.second);
      shard.checks.emplace(key, std::move(status));
    }
    ++generation;
  }
  if (on_fetch && *on_fetch) (*on_fetch)(info);
}

PeerCollector::PeerCollector(asio::io_context& io, PeerOptions options,
                             std::shared_ptr<const Config> full) {
  std::string host, port;
  for (const auto& p : options.peers) {
    if (!splitHostPort(p, host, port)) {
      throw std::invalid_argument("peer \"" + p + "\" is not host:port");
    }
  }
  if (!options.dns.empty() && !splitHostPort(options.dns, host, port)) {
    throw std::invalid_argument("peers DNS name \"" + options.dns + "\" is not name:port");
  }
  state_ = std::make_shared<State>(io, std::move(options), std::move(full));
  state_->on_fetch = &on_fetch;
}

PeerCollector::~PeerCollector() { stop(); }

void PeerCollector::start() {
  state_->stopped = false;
  state_->round();
}

void PeerCollector::stop() {
  State& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  s.timer.cancel();
  s.resolver.cancel();
  auto fetches = std::move(s.fetches);
  for (auto& f : fetches) static_cast<Fetch*>(f.get())->cancel();
  s.in_flight.clear();
}

void PeerCollector::setConfig(std::shared_ptr<const Config> full) {
  state_->full = std::move(full);
  state_->shards.clear();
  ++state_->generation;
}

std::shared_ptr<const Snapshot> PeerCollector::view(std::shared_ptr<const Snapshot> local) {
  if (!local) return nullptr;
  State& s = *state_;
  const auto now = SystemClock::now();
  std::vector<unsigned> live;
  for (const auto& [index, shard] : s.shards) {
    if (s.live(shard, now)) live.push_back(index);
  }
  if (s.cached_view && s.cached_local == local && s.cached_generation == s.generation &&
      s.cached_live == live) {
    return s.cached_view;
  }
  const ShardSpec mine = s.full ? s.full->shard : ShardSpec{};
  auto snap = mergeSnapshot(
      *local, s.full,
      [&s, &live, mine](const std::string& key) -> std::shared_ptr<const CheckStatus> {
        const unsigned owner = shardOf(key, mine.count);
        if (!std::binary_search(live.begin(), live.end(), owner)) return nullptr;
        const auto& checks = s.shards[owner].checks;
        const auto it = checks.find(key);
        return it == checks.end() ? nullptr : it->second;
      },
      now);
  s.aggregator->update(*snap, now);
  s.cached_local = std::move(local);
  s.cached_generation = s.generation;
  s.cached_live = std::move(live);
  s.cached_view = std::move(snap);
  return s.cached_view;
}

std::string PeerCollector::urlOfShard(unsigned index) const {
  const auto it = state_->shards.find(index);
  if (it == state_->shards.end() || !state_->live(it->second, SystemClock::now())) return "";
  return "http://" + it->second.address;
}

std::vector<PeerInfo> PeerCollector::peers() const {
  std::vector<PeerInfo> out;
  for (const auto& [address, info] : state_->peers) out.push_back(info);
  return out;
}

}  // namespace vigie
