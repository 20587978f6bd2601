#pragma once
/// \file
/// Optional bearer-token protection of vigie's HTTP server (config `auth:`,
/// README "Security"): which token a path needs, how a request presents one, and
/// the guard that checks it before any handler runs.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "collector/config.h"
#include "exporters/http_server.h"
#include "probes/heartbeat_probe.h"  // tokenMatches: the constant-time comparison

namespace vigie {

/// What a path needs.
enum class AccessLevel {
  open,   // anyone: /healthz, /readyz, pushes (each heartbeat check checks its own token)
  read,   // read_token or admin_token, when read_token is set (else anyone)
  admin,  // admin_token; refused (403) when none is configured
};

/// The level `path` (as sent, %-encoded, without the query) needs under `auth`.
/// /metrics is `read` only with protect_metrics. Pure; any thread.
AccessLevel accessLevel(const AuthConfig& auth, std::string_view path);

/// The credential a request presents: the token of `Authorization: Bearer <token>`,
/// or the password of `Authorization: Basic` (any user name: what a browser sends
/// after its login prompt). "" when none.
std::string presentedCredential(const HttpRequest& req);

/// The running configuration (a reload swaps it). Called on the loop thread.
using ConfigSource = std::function<std::shared_ptr<const Config>()>;

/// The guard for HttpServer::setGuard: answers 401 (with WWW-Authenticate: Bearer
/// for the API, /metrics and /-/ paths, Basic for pages so a browser prompts)
/// when the path's token is missing or wrong, and 403 for /-/reload when no
/// admin_token is configured. Reads the current config at each request.
HttpGuard makeAuthGuard(ConfigSource current);

}  // namespace vigie
