#pragma once
/// \file
/// Parsers for structured health pages: application/health+json (IETF draft),
/// Spring Boot Actuator, MicroProfile Health, plain text, and a custom mapping by
/// JSON pointers. Pure functions on a body: no I/O, bounded depth and size.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <map>
#include "probes/probe.h"

namespace boost::json {
class value;
}

namespace vigie {

enum class HealthFormat { none, auto_detect, health_json, spring, microprofile, text, custom };

/// For `health_format: custom`: where a home-made page keeps its facts.
struct CustomHealthMapping {
  std::string status_pointer = "/status";      // JSON pointer to the overall status
  std::vector<std::string> up_values = {"up", "ok", "pass", "healthy", "true"};
  std::vector<std::string> warn_values = {"warn", "degraded"};
  std::string components_pointer;              // object or array of components (optional)
  std::string version_pointer;                 // optional
};

/// What a health page said.
struct HealthReport {
  HealthFormat format = HealthFormat::none;  // the format actually recognised
  Status status = Status::fail;              // overall: ok | warn | fail
  std::string status_text;                   // the page's own word ("UP", "pass", "OUT_OF_SERVICE")
  std::vector<Component> components;
  std::string version;                       // version / releaseId / build.version
  std::map<std::string, std::string> info;   // release_id, service_id, description, ...
};

/// Outcome of parsing: either a report, or an error text (the check then fails
/// with Reason::health_parse and this detail).
struct HealthParse {
  std::optional<HealthReport> report;
  std::string error;
};

/// Parse limits: a hostile page fails its check, it never exhausts the process.
constexpr int kMaxJsonDepth = 64;
constexpr std::size_t kMaxComponents = 256;
constexpr std::size_t kMaxTextField = 256;  // component names/details/versions are cut here

/// Parses `body` as JSON with depth kMaxJsonDepth; nullopt (and `error` filled)
/// when it is not JSON or too deep. Used by both the parsers and the conditions.
std::optional<boost::json::value> parseJsonBounded(std::string_view body, std::string* error);

/// Interprets a health page. `format` auto_detect picks by content type
/// ("application/health+json", "application/vnd.spring-boot.actuator...") and by
/// shape (Spring: status UP/DOWN + components; MicroProfile: status + checks[] of
/// {name,status}; health+json: status pass/warn/fail), falling back to text.
/// `json` may be given when the caller already parsed the body (else parsed here).
HealthParse parseHealthPage(HealthFormat format, std::string_view content_type,
                            std::string_view body, const boost::json::value* json,
                            const CustomHealthMapping& custom);

/// "auto", "health+json", "spring", "microprofile", "text", "custom", "none".
std::string_view healthFormatName(HealthFormat f);
std::optional<HealthFormat> healthFormatFromName(std::string_view name);

}  // namespace vigie
