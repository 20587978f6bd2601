#pragma once
/// \file
/// Conditions on an HTTP response, each evaluated on its own (as Gatus does), so
/// the page can say exactly which one failed. Compiled once at config load.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probes/probe.h"

namespace boost::json {
class value;
}

namespace vigie {

class CompiledRegex;  // defined in conditions.cc (Boost.Regex, bounded matching)

struct ConditionSpec {
  enum class Kind {
    json_equals,    // {json: /status, equals: pass}: pointer resolves to a scalar whose text equals
                    // `value`
    json_exists,    // {json: /checks} with no equals: the pointer resolves
    body_matches,   // {body_matches: "database.*ok"}: regex search on the body
    body_contains,  // {body_contains: "OK"}: substring
    latency_below,  // {latency_below: 800ms}
    status_in,      // {status: [200, 204]}
  };
  Kind kind = Kind::body_contains;
  std::string pointer;  // json_*: JSON pointer (RFC 6901)
  std::string value;  // json_equals: expected text; body_contains: substring; body_matches: pattern
  std::shared_ptr<const CompiledRegex> regex;  // body_matches
  std::chrono::milliseconds latency{0};        // latency_below
  std::vector<int> statuses;                   // status_in

  /// Human form shown on the page: "json /status == pass", "body ~ /database.*ok/", "latency <
  /// 800ms".
  std::string describe() const;
};

/// Compiles a regex (Perl syntax, Boost.Regex) for body_matches; throws
/// std::invalid_argument with a readable message if the pattern is invalid (call at
/// config load only). The result is immutable and may be shared between threads.
std::shared_ptr<const CompiledRegex> compileRegex(const std::string& pattern);

/// What a condition is evaluated against.
struct ResponseView {
  int status = 0;
  std::string_view body;
  double latency_seconds = 0;
  const boost::json::value* json =
      nullptr;  // the parsed body when it is JSON, else null (not owned)
};

/// Evaluates one condition. Never throws: a regex that exceeds its complexity
/// budget on a hostile body is a failed condition with that detail. Details are
/// bounded (a few hundred bytes). Reentrant; called on the loop thread.
ConditionResult evaluate(const ConditionSpec& c, const ResponseView& r);

/// Evaluates all, in order.
std::vector<ConditionResult> evaluateAll(const std::vector<ConditionSpec>& cs,
                                         const ResponseView& r);

/// Resolves an RFC 6901 pointer ("/a/b/0", "~0" and "~1" escapes) in a parsed
/// boost::json::value; returns null when it does not resolve (or the pointer is
/// malformed). "" is the whole document. The result points into `json`.
const boost::json::value* resolvePointer(const boost::json::value& json, std::string_view pointer);
/// The same on an untyped pointer (`json` is a const boost::json::value*, may be
/// null); kept for callers that hold the document as const void*.
const void* resolvePointer(const void* json, std::string_view pointer);

/// The text a JSON scalar is compared by: a string's characters, or the JSON
/// text of a number/bool/null ("200", "true", "null"); nullopt for objects/arrays.
std::optional<std::string> jsonScalarText(const boost::json::value& v);

}  // namespace vigie
