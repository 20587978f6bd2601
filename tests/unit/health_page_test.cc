#include "probes/health_page.h"
#include "tests/support/paths.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace vigie {
namespace {

std::string readSample(const std::string& name) {
  std::ifstream in(std::string(VIGIE_SOURCE_DIR) + "/tests/data/health/" + name, std::ios::binary);
  EXPECT_TRUE(in) << "missing sample " << name;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CustomHealthMapping homeMapping() {
  CustomHealthMapping m;
  m.status_pointer = "/alive";
  m.components_pointer = "/dependencies";
  m.version_pointer = "/version_info/tag";
  return m;
}

struct ExpectedComponent {
  std::string name;
  Status status;
};

struct PageCase {
  std::string file;
  HealthFormat format;
  std::string content_type;
  HealthFormat recognised;
  Status status;
  std::string status_text;
  std::vector<ExpectedComponent> components;  // all of them, in order
  std::string version;
  std::string detail_has;  // substring of report.detail ("" = not checked)
  std::vector<std::pair<std::string, std::string>> info;
};

void PrintTo(const PageCase& c, std::ostream* os) {
  *os << c.file << "/" << healthFormatName(c.format);
}

class SamplePages : public ::testing::TestWithParam<PageCase> {};

TEST_P(SamplePages, ParsesAsExpected) {
  const PageCase& c = GetParam();
  std::string body = readSample(c.file);
  HealthParse p = parseHealthPage(c.format, c.content_type, body, nullptr, homeMapping());
  ASSERT_TRUE(p.report.has_value()) << p.error;
  EXPECT_TRUE(p.error.empty());
  const HealthReport& r = *p.report;
  EXPECT_EQ(r.format, c.recognised) << healthFormatName(r.format);
  EXPECT_EQ(r.status, c.status) << statusName(r.status);
  EXPECT_EQ(r.status_text, c.status_text);
  ASSERT_EQ(r.components.size(), c.components.size());
  for (std::size_t i = 0; i < c.components.size(); ++i) {
    EXPECT_EQ(r.components[i].name, c.components[i].name) << i;
    EXPECT_EQ(r.components[i].status, c.components[i].status) << r.components[i].name;
  }
  EXPECT_EQ(r.version, c.version);
  if (!c.detail_has.empty()) {
    EXPECT_NE(r.detail.find(c.detail_has), std::string::npos) << r.detail;
  }
  if (c.status == Status::ok && c.detail_has.empty()) {
    EXPECT_EQ(r.detail, "");
  }
  for (const auto& [k, v] : c.info) {
    auto it = r.info.find(k);
    ASSERT_NE(it, r.info.end()) << k;
    EXPECT_EQ(it->second, v) << k;
  }

  // The same page, already parsed by the caller, gives the same report.
  if (c.format != HealthFormat::text && c.file.find(".json") != std::string::npos) {
    boost::json::value doc = boost::json::parse(body);
    HealthParse again = parseHealthPage(c.format, c.content_type, body, &doc, homeMapping());
    ASSERT_TRUE(again.report.has_value());
    EXPECT_EQ(again.report->status, r.status);
    EXPECT_EQ(again.report->components.size(), r.components.size());
  }
}

constexpr Status kOk = Status::ok;
constexpr Status kWarn = Status::warn;
constexpr Status kFail = Status::fail;
constexpr HealthFormat kAuto = HealthFormat::auto_detect;

INSTANTIATE_TEST_SUITE_P(
    Health, SamplePages,
    ::testing::Values(
        PageCase{"health_json_pass.json",
                 kAuto,
                 "application/health+json",
                 HealthFormat::health_json,
                 kOk,
                 "pass",
                 {{"postgres:responseTime", kOk},
                  {"postgres:connections", kOk},
                  {"uptime", kOk},
                  {"cpu:utilization/node-1", kOk},
                  {"cpu:utilization/node-2", kOk}},
                 "1",
                 "",
                 {{"release_id", "1.8.3-5f2a1c9"},
                  {"service_id", "f03e522f-1f44-4062-9b55-9587f91a9c41"},
                  {"description", "health of obsportal service"}}},
        // Same page by shape only (nginx serves .json as application/json).
        PageCase{"health_json_pass.json",
                 kAuto,
                 "application/json",
                 HealthFormat::health_json,
                 kOk,
                 "pass",
                 {{"postgres:responseTime", kOk},
                  {"postgres:connections", kOk},
                  {"uptime", kOk},
                  {"cpu:utilization/node-1", kOk},
                  {"cpu:utilization/node-2", kOk}},
                 "1",
                 "",
                 {}},
        PageCase{"health_json_warn.json",
                 kAuto,
                 "application/json",
                 HealthFormat::health_json,
                 kWarn,
                 "warn",
                 {{"vizier:responseTime", kWarn},
                  {"postgres:responseTime", kOk},
                  {"disk:utilization", kOk}},
                 "2",
                 "vizier answers slowly",
                 {{"release_id", "2.3.0"}, {"service_id", "aspro-conf"}}},
        PageCase{"health_json_fail.json",
                 HealthFormat::health_json,
                 "",
                 HealthFormat::health_json,
                 kFail,
                 "fail",
                 {{"postgres:connections", kFail},
                  {"tap:responseTime", kOk},
                  {"memory:utilization", kWarn}},
                 "1",
                 "not ok: postgres:connections, memory:utilization",
                 {{"output", "database unreachable"}}},
        PageCase{"health_json_unknown_status.json",
                 kAuto,
                 "application/health+json",
                 HealthFormat::health_json,
                 kFail,
                 "maintenance",
                 {},
                 "3",
                 "unknown status word \"maintenance\"",
                 {{"release_id", "3.0.0-rc1"}}},
        PageCase{"spring_up.json",
                 kAuto,
                 "application/vnd.spring-boot.actuator.v3+json",
                 HealthFormat::spring,
                 kOk,
                 "UP",
                 {{"db", kOk},
                  {"db/primary", kOk},
                  {"db/replica", kOk},
                  {"diskSpace", kOk},
                  {"livenessState", kOk},
                  {"ping", kOk},
                  {"readinessState", kOk},
                  {"redis", kOk}},
                 "",
                 "",
                 {{"groups", "liveness,readiness"}}},
        PageCase{"spring_up.json",
                 kAuto,
                 "application/json",
                 HealthFormat::spring,
                 kOk,
                 "UP",
                 {{"db", kOk},
                  {"db/primary", kOk},
                  {"db/replica", kOk},
                  {"diskSpace", kOk},
                  {"livenessState", kOk},
                  {"ping", kOk},
                  {"readinessState", kOk},
                  {"redis", kOk}},
                 "",
                 "",
                 {}},
        PageCase{"spring_down.json",
                 kAuto,
                 "",
                 HealthFormat::spring,
                 kFail,
                 "DOWN",
                 {{"db", kFail}, {"diskSpace", kOk}, {"mail", kOk}, {"ping", kOk}},
                 "",
                 "status DOWN; not ok: db",
                 {}},
        PageCase{"spring_out_of_service.json",
                 HealthFormat::spring,
                 "",
                 HealthFormat::spring,
                 kFail,
                 "OUT_OF_SERVICE",
                 {{"livenessState", kOk}, {"readinessState", kFail}, {"ping", kOk}},
                 "",
                 "not ok: readinessState",
                 {}},
        PageCase{"spring_up_with_build.json",
                 kAuto,
                 "application/json",
                 HealthFormat::spring,
                 kOk,
                 "UP",
                 {{"diskSpace", kOk}, {"ping", kOk}},
                 "5.2.0",
                 "",
                 {{"git_commit", "a1b2c3d"}}},
        PageCase{"spring_boot20_details.json",
                 kAuto,
                 "application/json",
                 HealthFormat::spring,
                 kOk,
                 "UP",
                 {{"diskSpace", kOk}, {"db", kOk}},
                 "",
                 "",
                 {}},
        PageCase{"spring_minimal_up.json",
                 kAuto,
                 "application/json",
                 HealthFormat::spring,
                 kOk,
                 "UP",
                 {},
                 "",
                 "",
                 {}},
        PageCase{"microprofile_up.json",
                 kAuto,
                 "application/json",
                 HealthFormat::microprofile,
                 kOk,
                 "UP",
                 {{"database-connection", kOk}, {"heap-memory", kOk}, {"ready-deployments", kOk}},
                 "",
                 "",
                 {}},
        PageCase{"microprofile_down.json",
                 HealthFormat::microprofile,
                 "",
                 HealthFormat::microprofile,
                 kFail,
                 "DOWN",
                 {{"database-connection", kFail}, {"heap-memory", kOk}},
                 "",
                 "not ok: database-connection",
                 {}},
        PageCase{"text_ok.txt", kAuto, "text/plain", HealthFormat::text, kOk, "OK", {}, "", "", {}},
        PageCase{"text_healthy.txt",
                 HealthFormat::text,
                 "",
                 HealthFormat::text,
                 kOk,
                 "healthy",
                 {},
                 "",
                 "",
                 {}},
        PageCase{"text_fail.txt",
                 kAuto,
                 "text/plain",
                 HealthFormat::text,
                 kFail,
                 "FAIL: database unreachable",
                 {},
                 "",
                 "FAIL: database unreachable",
                 {}},
        PageCase{"custom_home.json",
                 HealthFormat::custom,
                 "application/json",
                 HealthFormat::custom,
                 kOk,
                 "true",
                 {{"postgres", kOk}, {"vizier", kWarn}, {"smtp", kFail}},
                 "v1.8.3",
                 "",
                 {}},
        PageCase{"custom_home_down.json",
                 HealthFormat::custom,
                 "",
                 HealthFormat::custom,
                 kFail,
                 "false",
                 {{"postgres", kFail}},
                 "v1.8.3",
                 "\"false\" is neither",
                 {}}));

TEST(HealthPage, ComponentDetailsCarryWhatThePageSaid) {
  std::string body = readSample("spring_down.json");
  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report);
  const Component& db = p.report->components.at(0);
  EXPECT_EQ(db.detail,
            "DOWN: org.springframework.jdbc.CannotGetJdbcConnectionException: Failed to obtain "
            "JDBC Connection; nested exception is org.postgresql.util.PSQLException: Connection "
            "to pg.osug.fr:5432 refused.");

  // A long stack-trace-like error is cut at kMaxTextField.
  body = R"({"status":"DOWN","components":{"db":{"status":"DOWN","details":{"error":")" +
         std::string(1000, 'e') + R"("}}}})";
  p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report);
  const std::string& cut = p.report->components.at(0).detail;
  EXPECT_LE(cut.size(), kMaxTextField);
  EXPECT_EQ(cut.rfind("DOWN: eee", 0), 0u) << cut;
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");

  body = readSample("health_json_warn.json");
  p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report);
  EXPECT_EQ(p.report->components.at(0).detail, "warn 2450 ms: slower than 1000 ms");

  body = readSample("microprofile_down.json");
  p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report);
  EXPECT_EQ(p.report->components.at(0).detail,
            "DOWN: error=Connection refused: pg.osug.fr/193.48.1.20:5432");
  EXPECT_EQ(p.report->components.at(1).detail, "UP: used=187654144, max=1073741824");
}

