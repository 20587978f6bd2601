// The HTTP server on loopback: a loop thread runs the io_context, the test
// thread talks raw HTTP/1.1 over blocking sockets (with receive timeouts, so a
// failing test ends instead of hanging).

#include "exporters/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "exporters/metrics.h"
#include "exporters/routes.h"

namespace vigie {
namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool ok = false;  // a whole response was read
  std::size_t chunks = 0;  // chunked: data chunks read
};

class Client {
 public:
  Client(unsigned short port, bool v6 = false) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc;
    if (v6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_port = htons(port);
      a.sin6_addr = in6addr_loopback;
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0) throw std::runtime_error("connect failed");
  }
  ~Client() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void setReceiveBuffer(int bytes) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  void setTimeout(std::chrono::milliseconds t) {
    timeval tv{static_cast<time_t>(t.count() / 1000),
               static_cast<suseconds_t>((t.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  void send(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close early (limits); the reply tells
      off += static_cast<std::size_t>(n);
    }
  }

  // Reads one response; for a HEAD request the body is not read.
  Reply read(bool head = false) {
    Reply r;
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    const std::string head_text = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    std::size_t pos = head_text.find("\r\n");
    const std::string status_line = head_text.substr(0, pos);
    r.status = std::stoi(status_line.substr(9, 3));
    while (pos != std::string::npos) {
      const std::size_t next = head_text.find("\r\n", pos + 2);
      const std::string line = head_text.substr(pos + 2, next - pos - 2);
      const auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      pos = next;
    }
    const auto te = r.headers.find("transfer-encoding");
    if (!head && te != r.headers.end() && te->second == "chunked") {
      // Chunks: size line, data, CRLF; a last chunk of size 0 and a blank line.
      for (;;) {
        std::size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!fill()) return r;
        }
        const std::size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
        buf_.erase(0, eol + 2);
        while (buf_.size() < size + 2) {
          if (!fill()) return r;
        }
        if (size == 0) {
          buf_.erase(0, 2);
          break;
        }
        r.body.append(buf_, 0, size);
        buf_.erase(0, size + 2);
        ++r.chunks;
      }
      r.ok = true;
      return r;
    }
    const auto conn = r.headers.find("connection");
    const bool until_close = status_line.rfind("HTTP/1.0", 0) == 0 ||
                             (conn != r.headers.end() && conn->second == "close");
    if (!head && !r.headers.count("content-length") && until_close) {
      while (fill()) {
      }
      r.body = std::move(buf_);
      buf_.clear();
      r.ok = true;
      return r;
    }
    const std::size_t length =
        head || !r.headers.count("content-length") ? 0 : std::stoul(r.headers["content-length"]);
    while (buf_.size() < length) {
      if (!fill()) return r;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    r.ok = true;
    return r;
  }

  Reply get(const std::string& target, const std::string& method = "GET",
            const std::string& extra_headers = "") {
    send(method + " " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n");
    return read(method == "HEAD");
  }

  // True when the server closed the connection (EOF or reset) before `limit`.
  bool closedWithin(std::chrono::milliseconds limit) {
    setTimeout(limit);
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool fill() {
    char tmp[4096];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
};

// A body of `count` pieces of `size` bytes (piece k all of 'a' + k % 26), each given a
// moment after it is asked for, as a render thread would; counts what was asked.
class PiecesSource : public HttpBodySource {
 public:
  PiecesSource(boost::asio::io_context& io, std::size_t count, std::size_t size,
               bool fail_at_end = false)
      : io_(io), count_(count), size_(size), fail_at_end_(fail_at_end) {}
  void pull(Give give) override {
    const std::size_t k = pulls++;
    boost::asio::post(io_, [this, k, give = std::move(give)] {
      if (k < count_) return give(std::string(size_, static_cast<char>('a' + k % 26)), false);
      give("", fail_at_end_);
    });
  }
  static std::string expected(std::size_t count, std::size_t size) {
    std::string out;
    for (std::size_t k = 0; k < count; ++k) out.append(size, static_cast<char>('a' + k % 26));
    return out;
  }
  std::atomic<std::size_t> pulls{0};

 private:
  boost::asio::io_context& io_;
  std::size_t count_;
  std::size_t size_;
  bool fail_at_end_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.read_timeout = 300ms;
    o.max_connections = 3;
    server_ = std::make_unique<HttpServer>(io_, o);
    server_->route(http::verb::get, "/hello",
                   [](const HttpRequest&, HttpResponse& res) { res.body = "hello\n"; });
    server_->route(http::verb::post, "/hello", [](const HttpRequest& req, HttpResponse& res) {
      res.status = 201;
      res.body = "got " + std::string(req.body);
    });
    server_->route(http::verb::get, "/echo", [](const HttpRequest& req, HttpResponse& res) {
      const std::string* x = req.param("x");
      res.body = (x ? *x : "-") + "|" + std::string(req.header("X-Test"));
      res.headers.emplace_back("X-Extra", "yes");
    });
    server_->route(http::verb::get, "/files/*", [](const HttpRequest& req, HttpResponse& res) {
      res.body = "prefix " + std::string(req.path);
    });
    server_->route(http::verb::get, "/files/special",
                   [](const HttpRequest&, HttpResponse& res) { res.body = "exact"; });
    server_->route(http::verb::get, "/throw",
                   [](const HttpRequest&, HttpResponse&) { throw std::runtime_error("boom"); });
    server_->routeAsync(http::verb::get, "/later", [this](const HttpRequest&, HttpRespond respond) {
      auto timer = std::make_shared<boost::asio::steady_timer>(io_, 50ms);
      timer->async_wait([timer, respond](boost::system::error_code) {
        HttpResponse r;
        r.body = "later";
        respond(std::move(r));
      });
    });
    server_->routeAsync(http::verb::get, "/stream",
                        [this](const HttpRequest& req, HttpRespond respond) {
                          HttpResponse r;
                          r.body = "ignored";
                          const std::string* n = req.param("n");
                          const std::string* size = req.param("size");
                          auto src = std::make_shared<PiecesSource>(
                              io_, n ? std::stoul(*n) : 3, size ? std::stoul(*size) : 5,
                              req.param("fail") != nullptr);
                          last_source_ = src;
                          r.source = src;
                          r.headers.emplace_back("X-Streamed", "yes");
                          respond(std::move(r));
                        });
    server_->listen("127.0.0.1:0");
    port_ = server_->port();
    ASSERT_NE(port_, 0);
    startLoop();
  }

  void TearDown() override {
    stopAndJoin();
    server_.reset();
  }

  void startLoop() {
    loop_done_ = std::async(std::launch::async, [this] { io_.run(); });
  }

  // Posts stop() and waits for the loop to run out of work.
  bool stopAndJoin() {
    if (!loop_done_.valid()) return true;
    boost::asio::post(io_, [this] { server_->stop(); });
    const bool ended = loop_done_.wait_for(5s) == std::future_status::ready;
    if (!ended) {
      io_.stop();
      loop_done_.wait();
    }
    loop_done_ = {};
    return ended;
  }

  template <class F>
  auto onLoop(F f) {
    std::promise<decltype(f())> p;
    boost::asio::post(io_, [&] { p.set_value(f()); });
    return p.get_future().get();
  }

  boost::asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  unsigned short port_ = 0;
  std::future<void> loop_done_;
  std::shared_ptr<PiecesSource> last_source_;  // set on the loop
};

TEST_F(HttpServerTest, RoutesQueryHeadersAndPrefixes) {
  Client c(port_);
  Reply r = c.get("/hello");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello\n");
  EXPECT_EQ(r.headers["content-type"], "text/plain; charset=utf-8");

  r = c.get("/echo?y=2&x=a%20b+c%26", "GET", "X-Test: t1\r\n");
  EXPECT_EQ(r.body, "a b c&|t1");
  EXPECT_EQ(r.headers["x-extra"], "yes");

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/files/special", "exact"},
      {"/files/a/b", "prefix /files/a/b"},
      {"/files/", "prefix /files/"},
  };
  for (const auto& [target, body] : cases) {
    r = c.get(target);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.body, body) << target;
  }

  c.send("POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcd");
  r = c.read();
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "got abcd");
}

