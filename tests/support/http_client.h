#pragma once
/// \file
/// A blocking HTTP client for tests (libcurl easy), and polling with a deadline:
/// what the integration tests use to read vigie's own endpoints on loopback.

#include <chrono>
#include <functional>
#include <string>

namespace vigie::test {

struct Http {
  long status = 0;  // 0: no answer (refused, timed out)
  std::string body;
};

/// GET `url`, waiting at most `timeout`.
Http httpGet(const std::string& url,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

/// Polls `pred` every 100 ms until it holds or `limit` passes; the last call is
/// made at the deadline, so a condition met just in time still counts.
bool eventually(std::chrono::milliseconds limit, const std::function<bool()>& pred);

}  // namespace vigie::test
