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
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/regex.hpp>
#include <chrono>
#include <cstddef>
#include <cctype>
#include <exception>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "collector/fd_limit.h"
#include "probes/conditions.h"
#include "probes/tls_facts.h"

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

// Go's Regexp.Expand for a query_response `send`: $1, ${1}, ${name}, $name and
// $$ from the line that matched `expect`.
std::string expandTemplate(const std::string &tmpl, const boost::smatch &m) {
  std::string out;
  for (std::size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] != '$' || i + 1 >= tmpl.size()) {
      out += tmpl[i];
      continue;
    }
    if (tmpl[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    std::string name;
    std::size_t j = i + 1;
    if (tmpl[j] == '{') {
      const auto close = tmpl.find('}', j);
      if (close == std::string::npos) {
        out += tmpl[i];
        continue;
      }
      name = tmpl.substr(j + 1, close - j - 1);
      j = close + 1;
    } else {
      while (j < tmpl.size() &&
             (std::isalnum(static_cast<unsigned char>(tmpl[j])) || tmpl[j] == '_'))
        ++j;
      name = tmpl.substr(i + 1, j - i - 1);
    }
    if (name.empty()) {
      out += tmpl[i];
      continue;
    }
    if (std::all_of(name.begin(), name.end(),
                    [](char c) { return c >= '0' && c <= '9'; })) {
      const auto n = static_cast<std::size_t>(std::stoul(name.substr(0, 6)));
      if (n < m.size() && m[n].matched)
        out += m[n].str();
    } else {
      try {
        if (m[name].matched)
          out += m[name].str();
      } catch (const std::exception &) {
        // no such group: empty, as Go
      }
    }
    i = j - 1;
  }
  return out;
}

} // namespace