TEST_F(HttpServerTest, NotFoundAndWrongMethodAreJson) {
  Client c(port_);
  Reply r = c.get("/nope?x=1");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  auto v = boost::json::parse(r.body).as_object();
  EXPECT_EQ(v.at("error").as_string(), "not found");
  EXPECT_EQ(v.at("path").as_string(), "/nope");

  r = c.get("/echo", "DELETE");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET, HEAD");
  v = boost::json::parse(r.body).as_object();
  EXPECT_EQ(v.at("error").as_string(), "method not allowed");

  // Still usable after errors (keep-alive).
  EXPECT_EQ(c.get("/hello").status, 200);
}

TEST_F(HttpServerTest, HeadHasHeadersWithoutBody) {
  Client c(port_);
  Reply r = c.get("/hello", "HEAD");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-length"], "6");
  // Had a body been sent, it would be read as the start of the next response.
  r = c.get("/echo?x=next");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "next|");
}

TEST_F(HttpServerTest, KeepAliveAndPipelining) {
  Client c(port_);
  for (int i = 0; i < 5; ++i) {
    Reply r = c.get("/echo?x=" + std::to_string(i));
    ASSERT_TRUE(r.ok) << i;
    EXPECT_EQ(r.body, std::to_string(i) + "|");
  }
  c.send("GET /echo?x=p1 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?x=p2 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(c.read().body, "p1|");
  EXPECT_EQ(c.read().body, "p2|");
  EXPECT_EQ(onLoop([this] { return server_->stats().connections_total; }), 1u);

  // HTTP/1.0 without keep-alive: answered, then closed.
  c.send("GET /hello HTTP/1.0\r\n\r\n");
  Reply r = c.read();
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(c.closedWithin(2000ms));
}

TEST_F(HttpServerTest, StreamedBodyIsChunkedAndKeepsTheConnection) {
  Client c(port_);
  Reply r = c.get("/stream?n=4&size=3");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
  EXPECT_EQ(r.headers["x-streamed"], "yes");
  EXPECT_EQ(r.headers.count("content-length"), 0u);
  EXPECT_EQ(r.body, "aaabbbcccddd");
  EXPECT_EQ(r.chunks, 4u);
  // The connection is kept for the next request; HEAD has the headers only.
  EXPECT_EQ(c.get("/hello").body, "hello\n");
  r = c.get("/stream", "HEAD");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
  EXPECT_EQ(c.get("/hello").body, "hello\n");
  // An empty body: the last chunk alone.
  r = c.get("/stream?n=0");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(c.get("/hello").body, "hello\n");

  // HTTP/1.0 has no chunks: the body ends with the connection.
  Client old(port_);
  old.send("GET /stream?n=3&size=2 HTTP/1.0\r\n\r\n");
  r = old.read();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.headers.count("transfer-encoding"), 0u);
  EXPECT_EQ(r.body, "aabbcc");

  // A source that fails: the answer is cut (no last chunk), the connection closed.
  Client cut(port_);
  r = cut.get("/stream?n=2&size=4&fail=1");
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(cut.closedWithin(2s));
}

