// TcpProbe against in-test Asio servers on loopback (127.0.0.1 and ::1).

#include "probes/tcp_probe.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "collector/curl_driver.h"
#include "tests/support/nginx.h"
#include "tests/support/ports.h"
#include "tests/support/process.h"
#include "tests/support/tls_cert.h"

namespace vigie {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

// What the in-test server does with each accepted connection.
enum class Mode { listen_only, silent, pong, nope };

class Server {
public:
  Server(asio::io_context &io, Mode mode, const tcp::endpoint &at)
      : acceptor_(io, at), mode_(mode) {
    if (mode_ != Mode::listen_only)
      accept();
  }
  int port() const { return acceptor_.local_endpoint().port(); }

private:
  struct Conn {
    explicit Conn(tcp::socket s) : sock(std::move(s)) {}
    tcp::socket sock;
    asio::streambuf buf;
    std::string reply;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec)
        return;
      auto c = std::make_shared<Conn>(std::move(s));
      conns_.push_back(c); // kept open until the server goes (silent mode)
      if (mode_ == Mode::pong || mode_ == Mode::nope) {
        asio::async_read_until(
            c->sock, c->buf, '\n',
            [this, c](boost::system::error_code e, std::size_t) {
              if (e)
                return;
              c->reply = mode_ == Mode::pong ? "PONG\n" : "NOPE\n";
              asio::async_write(c->sock, asio::buffer(c->reply),
                                [c](boost::system::error_code, std::size_t) {
                                  boost::system::error_code ignored;
                                  c->sock.shutdown(tcp::socket::shutdown_send,
                                                   ignored);
                                });
            });
      }
      accept();
    });
  }

  tcp::acceptor acceptor_;
  Mode mode_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

struct Fixture {
  asio::io_context io;
  CurlDriver curl{io};
  ProbeContext ctx{io, curl, "", nullptr};

  // Runs one attempt to completion (or `limit`), returning its result.
  std::optional<Result> run(TcpProbe &probe, std::chrono::milliseconds timeout,
                            std::chrono::milliseconds limit = 3s) {
    std::optional<Result> got;
    int calls = 0;
    probe.start(SteadyClock::now() + timeout, [&](Result r) {
      ++calls;
      got = std::move(r);
    });
    const auto end = SteadyClock::now() + limit;
    while (!got && SteadyClock::now() < end)
      io.run_one_for(50ms);
    io.run_for(20ms); // a second done would show here
    EXPECT_LE(calls, 1);
    return got;
  }
};

tcp::endpoint loopback4() { return {asio::ip::make_address("127.0.0.1"), 0}; }

TcpSpec spec(std::string address, std::string send = "",
             std::string expect = "") {
  TcpSpec s;
  s.address = std::move(address);
  s.send = std::move(send);
  s.expect = std::move(expect);
  return s;
}

TEST(TcpProbe, ConnectOk) {
  Fixture f;
  Server server(f.io, Mode::listen_only, loopback4());
  TcpProbe probe(f.ctx, spec("127.0.0.1:" + std::to_string(server.port())));
  auto r = f.run(probe, 2s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::ok) << r->detail;
  EXPECT_EQ(r->reason, Reason::none);
  EXPECT_GT(r->duration, 0);
  EXPECT_GE(r->phases.connect, 0);
  EXPECT_LE(r->phases.connect, r->duration);
  EXPECT_EQ(r->info["remote"], "127.0.0.1:" + std::to_string(server.port()));
}

TEST(TcpProbe, RefusedIsConnect) {
  Fixture f;
  const int port = test::freePort();
  TcpProbe probe(f.ctx, spec("127.0.0.1:" + std::to_string(port)));
  auto r = f.run(probe, 2s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::fail);
  EXPECT_EQ(r->reason, Reason::connect) << r->detail;
}

