#include "tests/support/blackbox.h"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "tests/support/ports.h"

namespace vigie::test {

namespace {

// One plain GET with a 1 s budget; true on a 200 answer.
bool healthy(int port) {
  namespace asio = boost::asio;
  try {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    const std::string req =
        "GET /-/healthy HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    asio::write(s, asio::buffer(req));
    std::string answer;
    boost::system::error_code ec;
    char buf[512];
    for (;;) {
      const std::size_t n = s.read_some(asio::buffer(buf), ec);
      answer.append(buf, n);
      if (ec || answer.size() > 4096) break;
    }
    return answer.rfind("HTTP/1.0 200", 0) == 0 || answer.rfind("HTTP/1.1 200", 0) == 0;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

BlackboxExporter::BlackboxExporter(const std::string& config_yaml) {
  if (access(kBlackboxBinary, X_OK) != 0) {
    throw std::runtime_error(
        fmt::format("{} not found: install prometheus-blackbox-exporter (scripts/install-deps.sh)",
                    kBlackboxBinary));
  }
  dir_ = makeTempDir("blackbox");
  writeFile(dir_ + "/blackbox.yml", config_yaml);
  // A free port may be taken between freePort() and the bind: try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = freePort();
    process_ = std::make_unique<Process>(Process::Options{
        {kBlackboxBinary, "--config.file=" + dir_ + "/blackbox.yml",
         fmt::format("--web.listen-address=127.0.0.1:{}", port_), "--log.level=warn"},
        {},
        dir_ + "/blackbox.log",
        dir_});
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end && process_->running()) {
      if (healthy(port_)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (process_->running()) break;  // running but never healthy: give up
  }
  const std::string log = output();
  process_.reset();
  removeTree(dir_);
  throw std::runtime_error("blackbox_exporter did not start:\n" + log);
}

BlackboxExporter::~BlackboxExporter() {
  process_.reset();
  removeTree(dir_);
}

std::string BlackboxExporter::address() const { return fmt::format("127.0.0.1:{}", port_); }

std::string BlackboxExporter::url(std::string_view path) const {
  return fmt::format("http://127.0.0.1:{}{}", port_, path);
}

std::string BlackboxExporter::output() const { return process_ ? process_->output() : ""; }

}  // namespace vigie::test
