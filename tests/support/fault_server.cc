#include "tests/support/fault_server.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace vigie::test {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

awaitable<void> sleepFor(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(use_awaitable);
}

awaitable<void> discardForever(tcp::socket& s) {
  char buf[4096];
  for (;;) co_await s.async_read_some(asio::buffer(buf), use_awaitable);
}

struct Counters {
  std::atomic<std::size_t> open{0};
  std::atomic<std::uint64_t> sent{0};
};

// Writes and counts.
awaitable<void> put(tcp::socket& s, Counters& n, std::string_view data) {
  co_await asio::async_write(s, asio::buffer(data), use_awaitable);
  n.sent += data.size();
}

// The path of the request line "GET /path HTTP/1.1".
std::string requestPath(const std::string& head) {
  const auto sp = head.find(' ');
  if (sp == std::string::npos) return "/";
  const auto end = head.find(' ', sp + 1);
  if (end == std::string::npos) return "/";
  return head.substr(sp + 1, end - sp - 1);
}

awaitable<void> serve(tcp::socket s, FaultServer::Mode mode, Counters& n) {
  using Mode = FaultServer::Mode;
  ++n.open;
  struct Closed {
    Counters& n;
    ~Closed() { --n.open; }
  } closed{n};
  try {
    if (mode == Mode::never_answer || mode == Mode::tls_stall) {
      co_await discardForever(s);
      co_return;
    }
    std::string head;
    co_await asio::async_read_until(s, asio::dynamic_buffer(head, 65536), "\r\n\r\n",
                                    use_awaitable);
    switch (mode) {
      case Mode::trickle: {
        co_await put(s, n,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 1000\r\n\r\n");
        for (int i = 0; i < 1000; ++i) {
          co_await put(s, n, "x");
          co_await sleepFor(std::chrono::seconds(1));
        }
        break;
      }
      case Mode::reset_mid_body: {
        std::string out =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n";
        out.append(1000, 'x');
        co_await put(s, n, out);
        // Let the client read the head first, so the reset lands mid-body.
        co_await sleepFor(std::chrono::milliseconds(200));
        s.set_option(asio::socket_base::linger(true, 0));
        s.close();
        break;
      }
      case Mode::garbage: {
        static constexpr unsigned char kJunk[] = {0x00, 0xff, 0x13, 0x37, 'n',  'o',  't',  ' ',
                                                  'h',  't',  't',  'p',  '\r', '\n', 0x01, 0x02};
        co_await put(s, n,
                     std::string_view(reinterpret_cast<const char*>(kJunk), sizeof(kJunk)));
        boost::system::error_code ec;
        s.shutdown(tcp::socket::shutdown_both, ec);
        break;
      }
      case Mode::huge_body: {
        co_await put(s, n,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Connection: close\r\n\r\n");
        const std::string chunk(65536, 'y');
        for (;;) co_await put(s, n, chunk);
      }
      case Mode::redirect_loop: {
        co_await put(s, n,
                     fmt::format("HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n",
                                 requestPath(head)));
        boost::system::error_code ec;
        s.shutdown(tcp::socket::shutdown_send, ec);
        co_await discardForever(s);
        break;
      }
      case Mode::nested_json: {
        constexpr std::size_t kDepth = 100000;
        std::string out = fmt::format(
            "HTTP/1.1 200 OK\r\nContent-Type: application/health+json\r\n"
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            2 * kDepth);
        out.append(kDepth, '[');
        out.append(kDepth, ']');
        co_await put(s, n, out);
        co_await discardForever(s);
        break;
      }
      case Mode::hostile_bytes: {
        // Raw invalid UTF-8 (a lone 0xff, a truncated sequence, an overlong NUL),
        // escaped NULs and terminal escapes, in the page's words and in a header.
        const std::string body =
            "{\"status\":\"fail\",\"output\":\"disk \xff\xfe\\u0000 full \xc3\x28 \xc0\x80"
            "\\u001b[31m\",\"checks\":{\"db\xff\\u0000:conn\":[{\"status\":\"fail\","
            "\"output\":\"\\u0000\\u0007bell \xed\xa0\x80\"}]}}";
        co_await put(s, n,
                     fmt::format("HTTP/1.1 200 OK\r\nContent-Type: application/health+json\r\n"
                                 "X-Junk: \xff\xfe\xc3\x28\x01\x7f\r\n"
                                 "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                                 body.size(), body));
        co_await discardForever(s);
        break;
      }
      case Mode::nul_header: {
        static constexpr char kHead[] =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Nul: a\0b\r\n"
            "Content-Length: 2\r\nConnection: close\r\n\r\nOK";
        co_await put(s, n, std::string_view(kHead, sizeof(kHead) - 1));
        co_await discardForever(s);
        break;
      }
      case Mode::gib_body: {
        co_await put(s, n,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        constexpr std::size_t kChunk = 65536;
        constexpr std::uint64_t kTotal = std::uint64_t{1} << 30;
        std::string chunk = fmt::format("{:x}\r\n", kChunk);
        chunk.append(kChunk, 'g');
        chunk.append("\r\n");
        for (std::uint64_t done = 0; done < kTotal; done += kChunk) co_await put(s, n, chunk);
        co_await put(s, n, "0\r\n\r\n");
        break;
      }
      default:
        break;
    }
  } catch (const std::exception&) {
    // The client went away: that is what most modes are waiting for.
  }
}

}  // namespace

struct FaultServer::Impl {
  explicit Impl(Mode m)
      : mode(m), acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}

  awaitable<void> acceptLoop() {
    for (;;) {
      tcp::socket s = co_await acceptor.async_accept(use_awaitable);
      ++accepted;
      asio::co_spawn(io, serve(std::move(s), mode, counters), asio::detached);
    }
  }

  Mode mode;
  // Before io: destroying io destroys the suspended coroutines, which count down.
  Counters counters;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::atomic<std::size_t> accepted{0};
  std::thread thread;
};

FaultServer::FaultServer(Mode mode) : impl_(std::make_unique<Impl>(mode)) {
  asio::co_spawn(impl_->io, impl_->acceptLoop(), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

FaultServer::~FaultServer() {
  impl_->io.stop();
  impl_->thread.join();
  // Destroying the io_context (with impl_) destroys the suspended coroutines, which
  // closes their sockets.
}

int FaultServer::port() const { return impl_->acceptor.local_endpoint().port(); }

std::string FaultServer::url(std::string_view path) const {
  return fmt::format("{}://127.0.0.1:{}{}", impl_->mode == Mode::tls_stall ? "https" : "http",
                     port(), path);
}

std::size_t FaultServer::accepted() const { return impl_->accepted.load(); }

std::size_t FaultServer::open() const { return impl_->counters.open.load(); }

std::uint64_t FaultServer::bytesSent() const { return impl_->counters.sent.load(); }

}  // namespace vigie::test
