// vigie's own HTTP/1.1 client (probes/http_native.h) against libcurl: which checks it
// takes, the exact request bytes, and the same Result for each scripted response
// (framing, interim responses, cut bodies, bad chunks, max_body at the byte).

#include "probes/http_native.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "collector/curl_driver.h"
#include "probes/http_probe.h"
#include "tests/support/scoped_env.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;

// Answers every connection with the same bytes, then closes; keeps the last request.
class ScriptServer {
 public:
  explicit ScriptServer(std::string response) : response_(std::move(response)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string lastRequest() {
    std::lock_guard<std::mutex> lock(mu_);
    return request_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
        pollfd q{c, POLLIN, 0};
        if (::poll(&q, 1, 2000) <= 0) break;
        const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        req.append(buf, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        request_ = req;
      }
      std::size_t off = 0;
      while (off < response_.size()) {
        const ssize_t n =
            ::send(c, response_.data() + off, response_.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
      ::shutdown(c, SHUT_WR);
      // Until the client closes (or a short while), so it reads everything first.
      pollfd q{c, POLLIN, 0};
      while (::poll(&q, 1, 1000) > 0 && ::recv(c, buf, sizeof(buf), 0) > 0) {
      }
      ::close(c);
    }
  }

  std::string response_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::string request_;
};

using test::ScopedEnv;

struct Attempt {
  Result result;
  bool native = false;
  std::uint64_t handoffs = 0;  // native attempts made again through libcurl
};

// One attempt, through the native client or (VIGIE_HTTP_CLIENT=curl) libcurl.
Attempt probeOnce(const HttpSpec& s, bool native, std::chrono::milliseconds timeout = 3s,
                  HttpProbeOptions options = {}) {
  ScopedEnv env("VIGIE_HTTP_CLIENT", native ? "native" : "curl");
  boost::asio::io_context io;
  CurlDriver curl(io);
  ProbeContext ctx{io, curl, "test"};
  HttpProbe probe(ctx, s, options);
  Attempt run;
  run.native = probe.native();
  int calls = 0;
  probe.start(SteadyClock::now() + timeout, [&](Result r) {
    ++calls;
    run.result = std::move(r);
  });
  io.run_for(6s);
  EXPECT_EQ(calls, 1);
  run.handoffs = probe.handoffs();
  return run;
}

HttpSpec spec(std::string url) {
  HttpSpec s;
  s.url = std::move(url);
  return s;
}

TEST(NativeHttp, TakesPlainHttpToAnAddressOnly) {
  ScopedEnv env("VIGIE_HTTP_CLIENT", nullptr);
  ScopedEnv proxy("http_proxy", nullptr);
  EXPECT_TRUE(planNativeHttp(spec("http://127.0.0.1:8080/health"), true));
  EXPECT_TRUE(planNativeHttp(spec("http://[::1]/"), true));
  EXPECT_TRUE(planNativeHttp(spec("http://127.0.0.1"), true));
  EXPECT_FALSE(planNativeHttp(spec("http://127.0.0.1/"), false)) << "options: curl";
  EXPECT_FALSE(planNativeHttp(spec("https://127.0.0.1/"), true));
  EXPECT_FALSE(planNativeHttp(spec("http://localhost/"), true)) << "names: curl's resolver";
  EXPECT_FALSE(planNativeHttp(spec("http://user:pw@127.0.0.1/"), true));
  EXPECT_FALSE(planNativeHttp(spec("http://127.0.0.1/a/../b"), true)) << "curl rewrites it";
  HttpSpec s = spec("http://127.0.0.1/");
  s.follow_redirects = true;
  EXPECT_FALSE(planNativeHttp(s, true));
  s = spec("http://127.0.0.1/");
  s.method = "POST";
  EXPECT_FALSE(planNativeHttp(s, true));
  s = spec("http://127.0.0.1/");
  s.ip_version = "ip6";
  EXPECT_FALSE(planNativeHttp(s, true));
  s.method = "HEAD";
  s.ip_version.clear();
  EXPECT_TRUE(planNativeHttp(s, true));
  // /probe's wire facts: redirects to follow are taken (a 3xx hands off), HEAD is not.
  EXPECT_FALSE(planNativeHttpWire(s, true));
  s.method = "GET";
  s.follow_redirects = true;
  EXPECT_TRUE(planNativeHttpWire(s, true));
  EXPECT_FALSE(planNativeHttpWire(s, false)) << "a pinned address or a redirect URL: curl";
  EXPECT_FALSE(planNativeHttpWire(spec("http://localhost/"), true));
  {
    ScopedEnv p("http_proxy", "http://127.0.0.1:3128");
    EXPECT_FALSE(planNativeHttp(spec("http://127.0.0.1/"), true)) << "a proxy: curl";
  }
  {
    ScopedEnv c("VIGIE_HTTP_CLIENT", "curl");
    EXPECT_FALSE(nativeHttpEnabled());
    EXPECT_FALSE(planNativeHttp(spec("http://127.0.0.1/"), true));
  }
}

TEST(NativeHttp, SendsTheRequestLibcurlSends) {
  ScriptServer server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
  HttpSpec s = spec(server.url("/p/q?x=1&y=%20#frag"));
  s.headers = {{"X-Vigie", "42"}, {"X-Empty", ""}, {"Accept", "application/json"}};
  const Attempt native = probeOnce(s, true);
  ASSERT_TRUE(native.native);
  const std::string sent = server.lastRequest();
  const Attempt curl = probeOnce(s, false);
  ASSERT_FALSE(curl.native);
  EXPECT_EQ(sent, server.lastRequest());
  EXPECT_EQ(sent.rfind("GET /p/q?x=1&y=%20 HTTP/1.1\r\nHost: 127.0.0.1:", 0), 0u) << sent;
  EXPECT_EQ(native.result.status, Status::ok);
}

// An idle client keeps its plan only: the attempt's state (socket, timer, parser,
// outcome) exists while an attempt runs and while its done reads the outcome, and goes
// when done returns, when a retry started inside done has ended, or on cancel(). The
// plan keeps the request at its exact size.
TEST(NativeHttp, IdleClientHoldsNoAttemptState) {
  ScriptServer server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
  ScopedEnv env("VIGIE_HTTP_CLIENT", "native");
  auto plan = planNativeHttp(spec(server.url("/idle")), true);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->request.capacity(), plan->request.size());
  EXPECT_EQ(plan->ip(), "127.0.0.1");
  EXPECT_EQ(plan->peer().rfind("127.0.0.1 port ", 0), 0u) << plan->peer();
  boost::asio::io_context io;
  NativeHttpClient client(io, std::move(*plan));
  EXPECT_FALSE(client.holdsAttempt()) << "built: nothing held before the first attempt";
  EXPECT_EQ(client.outcome().status, 0);

  int calls = 0;
  std::string body;
  std::vector<int> statuses;
  std::vector<bool> held;
  std::function<void()> done = [&] {
    ++calls;
    statuses.push_back(client.outcome().status);
    held.push_back(client.holdsAttempt());
    if (calls == 1) {
      body.clear();
      client.start(SteadyClock::now() + 3s, 1024, &body, done);  // a retry from inside done
      EXPECT_TRUE(client.holdsAttempt());
    }
  };
  client.start(SteadyClock::now() + 3s, 1024, &body, done);
  EXPECT_TRUE(client.holdsAttempt()) << "running";
  const auto limit = SteadyClock::now() + 6s;
  while (calls < 2 && SteadyClock::now() < limit) io.run_one_for(100ms);
  ASSERT_EQ(calls, 2);
  EXPECT_EQ(statuses, (std::vector<int>{200, 200}));
  EXPECT_EQ(held, (std::vector<bool>{true, true})) << "the outcome lives while done reads it";
  EXPECT_EQ(body, "OK");
  EXPECT_FALSE(client.holdsAttempt()) << "idle after done returned";
  EXPECT_EQ(client.outcome().status, 0) << "outside done: the empty outcome";

  // Cancelled: dropped at once, and done is never called.
  client.start(SteadyClock::now() + 3s, 1024, nullptr, [&] { ++calls; });
  EXPECT_TRUE(client.holdsAttempt());
  client.cancel();
  EXPECT_FALSE(client.holdsAttempt());
  io.restart();
  io.run_for(200ms);
  EXPECT_EQ(calls, 2);
}

// A listener whose accept queue is full drops SYNs: the connect goes on after
// connect() returned (the write wait, not the send at once that a target on this host
// allows), until the deadline or until the queue frees and the SYN is sent again.
TEST(NativeHttp, ConnectThatDoesNotCompleteAtOnce) {
  const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::listen(l, 0), 0);  // one connection waiting fills the queue
  ASSERT_EQ(::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int filler = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(filler, reinterpret_cast<sockaddr*>(&a), len), 0);
  HttpSpec s = spec("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/");
  s.health_format = HealthFormat::none;