/// One compiled query_response step.
struct TcpProbe::Step {
  std::string expect;
  std::optional<boost::regex> re;
  std::string send;
  bool starttls = false;
};

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
  std::shared_ptr<WireFacts> wire; // wire_facts only
  // TLS (tls: true, or a starttls step): the context lives as long as the stream.
  bool tls_first = false;
  TlsSpec tls_spec;
  std::unique_ptr<asio::ssl::context> tls_ctx;
  std::unique_ptr<asio::ssl::stream<tcp::socket &>> tls;
  // query_response (blackbox): steps run in order over lines read.
  std::shared_ptr<const std::vector<Step>> steps;
  std::size_t step = 0;
  std::string line_buf; // bytes read, not yet consumed as lines
  std::string last_line;
  std::string out_buf;

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
    if (!r.cert_expiry)
      r.cert_expiry = result.cert_expiry;
    r.info = std::move(result.info);
    r.duration = secondsSince(t0);
    if (wire)
      r.wire = std::move(wire);
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
          if (self->wire)
            self->wire->ip = eps.front().address().to_string();
          self->phase = "connect";
          self->connect_start = SteadyClock::now();
          asio::async_connect(
              self->socket, eps,
              [self](const boost::system::error_code &ec,
                     const tcp::endpoint &ep) {
                if (self->finished)
                  return;
                self->result.phases.connect = secondsSince(self->connect_start);
                if (ec && isOutOfDescriptors(ec.value())) {
                  Result r = Result::failure(
                      Reason::internal, "vigie is out of file descriptors (ulimit -n): the "
                                        "attempt could not open a socket");
                  r.out_of_descriptors = true;
                  self->finish(std::move(r));
                  return;
                }
                if (ec) {
                  self->fail(Reason::connect,
                             fmt::format("connect to {}:{}: {}", self->host,
                                         self->port, ec.message()));
                  return;
                }
                if (self->wire)
                  self->wire->ip = ep.address().to_string();
                self->result.info["remote"] =
                    ep.address().is_v6()
                        ? fmt::format("[{}]:{}", ep.address().to_string(),
                                      ep.port())
                        : fmt::format("{}:{}", ep.address().to_string(),
                                      ep.port());
                self->connected();
              });
        });
  }

  void log(std::string line) {
    if (wire && wire->log.size() < 64)
      wire->log.push_back(std::move(line));
  }

  // Starts TLS on the connected socket; `next` runs once the handshake is done.
  void handshake(std::function<void()> next) {
    phase = "TLS handshake";
    const SteadyClock::time_point tls_start = SteadyClock::now();
    try {
      tls_ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      tls_ctx->set_options(asio::ssl::context::default_workarounds |
                           asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3);
      if (tls_spec.verify) {
        tls_ctx->set_verify_mode(asio::ssl::verify_peer);
        if (tls_spec.ca_file.empty()) {
          tls_ctx->set_default_verify_paths();
        } else {
          tls_ctx->load_verify_file(tls_spec.ca_file);
        }
      } else {
        tls_ctx->set_verify_mode(asio::ssl::verify_none);
      }
      if (!tls_spec.cert_file.empty())
        tls_ctx->use_certificate_chain_file(tls_spec.cert_file);
      if (!tls_spec.key_file.empty())
        tls_ctx->use_private_key_file(tls_spec.key_file, asio::ssl::context::pem);
      tls = std::make_unique<asio::ssl::stream<tcp::socket &>>(socket, *tls_ctx);
      const std::string name =
          tls_spec.server_name.empty() ? host : tls_spec.server_name;
      boost::system::error_code ec;
      asio::ip::make_address(name, ec);
      if (ec) // SNI carries names only
        SSL_set_tlsext_host_name(tls->native_handle(), name.c_str());
      if (tls_spec.verify)
        tls->set_verify_callback(asio::ssl::host_name_verification(name));
    } catch (const std::exception &e) {
      fail(Reason::tls, fmt::format("TLS setup: {}", e.what()));
      return;
    }
    auto self = shared_from_this();
    tls->async_handshake(
        asio::ssl::stream_base::client,
        [self, next = std::move(next),
         tls_start](const boost::system::error_code &ec) {
          if (self->finished)
            return;
          self->result.phases.tls = secondsSince(tls_start);
          if (ec) {
            self->fail(Reason::tls,
                       fmt::format("TLS handshake with {}:{}: {}", self->host,
                                   self->port, ec.message()));
            return;
          }
          const TlsFacts facts =
              tlsFactsOf(self->tls->native_handle(), self->tls_spec.verify);
          self->result.cert_expiry = facts.earliest_expiry;
          if (self->wire)
            self->wire->tls = facts;
          self->log(fmt::format("TLS handshake succeeded ({})", facts.version));
          next();
        });
  }

  template <class Handler> void readSome(Handler &&h) {
    const std::size_t room = std::min(chunk.size(), kMaxRead - data.size());
    if (tls) {
      tls->async_read_some(asio::buffer(chunk.data(), room),
                           std::forward<Handler>(h));
    } else {
      socket.async_read_some(asio::buffer(chunk.data(), room),
                             std::forward<Handler>(h));
    }
  }

  template <class Handler> void writeAll(const std::string &text, Handler &&h) {
    if (tls) {
      asio::async_write(*tls, asio::buffer(text), std::forward<Handler>(h));
    } else {
      asio::async_write(socket, asio::buffer(text), std::forward<Handler>(h));
    }
  }

  void connected() {
    if (tls_first) {
      auto self = shared_from_this();
      handshake([self] { self->afterConnect(); });
      return;
    }
    afterConnect();
  }

  // ---- query_response, as blackbox's tcp prober: for each step, read lines
  // until one matches `expect` (failing at EOF), send `send` + "\n" with the
  // match's groups expanded, then STARTTLS when asked.
  void runStep() {
    if (step >= steps->size()) {
      finish(Result::ok());
      return;
    }
    const Step &st = (*steps)[step];
    if (st.re) {
      phase = "query_response expect";
      expectLine();
      return;
    }
    sendStep(boost::smatch());
  }

  // The next complete line in line_buf, without its "\n" or "\r\n".
  bool takeLine(std::string &line) {
    const auto nl = line_buf.find('\n');
    if (nl == std::string::npos)
      return false;
    line = line_buf.substr(0, nl);
    line_buf.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    return true;
  }

  // Matches the step's regex against the complete lines buffered so far; on a
  // match sends the step's reply and returns true.
  bool matchBufferedLines() {
    const Step &st = (*steps)[step];
    std::string line;
    while (takeLine(line)) {
      boost::smatch m;
      bool hit = false;
      try {
        hit = boost::regex_search(line, m, *st.re);
      } catch (const std::exception &) {
        hit = false; // too complex for this line: not a match
      }
      if (hit) {
        log(fmt::format("Regexp matched: /{}/ in \"{}\"", st.expect, snippet(line)));
        // The match refers to `line`: expand before it goes.
        sendStep(m);
        return true;
      }
      last_line = line;
    }
    return false;
  }

  void expectLine() {
    if (matchBufferedLines())
      return;
    auto self = shared_from_this();
    readSome([self](const boost::system::error_code &ec, std::size_t n) {
      if (self->finished)
        return;
      self->line_buf.append(self->chunk.data(), n);
      self->result.body_bytes += n;
      if (ec || self->line_buf.size() >= kMaxRead) {
        // Go's scanner hands over a last line without "\n" at EOF.
        if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
          if (!self->line_buf.empty()) {
            self->line_buf += '\n';
            self->expectLineAtEof();
            return;
          }
          self->regexFailed();
          return;
        }
        if (ec) {
          self->fail(Reason::connect, fmt::format("read: {}", ec.message()));
          return;
        }
        self->regexFailed();
        return;
      }
      self->expectLine();
    });
  }

  void expectLineAtEof() {
    if (!matchBufferedLines())
      regexFailed();
  }

  void regexFailed() {
    if (wire)
      wire->regex_failed = true;
    fail(Reason::body, fmt::format("query_response[{}]: expected /{}/ not seen; last line \"{}\"",
                                   step, (*steps)[step].expect, snippet(last_line)));
  }

  void sendStep(const boost::smatch &m) {
    const Step &st = (*steps)[step];
    std::string text = st.re ? expandTemplate(st.send, m) : st.send;
    if (text.empty()) {
      afterStepSend();
      return;
    }
    log(fmt::format("Sending line: \"{}\"", snippet(text)));
    out_buf = std::move(text);
    out_buf += '\n';
    phase = "query_response send";
    auto self = shared_from_this();
    writeAll(out_buf, [self](const boost::system::error_code &ec, std::size_t) {
      if (self->finished)
        return;
      if (ec) {
        self->fail(Reason::connect, fmt::format("send: {}", ec.message()));
        return;
      }
      self->afterStepSend();
    });
  }

  void afterStepSend() {
    const Step &st = (*steps)[step];
    ++step;
    if (st.starttls) {
      if (tls) {
        fail(Reason::tls, "starttls on a connection that is already TLS");
        return;
      }
      line_buf.clear(); // what came before the upgrade is not read after it
      auto self = shared_from_this();
      handshake([self] { self->runStep(); });
      return;
    }
    runStep();
  }

  void afterConnect() {
    if (steps && !steps->empty()) {
      runStep();
      return;
    }
    if (send.empty()) {
      afterSend();
      return;
    }
    phase = "send";
    auto self = shared_from_this();
    writeAll(send, [self](const boost::system::error_code &ec, std::size_t) {
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
    readSome(
        [self](const boost::system::error_code &ec, std::size_t n) {
          if (self->finished)
            return;
          self->data.append(self->chunk.data(), n);
          self->result.body_bytes = self->data.size();
          if (n > 0 && self->matched()) {
            self->finish(Result::ok());
            return;
          }
          if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
              self->data.size() >= kMaxRead) {
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
    : TcpProbe(ctx, std::move(spec), TcpProbeOptions{}) {}

TcpProbe::TcpProbe(ProbeContext &ctx, TcpSpec spec, TcpProbeOptions options)
    : ctx_(ctx), spec_(std::move(spec)), options_(options) {
  if (!spec_.query_response.empty()) {
    auto steps = std::make_shared<std::vector<Step>>();
    for (const auto &q : spec_.query_response) {
      Step st;
      st.expect = q.expect;
      st.send = q.send;
      st.starttls = q.starttls;
      if (!q.expect.empty()) {
        try {
          st.re.emplace(q.expect, boost::regex::perl);
        } catch (const std::exception &e) {
          setup_error_ = fmt::format("invalid query_response expect: {}", e.what());
        }
      }
      steps->push_back(std::move(st));
    }
    steps_ = std::move(steps);
  }
  if (!spec_.expect.empty()) {
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
  a->tls_first = spec_.tls;
  a->tls_spec = spec_.tls_config;
  a->steps = steps_;
  if (options_.wire_facts)
    a->wire = std::make_shared<WireFacts>();
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
