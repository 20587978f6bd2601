#pragma once
/// \file
/// Parsers for structured health pages: application/health+json (IETF draft),
/// Spring Boot Actuator, MicroProfile Health, plain text, and a custom mapping by
/// JSON pointers. Pure functions on a body: no I/O, bounded depth and size, no
/// exceptions (a page that cannot be understood is a HealthParse with an error).
///
/// Threading: every function here is reentrant and may be called from any thread;
/// in practice they run on the loop thread, once per probe attempt.

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probes/probe.h"

namespace boost::json {
class value;
class monotonic_resource;
}

namespace vigie {

enum class HealthFormat { none, auto_detect, health_json, spring, microprofile, text, custom };

/// For `health_format: custom`: where a home-made page keeps its facts.
/// Values are compared case-insensitively with the text of the JSON scalar found
/// (a string's characters, or `true`/`false`/`null`/a number as written in JSON);
/// anything that is neither an up nor a warn value is a failure.
struct CustomHealthMapping {
  std::string status_pointer = "/status";  // JSON pointer to the overall status
  std::vector<std::string> up_values = {"up", "ok", "pass", "healthy", "true"};
  std::vector<std::string> warn_values = {"warn", "degraded"};
  /// Optional. An object {name: status-or-object} or an array of objects; an
  /// object component's status is its "status" member, an array element's name
  /// is its "name" (else "componentId", "id", else its index).
  std::string components_pointer;
  std::string version_pointer;  // optional
};

/// What a health page said.
struct HealthReport {
  HealthFormat format = HealthFormat::none;  // the format actually recognised
  Status status = Status::fail;              // overall: ok | warn | fail (the page's own word)
  std::string status_text;                   // the page's own word ("UP", "pass", "OUT_OF_SERVICE")
  /// For a human, bounded: why the page is not ok ("status DOWN; down: db, redis",
  /// "unknown status word \"meh\""), or the page's `output`. Empty when ok and silent.
  std::string detail;
  /// As the page reports them, in page order, at most kMaxComponents; nested
  /// Spring components are flattened as "parent/child". A component's status does
  /// not change the overall status: the page's own word decides.
  std::vector<Component> components;
  std::string version;  // version / releaseId / build.version
  /// Other facts, keys in snake_case: release_id, service_id, description, output,
  /// components_dropped (how many were left out past kMaxComponents).
  std::map<std::string, std::string> info;
};

/// Outcome of parsing: either a report, or an error text (the check then fails
/// with Reason::health_parse and this detail). Exactly one of the two is set.
struct HealthParse {
  std::optional<HealthReport> report;
  std::string error;
};

/// Parse limits: a hostile page fails its check, it never exhausts the process.
constexpr int kMaxJsonDepth = 64;
constexpr std::size_t kMaxComponents = 256;
constexpr std::size_t kMaxTextField = 256;  // component names/details/versions are cut here

/// Parses `body` as JSON with depth kMaxJsonDepth; nullopt (and `*error` filled
/// when error is not null) when it is not JSON, too deep, or memory ran out.
/// Never throws, never recurses past the depth limit. Invalid UTF-8 inside strings
/// is accepted (the parsers clean text fields with boundedText()). Used by both
/// the parsers and the conditions; the caller includes <boost/json.hpp>.
/// With `storage`, the value's memory comes from it (over a buffer of the caller's:
/// no allocation per probe for a small page) and the value's destruction is free (a
/// monotonic resource frees nothing, so the value is not walked); it must outlive the
/// value.
std::optional<boost::json::value> parseJsonBounded(
    std::string_view body, std::string* error,
    boost::json::monotonic_resource* storage = nullptr);

/// Interprets a health page. `format` auto_detect picks by content type
/// ("application/health+json", "application/vnd.spring-boot.actuator...") and by
/// shape (Spring: status UP/DOWN + components; MicroProfile: status + checks[] of
/// {name,status}; health+json: status pass/warn/fail), falling back to text when
/// the body does not start like JSON. `json` may be given when the caller already
/// parsed the body (it is then used as is, the body is not parsed again); when
/// null and the format needs JSON, the body is parsed here. `none` returns an
/// empty ok report. Never throws.
HealthParse parseHealthPage(HealthFormat format, std::string_view content_type,
                            std::string_view body, const boost::json::value* json,
                            const CustomHealthMapping& custom);

/// Folds a parse into a probe result: components, version and info (release_id
/// ...) always; status, reason and detail only if `result` is ok so far (a failed
/// HTTP status or timeout is not overwritten): parse error -> fail/health_parse,
/// page fail -> fail/health_fail, page warn -> warn/health_warn.
void applyHealthParse(HealthParse parse, Result& result);

/// `text` with NUL bytes removed, invalid UTF-8 replaced by U+FFFD, and cut to at
/// most `max_bytes` bytes on a character boundary ("..." marks a cut).
std::string boundedText(std::string_view text, std::size_t max_bytes = kMaxTextField);

/// "auto", "health+json", "spring", "microprofile", "text", "custom", "none".
std::string_view healthFormatName(HealthFormat f);
/// Inverse of healthFormatName(); also accepts "health_json" and "auto_detect".
std::optional<HealthFormat> healthFormatFromName(std::string_view name);

}  // namespace vigie