TEST(TcpProbe, SendExpect) {
  struct Case {
    Mode mode;
    std::string expect;
    Reason reason;
    std::string in_detail;
  };
  const Case cases[] = {
      {Mode::pong, "^PONG", Reason::none, ""},
      {Mode::nope, "^PONG", Reason::body,
       "expected /^PONG/ not seen; got \"NOPE\\n\""},
      {Mode::pong, "^PING", Reason::body, "got \"PONG\\n\""},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.expect);
    Fixture f;
    Server server(f.io, c.mode, loopback4());
    TcpProbe probe(f.ctx, spec("127.0.0.1:" + std::to_string(server.port()),
                               "PING\n", c.expect));
    auto r = f.run(probe, 2s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->reason, c.reason) << r->detail;
    EXPECT_EQ(r->status, c.reason == Reason::none ? Status::ok : Status::fail);
    EXPECT_NE(r->detail.find(c.in_detail), std::string::npos) << r->detail;
  }
}

TEST(TcpProbe, SilentServerTimesOutAtDeadline) {
  Fixture f;
  Server server(f.io, Mode::silent, loopback4());
  TcpProbe probe(
      f.ctx, spec("127.0.0.1:" + std::to_string(server.port()), "", "READY"));
  const auto t0 = SteadyClock::now();
  auto r = f.run(probe, 300ms);
  const auto took = SteadyClock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, Reason::timeout) << r->detail;
  EXPECT_NE(r->detail.find("read"), std::string::npos) << r->detail;
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 1500ms);
}

TEST(TcpProbe, CancelMeansDoneNeverCalled) {
  Fixture f;
  Server server(f.io, Mode::silent, loopback4());
  auto probe = std::make_unique<TcpProbe>(
      f.ctx, spec("127.0.0.1:" + std::to_string(server.port()), "", "READY"));
  int calls = 0;
  probe->start(SteadyClock::now() + 200ms, [&](Result) { ++calls; });
  f.io.run_for(50ms);
  probe->cancel();
  f.io.run_for(400ms); // past the deadline: the timer must not fire done either
  EXPECT_EQ(calls, 0);

  // Destroyed mid-attempt: queued handlers still run safely and call nothing.
  probe->start(SteadyClock::now() + 200ms, [&](Result) { ++calls; });
  f.io.run_for(20ms);
  probe.reset();
  f.io.run_for(400ms);
  EXPECT_EQ(calls, 0);
}

TEST(TcpProbe, RestartFromInsideDone) {
  Fixture f;
  Server server(f.io, Mode::pong, loopback4());
  TcpProbe probe(f.ctx, spec("127.0.0.1:" + std::to_string(server.port()),
                             "PING\n", "PONG"));
  int calls = 0;
  std::optional<Result> second;
  probe.start(SteadyClock::now() + 2s, [&](Result r) {
    ++calls;
    EXPECT_EQ(r.status, Status::ok) << r.detail;
    probe.start(SteadyClock::now() + 2s,
                [&](Result r2) { second = std::move(r2); });
  });
  const auto end = SteadyClock::now() + 3s;
  while (!second && SteadyClock::now() < end)
    f.io.run_one_for(50ms);
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, Status::ok) << second->detail;
}