TEST(HealthPage, OverallIsThePagesOwnWordNotTheComponents) {
  // A component is down but the page says pass (a non-critical dependency).
  std::string body = R"({"status":"pass","checks":{"cache":[{"status":"fail"}]}})";
  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report);
  EXPECT_EQ(p.report->status, Status::ok);
  ASSERT_EQ(p.report->components.size(), 1u);
  EXPECT_EQ(p.report->components[0].status, Status::fail);

  body = R"({"status":"UP","components":{"mail":{"status":"DOWN"}}})";
  p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report);
  EXPECT_EQ(p.report->status, Status::ok);
  EXPECT_EQ(p.report->components.at(0).status, Status::fail);
}

struct WordCase {
  HealthFormat format;
  std::string body;
  Status status;
};

class StatusWords : public ::testing::TestWithParam<WordCase> {};

TEST_P(StatusWords, Map) {
  const WordCase& c = GetParam();
  HealthParse p = parseHealthPage(c.format, "", c.body, nullptr, {});
  ASSERT_TRUE(p.report) << p.error;
  EXPECT_EQ(p.report->status, c.status) << c.body;
}

INSTANTIATE_TEST_SUITE_P(
    Health, StatusWords,
    ::testing::Values(
        WordCase{HealthFormat::health_json, R"({"status":"pass"})", Status::ok},
        WordCase{HealthFormat::health_json, R"({"status":"ok"})", Status::ok},
        WordCase{HealthFormat::health_json, R"({"status":"up"})", Status::ok},
        WordCase{HealthFormat::health_json, R"({"status":"warn"})", Status::warn},
        WordCase{HealthFormat::health_json, R"({"status":"fail"})", Status::fail},
        WordCase{HealthFormat::health_json, R"({"status":"error"})", Status::fail},
        WordCase{HealthFormat::health_json, R"({"status":"down"})", Status::fail},
        WordCase{HealthFormat::health_json, R"({"status":"PASS"})", Status::ok},
        WordCase{HealthFormat::health_json, R"({"status":"bof"})", Status::fail},
        WordCase{HealthFormat::spring, R"({"status":"UP"})", Status::ok},
        WordCase{HealthFormat::spring, R"({"status":"DOWN"})", Status::fail},
        WordCase{HealthFormat::spring, R"({"status":"OUT_OF_SERVICE"})", Status::fail},
        WordCase{HealthFormat::spring, R"({"status":"UNKNOWN"})", Status::warn},
        WordCase{HealthFormat::spring, R"({"status":"FATAL"})", Status::fail},
        WordCase{HealthFormat::microprofile, R"({"status":"UP","checks":[]})", Status::ok},
        WordCase{HealthFormat::microprofile, R"({"status":"DOWN","checks":[]})", Status::fail},
        WordCase{HealthFormat::auto_detect, R"({"status":"UNKNOWN"})", Status::warn},
        WordCase{HealthFormat::auto_detect, R"("OK")", Status::ok},
        WordCase{HealthFormat::text, "  ok \r\n", Status::ok},
        WordCase{HealthFormat::text, "UP", Status::ok},
        WordCase{HealthFormat::text, "Healthy\n", Status::ok},
        WordCase{HealthFormat::text, "pass", Status::ok},
        WordCase{HealthFormat::text, "OK but degraded", Status::fail},
        WordCase{HealthFormat::text, "", Status::fail},
        WordCase{HealthFormat::text, "<html><body>502 Bad Gateway</body></html>", Status::fail}));

