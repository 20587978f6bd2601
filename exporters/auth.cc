#include "exporters/auth.h"
#include "probes/base64.h"

#include <cctype>
#include <utility>

#include "exporters/push.h"

namespace vigie {
namespace {

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Case-insensitive scheme match ("Bearer ", "basic "), then the rest trimmed.
bool takeScheme(std::string_view& header, std::string_view scheme) {
  if (header.size() <= scheme.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) !=
        std::tolower(static_cast<unsigned char>(scheme[i]))) {
      return false;
    }
  }
  header.remove_prefix(scheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  return true;
}

bool isPagePath(std::string_view path) {
  return !(startsWith(path, "/api/") || path == "/metrics" || startsWith(path, "/-/"));
}

void unauthorized(const HttpRequest& req, HttpResponse& res, bool presented) {
  res.headers.emplace_back("Cache-Control", "no-store");
  if (isPagePath(req.path)) {
    // A browser prompts for Basic; the password is the token.
    res.status = 401;
    res.body = "401 Unauthorized: this vigie needs its read token (any user name, the token as "
               "the password; or Authorization: Bearer <token>)\n";
    res.headers.emplace_back("WWW-Authenticate", "Basic realm=\"vigie\", charset=\"UTF-8\"");
    return;
  }
  res.headers.emplace_back("WWW-Authenticate", presented
                                                   ? "Bearer realm=\"vigie\", error=\"invalid_token\""
                                                   : "Bearer realm=\"vigie\"");
  res.jsonError(401, presented ? "wrong token" : "a token is needed: Authorization: Bearer <token>");
}

}  // namespace

AccessLevel accessLevel(const AuthConfig& auth, std::string_view path) {
  if (path == "/healthz" || path == "/readyz") return AccessLevel::open;
  if (path == "/-/reload") return AccessLevel::admin;
  if (path == kPushPath || startsWith(path, std::string(kPushPath) + "/")) {
    return AccessLevel::open;
  }
  if (auth.read_token.empty()) return AccessLevel::open;
  if (path == "/metrics") return auth.protect_metrics ? AccessLevel::read : AccessLevel::open;
  return AccessLevel::read;
}

std::string presentedCredential(const HttpRequest& req) {
  std::string_view auth = req.header("Authorization");
  if (takeScheme(auth, "Bearer ")) return std::string(auth);
  if (takeScheme(auth, "Basic ")) {
    std::string decoded;
    if (!base64Decode(auth, decoded)) return {};
    const auto colon = decoded.find(':');
    return colon == std::string::npos ? std::string() : decoded.substr(colon + 1);
  }
  return {};
}

HttpGuard makeAuthGuard(ConfigSource current) {
  return [current = std::move(current)](const HttpRequest& req, HttpResponse& res) {
    const auto config = current ? current() : nullptr;
    static const AuthConfig kNone;
    const AuthConfig& auth = config ? config->auth : kNone;
    const AccessLevel level = accessLevel(auth, req.path);
    if (level == AccessLevel::open) return true;
    if (level == AccessLevel::admin && auth.admin_token.empty()) {
      res.headers.emplace_back("Cache-Control", "no-store");
      res.jsonError(403,
                    "reloading over HTTP is off: set auth.admin_token in the configuration "
                    "(SIGHUP always reloads)");
      return false;
    }
    const std::string presented = presentedCredential(req);
    // Both comparisons always run: the time says nothing about which token is set.
    const bool admin = tokenMatches(auth.admin_token, presented);
    const bool read = tokenMatches(auth.read_token, presented);
    if (admin || (level == AccessLevel::read && read)) return true;
    unauthorized(req, res, !presented.empty());
    return false;
  };
}

}  // namespace vigie