// A reader that reads nothing of a huge streamed body holds back the source: vigie
// keeps a few pieces and what the kernel's socket buffers take, not the whole body.
TEST_F(HttpServerTest, SlowReaderOfAHugeStreamHoldsAFewPieces) {
  constexpr std::size_t kPieces = 128;
  constexpr std::size_t kSize = 1 << 20;
  Client c(port_);
  c.setReceiveBuffer(256 << 10);
  c.send("GET /stream?n=" + std::to_string(kPieces) + "&size=" + std::to_string(kSize) +
         " HTTP/1.1\r\nHost: t\r\n\r\n");
  // Wait until the server stops asking for pieces (the socket is full).
  std::shared_ptr<PiecesSource> src;
  std::size_t seen = 0;
  auto stable_since = std::chrono::steady_clock::now();
  const auto deadline = stable_since + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!src) src = onLoop([this] { return last_source_; });
    const std::size_t now = src ? src->pulls.load() : 0;
    if (now != seen || now == 0) {
      seen = now;
      stable_since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - stable_since > 500ms) {
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(src);
  std::printf("a reader that reads nothing: %zu pieces of %zu asked for\n", seen, kPieces);
  EXPECT_GT(seen, 0u);
  EXPECT_LE(seen, 16u);  // socket buffers (4 MiB to send) plus two pieces
  // Then it reads: the whole body comes, in order.
  c.setTimeout(10s);
  Reply r = c.read();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.body.size(), kPieces * kSize);
  EXPECT_TRUE(r.body == PiecesSource::expected(kPieces, kSize));
  EXPECT_EQ(src->pulls.load(), kPieces + 1);
}

