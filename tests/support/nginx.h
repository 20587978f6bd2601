#pragma once
/// \file
/// A real nginx (/usr/sbin/nginx) started by a test on free loopback ports, in its
/// own temporary prefix: config, pid, logs and temp paths all inside it.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/tls_cert.h"

namespace vigie::test {

struct NginxOptions {
  /// Extra `location` blocks, in every server: {"= /down", "return 503 'down';"}.
  /// The body is raw nginx directives (a `types {}` + `default_type` pair sets a
  /// Content-Type; `return 302 /x;` redirects).
  std::vector<std::pair<std::string, std::string>> locations;
  /// One TLS server per entry, each on its own port (tlsPort(i)), same root and
  /// locations as the plain one.
  std::vector<CertFiles> tls;
  /// Also listen on [::1] (same port numbers).
  bool ipv6 = false;
  /// Directory served at /; empty: <prefix>/www (created). `.json` files are served as
  /// application/json, `.txt` as text/plain, `.html` as text/html.
  std::string root;
  /// Addresses every server listens on (IPv4, or IPv6 without brackets), instead of
  /// 127.0.0.1 (and ::1 with `ipv6`). The constructor waits for each address:port.
  std::vector<std::string> addresses;
  /// Addresses of the plain-HTTP server only; empty: as the TLS servers.
  std::vector<std::string> http_addresses;
  /// Port of the plain-HTTP server; 0: a free one. A fixed port (80) needs a process
  /// allowed to bind it and nothing else listening there (tests/support/netns.h).
  int http_port = 0;
  /// The plain-HTTP server answers every request with
  /// `301 https://$host:<tlsPort(0)>$request_uri` (needs one `tls` entry).
  bool https_redirect = false;
};

/// Runs nginx in the foreground (`daemon off; master_process off;`) as a child
/// process. The constructor returns once every port accepts connections, and
/// throws std::runtime_error (with nginx's error log) if it does not within 10 s.
/// The destructor stops nginx and removes the prefix directory.
/// Thread: use from one thread.
class Nginx {
 public:
  explicit Nginx(NginxOptions options = {});
  ~Nginx();
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;

  int port() const { return port_; }
  int tlsPort(std::size_t i = 0) const { return tls_ports_.at(i); }
  /// "http://127.0.0.1:<port><path>"; path starts with '/'.
  std::string url(std::string_view path) const;
  /// "https://localhost:<tlsPort(i)><path>" (the test certificates name localhost).
  std::string tlsUrl(std::string_view path, std::size_t i = 0) const;
  /// The served directory; files may be written there at any time.
  const std::string& root() const { return root_; }
  const std::string& prefix() const { return prefix_; }
  /// nginx's error log so far.
  std::string errorLog() const;

 private:
  std::string prefix_;
  std::string root_;
  int port_ = 0;
  std::vector<int> tls_ports_;
  std::unique_ptr<Process> process_;
};

}  // namespace vigie::test
