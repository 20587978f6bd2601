#pragma once
/// \file
/// The heartbeat push endpoint, as healthchecks.io's ping URLs:
///   POST /api/v1/push/{service}/{check}            the job ran and succeeded
///   POST /api/v1/push/{service}/{check}?status=fail   it ran and failed
///   POST /api/v1/push/{service}/{check}?exit_code=3   failed when non-zero
///   POST /api/v1/push/{service}/{check}/fail          same as status=fail
///   POST /api/v1/push/{service}/{check}/{0-255}       same as exit_code=
/// GET is accepted too, for tools that can only GET. The token goes in
/// `Authorization: Bearer <token>` or `?token=<token>`. The request body (at most
/// 1 KiB kept) is shown as the push's message, e.g. the tail of the job's log.
///
/// Answers: 200 {"check","state","accepted":true}; 401 (WWW-Authenticate: Bearer)
/// for a missing or wrong token, and the push counts nowhere; 404 for an unknown
/// check; 409 for a check that is not a heartbeat; 400 for a bad parameter.
/// Every error is JSON {"error": ...}.

#include "collector/engine.h"
#include "exporters/http_server.h"

namespace vigie {

inline constexpr std::string_view kPushPath = "/api/v1/push";

/// Registers the push routes on `server`. `engine` must outlive the server.
/// Loop thread only.
void registerPushRoutes(HttpServer& server, Engine& engine);

}  // namespace vigie
