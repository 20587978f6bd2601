#include "probes/conditions.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

// Matching runs on the event loop: Boost's default budget (100M states, about a
// second on a catastrophic pattern) would stall every other check. 10M states is
// far above what a linear search of a 1 MiB body needs. Only this file includes
// Boost.Regex (everyone else goes through compileRegex()), so the budget is
// consistent across the program.
#ifndef BOOST_REGEX_MAX_STATE_COUNT
#define BOOST_REGEX_MAX_STATE_COUNT 10000000
#endif
#include <fmt/format.h>

#include <boost/regex.hpp>

#include "probes/health_page.h"

namespace vigie {

/// A compiled Perl-syntax pattern. Immutable after construction, so one instance
/// is shared by every check and every thread that evaluates it.
class CompiledRegex {
 public:
  explicit CompiledRegex(const std::string& pattern)
      : pattern_(pattern), re_(pattern, boost::regex::perl) {}
  const std::string& pattern() const { return pattern_; }
  const boost::regex& re() const { return re_; }

 private:
  std::string pattern_;
  boost::regex re_;
};

namespace {

namespace json = boost::json;

constexpr std::size_t kMaxDetail = 256;
constexpr std::size_t kMaxQuoted = 120;  // a value quoted inside a detail or a name

std::string quoted(std::string_view s) { return "\"" + boundedText(s, kMaxQuoted) + "\""; }

// "800ms", "2s", "1.5s": the form users write in the config.
std::string formatMillis(std::chrono::milliseconds ms) {
  auto n = ms.count();
  if (n != 0 && n % 1000 == 0) return fmt::format("{}s", n / 1000);
  return fmt::format("{}ms", n);
}

std::string formatSeconds(double s) {
  if (s >= 1.0) return fmt::format("{:.3g}s", s);
  return fmt::format("{:.3g}ms", s * 1000.0);
}

// What the value looks like, for a detail: `"fail"`, `503`, `an object with 3 members`.
std::string shown(const json::value& v) {
  if (const json::string* s = v.if_string()) return quoted(std::string_view(s->data(), s->size()));
  if (auto t = jsonScalarText(v)) return *t;
  if (const json::object* o = v.if_object())
    return fmt::format("an object with {} members", o->size());
  return fmt::format("an array of {} items", v.get_array().size());
}

// Parses the body at most once per evaluateAll() when the caller has no document.
class LazyJson {
 public:
  explicit LazyJson(const ResponseView& r) : r_(r) {}

  const json::value* get() {
    if (r_.json) return r_.json;
    if (!tried_) {
      tried_ = true;
      parsed_ = parseJsonBounded(r_.body, &error_);
    }
    return parsed_ ? &*parsed_ : nullptr;
  }
  const std::string& error() const { return error_; }

