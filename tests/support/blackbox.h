#pragma once
/// \file
/// A real Prometheus blackbox_exporter (Debian's /usr/bin/prometheus-blackbox-exporter)
/// started by a test on a free loopback port with a given blackbox.yml.

#include <memory>
#include <string>
#include <string_view>

#include "tests/support/process.h"

namespace vigie::test {

inline constexpr const char* kBlackboxBinary = "/usr/bin/prometheus-blackbox-exporter";

/// Runs blackbox_exporter as a child process. The constructor writes `config_yaml`
/// to a temporary blackbox.yml, starts the exporter on 127.0.0.1:<free port> and
/// returns once it answers /-/healthy; it throws std::runtime_error (with the
/// exporter's output) if that does not happen within 10 s, or if the binary is
/// missing (scripts/install-deps.sh installs it). The destructor stops it and
/// removes the directory. Thread: use from one thread.
class BlackboxExporter {
 public:
  explicit BlackboxExporter(const std::string& config_yaml);
  ~BlackboxExporter();
  BlackboxExporter(const BlackboxExporter&) = delete;
  BlackboxExporter& operator=(const BlackboxExporter&) = delete;

  int port() const { return port_; }
  /// "127.0.0.1:<port>".
  std::string address() const;
  /// "http://127.0.0.1:<port><path>".
  std::string url(std::string_view path) const;
  /// The exporter's log so far.
  std::string output() const;

 private:
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace vigie::test
