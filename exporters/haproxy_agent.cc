#include "exporters/haproxy_agent.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <stdexcept>
#include <unordered_set>

namespace vigie {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Bytes read (and discarded) from HAProxy after our line: an `agent-send`
// string is short; anything past this is not HAProxy.
constexpr std::size_t kMaxDiscard = 4096;

tcp::endpoint parseAgentAddress(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    throw std::runtime_error("\"" + host_port + "\" is not host:port");
  }
  std::string host = host_port.substr(0, colon);
  const std::string port_text = host_port.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    throw std::runtime_error("\"" + host_port + "\": bad port");
  }
  boost::system::error_code aec;
  const auto address = asio::ip::make_address(host, aec);
  if (aec) {
    throw std::runtime_error("\"" + host_port + "\": host must be a literal IPv4 or IPv6 address");
  }
  return tcp::endpoint(address, static_cast<unsigned short>(port));
}

}  // namespace

std::string agentDescription(std::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kAgentDescriptionMax));
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    char put = static_cast<char>(c);
    if (c < 0x20 || c == 0x7f) {
      put = ' ';
    } else if (c >= 0x80) {
      put = '?';
    }
    if (put == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(put);
    if (out.size() > kAgentDescriptionMax) break;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > kAgentDescriptionMax) {
    out.resize(kAgentDescriptionMax - 3);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += "...";
  }
  return out;
}

std::string haproxyAgentLine(const ClusterStatus& cluster) {
  switch (cluster.state) {
    case ServiceState::up:
      return "up ready 100%\n";
    case ServiceState::degraded:
      return fmt::format("up ready {}%\n", kDegradedWeightPercent);
    case ServiceState::maintenance:
      return "drain\n";
    case ServiceState::down: {
      std::string why = agentDescription(cluster.reason);
      if (why.empty()) {
        why = fmt::format("cluster {} is down",
                          agentDescription(cluster.cluster ? cluster.cluster->name : ""));
      }
      // The '#' must start a word of its own: HAProxy reads "down#x" as one
      // unknown word and ignores the whole health status.
      return "down #" + why + "\n";
    }
    case ServiceState::unknown:
      break;
  }
  return "\n";
}

struct AgentListener {
  explicit AgentListener(asio::io_context& io) : acceptor(io), retry(io) {}
  tcp::endpoint configured;  // as written in the config (port 0 stays 0)
  std::string address;       // the config text, for messages
  std::string cluster;
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  bool paused = false;
};

class AgentConnection;

struct HaproxyAgents::State : std::enable_shared_from_this<HaproxyAgents::State> {
  State(asio::io_context& i, SnapshotSource s, HaproxyAgentOptions o)
      : io(i), snapshots(std::move(s)), options(o) {}

  asio::io_context& io;
  SnapshotSource snapshots;
  HaproxyAgentOptions options;
  std::vector<std::shared_ptr<AgentListener>> listeners;
  std::unordered_set<AgentConnection*> connections;
  HaproxyAgentStats stats;
  bool stopped = false;

  std::shared_ptr<AgentListener> open(const tcp::endpoint& ep, const std::string& address,
                                      const std::string& cluster, std::string* error);
  void accept(const std::shared_ptr<AgentListener>& l);
  void connectionClosed(AgentConnection* c);
  std::string lineFor(const std::string& cluster) const;
};

class AgentConnection : public std::enable_shared_from_this<AgentConnection> {
 public:
  AgentConnection(std::shared_ptr<HaproxyAgents::State> state, tcp::socket socket, std::string line)
      : state_(std::move(state)),
        socket_(std::move(socket)),
        timer_(state_->io),
        line_(std::move(line)) {
    state_->connections.insert(this);
    ++state_->stats.connections_total;
    state_->stats.connections_open = state_->connections.size();
  }

  ~AgentConnection() { state_->connectionClosed(this); }