TEST_F(HttpServerTest, OversizedHeaderAndBody) {
  {
    Client c(port_);
    Reply r = c.get("/hello", "GET", "X-Big: " + std::string(10 * 1024, 'a') + "\r\n");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.status, 431);
    EXPECT_TRUE(c.closedWithin(2000ms));
  }
  {
    Client c(port_);
    c.send("POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    Reply r = c.read();
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.status, 413);
  }
  {
    Client c(port_);
    c.send("GARBAGE\r\n\r\n");
    Reply r = c.read();
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.status, 400);
  }
  // A request just under the limit is fine.
  Client c(port_);
  EXPECT_EQ(c.get("/hello", "GET", "X-Big: " + std::string(7 * 1024, 'a') + "\r\n").status, 200);
}

TEST_F(HttpServerTest, SlowClientIsClosedAfterTimeout) {
  Client c(port_);
  const auto t0 = std::chrono::steady_clock::now();
  c.send("GET /hello HTTP/1.1\r\nHost: t\r\n");  // never finishes the header
  EXPECT_TRUE(c.closedWithin(3000ms));
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 3000ms);
  // Idle keep-alive connections too.
  Client idle(port_);
  EXPECT_EQ(idle.get("/hello").status, 200);
  EXPECT_TRUE(idle.closedWithin(3000ms));
}

TEST_F(HttpServerTest, ThrowingHandlerGives500AndIsCounted) {
  Client c(port_);
  Reply r = c.get("/throw");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(boost::json::parse(r.body).at("error").as_string(), "internal error");
  EXPECT_EQ(r.body.find("boom"), std::string::npos);  // internals stay in the log
  EXPECT_EQ(onLoop([this] { return server_->stats().handler_errors; }), 1u);
  EXPECT_EQ(c.get("/hello").status, 200);
}

TEST_F(HttpServerTest, AsyncHandler) {
  Client c(port_);
  Reply r = c.get("/later");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.body, "later");
  EXPECT_EQ(c.get("/later", "HEAD").headers["content-length"], "5");
}

TEST_F(HttpServerTest, MaxConnectionsPausesAccept) {
  Client a(port_), b(port_), c(port_);
  for (Client* x : {&a, &b, &c}) ASSERT_EQ(x->get("/hello").status, 200);
  Client d(port_);  // connects (kernel backlog) but is not accepted
  d.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  d.setTimeout(150ms);
  EXPECT_FALSE(d.read().ok);
  a.close();
  d.setTimeout(3000ms);
  Reply r = d.read();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(onLoop([this] { return server_->stats().accept_pauses; }), 1u);
}

TEST_F(HttpServerTest, StopClosesConnectionsAndEndsTheLoop) {
  Client c(port_);
  ASSERT_EQ(c.get("/hello").status, 200);
  Client half(port_);
  half.send("GET /hel");
  EXPECT_TRUE(stopAndJoin());
  EXPECT_TRUE(c.closedWithin(2000ms));
  EXPECT_TRUE(half.closedWithin(2000ms));
}

// Handlers may take a bounded share of the loop: a flood of slow requests waits its
// turn while other work on the loop (the probes, here a 5 ms ticker) goes on.
TEST(HttpServerShare, AFloodOfSlowRequestsLeavesTheLoopToOthers) {
  boost::asio::io_context io;
  HttpServerOptions o;
  o.max_loop_share = 0.25;
  HttpServer server(io, o);
  constexpr auto kWork = 30ms;
  server.route(http::verb::get, "/busy", [&](const HttpRequest&, HttpResponse& res) {
    const auto until = std::chrono::steady_clock::now() + kWork;
    while (std::chrono::steady_clock::now() < until) {
    }
    res.body = "done";
  });
  server.listen("127.0.0.1:0");
  boost::asio::steady_timer ticker(io);
  std::atomic<long> max_gap_us{0};
  std::atomic<bool> ticking{true};
  auto last = std::chrono::steady_clock::now();
  std::function<void()> tick = [&] {
    ticker.expires_after(5ms);
    ticker.async_wait([&](boost::system::error_code ec) {
      if (ec || !ticking) return;
      const auto now = std::chrono::steady_clock::now();
      const long gap = std::chrono::duration_cast<std::chrono::microseconds>(now - last).count();
      if (gap > max_gap_us) max_gap_us = gap;
      last = now;
      tick();
    });
  };
  boost::asio::post(io, [&] {
    last = std::chrono::steady_clock::now();
    tick();
  });
  auto done = std::async(std::launch::async, [&] { io.run(); });

  // 8 clients, 3 pipelined requests each: 720 ms of handler work at once.
  std::vector<std::unique_ptr<Client>> clients;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    clients.back()->setTimeout(10000ms);
    std::string reqs;
    for (int k = 0; k < 3; ++k) reqs += "GET /busy HTTP/1.1\r\nHost: t\r\n\r\n";
    clients.back()->send(reqs);
  }
  int answered = 0;
  for (auto& c : clients) {
    for (int k = 0; k < 3; ++k) answered += c->read().body == "done";
  }
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  ticking = false;
  boost::asio::post(io, [&] {
    ticker.cancel();
    server.stop();
  });
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(answered, 24);
  // 720 ms of handlers at a quarter of the loop: about 2.9 s, less one 12.5 ms burst.
  EXPECT_GE(elapsed, 2500ms);
  EXPECT_GT(server.stats().deferred, 0u);
  // Between two handlers, the ticker ran: its longest gap is one handler, not the flood
  // (without the bound, 8 handlers back to back: 240 ms).
  EXPECT_LT(max_gap_us.load(), 150000) << "longest gap between ticks: " << max_gap_us << " us";
  std::printf("[ figures ] 24 requests of 30 ms at a quarter of the loop: %.2f s, %llu deferred, "
              "longest gap of a 5 ms ticker %.1f ms\n",
              std::chrono::duration<double>(elapsed).count(),
              static_cast<unsigned long long>(server.stats().deferred), max_gap_us / 1000.0);
}