TEST(HealthPage, UnknownWordIsAFailureThatSaysSo) {
  HealthParse p = parseHealthPage(HealthFormat::spring, "", R"({"status":"FATAL"})", nullptr, {});
  ASSERT_TRUE(p.report);
  EXPECT_EQ(p.report->status, Status::fail);
  EXPECT_EQ(p.report->status_text, "FATAL");
  EXPECT_EQ(p.report->detail, "unknown status word \"FATAL\"");
}

struct BadCase {
  std::string what;
  HealthFormat format;
  std::string body;
  std::string error_has;
};

class BadPages : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadPages, AreCleanErrors) {
  const BadCase& c = GetParam();
  HealthParse p = parseHealthPage(c.format, "", c.body, nullptr, homeMapping());
  EXPECT_FALSE(p.report.has_value()) << c.what;
  EXPECT_NE(p.error.find(c.error_has), std::string::npos) << c.what << ": " << p.error;
  EXPECT_LE(p.error.size(), 512u);
}

INSTANTIATE_TEST_SUITE_P(
    Health, BadPages,
    ::testing::Values(
        BadCase{"empty auto", HealthFormat::auto_detect, "", "empty body"},
        BadCase{"blank auto", HealthFormat::auto_detect, " \n\t", "empty body"},
        BadCase{"empty health+json", HealthFormat::health_json, "", "empty body"},
        BadCase{"truncated", HealthFormat::auto_detect, R"({"status":"UP","components":{"db":{)",
                "incomplete JSON"},
        BadCase{"garbage after", HealthFormat::health_json, R"({"status":"pass"} trailing)",
                "extra data"},
        BadCase{"syntax", HealthFormat::auto_detect, R"({"status": pass})", "syntax error"},
        BadCase{"not an object", HealthFormat::health_json, "[1,2,3]", "not a JSON object"},
        BadCase{"number page", HealthFormat::auto_detect, "[42]", "not an object"},
        BadCase{"no status", HealthFormat::auto_detect, R"({"healthy":true})",
                "without a \"status\""},
        BadCase{"status not a string", HealthFormat::auto_detect, R"({"status":1})",
                "not a string"},
        BadCase{"spring without status", HealthFormat::spring, R"({"components":{}})",
                "no \"status\""},
        BadCase{"text for microprofile", HealthFormat::microprofile, "OK", "not JSON"},
        BadCase{"custom pointer missing", HealthFormat::custom, R"({"status":"ok"})",
                "status pointer /alive not found"},
        BadCase{"custom pointer to object", HealthFormat::custom, R"({"alive":{"x":1}})",
                "is not a string"}));

