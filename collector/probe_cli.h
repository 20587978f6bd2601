#pragma once
/// \file
/// `vigie probe TARGET`: one check of any kind, run now, printed as a human reads
/// it (as curl would show a target), to debug a target. The kind follows TARGET
/// unless --kind says otherwise:
///   http://, https://           http (ingress when --address is given)
///   postgres://, postgresql://  postgres (a key=value DSN needs --kind postgres)
///   tcp://host:port             tcp
///   /path, file:///path         disk
/// Heartbeats are pushed, not probed: `--kind heartbeat` explains how to push.
/// Exit code 0 for ok/warn, 1 for fail, 2 for bad options.

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace vigie {

struct ProbeCliOptions {
  std::string url;   // the TARGET
  std::string kind;  // "" = from the target
  // ingress
  std::vector<std::string> addresses;
  std::string mode = "all";
  bool expect_https_redirect = false;
  // postgres
  std::string query;
  std::string expect;  // postgres: expected first value; tcp: regex on the reply
  // tcp
  std::string send;
  // disk
  std::string min_free;
  bool no_write = false;
  std::string format = "auto";
  std::string method = "GET";
  std::vector<std::string> headers;  // "Name: value"
  std::vector<int> expect_status;
  std::string timeout = "5s";
  std::string max_body = "1MiB";
  bool insecure = false;
  std::string ca_file;
  bool follow_redirects = false;
  int cert_min_days = 0;
  std::vector<std::string> conditions;  // "json:/status=pass", "body:REGEX", "latency:800ms"
  bool json = false;
};

void addProbeCliOptions(CLI::App& cmd, ProbeCliOptions& opts);
int runProbeCli(const ProbeCliOptions& opts);

}  // namespace vigie