TEST(HttpServerListen, Ipv6AndBadAddresses) {
  boost::asio::io_context io;
  HttpServer server(io);
  server.route(http::verb::get, "/x", [](const HttpRequest& req, HttpResponse& res) {
    res.body = std::string(req.remote.substr(0, 5));
  });
  server.listen("[::1]:0");
  const unsigned short port = server.port();
  ASSERT_NE(port, 0);
  auto done = std::async(std::launch::async, [&] { io.run(); });
  {
    Client c(port, /*v6=*/true);
    Reply r = c.get("/x");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "[::1]");
  }
  boost::asio::post(io, [&] { server.stop(); });
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);

  boost::asio::io_context io2;
  HttpServer other(io2);
  for (const char* bad :
       {"localhost:80", "127.0.0.1", "127.0.0.1:99999", "1.2.3.4.5:80", "127.0.0.1:x"}) {
    EXPECT_THROW(other.listen(bad), std::runtime_error) << bad;
  }
  // A port in use.
  HttpServer first(io2);
  first.listen("127.0.0.1:0");
  EXPECT_THROW(other.listen("127.0.0.1:" + std::to_string(first.port())), std::runtime_error);
}

TEST(StandardRoutes, HealthReadyMetricsApi) {
  boost::asio::io_context io;
  HttpServer server(io);
  prometheus::Registry self;
  auto snapshot = std::make_shared<Snapshot>();
  auto cfg = std::make_shared<Config>();
  ServiceConfig svc;
  svc.name = "web";
  CheckConfig chk;
  chk.name = "home";
  chk.key = "web/home";
  chk.spec = HttpSpec{};
  svc.checks.push_back(chk);
  cfg->services.push_back(svc);
  snapshot->config = cfg;
  auto st = std::make_shared<CheckStatus>();
  st->service = std::shared_ptr<const ServiceConfig>(cfg, &cfg->services[0]);
  st->check = std::shared_ptr<const CheckConfig>(cfg, &cfg->services[0].checks[0]);
  st->state = CheckState::down;
  snapshot->checks.push_back(st);
  std::atomic<bool> ready{false};
  registerStandardRoutes(
      server, [snapshot] { return std::shared_ptr<const Snapshot>(snapshot); }, self,
      [&ready] { return ready.load(); }, "9.9.9");
  server.listen("127.0.0.1:0");
  auto done = std::async(std::launch::async, [&] { io.run(); });

  Client c(server.port());
  Reply r = c.get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(c.get("/readyz").status, 503);
  ready = true;
  EXPECT_EQ(c.get("/readyz").status, 200);

  r = c.get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("vigie_build_info{version=\"9.9.9\"} 1\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("state=\"down\"} 1\n"), std::string::npos);
  EXPECT_NE(r.body.find("vigie_http_requests_total "), std::string::npos);

  EXPECT_EQ(r.headers.count("content-length"), 1u);  // small: the shared text, whole
  EXPECT_EQ(r.chunks, 0u);

  r = c.get("/api/v1/checks?state=down");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["cache-control"], "no-store");
  EXPECT_EQ(boost::json::parse(r.body).at("checks").as_array().size(), 1u);
  EXPECT_EQ(c.get("/api/v1/checks?state=bogus").status, 400);
  r = c.get("/api/v1/checks/web/home");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(boost::json::parse(r.body).at("state").as_string(), "down");
  r = c.get("/api/v1/checks/web/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers["content-type"], "application/json");

  boost::asio::post(io, [&] { server.stop(); });
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
}