  void start() {
    timer_.expires_after(state_->options.connection_timeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->closed_) return;
      ++self->state_->stats.timeouts;
      self->close();
    });
    asio::async_write(socket_, asio::buffer(line_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->onWritten(ec);
                      });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    timer_.cancel();
    socket_.close(ec);
  }

 private:
  void onWritten(boost::system::error_code ec) {
    if (closed_) return;
    if (ec) return close();
    // Half-close, then wait for HAProxy to close its side: closing with unread
    // input (an agent-send string) would send a reset, which may discard our
    // line from HAProxy's receive queue before it is read.
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    discard();
  }

  void discard() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                    boost::system::error_code ec, std::size_t n) {
      if (self->closed_) return;
      self->discarded_ += n;
      if (ec || self->discarded_ > kMaxDiscard) return self->close();
      self->discard();
    });
  }

  std::shared_ptr<HaproxyAgents::State> state_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  std::string line_;
  std::array<char, 512> buf_{};
  std::size_t discarded_ = 0;
  bool closed_ = false;
};

std::shared_ptr<AgentListener> HaproxyAgents::State::open(const tcp::endpoint& ep,
                                                          const std::string& address,
                                                          const std::string& cluster,
                                                          std::string* error) {
  auto l = std::make_shared<AgentListener>(io);
  l->configured = ep;
  l->address = address;
  l->cluster = cluster;
  boost::system::error_code ec;
  l->acceptor.open(ep.protocol(), ec);
  if (!ec) l->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) l->acceptor.bind(ep, ec);
  if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = fmt::format("cluster {}: cannot listen on {} for the HAProxy agent: {}", cluster,
                         address, ec.message());
    return nullptr;
  }
  return l;
}

void HaproxyAgents::State::accept(const std::shared_ptr<AgentListener>& l) {
  if (stopped) return;
  l->acceptor.async_accept([self = shared_from_this(), l](boost::system::error_code ec,
                                                          tcp::socket socket) {
    if (self->stopped || !l->acceptor.is_open()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of descriptors or similar: retry later rather than spin.
      l->retry.expires_after(std::chrono::milliseconds(100));
      l->retry.async_wait([self, l](boost::system::error_code wec) {
        if (!wec) self->accept(l);
      });
      return;
    }
    std::make_shared<AgentConnection>(self, std::move(socket), self->lineFor(l->cluster))->start();
    if (self->connections.size() >= self->options.max_connections) {
      // Resumed by connectionClosed(); meanwhile the kernel backlog holds newcomers.
      l->paused = true;
      ++self->stats.accept_pauses;
      return;
    }
    self->accept(l);
  });
}

void HaproxyAgents::State::connectionClosed(AgentConnection* c) {
  connections.erase(c);
  stats.connections_open = connections.size();
  if (stopped || connections.size() >= options.max_connections) return;
  for (auto& l : listeners) {
    if (l->paused) {
      l->paused = false;
      accept(l);
    }
  }
}

std::string HaproxyAgents::State::lineFor(const std::string& cluster) const {
  const auto snap = snapshots ? snapshots() : nullptr;
  if (snap) {
    for (const ClusterStatus& c : snap->clusters) {
      if (c.cluster && c.cluster->name == cluster) return haproxyAgentLine(c);
    }
  }
  return "\n";  // not known (yet): change nothing
}

HaproxyAgents::HaproxyAgents(asio::io_context& io, SnapshotSource snapshots,
                             HaproxyAgentOptions options)
    : state_(std::make_shared<State>(io, std::move(snapshots), options)) {}

HaproxyAgents::~HaproxyAgents() { stop(); }