TEST(HealthPage, TruncatedSampleIsAParseError) {
  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "application/json",
                                  readSample("truncated.json"), nullptr, {});
  EXPECT_FALSE(p.report);
  EXPECT_NE(p.error.find("incomplete JSON"), std::string::npos) << p.error;
}

TEST(HealthPage, DeepNestingIsRefusedWithoutRecursion) {
  // 100,000 nested arrays: a recursive parser or walker would overflow the stack.
  std::string body(100000, '[');
  body.append(100000, ']');
  std::string error;
  EXPECT_FALSE(parseJsonBounded(body, &error).has_value());
  EXPECT_NE(error.find("deeper than 64"), std::string::npos) << error;

  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  EXPECT_FALSE(p.report);
  EXPECT_NE(p.error.find("deeper than"), std::string::npos) << p.error;

  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += R"({"a":)";
  p = parseHealthPage(HealthFormat::health_json, "", objects, nullptr, {});
  EXPECT_FALSE(p.report);

  // Just inside the limit parses.
  std::string ok(kMaxJsonDepth - 1, '[');
  ok.append(kMaxJsonDepth - 1, ']');
  EXPECT_TRUE(parseJsonBounded(ok, &error).has_value()) << error;
}

TEST(HealthPage, DeeplyNestedSpringComponentsStayBounded) {
  // Nested "components" as deep as the parser allows: flattened, bounded names.
  std::string body = R"({"status":"UP","components":)";
  int levels = (kMaxJsonDepth - 2) / 2;
  for (int i = 0; i < levels; ++i) body += R"({"c":{"status":"UP","components":)";
  body += "{}";
  for (int i = 0; i < levels; ++i) body += "}}";
  body += "}";
  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report) << p.error;
  EXPECT_GT(p.report->components.size(), 20u);
  for (const Component& c : p.report->components) EXPECT_LE(c.name.size(), kMaxTextField);
  EXPECT_EQ(p.report->components[1].name, "c/c");
}

