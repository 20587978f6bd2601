#pragma once
/// \file
/// `vigie probe URL`: one check, run now, printed as a human reads it (as curl
/// would show a target), to debug a target. Exit code 0 for ok/warn, 1 for fail.

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace vigie {

struct ProbeCliOptions {
  std::string url;
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