// A snapshot of `checks` HTTP checks, one service each, every seventh down.
std::shared_ptr<Snapshot> bigSnapshot(int checks) {
  auto snapshot = std::make_shared<Snapshot>();
  auto cfg = std::make_shared<Config>();
  const int kChecks = checks;
  for (int i = 0; i < kChecks; ++i) {
    ServiceConfig svc;
    svc.name = "service-" + std::to_string(i);
    svc.group = "g";
    CheckConfig chk;
    chk.name = "health";
    chk.key = svc.name + "/health";
    chk.spec = HttpSpec{};
    svc.checks.push_back(chk);
    cfg->services.push_back(svc);
  }
  snapshot->config = cfg;
  for (int i = 0; i < kChecks; ++i) {
    auto st = std::make_shared<CheckStatus>();
    st->service = std::shared_ptr<const ServiceConfig>(cfg, &cfg->services[i]);
    st->check = std::shared_ptr<const CheckConfig>(cfg, &cfg->services[i].checks[0]);
    st->state = i % 7 == 0 ? CheckState::down : CheckState::up;
    Result r;
    r.status = i % 7 == 0 ? Status::fail : Status::ok;
    r.http_status = 200;
    r.duration = 0.001 * i;
    st->last = r;
    snapshot->checks.push_back(st);
  }
  return snapshot;
}

// Thousands of checks: /metrics is streamed in pieces, the same text.
TEST(StandardRoutes, BigMetricsAreStreamedInPieces) {
  boost::asio::io_context io;
  HttpServer server(io);
  prometheus::Registry self;
  const auto snapshot = bigSnapshot(4000);
  registerStandardRoutes(
      server, [snapshot] { return std::shared_ptr<const Snapshot>(snapshot); }, self,
      [] { return true; }, "9.9.9");
  server.listen("127.0.0.1:0");
  auto done = std::async(std::launch::async, [&] { io.run(); });

  const std::string part = renderSnapshotMetricsWith(snapshot.get(), "9.9.9", {});
  Client c(server.port());
  c.setTimeout(10s);
  for (int round = 0; round < 2; ++round) {
    Reply r = c.get("/metrics");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
    EXPECT_GT(r.chunks, 2u) << part.size();
    ASSERT_GE(r.body.size(), part.size());
    // The snapshot's families, then the server's own.
    EXPECT_TRUE(r.body.compare(0, part.size(), part) == 0);
    EXPECT_NE(r.body.find("\nvigie_http_requests_total ", part.size() - 1), std::string::npos);
  }
  Reply h = c.get("/metrics", "HEAD");
  ASSERT_TRUE(h.ok);
  EXPECT_EQ(h.body, "");
  EXPECT_EQ(c.get("/healthz").body, "ok\n");

  boost::asio::post(io, [&] { server.stop(); });
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
}

// Stopping in the middle of big scrapes (as SIGTERM does): the render thread ends
// with the server, while the loop is alive, and nothing is left to run into a
// destroyed io_context (ASan and TSan in CI would see it).
TEST(StandardRoutes, StopInTheMiddleOfBigScrapes) {
  const auto snapshot = bigSnapshot(20000);  // about 20 pieces each
  for (int round = 0; round < 3; ++round) {
    auto io = std::make_unique<boost::asio::io_context>();
    auto server = std::make_unique<HttpServer>(*io);
    prometheus::Registry self;
    registerStandardRoutes(
        *server, [snapshot] { return std::shared_ptr<const Snapshot>(snapshot); }, self,
        [] { return true; }, "9.9.9");
    server->listen("127.0.0.1:0");
    auto done = std::async(std::launch::async, [&] { io->run(); });
    // Clients that ask and read nothing: the server waits on their windows with
    // pieces rendered or being rendered.
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 4; ++i) {
      clients.push_back(std::make_unique<Client>(server->port()));
      clients.back()->send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * (round + 1)));
    boost::asio::post(*io, [&] {
      server->stop();
      io->stop();
    });
    ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
    server.reset();
    io.reset();  // handlers still queued (pieces, connections) are destroyed here
    clients.clear();
  }
}

}  // namespace
}  // namespace vigie
