#include "tests/support/nginx.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "tests/support/ports.h"

namespace vigie::test {
namespace {

std::string listenLines(int port, bool ssl, bool ipv6) {
  const char* suffix = ssl ? " ssl" : "";
  std::string s = fmt::format("    listen 127.0.0.1:{}{};\n", port, suffix);
  if (ipv6) s += fmt::format("    listen [::1]:{}{};\n", port, suffix);
  return s;
}

std::string bracketed(const std::string& address) {
  return address.find(':') != std::string::npos ? "[" + address + "]" : address;
}

std::string listenLines(int port, bool ssl, const std::vector<std::string>& addresses) {
  std::string s;
  for (const auto& a : addresses) {
    s += fmt::format("    listen {}:{}{};\n", bracketed(a), port, ssl ? " ssl" : "");
  }
  return s;
}

// portAccepts() only knows 127.0.0.1.
bool accepts(const std::string& address, int port) {
  namespace ip = boost::asio::ip;
  boost::system::error_code ec;
  const auto addr = ip::make_address(address, ec);
  if (ec) return false;
  boost::asio::io_context io;
  ip::tcp::socket s(io);
  s.connect(ip::tcp::endpoint(addr, static_cast<unsigned short>(port)), ec);
  return !ec;
}

}  // namespace

Nginx::Nginx(NginxOptions options) {
  prefix_ = makeTempDir("nginx");
  root_ = options.root.empty() ? prefix_ + "/www" : options.root;
  std::filesystem::create_directories(root_);
  std::filesystem::create_directories(prefix_ + "/logs");
  std::filesystem::create_directories(prefix_ + "/tmp");

  port_ = options.http_port != 0 ? options.http_port : freePort();
  for (std::size_t i = 0; i < options.tls.size(); ++i) {
    int p = freePort();
    while (p == port_ || std::find(tls_ports_.begin(), tls_ports_.end(), p) != tls_ports_.end()) {
      p = freePort();
    }
    tls_ports_.push_back(p);
  }

  std::string locations;
  for (const auto& [match, body] : options.locations) {
    locations += fmt::format("    location {} {{ {} }}\n", match, body);
  }
  const std::string common = fmt::format("    root {};\n{}", root_, locations);

  const std::vector<std::string>& http_addresses =
      options.http_addresses.empty() ? options.addresses : options.http_addresses;
  auto plainListen = [&] {
    return http_addresses.empty() ? listenLines(port_, false, options.ipv6)
                                  : listenLines(port_, false, http_addresses);
  };
  auto tlsListen = [&](int port) {
    return options.addresses.empty() ? listenLines(port, true, options.ipv6)
                                     : listenLines(port, true, options.addresses);
  };
  // A server-level return runs before any location is chosen.
  const std::string redirect =
      options.https_redirect && !tls_ports_.empty()
          ? fmt::format("    return 301 https://$host:{}$request_uri;\n", tls_ports_[0])
          : std::string();
  std::string servers = fmt::format("  server {{\n{}{}{}  }}\n", plainListen(), redirect, common);
  for (std::size_t i = 0; i < options.tls.size(); ++i) {
    servers +=
        fmt::format("  server {{\n{}    ssl_certificate {};\n    ssl_certificate_key {};\n{}  }}\n",
                    tlsListen(tls_ports_[i]), options.tls[i].cert, options.tls[i].key, common);
  }

  const std::string t = prefix_ + "/tmp";
  // master_process off: one process that never changes user, so running as root or
  // not makes no difference; daemon off keeps it our child.
  const std::string conf = fmt::format(
      "daemon off;\n"
      "master_process off;\n"
      "worker_processes 1;\n"
      "pid {p}/nginx.pid;\n"
      "error_log {p}/logs/error.log info;\n"
      "events {{ worker_connections 4096; }}\n"
      "http {{\n"
      "  types {{ text/html html; application/json json; text/plain txt; }}\n"
      "  default_type application/octet-stream;\n"
      "  access_log {p}/logs/access.log;\n"
      "  client_body_temp_path {t}/body;\n"
      "  proxy_temp_path {t}/proxy;\n"
      "  fastcgi_temp_path {t}/fastcgi;\n"
      "  uwsgi_temp_path {t}/uwsgi;\n"
      "  scgi_temp_path {t}/scgi;\n"
      "  keepalive_timeout 5s;\n"
      "{s}"
      "}}\n",
      fmt::arg("p", prefix_), fmt::arg("t", t), fmt::arg("s", servers));
  writeFile(prefix_ + "/nginx.conf", conf);

  Process::Options po;
  po.args = {"/usr/sbin/nginx",          "-p", prefix_, "-c", prefix_ + "/nginx.conf", "-e",
             prefix_ + "/logs/error.log"};
  po.output_file = prefix_ + "/logs/output.log";
  process_ = std::make_unique<Process>(po);

  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    bool all = true;
    if (http_addresses.empty()) {
      all = portAccepts(port_);
    } else {
      for (const auto& a : http_addresses) all = all && accepts(a, port_);
    }
    for (int p : tls_ports_) {
      if (options.addresses.empty()) {
        all = all && portAccepts(p);
      } else {
        for (const auto& a : options.addresses) all = all && accepts(a, p);
      }
    }
    if (all) break;
    if (!process_->running() || std::chrono::steady_clock::now() > until) {
      const std::string log = errorLog() + process_->output();
      process_.reset();
      removeTree(prefix_);
      throw std::runtime_error("nginx did not start:\n" + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Nginx::~Nginx() {
  process_.reset();
  removeTree(prefix_);
}

std::string Nginx::url(std::string_view path) const {
  return fmt::format("http://127.0.0.1:{}{}", port_, path);
}

std::string Nginx::tlsUrl(std::string_view path, std::size_t i) const {
  return fmt::format("https://localhost:{}{}", tls_ports_.at(i), path);
}

std::string Nginx::errorLog() const { return readFile(prefix_ + "/logs/error.log"); }

}  // namespace vigie::test