  const Attempt hung = probeOnce(s, true, 400ms);
  ASSERT_TRUE(hung.native);
  EXPECT_EQ(hung.result.reason, Reason::timeout) << hung.result.detail;
  EXPECT_NE(hung.result.detail.find("while connecting"), std::string::npos) << hung.result.detail;

  // The queue frees after 200 ms; the retransmitted SYN (about 1 s) gets through.
  std::thread server([l] {
    std::this_thread::sleep_for(200ms);
    ::close(::accept4(l, nullptr, nullptr, SOCK_CLOEXEC));  // the filler
    pollfd p{l, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return;
    const int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    char buf[4096];
    pollfd q{c, POLLIN, 0};
    if (::poll(&q, 1, 5000) > 0 && ::recv(c, buf, sizeof(buf), 0) > 0) {
      static constexpr std::string_view kAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
      ::send(c, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL);
    }
    ::close(c);
  });
  const Attempt late = probeOnce(s, true, 4s);
  server.join();
  ::close(filler);
  ::close(l);
  EXPECT_EQ(late.result.status, Status::ok) << late.result.detail;
  EXPECT_EQ(late.result.body_bytes, 2u);
  EXPECT_GT(late.result.phases.connect, 0.1) << "the SYN was sent again";
}

struct Case {
  std::string name;
  std::string response;
  Status status;
  Reason reason;
  int http_status;
  std::uint64_t body_bytes;  // checked when the attempt got a whole response
  std::uint64_t max_body = 1024 * 1024;
  std::string method = "GET";
  std::string contains;  // a body_contains condition, "" none
};

class SameAsCurl : public ::testing::TestWithParam<Case> {};

TEST_P(SameAsCurl, Result) {
  const Case& c = GetParam();
  ScriptServer server(c.response);
  HttpSpec s = spec(server.url("/health"));
  s.max_body = c.max_body;
  s.health_format = HealthFormat::none;  // text bodies would be read as verdicts
  s.method = c.method;
  if (!c.contains.empty()) {
    ConditionSpec cond;
    cond.kind = ConditionSpec::Kind::body_contains;
    cond.value = c.contains;
    s.conditions = {cond};
  }
  for (const bool native : {true, false}) {
    SCOPED_TRACE(native ? "native" : "libcurl");
    const Attempt run = probeOnce(s, native);
    EXPECT_EQ(run.native, native);
    const Result& r = run.result;
    EXPECT_EQ(r.status, c.status) << r.detail;
    EXPECT_EQ(r.reason, c.reason) << r.detail;
    EXPECT_EQ(r.http_status, c.http_status) << r.detail;
    if (c.reason == Reason::none || c.reason == Reason::http_status) {
      EXPECT_EQ(r.body_bytes, c.body_bytes);
      EXPECT_EQ(r.http_version, c.response.rfind("HTTP/1.0", 0) == 0 ? 10 : 11);
      EXPECT_EQ(r.phases.tls, 0.0);
      EXPECT_LE(r.phases.resolve + r.phases.connect + r.phases.processing + r.phases.transfer,
                r.duration + 1e-6);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Responses, SameAsCurl,
    ::testing::Values(
        Case{"length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK",
             Status::ok, Reason::none, 200, 2},
        Case{"chunked",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
             "6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
             Status::ok, Reason::none, 200, 11, 1024 * 1024, "GET", "hello world"},
        Case{"continue_first",
             "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
             Status::ok, Reason::none, 200, 3},
        Case{"http10_until_close", "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nabcd", Status::ok,
             Reason::none, 200, 4},
        Case{"lf_only", "HTTP/1.1 200 OK\nContent-Length: 2\n\nOK", Status::ok, Reason::none, 200,
             2},
        Case{"no_content", "HTTP/1.1 204 No Content\r\n\r\n", Status::ok, Reason::none, 204, 0},
        Case{"head", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", Status::ok, Reason::none,
             200, 0, 1024 * 1024, "HEAD"},
        Case{"unexpected_status",
             "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown",
             Status::fail, Reason::http_status, 503, 4},
        Case{"body_at_max", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", Status::ok,
             Reason::none, 200, 10, 10},
        Case{"length_over_max", "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
             Status::fail, Reason::body_too_large, 200, 0, 10},
        Case{"chunked_over_max",
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n0123456789a\r\n0\r\n\r\n",
             Status::fail, Reason::body_too_large, 200, 0, 10},
        Case{"until_close_over_max", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789a",
             Status::fail, Reason::body_too_large, 200, 0, 10},
        Case{"cut_short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Status::fail,
             Reason::http_protocol, 200, 0},
        Case{"chunked_cut_short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
             Status::fail, Reason::http_protocol, 200, 0},
        Case{"bad_chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
             Status::fail, Reason::http_protocol, 200, 0},
        Case{"nothing", "", Status::fail, Reason::http_protocol, 0, 0},
        Case{"not_http", "SSH-2.0-OpenSSH_9.2\r\n", Status::fail, Reason::http_protocol, 0, 0}),
    [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// /probe's HttpProbeOptions::wire_facts: the request asks for gzip as libcurl's does,
// and the facts blackbox's families come from are the same through both clients; the
// responses the native client does not end as libcurl does are made again through it.
struct WireCase {
  std::string name;
  std::string response;
  bool handoff;  // the native client hands this response to libcurl
  bool follow = true;
};

class WireFactsSameAsCurl : public ::testing::TestWithParam<WireCase> {};

TEST_P(WireFactsSameAsCurl, Result) {
  const WireCase& c = GetParam();
  ScriptServer server(c.response);
  HttpSpec s = spec(server.url("/index.html"));
  s.health_format = HealthFormat::none;
  s.follow_redirects = c.follow;
  s.max_body = std::numeric_limits<std::uint64_t>::max();  // a module without body_size_limit
  HttpProbeOptions o;
  o.wire_facts = true;
  const Attempt native = probeOnce(s, true, 3s, o);
  const std::string sent = server.lastRequest();
  const Attempt curl = probeOnce(s, false, 3s, o);
  ASSERT_TRUE(native.native);
  ASSERT_FALSE(curl.native);
  EXPECT_EQ(native.handoffs, c.handoff ? 1u : 0u);
  EXPECT_EQ(sent, server.lastRequest()) << "the request libcurl sends";
  EXPECT_NE(sent.find("\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n"), std::string::npos) << sent;
  const Result& n = native.result;
  const Result& l = curl.result;
  EXPECT_EQ(n.status, l.status) << n.detail << " / " << l.detail;
  EXPECT_EQ(n.reason, l.reason) << n.detail << " / " << l.detail;
  EXPECT_EQ(n.http_status, l.http_status);
  EXPECT_EQ(n.http_version, l.http_version);
  EXPECT_EQ(n.body_bytes, l.body_bytes);
  EXPECT_EQ(n.redirects, l.redirects);
  ASSERT_TRUE(n.wire && l.wire);
  EXPECT_EQ(n.wire->ip, l.wire->ip);
  EXPECT_EQ(n.wire->ip, "127.0.0.1");
  EXPECT_EQ(n.wire->content_length, l.wire->content_length);
  EXPECT_EQ(n.wire->last_modified, l.wire->last_modified);
  EXPECT_EQ(n.wire->regex_failed, l.wire->regex_failed);
  EXPECT_FALSE(n.wire->tls);
}

const std::string kGzipHello("\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xcb\x48\xcd\xc9\xc9\x57"
                             "\x48\xaf\xca\x2c\x50\x28\xcf\x2f\xca\x49\xe1\x02\x00\x3e\x56\x00"
                             "\xe8\x11\x00\x00\x00",
                             37);  // "hello gzip world\n"

INSTANTIATE_TEST_SUITE_P(
    Responses, WireFactsSameAsCurl,
    ::testing::Values(
        WireCase{"length_and_last_modified",
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                 "Last-Modified: Sun, 29 Nov 2026 06:00:00 GMT\r\n\r\nOK",
                 false},
        WireCase{"two_last_modified_the_last_wins",
                 "HTTP/1.1 200 OK\r\nLast-Modified: Sun, 29 Nov 2026 06:00:00 GMT\r\n"
                 "last-modified: Mon, 30 Nov 2026 07:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
                 false},
        WireCase{"bad_last_modified", "HTTP/1.1 200 OK\r\nLast-Modified: yesterday\r\n\r\nabc",
                 false},
        WireCase{"chunked_no_length",
                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                 false},
        WireCase{"http10_until_close", "HTTP/1.0 404 Not Found\r\n\r\nmissing", false},
        WireCase{"redirect_not_followed", "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", false,
                 false},
        WireCase{"redirect_followed_by_curl",
                 "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", true},
        WireCase{"gzip_decoded_by_curl",
                 "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 37\r\n\r\n" +
                     kGzipHello,
                 true},
        WireCase{"no_content_by_curl", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                 true}),
    [](const ::testing::TestParamInfo<WireCase>& i) { return i.param.name; });

TEST(NativeHttp, WireFactsOfARefusedConnection) {
  const int port = [] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), len);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);  // nothing listens there now
    return static_cast<int>(ntohs(a.sin_port));
  }();
  HttpSpec s = spec("http://127.0.0.1:" + std::to_string(port) + "/");
  s.follow_redirects = true;
  HttpProbeOptions o;
  o.wire_facts = true;
  const Attempt native = probeOnce(s, true, 3s, o);
  const Attempt curl = probeOnce(s, false, 3s, o);
  ASSERT_TRUE(native.native);
  EXPECT_EQ(native.result.reason, Reason::connect) << native.result.detail;
  EXPECT_EQ(native.result.reason, curl.result.reason) << curl.result.detail;
  ASSERT_TRUE(native.result.wire && curl.result.wire);
  EXPECT_EQ(native.result.wire->content_length, 0);
  EXPECT_EQ(native.result.wire->content_length, curl.result.wire->content_length);
  EXPECT_EQ(native.result.wire->ip, "127.0.0.1");
}

}  // namespace
}  // namespace vigie