TEST(HealthPage, ComponentsAreCapped) {
  std::string body = R"({"status":"pass","checks":{)";
  for (int i = 0; i < 1000; ++i) {
    body += (i ? "," : "");
    body += "\"c" + std::to_string(i) + R"(":[{"status":"pass"}])";
  }
  body += "}}";
  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report) << p.error;
  EXPECT_EQ(p.report->components.size(), kMaxComponents);
  EXPECT_EQ(p.report->components.back().name, "c255");
  EXPECT_EQ(p.report->info.at("components_dropped"), "744");
}

TEST(HealthPage, HugeBodiesAreHandled) {
  // 5 MB of JSON: a long string field is cut, the page is still understood.
  std::string big = R"({"status":"fail","output":")" + std::string(5 * 1024 * 1024, 'x') + R"("})";
  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "", big, nullptr, {});
  ASSERT_TRUE(p.report) << p.error;
  EXPECT_EQ(p.report->status, Status::fail);
  EXPECT_LE(p.report->info.at("output").size(), kMaxTextField);
  EXPECT_LE(p.report->detail.size(), 512u);

  // 5 MB of garbage that starts like JSON: an error, bounded.
  std::string garbage = "{" + std::string(5 * 1024 * 1024, '#');
  p = parseHealthPage(HealthFormat::auto_detect, "", garbage, nullptr, {});
  EXPECT_FALSE(p.report);
  EXPECT_LE(p.error.size(), 512u);

  // 5 MB of text: fails with a bounded first line.
  std::string text(5 * 1024 * 1024, 'y');
  p = parseHealthPage(HealthFormat::text, "", text, nullptr, {});
  ASSERT_TRUE(p.report);
  EXPECT_EQ(p.report->status, Status::fail);
  EXPECT_LE(p.report->detail.size(), kMaxTextField);
  EXPECT_LE(p.report->status_text.size(), kMaxTextField);
}