void HaproxyAgents::start(const Config& config) {
  std::vector<std::shared_ptr<AgentListener>> opened;
  for (const ClusterConfig& c : config.clusters) {
    if (c.agent_listen.empty()) continue;
    tcp::endpoint ep;
    try {
      ep = parseAgentAddress(c.agent_listen);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("cluster {}: agent_listen {}", c.name, e.what()));
    }
    std::string error;
    auto l = state_->open(ep, c.agent_listen, c.name, &error);
    if (!l) throw std::runtime_error(error);  // `opened` closes with its acceptors
    opened.push_back(std::move(l));
  }
  stop();
  state_->stopped = false;
  state_->listeners = std::move(opened);
  for (auto& l : state_->listeners) state_->accept(l);
}

std::vector<std::string> HaproxyAgents::reload(const Config& config) {
  std::vector<std::string> problems;
  struct Wanted {
    const ClusterConfig* cluster;
    tcp::endpoint ep;
  };
  std::vector<Wanted> wanted;
  for (const ClusterConfig& c : config.clusters) {
    if (c.agent_listen.empty()) continue;
    try {
      wanted.push_back({&c, parseAgentAddress(c.agent_listen)});
    } catch (const std::exception& e) {
      problems.push_back(fmt::format("cluster {}: agent_listen {}", c.name, e.what()));
    }
  }

  const auto old = state_->listeners;
  std::vector<std::shared_ptr<AgentListener>> next;
  std::vector<const Wanted*> to_open;
  // First the addresses already open: they stay, re-pointed by name.
  for (const Wanted& w : wanted) {
    auto it =
        std::find_if(old.begin(), old.end(), [&](const auto& l) { return l->configured == w.ep; });
    if (it == old.end()) {
      to_open.push_back(&w);
    } else if (std::find(next.begin(), next.end(), *it) == next.end()) {
      (*it)->cluster = w.cluster->name;
      (*it)->address = w.cluster->agent_listen;
      next.push_back(*it);
    } else {
      problems.push_back(fmt::format("cluster {}: agent_listen {} is already used by cluster {}",
                                     w.cluster->name, w.cluster->agent_listen, (*it)->cluster));
    }
  }
  std::vector<std::shared_ptr<AgentListener>> fresh;
  for (const Wanted* w : to_open) {
    std::string error;
    if (auto l = state_->open(w->ep, w->cluster->agent_listen, w->cluster->name, &error)) {
      fresh.push_back(l);
      next.push_back(std::move(l));
      continue;
    }
    // Keep the cluster answering where HAProxy already asks, if it was.
    auto it = std::find_if(old.begin(), old.end(), [&](const auto& l) {
      return l->cluster == w->cluster->name && std::find(next.begin(), next.end(), l) == next.end();
    });
    if (it != old.end()) {
      error += fmt::format("; it keeps answering on {}", (*it)->address);
      next.push_back(*it);
    }
    problems.push_back(std::move(error));
  }

  for (const auto& l : old) {
    if (std::find(next.begin(), next.end(), l) != next.end()) continue;
    boost::system::error_code ec;
    l->acceptor.close(ec);
    l->retry.cancel();
  }
  state_->listeners = std::move(next);
  if (!state_->stopped) {
    for (auto& l : fresh) state_->accept(l);
  }
  for (const auto& p : problems) spdlog::error("reload: {}", p);
  return problems;
}

void HaproxyAgents::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  for (auto& l : state_->listeners) {
    boost::system::error_code ec;
    l->acceptor.close(ec);
    l->retry.cancel();
  }
  state_->listeners.clear();
  // close() never runs completion handlers inline, so the set is stable here.
  const std::vector<AgentConnection*> open(state_->connections.begin(), state_->connections.end());
  for (AgentConnection* c : open) c->close();
}

unsigned short HaproxyAgents::port(std::string_view cluster) const {
  for (const auto& l : state_->listeners) {
    if (l->cluster != cluster) continue;
    boost::system::error_code ec;
    const auto ep = l->acceptor.local_endpoint(ec);
    return ec ? 0 : ep.port();
  }
  return 0;
}

const HaproxyAgentStats& HaproxyAgents::stats() const { return state_->stats; }

}  // namespace vigie