TEST(TcpProbe, Ipv6Loopback) {
  Fixture f;
  std::unique_ptr<Server> server;
  try {
    server = std::make_unique<Server>(
        f.io, Mode::pong, tcp::endpoint{asio::ip::make_address("::1"), 0});
  } catch (const boost::system::system_error &e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  TcpProbe probe(f.ctx, spec("[::1]:" + std::to_string(server->port()),
                             "PING\n", "^PONG"));
  auto r = f.run(probe, 2s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::ok) << r->detail;
  EXPECT_EQ(r->info["remote"], "[::1]:" + std::to_string(server->port()));
}

TEST(TcpProbe, UnsupportedOrMalformedIsInternal) {
  struct Case {
    TcpSpec spec;
    std::string in_detail;
  };
  TcpSpec bad_step = spec("127.0.0.1:1");
  bad_step.query_response.push_back(TcpQueryStep{"(unclosed", "", false});
  const Case cases[] = {
      {bad_step, "invalid query_response expect"},
      {spec("no-port-here"), "not host:port"},
      {spec("127.0.0.1:1", "", "(unclosed"), "invalid expect pattern"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.in_detail);
    Fixture f;
    TcpProbe probe(f.ctx, c.spec);
    auto r = f.run(probe, 1s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->reason, Reason::internal);
    EXPECT_NE(r->detail.find(c.in_detail), std::string::npos) << r->detail;
  }
}

// ---- TLS and blackbox's query_response

TEST(TcpProbe, TlsVerifiedAgainstTheCa) {
  const std::string dir = test::makeTempDir("tcptls");
  test::TestCa ca(dir);
  test::NginxOptions no;
  no.tls.push_back(ca.issue("web", -1h, std::chrono::hours(24 * 10)));
  test::Nginx nginx(no);
  const std::string address = "127.0.0.1:" + std::to_string(nginx.tlsPort());
  {
    Fixture f;
    TcpSpec s = spec(address, "GET / HTTP/1.0\r\n\r\n", "^HTTP/1\\.1 [0-9]+");
    s.tls = true;
    s.tls_config.edit().ca_file = ca.caFile();
    TcpProbe probe(f.ctx, s, TcpProbeOptions{true});
    auto r = f.run(probe, 3s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, Status::ok) << r->detail;
    ASSERT_TRUE(r->cert_expiry);
    const double days =
        (*r->cert_expiry -
         std::chrono::duration<double>(SystemClock::now().time_since_epoch()).count()) /
        86400;
    EXPECT_NEAR(days, 10, 0.1);
    EXPECT_GT(r->phases.tls, 0);
    ASSERT_TRUE(r->wire && r->wire->tls);
    EXPECT_EQ(r->wire->tls->version.rfind("TLS 1.", 0), 0u) << r->wire->tls->version;
    EXPECT_TRUE(r->wire->tls->last_chain_expiry);
    EXPECT_EQ(r->wire->tls->dns_names, "localhost");
    EXPECT_EQ(r->wire->tls->fingerprint_sha256.size(), 64u);
  }
  {
    // Not our CA in the system store: the handshake fails.
    Fixture f;
    TcpSpec s = spec(address);
    s.tls = true;
    TcpProbe probe(f.ctx, s);
    auto r = f.run(probe, 3s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->reason, Reason::tls) << r->detail;
  }
  test::removeTree(dir);
}

TEST(TcpProbe, QueryResponseLineByLine) {
  struct Case {
    std::vector<TcpQueryStep> steps;
    Status status;
    bool regex_failed;
    std::string logged;
  };
  const Case cases[] = {
      {{{"", "PING", false}, {"^PONG$", "", false}}, Status::ok, false, ""},
      // The match's groups go into the next send ($1, ${name}).
      {{{"", "PING", false}, {"^P(?<mid>ON)G", "got ${mid} $1 $$", false}},
       Status::ok,
       false,
       "Sending line: \"got ON ON $\""},
      {{{"", "PING", false}, {"^PANG", "", false}}, Status::fail, true, ""},
  };
  for (const auto& c : cases) {
    Fixture f;
    Server server(f.io, Mode::pong, loopback4());
    TcpSpec s = spec("127.0.0.1:" + std::to_string(server.port()));
    s.query_response = c.steps;
    TcpProbe probe(f.ctx, s, TcpProbeOptions{true});
    auto r = f.run(probe, 2s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, c.status) << r->detail;
    ASSERT_TRUE(r->wire);
    EXPECT_EQ(r->wire->regex_failed, c.regex_failed);
    if (c.regex_failed) {
      EXPECT_EQ(r->reason, Reason::body);
    }
    if (!c.logged.empty()) {
      bool seen = false;
      for (const auto& l : r->wire->log) seen = seen || l == c.logged;
      EXPECT_TRUE(seen) << c.logged;
    }
  }
}

} // namespace
} // namespace vigie