TEST(HealthPage, TextFieldsAreCleaned) {
  // Invalid UTF-8 (Latin-1 'é'), a NUL escape and a control character in fields.
  std::string body =
      "{\"status\":\"pass\",\"version\":\"1.0-caf\xE9\",\"checks\":{\"d\\u0000b\":"
      "[{\"status\":\"pass\",\"output\":\"line1\\nline2\"}]}}";
  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "", body, nullptr, {});
  ASSERT_TRUE(p.report) << p.error;
  EXPECT_EQ(p.report->version, "1.0-caf\xEF\xBF\xBD");
  ASSERT_EQ(p.report->components.size(), 1u);
  EXPECT_EQ(p.report->components[0].name, "db");
  EXPECT_EQ(p.report->components[0].detail, "pass: line1 line2");
}

struct TextCase {
  std::string in;
  std::size_t max;
  std::string out;
};

class BoundedText : public ::testing::TestWithParam<TextCase> {};

TEST_P(BoundedText, Cleans) {
  const TextCase& c = GetParam();
  EXPECT_EQ(boundedText(c.in, c.max), c.out);
  EXPECT_LE(boundedText(c.in, c.max).size(), c.max);
}

INSTANTIATE_TEST_SUITE_P(
    Health, BoundedText,
    ::testing::Values(TextCase{"plain", 10, "plain"}, TextCase{"0123456789abc", 10, "0123456..."},
                      TextCase{std::string("a\0b", 3), 10, "ab"},
                      TextCase{"caf\xC3\xA9", 10, "caf\xC3\xA9"},  // valid é kept
                      TextCase{"x\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 8,
                               "x\xC3\xA9\xC3\xA9..."},                      // cut on a boundary
                      TextCase{"\xC0\xAF", 10, "\xEF\xBF\xBD\xEF\xBF\xBD"},  // overlong '/'
                      TextCase{"\xED\xA0\x80", 10,
                               "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},      // surrogate
                      TextCase{"\xF0\x9F\x98\x80", 10, "\xF0\x9F\x98\x80"},  // emoji kept
                      TextCase{"\xF0\x9F\x98", 10, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
                      TextCase{"a\tb\r\nc", 10, "a b  c"}));

TEST(HealthPage, FormatNone) {
  HealthParse p = parseHealthPage(HealthFormat::none, "", "anything", nullptr, {});
  ASSERT_TRUE(p.report);
  EXPECT_EQ(p.report->status, Status::ok);
  EXPECT_EQ(p.report->format, HealthFormat::none);
}

TEST(HealthPage, GivenDocumentIsUsedInsteadOfTheBody) {
  boost::json::value doc = boost::json::parse(R"({"status":"DOWN"})");
  // The body says UP; the caller's parsed document (of the same response) wins.
  HealthParse p = parseHealthPage(HealthFormat::auto_detect, "", R"({"status":"UP"})", &doc, {});
  ASSERT_TRUE(p.report);
  EXPECT_EQ(p.report->status, Status::fail);
}

TEST(HealthPage, CustomMappingValues) {
  CustomHealthMapping m;
  m.status_pointer = "/state/code";
  m.up_values = {"GREEN"};
  m.warn_values = {"YELLOW"};
  m.components_pointer = "/parts";
  std::string body =
      R"({"state":{"code":"yellow"},"parts":{"a":"green","b":{"status":"RED","error":"x"}}})";
  HealthParse p = parseHealthPage(HealthFormat::custom, "", body, nullptr, m);
  ASSERT_TRUE(p.report) << p.error;
  EXPECT_EQ(p.report->status, Status::warn);
  ASSERT_EQ(p.report->components.size(), 2u);
  EXPECT_EQ(p.report->components[0].status, Status::ok);
  EXPECT_EQ(p.report->components[1].status, Status::fail);
  EXPECT_EQ(p.report->components[1].detail, "RED: x");

  body = R"({"state":{"code":200}})";
  m.up_values = {"200"};
  p = parseHealthPage(HealthFormat::custom, "", body, nullptr, m);
  ASSERT_TRUE(p.report) << p.error;
  EXPECT_EQ(p.report->status, Status::ok);
}

TEST(HealthPage, ApplyToResult) {
  Result r = Result::ok();
  r.http_status = 503;
  applyHealthParse(
      parseHealthPage(HealthFormat::auto_detect, "", readSample("spring_down.json"), nullptr, {}),
      r);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_EQ(r.reason, Reason::health_fail);
  EXPECT_EQ(r.detail, "status DOWN; not ok: db");
  EXPECT_EQ(r.components.size(), 4u);

  r = Result::ok();
  applyHealthParse(parseHealthPage(HealthFormat::auto_detect, "",
                                   readSample("health_json_warn.json"), nullptr, {}),
                   r);
  EXPECT_EQ(r.status, Status::warn);
  EXPECT_EQ(r.reason, Reason::health_warn);
  EXPECT_EQ(r.version, "2");
  EXPECT_EQ(r.info.at("release_id"), "2.3.0");

  // An earlier failure (the HTTP status) is kept; facts are still added.
  r = Result::failure(Reason::http_status, "got 500");
  applyHealthParse(parseHealthPage(HealthFormat::auto_detect, "",
                                   readSample("health_json_fail.json"), nullptr, {}),
                   r);
  EXPECT_EQ(r.reason, Reason::http_status);
  EXPECT_EQ(r.detail, "got 500");
  EXPECT_EQ(r.components.size(), 3u);

  r = Result::ok();
  applyHealthParse(parseHealthPage(HealthFormat::auto_detect, "", "{", nullptr, {}), r);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_EQ(r.reason, Reason::health_parse);
  EXPECT_NE(r.detail.find("incomplete JSON"), std::string::npos) << r.detail;
}

TEST(HealthPage, FormatNames) {
  for (HealthFormat f : {HealthFormat::none, HealthFormat::auto_detect, HealthFormat::health_json,
                         HealthFormat::spring, HealthFormat::microprofile, HealthFormat::text,
                         HealthFormat::custom}) {
    EXPECT_EQ(healthFormatFromName(healthFormatName(f)), f);
  }
  EXPECT_EQ(healthFormatName(HealthFormat::auto_detect), "auto");
  EXPECT_FALSE(healthFormatFromName("yaml").has_value());
}

}  // namespace
}  // namespace vigie