 private:
  const ResponseView& r_;
  bool tried_ = false;
  std::optional<json::value> parsed_;
  std::string error_;
};

bool parseNumber(std::string_view s, double* out) {
  if (s.empty() || s.size() > 64) return false;
  std::string buf(s);
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(buf.c_str(), &end);
  if (end != buf.c_str() + buf.size() || errno == ERANGE || !std::isfinite(d)) return false;
  *out = d;
  return true;
}

bool scalarEquals(const json::value& v, std::string_view text, std::string_view expected) {
  if (text == expected) return true;
  // 200 in the body and "200.0" in the config are the same number.
  if (v.is_number()) {
    double want = 0;
    if (parseNumber(expected, &want)) {
      double got = v.is_double()  ? v.get_double()
                   : v.is_int64() ? static_cast<double>(v.get_int64())
                                  : static_cast<double>(v.get_uint64());
      return got == want;
    }
  }
  return false;
}

ConditionResult evaluateJson(const ConditionSpec& c, LazyJson& doc) {
  ConditionResult res;
  const json::value* root = doc.get();
  if (!root) {
    res.detail = "body is not JSON";
    if (!doc.error().empty()) res.detail += " (" + doc.error() + ")";
    return res;
  }
  const json::value* v = resolvePointer(*root, c.pointer);
  if (!v) {
    res.detail = fmt::format("pointer {} not found", c.pointer);
    return res;
  }
  if (c.kind == ConditionSpec::Kind::json_exists) {
    res.ok = true;
    res.detail = "found " + shown(*v);
    return res;
  }
  auto text = jsonScalarText(*v);
  res.detail = "got " + shown(*v);
  res.ok = text && scalarEquals(*v, *text, c.value);
  return res;
}

ConditionResult evaluateRegex(const ConditionSpec& c, std::string_view body) {
  ConditionResult res;
  if (!c.regex) {
    res.detail = "internal: regex not compiled";
    return res;
  }
  try {
    boost::match_results<std::string_view::const_iterator> m;
    if (boost::regex_search(body.begin(), body.end(), m, c.regex->re())) {
      res.ok = true;
      auto offset = static_cast<std::size_t>(m[0].first - body.begin());
      res.detail =
          "matched " + quoted(body.substr(offset, static_cast<std::size_t>(m[0].length())));
    } else {
      res.detail = fmt::format("no match in {} bytes", body.size());
    }
  } catch (const std::exception&) {
    // Boost throws std::runtime_error when the match exceeds its state budget
    // (catastrophic backtracking) or its memory limit: the body wins, not us.
    res.ok = false;
    res.detail = "regex too complex for this body";
  }
  return res;
}

ConditionResult evaluateOne(const ConditionSpec& c, const ResponseView& r, LazyJson& doc) {
  ConditionResult res;
  switch (c.kind) {
    case ConditionSpec::Kind::json_equals:
    case ConditionSpec::Kind::json_exists:
      res = evaluateJson(c, doc);
      break;
    case ConditionSpec::Kind::body_matches:
      res = evaluateRegex(c, r.body);
      break;
    case ConditionSpec::Kind::body_contains: {
      auto pos = r.body.find(c.value);
      res.ok = pos != std::string_view::npos;
      res.detail = res.ok ? fmt::format("found at byte {}", pos)
                          : fmt::format("not found in {} bytes", r.body.size());
      break;
    }
    case ConditionSpec::Kind::latency_below: {
      double limit = static_cast<double>(c.latency.count()) / 1000.0;
      res.ok = r.latency_seconds < limit;
      res.detail = fmt::format("{} {} {}", formatSeconds(r.latency_seconds),
                               res.ok ? "<" : ">=", formatMillis(c.latency));
      break;
    }
    case ConditionSpec::Kind::status_in: {
      if (c.statuses.empty()) {
        res.ok = r.status >= 200 && r.status < 300;
      } else {
        res.ok = std::find(c.statuses.begin(), c.statuses.end(), r.status) != c.statuses.end();
      }
      res.detail = r.status == 0 ? std::string("no response") : fmt::format("got {}", r.status);
      break;
    }
  }
  res.name = c.describe();
  res.detail = boundedText(res.detail, kMaxDetail);
  return res;
}

}  // namespace

std::string ConditionSpec::describe() const {
  switch (kind) {
    case Kind::json_equals:
      return fmt::format("json {} == {}", boundedText(pointer, kMaxQuoted),
                         boundedText(value, kMaxQuoted));
    case Kind::json_exists:
      return fmt::format("json {} exists", boundedText(pointer, kMaxQuoted));
    case Kind::body_matches:
      return fmt::format("body ~ /{}/", boundedText(regex ? regex->pattern() : value, kMaxQuoted));
    case Kind::body_contains:
      return fmt::format("body contains {}", quoted(value));
    case Kind::latency_below:
      return fmt::format("latency < {}", formatMillis(latency));
    case Kind::status_in:
      if (statuses.empty()) return "status 2xx";
      if (statuses.size() == 1) return fmt::format("status == {}", statuses.front());
      return fmt::format("status in [{}]", fmt::join(statuses, ", "));
  }
  return "?";
}

std::shared_ptr<const CompiledRegex> compileRegex(const std::string& pattern) {
  try {
    return std::make_shared<const CompiledRegex>(pattern);
  } catch (const boost::regex_error& e) {
    // Boost's message repeats the pattern as written: clean it like every detail
    // (config errors end up in JSON log lines).
    throw std::invalid_argument(
        fmt::format("invalid regex {}: {}", quoted(pattern), boundedText(e.what(), 512)));
  }
}

ConditionResult evaluate(const ConditionSpec& c, const ResponseView& r) {
  try {
    LazyJson doc(r);
    return evaluateOne(c, r, doc);
  } catch (const std::exception& e) {
    // Only allocation can get here; a condition is data, never an exception.
    ConditionResult res;
    res.detail = boundedText(fmt::format("internal: {}", e.what()), kMaxDetail);
    return res;
  }
}

std::vector<ConditionResult> evaluateAll(const std::vector<ConditionSpec>& cs,
                                         const ResponseView& r) {
  std::vector<ConditionResult> out;
  out.reserve(cs.size());
  LazyJson doc(r);
  for (const ConditionSpec& c : cs) {
    try {
      out.push_back(evaluateOne(c, r, doc));
    } catch (const std::exception& e) {
      ConditionResult res;
      res.detail = boundedText(fmt::format("internal: {}", e.what()), kMaxDetail);
      out.push_back(std::move(res));
    }
  }
  return out;
}

const boost::json::value* resolvePointer(const boost::json::value& json, std::string_view pointer) {
  const json::value* cur = &json;
  if (pointer.empty()) return cur;
  if (pointer.front() != '/') return nullptr;
  std::string token;
  std::size_t pos = 1;
  while (true) {
    std::size_t end = pointer.find('/', pos);
    std::string_view raw =
        pointer.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    std::string_view key = raw;
    if (raw.find('~') != std::string_view::npos) {
      token.clear();
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '~') {
          token += raw[i];
          continue;
        }
        if (i + 1 >= raw.size()) return nullptr;
        char e = raw[++i];
        if (e == '0') {
          token += '~';
        } else if (e == '1') {
          token += '/';
        } else {
          return nullptr;  // RFC 6901: "~" only escapes 0 and 1
        }
      }
      key = token;
    }
    if (const json::object* o = cur->if_object()) {
      cur = o->if_contains(key);
      if (!cur) return nullptr;
    } else if (const json::array* a = cur->if_array()) {
      // An index is "0" or digits without a leading zero; "-" (past the end) never resolves.
      if (key.empty() || key.size() > 18 || (key.size() > 1 && key.front() == '0')) return nullptr;
      std::size_t idx = 0;
      for (char ch : key) {
        if (ch < '0' || ch > '9') return nullptr;
        idx = idx * 10 + static_cast<std::size_t>(ch - '0');
      }
      if (idx >= a->size()) return nullptr;
      cur = &(*a)[idx];
    } else {
      return nullptr;
    }
    if (end == std::string_view::npos) return cur;
    pos = end + 1;
  }
}

const void* resolvePointer(const void* json, std::string_view pointer) {
  if (!json) return nullptr;
  return resolvePointer(*static_cast<const boost::json::value*>(json), pointer);
}

std::optional<std::string> jsonScalarText(const boost::json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return std::string(v.get_string().data(), v.get_string().size());
    case json::kind::bool_:
      return std::string(v.get_bool() ? "true" : "false");
    case json::kind::null:
      return std::string("null");
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_:
      // Shortest text that reads back the same: 1.5 -> "1.5", 200.0 -> "200".
      return fmt::format("{}", v.get_double());
    case json::kind::object:
    case json::kind::array:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace vigie
