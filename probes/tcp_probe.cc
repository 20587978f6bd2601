#include "probes/tcp_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <exception>
#include <string_view>
#include <utility>
#include <vector>

#include "probes/conditions.h"

namespace vigie {

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

constexpr std::size_t kMaxRead = 64 * 1024;
constexpr std::size_t kSnippet = 160;

double secondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// The head of what the target sent, printable and bounded for a Result detail.
std::string snippet(std::string_view data) {
  std::string out;
  for (std::size_t i = 0; i < data.size() && i < kSnippet; ++i) {
    const unsigned char c = static_cast<unsigned char>(data[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (data.size() > kSnippet)
    out += "...";
  return out;
}

// Splits "host:port" / "[v6]:port"; false when there is no port.
bool splitAddress(const std::string &address, std::string &host,
                  std::string &port) {
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return false;
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos)
      return false;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  return !host.empty() && !port.empty();
}

} // namespace

// Shared with the handlers of one attempt; they hold it alive, the probe only
// points at it, so the probe may go away while handlers are still queued.
struct TcpProbe::Attempt : std::enable_shared_from_this<TcpProbe::Attempt> {
  explicit Attempt(asio::io_context &io)
      : resolver(io), socket(io), timer(io) {}

  tcp::resolver resolver;
  tcp::socket socket;
  asio::steady_timer timer;
  Done done;
  bool finished = false;
  const char *phase = "resolve";
  SteadyClock::time_point t0;
  SteadyClock::time_point connect_start;
  Result result;
  std::string host, port, send, expect, ip_version;
  std::shared_ptr<const CompiledRegex> regex;
  std::string data;
  std::array<char, 8192> chunk{};

  void stop() {
    finished = true;
    boost::system::error_code ignored;
    resolver.cancel();
    timer.cancel();
    socket.close(ignored);
  }

  void finish(Result r) {
    if (finished)
      return;
    r.started = result.started;
    r.phases = result.phases;
    r.body_bytes = result.body_bytes;
    r.info = std::move(result.info);
    r.duration = secondsSince(t0);
    stop();
    // Moved out first: done may destroy or restart the probe.
    Done d = std::move(done);
    done = nullptr;
    if (d)
      d(std::move(r));
  }

  void fail(Reason reason, std::string detail) {
    finish(Result::failure(reason, std::move(detail)));
  }

  bool matched() {
    ConditionSpec c;
    c.kind = ConditionSpec::Kind::body_matches;
    c.value = expect;
    c.regex = regex;
    ResponseView v;
    v.body = data;
    return evaluate(c, v).ok;
  }

  void run(SteadyClock::time_point deadline) {
    auto self = shared_from_this();
    timer.expires_at(deadline);
    timer.async_wait([self](const boost::system::error_code &ec) {
      if (ec || self->finished)
        return;
      self->fail(Reason::timeout,
                 fmt::format("timed out during {}", self->phase));
    });
    resolver.async_resolve(
        host, port,
        [self](const boost::system::error_code &ec,
               tcp::resolver::results_type results) {
          if (self->finished)
            return;
          self->result.phases.resolve = secondsSince(self->t0);
          if (ec) {
            self->fail(Reason::dns, fmt::format("cannot resolve {}: {}",
                                                self->host, ec.message()));
            return;
          }
          std::vector<tcp::endpoint> eps;
          for (const auto &entry : results) {
            const auto &ep = entry.endpoint();
            if (self->ip_version == "ip4" && !ep.address().is_v4())
              continue;
            if (self->ip_version == "ip6" && !ep.address().is_v6())
              continue;
            eps.push_back(ep);
          }
          if (eps.empty()) {
            self->fail(Reason::dns,
                       fmt::format("{} has no {}address", self->host,
                                   self->ip_version.empty()
                                       ? ""
                                       : self->ip_version + " "));
            return;
          }
          self->phase = "connect";
          self->connect_start = SteadyClock::now();
          asio::async_connect(
              self->socket, eps,
              [self](const boost::system::error_code &ec,
                     const tcp::endpoint &ep) {
                if (self->finished)
                  return;
                self->result.phases.connect = secondsSince(self->connect_start);
                if (ec) {
                  self->fail(Reason::connect,
                             fmt::format("connect to {}:{}: {}", self->host,
                                         self->port, ec.message()));
                  return;
                }
                self->result.info["remote"] =
                    ep.address().is_v6()
                        ? fmt::format("[{}]:{}", ep.address().to_string(),
                                      ep.port())
                        : fmt::format("{}:{}", ep.address().to_string(),
                                      ep.port());
                self->afterConnect();
              });
        });
  }

  void afterConnect() {
    if (send.empty()) {
      afterSend();
      return;
    }
    phase = "send";
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(send),
                      [self](const boost::system::error_code &ec, std::size_t) {
                        if (self->finished)
                          return;
                        if (ec) {
                          self->fail(Reason::connect,
                                     fmt::format("send: {}", ec.message()));
                          return;
                        }
                        self->afterSend();
                      });
  }

  void afterSend() {
    if (expect.empty()) {
      finish(Result::ok());
      return;
    }
    phase = "read";
    readMore();
  }

  void readMore() {
    auto self = shared_from_this();
    const std::size_t room = std::min(chunk.size(), kMaxRead - data.size());
    socket.async_read_some(
        asio::buffer(chunk.data(), room),
        [self](const boost::system::error_code &ec, std::size_t n) {
          if (self->finished)
            return;
          self->data.append(self->chunk.data(), n);
          self->result.body_bytes = self->data.size();
          if (n > 0 && self->matched()) {
            self->finish(Result::ok());
            return;
          }
          if (ec == asio::error::eof || self->data.size() >= kMaxRead) {
            self->fail(Reason::body,
                       fmt::format("expected /{}/ not seen; got \"{}\"",
                                   self->expect, snippet(self->data)));
            return;
          }
          if (ec) {
            self->fail(Reason::connect, fmt::format("read: {}", ec.message()));
            return;
          }
          self->readMore();
        });
  }
};

TcpProbe::TcpProbe(ProbeContext &ctx, TcpSpec spec)
    : ctx_(ctx), spec_(std::move(spec)) {
  if (spec_.tls) {
    setup_error_ = "tls over tcp not supported yet";
  } else if (!spec_.query_response.empty()) {
    setup_error_ = "tcp query_response not supported yet";
  } else if (!spec_.expect.empty()) {
    try {
      regex_ = compileRegex(spec_.expect);
    } catch (const std::exception &e) {
      setup_error_ = fmt::format("invalid expect pattern: {}", e.what());
    }
  }
}

TcpProbe::~TcpProbe() { cancel(); }

void TcpProbe::cancel() {
  if (!attempt_)
    return;
  attempt_->done = nullptr;
  attempt_->stop();
  attempt_.reset();
}

void TcpProbe::start(SteadyClock::time_point deadline, Done done) {
  cancel();
  auto a = std::make_shared<Attempt>(ctx_.io);
  a->t0 = SteadyClock::now();
  a->result.started = SystemClock::now();
  a->done = std::move(done);
  a->send = spec_.send;
  a->expect = spec_.expect;
  a->regex = regex_;
  a->ip_version = spec_.ip_version;
  attempt_ = a;
  std::string error = setup_error_;
  if (error.empty() && !splitAddress(spec_.address, a->host, a->port)) {
    error = fmt::format("address \"{}\" is not host:port", spec_.address);
  }
  if (!error.empty()) {
    // Posted so done never runs inside start().
    asio::post(ctx_.io, [a, error] { a->fail(Reason::internal, error); });
    return;
  }
  a->run(deadline);
}

} // namespace vigie
