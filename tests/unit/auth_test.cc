// The bearer-token guard of vigie's HTTP server: which path needs which token,
// the credentials a request may present, constant-time comparison, and what the
// guard answers (table-driven; the binary end to end is in secrets_test).

#include "exporters/auth.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>

namespace vigie {
namespace {

namespace http = boost::beast::http;

const std::string kAdmin = "admin-0123456789abcdef";
const std::string kRead = "read-0123456789abcdef";

AuthConfig both(bool metrics = false) {
  AuthConfig a;
  a.admin_token = kAdmin;
  a.read_token = kRead;
  a.protect_metrics = metrics;
  return a;
}

TEST(Auth, AccessLevels) {
  struct Case {
    AuthConfig auth;
    const char* path;
    AccessLevel level;
  };
  const AuthConfig none;
  AuthConfig admin_only;
  admin_only.admin_token = kAdmin;
  const std::vector<Case> cases = {
      {none, "/", AccessLevel::open},
      {none, "/api/v1/checks", AccessLevel::open},
      {none, "/metrics", AccessLevel::open},
      {none, "/-/reload", AccessLevel::admin},
      {admin_only, "/api/v1/services", AccessLevel::open},
      {admin_only, "/-/reload", AccessLevel::admin},
      {both(), "/", AccessLevel::read},
      {both(), "/services/web", AccessLevel::read},
      {both(), "/badge/web.svg", AccessLevel::read},
      {both(), "/assets/dashboard.css", AccessLevel::read},
      {both(), "/api/v1/checks/a/b", AccessLevel::read},
      {both(), "/api/v1/events", AccessLevel::read},
      {both(), "/api/v1/clusters/front/ready", AccessLevel::read},
      {both(), "/metrics", AccessLevel::open},
      {both(true), "/metrics", AccessLevel::read},
      {both(true), "/healthz", AccessLevel::open},
      {both(true), "/readyz", AccessLevel::open},
      {both(true), "/api/v1/push/backup/nightly", AccessLevel::open},
      {both(true), "/api/v1/push/backup/nightly/1", AccessLevel::open},
      {both(true), "/api/v1/pushy", AccessLevel::read},
      {both(true), "/-/reload", AccessLevel::admin},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(accessLevel(c.auth, c.path), c.level) << c.path;
  }
}

struct Request {
  http::request<http::string_body> raw;
  HttpRequest req;
  explicit Request(std::string path, std::string authorization = "") {
    raw.method(http::verb::get);
    raw.target(path);
    if (!authorization.empty()) raw.set(http::field::authorization, authorization);
    req.path = raw.target();
    req.target = raw.target();
    req.raw = &raw;
  }
};

TEST(Auth, PresentedCredentials) {
  struct Case {
    const char* authorization;
    const char* credential;
  };
  const std::vector<Case> cases = {
      {"", ""},
      {"Bearer abc.def", "abc.def"},
      {"bearer   abc ", "abc"},
      {"BEARER abc", "abc"},
      {"Basic dXNlcjpzM2NyZXQ=", "s3cret"},            // user:s3cret
      {"basic OnMzY3JldA==", "s3cret"},                 // :s3cret
      {"Basic dXNlcjpwYTpzcw==", "pa:ss"},              // user:pa:ss (a colon in the password)
      {"Basic dXNlcg==", ""},                           // user, no colon
      {"Basic !!!", ""},                                // not base64
      {"Basic dXNlcjpzM2NyZXQ=garbage", ""},            // data after the padding
      {"Token abc", ""},
      {"Bearer", ""},
  };
  for (const auto& c : cases) {
    Request r("/", c.authorization);
    EXPECT_EQ(presentedCredential(r.req), c.credential) << c.authorization;
  }
}

TEST(Auth, TokensCompareWhole) {
  EXPECT_TRUE(tokenMatches(kRead, kRead));
  EXPECT_FALSE(tokenMatches(kRead, kRead + "x"));
  EXPECT_FALSE(tokenMatches(kRead, kRead.substr(0, kRead.size() - 1)));
  EXPECT_FALSE(tokenMatches(kRead, ""));
  EXPECT_FALSE(tokenMatches("", ""));
}

std::string header(const HttpResponse& res, const std::string& name) {
  for (const auto& [k, v] : res.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST(Auth, GuardAnswers) {
  auto config = std::make_shared<Config>();
  config->auth = both();
  const HttpGuard guard = makeAuthGuard([&config] { return config; });
  struct Case {
    const char* path;
    std::string authorization;
    bool passes;
    unsigned status;
    const char* challenge;
  };
  const std::vector<Case> cases = {
      {"/healthz", "", true, 0, ""},
      {"/metrics", "", true, 0, ""},
      {"/api/v1/checks", "Bearer " + kRead, true, 0, ""},
      {"/api/v1/checks", "Bearer " + kAdmin, true, 0, ""},
      {"/", "Basic " + std::string("YW55OnJlYWQtMDEyMzQ1Njc4OWFiY2RlZg=="), true, 0, ""},
      {"/api/v1/checks", "", false, 401, "Bearer realm=\"vigie\""},
      {"/api/v1/checks", "Bearer wrong", false, 401,
       "Bearer realm=\"vigie\", error=\"invalid_token\""},
      {"/", "", false, 401, "Basic realm=\"vigie\", charset=\"UTF-8\""},
      {"/services/web", "Bearer wrong", false, 401, "Basic realm=\"vigie\", charset=\"UTF-8\""},
      {"/-/reload", "Bearer " + kRead, false, 401,
       "Bearer realm=\"vigie\", error=\"invalid_token\""},
      {"/-/reload", "Bearer " + kAdmin, true, 0, ""},
  };
  for (const auto& c : cases) {
    Request r(c.path, c.authorization);
    HttpResponse res;
    EXPECT_EQ(guard(r.req, res), c.passes) << c.path << " " << c.authorization;
    if (c.passes) continue;
    EXPECT_EQ(res.status, c.status) << c.path;
    EXPECT_EQ(header(res, "WWW-Authenticate"), c.challenge) << c.path;
    EXPECT_EQ(header(res, "Cache-Control"), "no-store") << c.path;
    EXPECT_EQ(res.body.find(kRead), std::string::npos);
    EXPECT_EQ(res.body.find(kAdmin), std::string::npos);
  }

  // Without an admin token, reloading over HTTP is off; a reload swaps the tokens.
  auto open = std::make_shared<Config>();
  config = open;
  Request reload("/-/reload", "Bearer " + kAdmin);
  HttpResponse res;
  EXPECT_FALSE(guard(reload.req, res));
  EXPECT_EQ(res.status, 403u);
  EXPECT_NE(res.body.find("set auth.admin_token"), std::string::npos) << res.body;
  Request api("/api/v1/checks");
  HttpResponse ok;
  EXPECT_TRUE(guard(api.req, ok));
}

}  // namespace
}  // namespace vigie
