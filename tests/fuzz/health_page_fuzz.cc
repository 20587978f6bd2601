// Fuzzes the health-page parsers (probes/health_page.h): the input is a body as a
// target would send it, read in every format, auto-detected under the content
// types that steer detection, and through custom mappings. Beyond "no crash, no
// leak, no hang", it checks the parsers' promises: exactly one of report/error,
// at most kMaxComponents components, every text bounded, one line, valid UTF-8.

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "probes/health_page.h"
#include "tests/fuzz/fuzz_check.h"

namespace vigie {
namespace {

using fuzz::cleanLine;
using fuzz::validUtf8;

void checkText(std::string_view text, std::size_t max, const char* what) {
  VIGIE_FUZZ_CHECK(text.size() <= max, what);
  VIGIE_FUZZ_CHECK(cleanLine(text), what);
}

void checkParse(const HealthParse& p) {
  VIGIE_FUZZ_CHECK(p.report.has_value() != !p.error.empty(), p.error);
  Result result;
  result.status = Status::ok;
  applyHealthParse(p, result);
  checkText(result.detail, 512, "result detail");
  if (!p.report) {
    checkText(p.error, 512, "error");
    return;
  }
  const HealthReport& r = *p.report;
  VIGIE_FUZZ_CHECK(r.components.size() <= kMaxComponents, "components");
  checkText(r.status_text, kMaxTextField, "status_text");
  checkText(r.detail, 512, "detail");
  checkText(r.version, kMaxTextField, "version");
  for (const Component& c : r.components) {
    checkText(c.name, kMaxTextField, "component name");
    checkText(c.detail, kMaxTextField, "component detail");
  }
  for (const auto& [k, v] : r.info) {
    VIGIE_FUZZ_CHECK(validUtf8(k), k);
    checkText(v, kMaxTextField, "info");
  }
}

void checkBoundedText(std::string_view body) {
  for (std::size_t max : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{3},
                          std::size_t{4}, std::size_t{7}, kMaxTextField}) {
    const std::string t = boundedText(body, max);
    VIGIE_FUZZ_CHECK(t.size() <= max, t);
    VIGIE_FUZZ_CHECK(cleanLine(t), t);
    VIGIE_FUZZ_CHECK(boundedText(t, max) == t, t);  // idempotent: clean text stays as is
  }
}

CustomHealthMapping mapping(std::string status, std::string components, std::string version) {
  CustomHealthMapping m;
  m.status_pointer = std::move(status);
  m.components_pointer = std::move(components);
  m.version_pointer = std::move(version);
  return m;
}

}  // namespace
}  // namespace vigie

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vigie;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  static const CustomHealthMapping kDefault;
  static const CustomHealthMapping kMappings[] = {
      mapping("/status", "/checks", "/version"),
      mapping("/health/state", "/components", "/build/version"),
      mapping("/0", "/1", "/2"),
      mapping("", "", ""),
      mapping("/a~1b/~0c", "/details", "/info/version"),
  };
  static constexpr std::string_view kContentTypes[] = {
      "",
      "application/health+json",
      "application/vnd.spring-boot.actuator.v3+json;charset=UTF-8",
      "application/json",
      "text/plain; charset=utf-8",
  };

  checkBoundedText(body);

  std::string error;
  const auto doc = parseJsonBounded(body, &error);
  if (!doc) checkText(error, 512, "json error");
  const boost::json::value* json = doc ? &*doc : nullptr;

  for (HealthFormat f : {HealthFormat::none, HealthFormat::health_json, HealthFormat::spring,
                         HealthFormat::microprofile, HealthFormat::text, HealthFormat::custom}) {
    // Without and with the caller's parsed document: the same answer either way.
    const HealthParse a = parseHealthPage(f, "", body, nullptr, kDefault);
    checkParse(a);
    if (json) {
      const HealthParse b = parseHealthPage(f, "", body, json, kDefault);
      checkParse(b);
      VIGIE_FUZZ_CHECK(a.report.has_value() == b.report.has_value(), a.error);
      if (a.report) {
        VIGIE_FUZZ_CHECK(a.report->status == b.report->status, a.report->status_text);
        VIGIE_FUZZ_CHECK(a.report->components.size() == b.report->components.size(), "");
      }
    }
  }
  for (std::string_view ct : kContentTypes) {
    checkParse(parseHealthPage(HealthFormat::auto_detect, ct, body, nullptr, kDefault));
    if (json) checkParse(parseHealthPage(HealthFormat::auto_detect, ct, body, json, kDefault));
  }
  if (json) {
    for (const CustomHealthMapping& m : kMappings) {
      checkParse(parseHealthPage(HealthFormat::custom, "", body, json, m));
    }
  }
  return 0;
}
