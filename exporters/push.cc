#include "exporters/push.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "exporters/json_util.h"
#include "probes/heartbeat_probe.h"

namespace vigie {
namespace {

namespace http = boost::beast::http;

std::vector<std::string> splitPath(std::string_view rest) {
  std::vector<std::string> parts;
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    parts.push_back(percentDecode(rest.substr(0, slash)));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return parts;
}

std::string_view bearerToken(const HttpRequest& req) {
  std::string_view auth = req.header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() > kBearer.size()) {
    bool match = true;
    for (std::size_t i = 0; i < kBearer.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(auth[i])) !=
          std::tolower(static_cast<unsigned char>(kBearer[i]))) {
        match = false;
        break;
      }
    }
    if (match) {
      auth.remove_prefix(kBearer.size());
      while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
      while (!auth.empty() && auth.back() == ' ') auth.remove_suffix(1);
      return auth;
    }
  }
  if (const auto* t = req.param("token")) return *t;
  return {};
}

void handlePush(Engine& engine, const PushOwnerLookup& elsewhere, const HttpRequest& req,
                HttpResponse& res) {
  res.headers.emplace_back("Cache-Control", "no-store");
  std::string_view rest = req.path;
  rest.remove_prefix(std::min(rest.size(), kPushPath.size() + 1));
  const auto parts = splitPath(rest);
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
    res.jsonError(404, "expected /api/v1/push/{service}/{check}[/fail|/{exit_code}]");
    return;
  }
  std::string status = req.param("status") ? *req.param("status") : std::string();
  std::string exit_code = req.param("exit_code") ? *req.param("exit_code") : std::string();
  if (parts.size() == 3) {
    if (parts[2] == "fail") {
      status = "fail";
    } else {
      exit_code = parts[2];
    }
  }
  HeartbeatPush push;
  if (auto error = parseHeartbeatPush(status, exit_code, req.body, push)) {
    res.jsonError(400, *error);
    return;
  }
  const std::string key = parts[0] + "/" + parts[1];
  switch (engine.push(key, bearerToken(req), std::move(push))) {
    case Engine::PushOutcome::unknown_check:
      if (const auto owner = elsewhere ? elsewhere(key) : std::nullopt) {
        boost::json::object o;
        o["shard"] = owner->shard;
        o["shards"] = owner->shards;
        if (!owner->base_url.empty()) {
          const std::string location = owner->base_url + std::string(req.target);
          o["error"] = fmt::format("check \"{}\" is run by shard {}", key, owner->shard);
          o["location"] = location;
          res.status = 307;
          res.headers.emplace_back("Location", location);
        } else {
          o["error"] = fmt::format(
              "check \"{}\" is run by shard {}, whose address is not known here: push to that "
              "replica",
              key, owner->shard);
          res.status = 421;
        }
        res.content_type = "application/json";
        res.body = boost::json::serialize(o);
        res.body += '\n';
        return;
      }
      res.jsonError(404, fmt::format("no check \"{}\"", sanitizeUtf8(key, 200)));
      return;
    case Engine::PushOutcome::not_heartbeat:
      res.jsonError(409, fmt::format("check \"{}\" is not a heartbeat check", key));
      return;
    case Engine::PushOutcome::unauthorized:
      res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"vigie\"");
      res.jsonError(401, "missing or wrong token (Authorization: Bearer <token>, or ?token=)");
      return;
    case Engine::PushOutcome::accepted:
      break;
  }
  std::string_view state = "unknown";
  const auto snap = engine.snapshot();
  for (const auto& c : snap->checks) {
    if (c->check->key == key) {
      state = checkStateName(c->state);
      break;
    }
  }
  boost::json::object o;
  o["check"] = key;
  o["accepted"] = true;
  o["state"] = state;
  res.content_type = "application/json";
  res.body = boost::json::serialize(o);
  res.body += '\n';
}

}  // namespace

void registerPushRoutes(HttpServer& server, Engine& engine, PushOwnerLookup elsewhere) {
  const std::string path = std::string(kPushPath) + "/*";
  for (auto verb : {http::verb::post, http::verb::get}) {
    server.route(verb, path, [&engine, elsewhere](const HttpRequest& req, HttpResponse& res) {
      handlePush(engine, elsewhere, req, res);
    });
  }
}

}  // namespace vigie
