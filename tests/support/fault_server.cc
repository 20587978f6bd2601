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

awaitable<void> serve(tcp::socket s, FaultServer::Mode mode) {
  using Mode = FaultServer::Mode;
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
        co_await asio::async_write(
            s,
            asio::buffer(std::string_view("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                          "Content-Length: 1000\r\n\r\n")),
            use_awaitable);
        for (int i = 0; i < 1000; ++i) {
          co_await asio::async_write(s, asio::buffer(std::string_view("x")), use_awaitable);
          co_await sleepFor(std::chrono::seconds(1));
        }
        break;
      }
      case Mode::reset_mid_body: {
        std::string out =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n";
        out.append(1000, 'x');
        co_await asio::async_write(s, asio::buffer(out), use_awaitable);
        // Let the client read the head first, so the reset lands mid-body.
        co_await sleepFor(std::chrono::milliseconds(200));
        s.set_option(asio::socket_base::linger(true, 0));
        s.close();
        break;
      }
      case Mode::garbage: {
        static constexpr unsigned char kJunk[] = {0x00, 0xff, 0x13, 0x37, 'n',  'o',  't',  ' ',
                                                  'h',  't',  't',  'p',  '\r', '\n', 0x01, 0x02};
        co_await asio::async_write(s, asio::buffer(kJunk, sizeof(kJunk)), use_awaitable);
        boost::system::error_code ec;
        s.shutdown(tcp::socket::shutdown_both, ec);
        break;
      }
      case Mode::huge_body: {
        co_await asio::async_write(
            s,
            asio::buffer(std::string_view("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                          "Connection: close\r\n\r\n")),
            use_awaitable);
        const std::string chunk(65536, 'y');
        for (;;) co_await asio::async_write(s, asio::buffer(chunk), use_awaitable);
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
      asio::co_spawn(io, serve(std::move(s), mode), asio::detached);
    }
  }

  Mode mode;
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

}  // namespace vigie::test
