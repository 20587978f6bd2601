#include "probes/conditions.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "probes/health_page.h"
#include "tests/support/paths.h"

namespace vigie {
namespace {

using namespace std::chrono_literals;
using Kind = ConditionSpec::Kind;

std::string readSample(const std::string& name) {
  std::ifstream in(std::string(VIGIE_SOURCE_DIR) + "/tests/data/health/" + name, std::ios::binary);
  EXPECT_TRUE(in) << "missing sample " << name;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ConditionSpec jsonEquals(std::string pointer, std::string value) {
  ConditionSpec c;
  c.kind = Kind::json_equals;
  c.pointer = std::move(pointer);
  c.value = std::move(value);
  return c;
}

ConditionSpec jsonExists(std::string pointer) {
  ConditionSpec c;
  c.kind = Kind::json_exists;
  c.pointer = std::move(pointer);
  return c;
}

ConditionSpec bodyMatches(std::string pattern) {
  ConditionSpec c;
  c.kind = Kind::body_matches;
  c.value = pattern;
  c.regex = compileRegex(pattern);
  return c;
}

ConditionSpec bodyContains(std::string s) {
  ConditionSpec c;
  c.kind = Kind::body_contains;
  c.value = std::move(s);
  return c;
}

ConditionSpec latencyBelow(std::chrono::milliseconds ms) {
  ConditionSpec c;
  c.kind = Kind::latency_below;
  c.latency = ms;
  return c;
}

ConditionSpec statusIn(std::vector<int> s) {
  ConditionSpec c;
  c.kind = Kind::status_in;
  c.statuses = std::move(s);
  return c;
}

struct CondCase {
  std::string what;
  ConditionSpec spec;
  std::string body;  // a literal body, or "@file" for a sample page
  int status;
  double latency;
  bool ok;
  std::string detail;  // exact
};

void PrintTo(const CondCase& c, std::ostream* os) { *os << c.what; }

class Conditions : public ::testing::TestWithParam<CondCase> {};

TEST_P(Conditions, Evaluate) {
  const CondCase& c = GetParam();
  std::string body = c.body.rfind("@", 0) == 0 ? readSample(c.body.substr(1)) : c.body;
  ResponseView view{c.status, body, c.latency, nullptr};

  // Without a parsed document: evaluate() parses the body itself.
  ConditionResult r = evaluate(c.spec, view);
  EXPECT_EQ(r.ok, c.ok) << r.detail;
  EXPECT_EQ(r.detail, c.detail);
  EXPECT_EQ(r.name, c.spec.describe());

  // With the caller's document: the same answer.
  std::string error;
  auto doc = parseJsonBounded(body, &error);
  if (doc) {
    view.json = &*doc;
    ConditionResult again = evaluate(c.spec, view);
    EXPECT_EQ(again.ok, c.ok);
    EXPECT_EQ(again.detail, c.detail);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cond, Conditions,
    ::testing::Values(
        CondCase{"status pass", jsonEquals("/status", "pass"), "@health_json_pass.json", 200, 0.01,
                 true, "got \"pass\""},
        CondCase{"status fail", jsonEquals("/status", "pass"), "@health_json_fail.json", 503, 0.01,
                 false, "got \"fail\""},
        CondCase{"array index", jsonEquals("/checks/cpu:utilization/1/componentId", "node-2"),
                 "@health_json_pass.json", 200, 0, true, "got \"node-2\""},
        CondCase{"array index number", jsonEquals("/checks/cpu:utilization/0/observedValue", "23"),
                 "@health_json_pass.json", 200, 0, true, "got 23"},
        CondCase{"array index out of range", jsonEquals("/checks/uptime/1/status", "pass"),
                 "@health_json_pass.json", 200, 0, false,
                 "pointer /checks/uptime/1/status not found"},
        CondCase{"array index leading zero", jsonExists("/checks/uptime/00"),
                 "@health_json_pass.json", 200, 0, false, "pointer /checks/uptime/00 not found"},
        CondCase{"array dash", jsonExists("/checks/uptime/-"), "@health_json_pass.json", 200, 0,
                 false, "pointer /checks/uptime/- not found"},
        CondCase{"spring nested", jsonEquals("/components/db/components/primary/status", "UP"),
                 "@spring_up.json", 200, 0, true, "got \"UP\""},
        CondCase{"double", jsonEquals("/checks/uptime/0/observedValue", "1209600.5"),
                 "@health_json_pass.json", 200, 0, true, "got 1209600.5"},
        CondCase{"bool as text", jsonEquals("/ready", "true"), R"({"ready":true})", 200, 0, true,
                 "got true"},
        CondCase{"bool mismatch", jsonEquals("/ready", "true"), R"({"ready":false})", 200, 0, false,
                 "got false"},
        CondCase{"string true is not bool", jsonEquals("/ready", "true"), R"({"ready":"true"})",
                 200, 0, true, "got \"true\""},
        CondCase{"int as text", jsonEquals("/code", "200"), R"({"code":200})", 200, 0, true,
                 "got 200"},
        CondCase{"int vs 200.0", jsonEquals("/code", "200.0"), R"({"code":200})", 200, 0, true,
                 "got 200"},
        CondCase{"int mismatch", jsonEquals("/code", "200"), R"({"code":503})", 200, 0, false,
                 "got 503"},
        CondCase{"null", jsonEquals("/x", "null"), R"({"x":null})", 200, 0, true, "got null"},
        CondCase{"object is not a scalar", jsonEquals("/checks", "x"), "@health_json_warn.json",
                 200, 0, false, "got an object with 3 members"},
        CondCase{"tilde escapes", jsonEquals("/a~1b/c~0d", "1"), R"({"a/b":{"c~d":1}})", 200, 0,
                 true, "got 1"},
        CondCase{"escape order ~01", jsonEquals("/~01", "x"), R"({"~1":"x","/":"y"})", 200, 0, true,
                 "got \"x\""},
        CondCase{"bad escape", jsonExists("/a~2"), R"({"a~2":1})", 200, 0, false,
                 "pointer /a~2 not found"},
        CondCase{"empty key", jsonEquals("/", "e"), R"({"":"e"})", 200, 0, true, "got \"e\""},
        CondCase{"whole document", jsonExists(""), "[1,2]", 200, 0, true,
                 "found an array of 2 items"},
        CondCase{"pointer without slash", jsonExists("status"), R"({"status":"ok"})", 200, 0, false,
                 "pointer status not found"},
        CondCase{"through a scalar", jsonExists("/status/x"), R"({"status":"ok"})", 200, 0, false,
                 "pointer /status/x not found"},
        CondCase{"missing", jsonEquals("/status", "pass"), R"({"state":"pass"})", 200, 0, false,
                 "pointer /status not found"},
        CondCase{"exists", jsonExists("/checks"), "@microprofile_up.json", 200, 0, true,
                 "found an array of 3 items"},
        CondCase{"not json", jsonEquals("/status", "pass"), "OK", 200, 0, false,
                 "body is not JSON (not JSON (syntax error at byte 0))"},
        CondCase{"empty body json", jsonExists("/status"), "", 200, 0, false,
                 "body is not JSON (empty body)"},
        CondCase{"regex match", bodyMatches("postgres.*refused"), "@microprofile_down.json", 503, 0,
                 false, "no match in 289 bytes"},
        CondCase{"regex match 2", bodyMatches(R"(Connection refused: [a-z.]+)"),
                 "@microprofile_down.json", 503, 0, true,
                 "matched \"Connection refused: pg.osug.fr\""},
        CondCase{"regex case", bodyMatches("(?i)status.{0,5}up"), "@spring_minimal_up.json", 200, 0,
                 true, R"(matched "status":"UP")"},
        CondCase{"regex empty match", bodyMatches("^"), "", 200, 0, true, "matched \"\""},
        CondCase{"contains", bodyContains("OK"), "@text_ok.txt", 200, 0, true, "found at byte 0"},
        CondCase{"contains not", bodyContains("OK"), "@text_fail.txt", 200, 0, false,
                 "not found in 42 bytes"},
        CondCase{"latency ok", latencyBelow(800ms), "", 200, 0.312, true, "312ms < 800ms"},
        CondCase{"latency slow", latencyBelow(800ms), "", 200, 1.2, false, "1.2s >= 800ms"},
        CondCase{"latency equal", latencyBelow(2s), "", 200, 2.0, false, "2s >= 2s"},
        CondCase{"status in", statusIn({200, 204}), "", 204, 0, true, "got 204"},
        CondCase{"status not in", statusIn({200, 204}), "", 503, 0, false, "got 503"},
        CondCase{"status 2xx", statusIn({}), "", 299, 0, true, "got 299"},
        CondCase{"status none", statusIn({}), "", 0, 0, false, "no response"}));

TEST(Conditions, Describe) {
  EXPECT_EQ(jsonEquals("/status", "pass").describe(), "json /status == pass");
  EXPECT_EQ(jsonExists("/checks").describe(), "json /checks exists");
  EXPECT_EQ(bodyMatches("database.*ok").describe(), "body ~ /database.*ok/");
  EXPECT_EQ(bodyContains("OK").describe(), "body contains \"OK\"");
  EXPECT_EQ(latencyBelow(800ms).describe(), "latency < 800ms");
  EXPECT_EQ(latencyBelow(2000ms).describe(), "latency < 2s");
  EXPECT_EQ(statusIn({200, 204}).describe(), "status in [200, 204]");
  EXPECT_EQ(statusIn({200}).describe(), "status == 200");
  EXPECT_EQ(statusIn({}).describe(), "status 2xx");
  EXPECT_LE(bodyContains(std::string(10000, 'a')).describe().size(), 200u);
}

// Found by tests/fuzz/conditions_fuzz: Boost's message repeats the pattern as
// written, raw bytes included; the message is now one clean line of UTF-8.
TEST(Conditions, InvalidRegexMessageIsCleanUtf8) {
  try {
    compileRegex(std::string("(unc\x94\x90\x8c\n\xff", 9));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_EQ(boundedText(msg, msg.size() + 3), msg) << msg;  // nothing left to clean
    EXPECT_NE(msg.find("invalid regex \"(unc"), std::string::npos) << msg;
    EXPECT_LE(msg.size(), 1024u);
  }
}

TEST(Conditions, InvalidRegexThrowsReadableMessage) {
  try {
    compileRegex("database.*(ok");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("invalid regex \"database.*(ok\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("parenthes"), std::string::npos) << msg;
  }
  EXPECT_THROW(compileRegex("[a-"), std::invalid_argument);
  EXPECT_THROW(compileRegex("a{2,1}"), std::invalid_argument);
  EXPECT_NO_THROW(compileRegex("(?i)^ok$"));
}

TEST(Conditions, CatastrophicRegexIsAFailedConditionNotAThrow) {
  // Classic exponential backtracking: (a+)+b against a long run of 'a'.
  ConditionSpec c = bodyMatches("(a+)+b");
  std::string body(100000, 'a');
  ResponseView view{200, body, 0, nullptr};
  auto start = std::chrono::steady_clock::now();
  ConditionResult r;
  EXPECT_NO_THROW(r = evaluate(c, view));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "regex too complex for this body");
  EXPECT_LT(took, 2s);  // the budget is kept small: matching runs on the event loop
}

TEST(Conditions, OrdinaryRegexOnALargeBodyStaysWithinBudget) {
  // 1 MiB (the default max_body) of realistic lines: the budget must not trip.
  std::string body;
  while (body.size() < 1024 * 1024)
    body += "{\"name\":\"replica\",\"status\":\"UP\",\"lag_ms\":12}\n";
  std::string tail = body + "database: ok\n";
  ResponseView view{200, tail, 0, nullptr};
  ConditionResult r = evaluate(bodyMatches("database.*ok"), view);
  EXPECT_TRUE(r.ok) << r.detail;
  r = evaluate(bodyMatches(R"(lag_ms":\d{4,})"), view);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail.rfind("no match in", 0), 0u) << r.detail;
  r = evaluate(bodyMatches(R"((?m)^database:\s+(ok|up)$)"), view);
  EXPECT_TRUE(r.ok) << r.detail;
}

TEST(Conditions, DetailsAreBounded) {
  std::string value(5000, 'v');
  std::string body = R"({"s":")" + value + R"("})";
  ResponseView view{200, body, 0, nullptr};
  ConditionResult r = evaluate(jsonEquals("/s", "x"), view);
  EXPECT_FALSE(r.ok);
  EXPECT_LE(r.detail.size(), 256u);
  EXPECT_EQ(r.detail.rfind("got \"vvv", 0), 0u);

  r = evaluate(bodyMatches("v+"), view);
  EXPECT_TRUE(r.ok);
  EXPECT_LE(r.detail.size(), 256u);

  r = evaluate(jsonEquals("/" + std::string(3000, 'k'), "x"), view);
  EXPECT_LE(r.detail.size(), 256u);
  EXPECT_LE(r.name.size(), 300u);
}

TEST(Conditions, EvaluateAllKeepsOrder) {
  std::string body = readSample("health_json_fail.json");
  ResponseView view{503, body, 0.05, nullptr};
  std::vector<ConditionSpec> cs = {statusIn({200}), jsonEquals("/status", "pass"),
                                   jsonExists("/checks/postgres:connections/0/output"),
                                   bodyContains("refused"), latencyBelow(800ms)};
  std::vector<ConditionResult> rs = evaluateAll(cs, view);
  ASSERT_EQ(rs.size(), 5u);
  EXPECT_FALSE(rs[0].ok);
  EXPECT_FALSE(rs[1].ok);
  EXPECT_EQ(rs[1].detail, "got \"fail\"");
  EXPECT_TRUE(rs[2].ok);
  EXPECT_EQ(rs[2].detail, "found \"connection refused (pg.osug.fr:5432)\"");
  EXPECT_TRUE(rs[3].ok);
  EXPECT_TRUE(rs[4].ok);
  EXPECT_EQ(rs[4].name, "latency < 800ms");
}

TEST(Conditions, DeepBodyIsNotJsonNotACrash) {
  std::string body(100000, '[');
  ResponseView view{200, body, 0, nullptr};
  ConditionResult r = evaluate(jsonExists("/0"), view);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.detail, "body is not JSON (JSON nested deeper than 64 levels)");
}

TEST(Conditions, ResolvePointerUntyped) {
  boost::json::value doc = boost::json::parse(R"({"a":[10,{"b":"c"}]})");
  const void* p = resolvePointer(static_cast<const void*>(&doc), "/a/1/b");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(static_cast<const boost::json::value*>(p)->as_string(), "c");
  EXPECT_EQ(resolvePointer(static_cast<const void*>(nullptr), "/a"), nullptr);
  EXPECT_EQ(resolvePointer(doc, "/a/2"), nullptr);
  EXPECT_EQ(resolvePointer(doc, "/a/0")->as_int64(), 10);
  EXPECT_EQ(resolvePointer(doc, "/a/1x"), nullptr);
}

TEST(Conditions, ScalarText) {
  EXPECT_EQ(jsonScalarText(boost::json::value(1.5)), "1.5");
  EXPECT_EQ(jsonScalarText(boost::json::value(200.0)), "200");
  EXPECT_EQ(jsonScalarText(boost::json::value(-3)), "-3");
  EXPECT_EQ(jsonScalarText(boost::json::value(18446744073709551615ull)), "18446744073709551615");
  EXPECT_EQ(jsonScalarText(boost::json::value(nullptr)), "null");
  EXPECT_FALSE(jsonScalarText(boost::json::array{}).has_value());
}

}  // namespace
}  // namespace vigie
