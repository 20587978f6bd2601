#include "probes/health_page.h"

#include "probes/utf8.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <new>
#include <utility>

#include "probes/conditions.h"

namespace vigie {
namespace {

namespace json = boost::json;

// Longest summary we build for HealthReport::detail; the list of non-ok
// components is the part that grows, so it gets more room than a single field.
constexpr std::size_t kMaxDetail = 512;

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lowerChar(a[i]) != lowerChar(b[i])) return false;
  }
  return true;
}

bool istartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}


HealthParse parseError(std::string text) {
  HealthParse p;
  p.error = boundedText(text, kMaxDetail);
  return p;
}

HealthParse withReport(HealthReport r) {
  HealthParse p;
  p.report = std::move(r);
  return p;
}

const json::value* member(const json::object& o, std::string_view key) {
  return o.if_contains(key);
}

const json::string* stringMember(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_string() : nullptr;
}

const json::object* objectMember(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

std::string_view view(const json::string& s) { return {s.data(), s.size()}; }

// Scalar text of a member, "" when absent or not a scalar.
std::string scalarMember(const json::object& o, std::string_view key) {
  const json::value* v = member(o, key);
  if (!v) return {};
  auto t = jsonScalarText(*v);
  return t ? std::move(*t) : std::string();
}

// Collects a report with the limits applied in one place.
class ReportBuilder {
 public:
  explicit ReportBuilder(HealthFormat f) { report_.format = f; }

  HealthReport& report() { return report_; }

  void setStatus(Status s, std::string_view word) {
    report_.status = s;
    report_.status_text = boundedText(word);
  }

  void addComponent(std::string_view name, Status s, std::string_view detail) {
    if (report_.components.size() >= kMaxComponents) {
      ++dropped_;
      return;
    }
    Component c;
    c.name = boundedText(name);
    c.status = s;
    c.detail = boundedText(detail);
    report_.components.push_back(std::move(c));
  }

  void setInfo(std::string key, std::string_view value) {
    if (!value.empty()) report_.info[std::move(key)] = boundedText(value);
  }

  void setVersion(std::string_view v) {
    if (report_.version.empty() && !v.empty()) report_.version = boundedText(v);
  }

  // Fills the human summary: the page's word when it is not ok, the names of
  // the components that are not ok, and the page's own output if any.
  HealthReport finish(std::string_view unknown_word_note = {}) {
    if (dropped_ > 0) report_.info["components_dropped"] = std::to_string(dropped_);
    std::string d;
    if (!unknown_word_note.empty()) {
      d = std::string(unknown_word_note);
    } else if (report_.status != Status::ok) {
      d = "status " + report_.status_text;
    }
    if (report_.status != Status::ok) {
      std::string bad;
      std::size_t n = 0;
      for (const Component& c : report_.components) {
        if (c.status == Status::ok) continue;
        if (bad.size() > kMaxDetail) break;
        bad += (n++ ? ", " : "");
        bad += c.name;
      }
      if (!bad.empty()) d += "; not ok: " + bad;
    }
    auto out = report_.info.find("output");
    if (out != report_.info.end() && !out->second.empty()) {
      d += (d.empty() ? "" : "; ") + out->second;
    }
    report_.detail = boundedText(d, kMaxDetail);
    return std::move(report_);
  }

 private:
  HealthReport report_;
  std::size_t dropped_ = 0;
};

// --- status words, per format -------------------------------------------------

std::optional<Status> healthJsonWord(std::string_view w) {
  if (iequals(w, "pass") || iequals(w, "ok") || iequals(w, "up")) return Status::ok;
  if (iequals(w, "warn")) return Status::warn;
  if (iequals(w, "fail") || iequals(w, "error") || iequals(w, "down")) return Status::fail;
  return std::nullopt;
}

// Spring's UNKNOWN means "could not tell" (Spring itself answers 200 for it):
// a warning, not an outage.
std::optional<Status> springWord(std::string_view w) {
  if (iequals(w, "UP")) return Status::ok;
  if (iequals(w, "DOWN") || iequals(w, "OUT_OF_SERVICE")) return Status::fail;
  if (iequals(w, "UNKNOWN")) return Status::warn;
  return std::nullopt;
}

std::optional<Status> microprofileWord(std::string_view w) {
  if (iequals(w, "UP")) return Status::ok;
  if (iequals(w, "DOWN")) return Status::fail;
  return std::nullopt;
}

std::string unknownWordNote(std::string_view w) {
  return fmt::format("unknown status word \"{}\"", boundedText(w, 64));
}

// The page-level status; sets the builder and returns the note for an unknown word.
template <typename Map>
std::string applyPageStatus(ReportBuilder& b, std::string_view word, Map map) {
  b.setStatus(Status::fail, word);
  if (auto s = map(word)) {
    b.report().status = *s;
    return {};
  }
  return unknownWordNote(word);
}

template <typename Map>
Status componentStatus(std::string_view word, Map map) {
  return map(word).value_or(Status::fail);
}

std::string joinDetail(std::string_view word, std::string_view extra) {
  if (extra.empty()) return std::string(word);
  if (word.empty()) return std::string(extra);
  return fmt::format("{}: {}", word, boundedText(extra));
}

// Versions live in different places depending on what the page merges in
// (Spring's /info build section, a custom "version" member...).
void findVersion(ReportBuilder& b, const json::value& doc) {
  static constexpr std::array<std::string_view, 5> kPlaces = {
      "/version", "/build/version", "/app/version", "/info/build/version",
      "/components/info/details/build/version"};
  for (std::string_view p : kPlaces) {
    if (const json::value* v = resolvePointer(doc, p)) {
      if (auto t = jsonScalarText(*v); t && !t->empty() && !v->is_null()) {
        b.setVersion(*t);
        return;
      }
    }
  }
}

// --- health+json ----------------------------------------------------------------

HealthParse parseHealthJson(const json::value& doc) {
  const json::object* o = doc.if_object();
  if (!o) return parseError("health+json: the page is not a JSON object");
  const json::string* status = stringMember(*o, "status");
  if (!status) return parseError("health+json: no \"status\" string member");

  ReportBuilder b(HealthFormat::health_json);
  std::string note = applyPageStatus(b, view(*status), healthJsonWord);
  b.setVersion(scalarMember(*o, "version"));
  std::string release = scalarMember(*o, "releaseId");
  b.setInfo("release_id", release);
  b.setVersion(release);
  b.setInfo("service_id", scalarMember(*o, "serviceId"));
  b.setInfo("description", scalarMember(*o, "description"));
  b.setInfo("output", scalarMember(*o, "output"));

  if (const json::object* checks = objectMember(*o, "checks")) {
    for (const auto& kv : *checks) {
      std::string_view key(kv.key().data(), kv.key().size());
      // The draft says an array of objects; some servers send a lone object.
      const json::array* arr = kv.value().if_array();
      std::size_t count = arr ? arr->size() : 1;
      for (std::size_t i = 0; i < count; ++i) {
        const json::value& item = arr ? (*arr)[i] : kv.value();
        const json::object* c = item.if_object();
        std::string name(key);
        if (count > 1) {
          std::string id = c ? scalarMember(*c, "componentId") : std::string();
          name += "/" + (id.empty() ? std::to_string(i) : id);
        }
        if (!c) {
          b.addComponent(name, Status::fail, "not an object");
          continue;
        }
        const json::string* cs = stringMember(*c, "status");
        Status st = cs ? componentStatus(view(*cs), healthJsonWord) : b.report().status;
        std::string detail = cs ? std::string(view(*cs)) : std::string("(no status)");
        std::string observed = scalarMember(*c, "observedValue");
        if (!observed.empty()) {
          std::string unit = scalarMember(*c, "observedUnit");
          detail += " " + observed + (unit.empty() ? "" : " " + unit);
        }
        b.addComponent(name, st, joinDetail(detail, scalarMember(*c, "output")));
      }
    }
  }
  return withReport(b.finish(note));
}

// --- Spring Boot Actuator -------------------------------------------------------

// Boot 2.2+ nests under "components"; Boot 2.0/2.1 under "details" (mixed with
// plain facts, so only status-bearing objects count); Boot 1.x puts indicators
// beside "status". Depth is bounded by the parser's max_depth.
void walkSpring(ReportBuilder& b, const json::object& container, const std::string& prefix,
                bool only_with_status, std::string_view skip_key) {
  for (const auto& kv : container) {
    std::string_view key(kv.key().data(), kv.key().size());
    if (key == skip_key) continue;
    const json::object* c = kv.value().if_object();
    if (!c) continue;
    const json::string* cs = stringMember(*c, "status");
    if (!cs && (only_with_status || !objectMember(*c, "components"))) continue;
    std::string name = prefix + std::string(key);
    std::string_view word = cs ? view(*cs) : std::string_view();
    Status st = cs ? componentStatus(word, springWord) : Status::fail;
    std::string extra;
    if (const json::object* details = objectMember(*c, "details")) {
      extra = scalarMember(*details, "error");
      if (extra.empty()) extra = scalarMember(*details, "reason");
    }
    b.addComponent(name, st, joinDetail(cs ? word : "(no status)", extra));
    if (const json::object* sub = objectMember(*c, "components")) {
      walkSpring(b, *sub, name + "/", false, {});
    } else if (const json::object* details = objectMember(*c, "details")) {
      walkSpring(b, *details, name + "/", true, {});
    }
  }
}

HealthParse parseSpring(const json::value& doc) {
  const json::object* o = doc.if_object();
  if (!o) return parseError("spring: the page is not a JSON object");
  const json::string* status = stringMember(*o, "status");
  if (!status) return parseError("spring: no \"status\" string member");

  ReportBuilder b(HealthFormat::spring);
  std::string note = applyPageStatus(b, view(*status), springWord);
  if (const json::object* comps = objectMember(*o, "components")) {
    walkSpring(b, *comps, "", false, {});
  } else if (const json::object* details = objectMember(*o, "details")) {
    walkSpring(b, *details, "", true, {});
  } else {
    walkSpring(b, *o, "", true, "status");
  }
  if (const json::value* groups = member(*o, "groups"); groups && groups->is_array()) {
    std::string g;
    for (const json::value& v : groups->get_array()) {
      if (const json::string* s = v.if_string())
        g += (g.empty() ? "" : ",") + std::string(view(*s));
      if (g.size() > kMaxTextField) break;
    }
    b.setInfo("groups", g);
  }
  findVersion(b, doc);
  if (const json::value* commit = resolvePointer(doc, "/git/commit/id")) {
    if (auto t = jsonScalarText(*commit)) b.setInfo("git_commit", *t);
  }
  return withReport(b.finish(note));
}

// --- MicroProfile Health --------------------------------------------------------

std::string summarizeData(const json::object& data) {
  std::string out;
  for (const auto& kv : data) {
    if (out.size() >= kMaxTextField) break;
    auto t = jsonScalarText(kv.value());
    if (!t) continue;
    if (!out.empty()) out += ", ";
    out.append(kv.key().data(), kv.key().size());
    out += "=";
    out += *t;
  }
  return out;
}

HealthParse parseMicroprofile(const json::value& doc) {
  const json::object* o = doc.if_object();
  if (!o) return parseError("microprofile: the page is not a JSON object");
  const json::string* status = stringMember(*o, "status");
  if (!status) return parseError("microprofile: no \"status\" string member");

  ReportBuilder b(HealthFormat::microprofile);
  std::string note = applyPageStatus(b, view(*status), microprofileWord);
  if (const json::value* checks = member(*o, "checks"); checks && checks->is_array()) {
    std::size_t i = 0;
    for (const json::value& item : checks->get_array()) {
      const json::object* c = item.if_object();
      if (!c) {
        b.addComponent(fmt::format("check#{}", i++), Status::fail, "not an object");
        continue;
      }
      std::string name = scalarMember(*c, "name");
      if (name.empty()) name = fmt::format("check#{}", i);
      ++i;
      const json::string* cs = stringMember(*c, "status");
      Status st = cs ? componentStatus(view(*cs), microprofileWord) : Status::fail;
      std::string extra;
      if (const json::object* data = objectMember(*c, "data")) extra = summarizeData(*data);
      b.addComponent(name, st, joinDetail(cs ? view(*cs) : "(no status)", extra));
    }
  }
  findVersion(b, doc);
  return withReport(b.finish(note));
}

// --- plain text -----------------------------------------------------------------

HealthParse parseText(std::string_view body) {
  ReportBuilder b(HealthFormat::text);
  std::string_view t = trim(body);
  if (t.empty()) {
    b.setStatus(Status::fail, "");
    HealthReport r = b.finish();
    r.detail = "empty body";
    return withReport(std::move(r));
  }
  std::string_view first = t.substr(0, t.find_first_of("\r\n"));
  first = trim(first);
  static constexpr std::array<std::string_view, 4> kOkWords = {"ok", "up", "healthy", "pass"};
  bool ok = std::any_of(kOkWords.begin(), kOkWords.end(),
                        [&](std::string_view w) { return iequals(t, w); });
  b.setStatus(ok ? Status::ok : Status::fail, first);
  HealthReport r = b.finish();
  r.detail = ok ? std::string() : boundedText(first);
  return withReport(std::move(r));
}

// --- custom mapping -------------------------------------------------------------

bool inList(std::string_view word, const std::vector<std::string>& list) {
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& v) { return iequals(word, v); });
}

Status customWord(std::string_view word, const CustomHealthMapping& m) {
  if (inList(word, m.up_values)) return Status::ok;
  if (inList(word, m.warn_values)) return Status::warn;
  return Status::fail;
}

// Status and detail of one custom component: a scalar is the status itself, an
// object carries "status" (and perhaps "output"/"message"/"error").
void addCustomComponent(ReportBuilder& b, std::string_view name, const json::value& v,
                        const CustomHealthMapping& m) {
  if (auto t = jsonScalarText(v)) {
    b.addComponent(name, customWord(*t, m), *t);
    return;
  }
  const json::object* c = v.if_object();
  if (!c) {
    b.addComponent(name, Status::fail, "not an object");
    return;
  }
  const json::value* sv = member(*c, "status");
  auto word = sv ? jsonScalarText(*sv) : std::nullopt;
  std::string extra;
  for (std::string_view k : {"output", "message", "error", "detail"}) {
    extra = scalarMember(*c, k);
    if (!extra.empty()) break;
  }
  if (!word) {
    b.addComponent(name, Status::fail, joinDetail("(no status)", extra));
    return;
  }
  b.addComponent(name, customWord(*word, m), joinDetail(*word, extra));
}

HealthParse parseCustom(const json::value& doc, const CustomHealthMapping& m) {
  const json::value* sv = resolvePointer(doc, m.status_pointer);
  if (!sv) return parseError(fmt::format("custom: status pointer {} not found", m.status_pointer));
  auto word = jsonScalarText(*sv);
  if (!word) {
    return parseError(fmt::format("custom: status pointer {} is not a string, number or boolean",
                                  m.status_pointer));
  }
  ReportBuilder b(HealthFormat::custom);
  Status st = customWord(*word, m);
  b.setStatus(st, *word);
  std::string note;
  if (st == Status::fail && !inList(*word, m.up_values)) {
    // A word the mapping does not know is how a home-made page says "down";
    // say which word it was.
    note = fmt::format("status \"{}\" is neither an up nor a warn value", boundedText(*word, 64));
  }
  if (!m.components_pointer.empty()) {
    if (const json::value* comps = resolvePointer(doc, m.components_pointer)) {
      if (const json::object* obj = comps->if_object()) {
        for (const auto& kv : *obj) {
          addCustomComponent(b, std::string_view(kv.key().data(), kv.key().size()), kv.value(), m);
        }
      } else if (const json::array* arr = comps->if_array()) {
        for (std::size_t i = 0; i < arr->size(); ++i) {
          const json::value& item = (*arr)[i];
          std::string name;
          if (const json::object* c = item.if_object()) {
            for (std::string_view k : {"name", "componentId", "id"}) {
              name = scalarMember(*c, k);
              if (!name.empty()) break;
            }
          }
          if (name.empty()) name = std::to_string(i);
          addCustomComponent(b, name, item, m);
        }
      }
    }
  }
  if (!m.version_pointer.empty()) {
    if (const json::value* v = resolvePointer(doc, m.version_pointer)) {
      if (auto t = jsonScalarText(*v)) b.setVersion(*t);
    }
  }
  return withReport(b.finish(note));
}

// --- detection ------------------------------------------------------------------

HealthParse parseByShape(const json::value& doc) {
  if (const json::string* s = doc.if_string()) return parseText(view(*s));  // answers "OK" as JSON
  const json::object* o = doc.if_object();
  if (!o) return parseError("JSON health page is not an object");
  const json::value* status = member(*o, "status");
  if (!status) {
    return parseError(
        "JSON page without a \"status\" member: not health+json, Spring or MicroProfile "
        "(use health_format: custom)");
  }
  const json::value* checks = member(*o, "checks");
  if (checks && checks->is_array()) return parseMicroprofile(doc);
  if (checks && checks->is_object()) return parseHealthJson(doc);
  const json::string* word = status->if_string();
  if (!word) return parseError("\"status\" is not a string (use health_format: custom)");
  // {"status":"UP"} is Spring's minimal answer; "components"/"details" its full one.
  if (springWord(view(*word)) || objectMember(*o, "components") || objectMember(*o, "details")) {
    return parseSpring(doc);
  }
  return parseHealthJson(doc);
}

std::string_view mediaType(std::string_view content_type) {
  return trim(content_type.substr(0, content_type.find(';')));
}

bool looksLikeJson(std::string_view body) {
  std::string_view t = trim(body);
  return !t.empty() && (t.front() == '{' || t.front() == '[' || t.front() == '"');
}

// Holds the document: the caller's, or one parsed here, parsed at most once.
class Document {
 public:
  Document(std::string_view body, const json::value* given) : body_(body), given_(given) {}

  const json::value* get(std::string* error) {
    if (given_) return given_;
    if (!parsed_) {
      if (trim(body_).empty()) {
        *error = "empty body";
        return nullptr;
      }
      parsed_ = parseJsonBounded(body_, &error_);
      if (!parsed_) {
        *error = error_;
        return nullptr;
      }
    }
    return &*parsed_;
  }

 private:
  std::string_view body_;
  const json::value* given_;
  std::optional<json::value> parsed_;
  std::string error_;
};

HealthParse parseImpl(HealthFormat format, std::string_view content_type, std::string_view body,
                      const json::value* given, const CustomHealthMapping& custom) {
  if (format == HealthFormat::none) {
    HealthReport r;
    r.status = Status::ok;
    return withReport(std::move(r));
  }
  if (format == HealthFormat::text) return parseText(body);

  Document doc(body, given);
  std::string error;
  std::string_view media = mediaType(content_type);
  if (format == HealthFormat::auto_detect) {
    if (iequals(media, "application/health+json")) {
      format = HealthFormat::health_json;
    } else if (istartsWith(media, "application/vnd.spring-boot.actuator")) {
      format = HealthFormat::spring;
    } else if (given || looksLikeJson(body) || media.find("json") != std::string_view::npos) {
      const json::value* v = doc.get(&error);
      if (!v) return parseError("health page: " + error);
      return parseByShape(*v);
    } else {
      if (trim(body).empty()) return parseError("health page: empty body");
      return parseText(body);
    }
  }
  const json::value* v = doc.get(&error);
  if (!v) return parseError(fmt::format("{}: {}", healthFormatName(format), error));
  switch (format) {
    case HealthFormat::health_json:
      return parseHealthJson(*v);
    case HealthFormat::spring:
      return parseSpring(*v);
    case HealthFormat::microprofile:
      return parseMicroprofile(*v);
    case HealthFormat::custom:
      return parseCustom(*v, custom);
    default:
      return parseError("internal: unexpected health format");
  }
}

int severity(Status s) { return s == Status::ok ? 0 : s == Status::warn ? 1 : 2; }

}  // namespace

std::string boundedText(std::string_view text, std::size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  // Most text is short printable ASCII, which comes out as it is: one scan, one copy.
  if (text.size() <= max_bytes &&
      std::all_of(text.begin(), text.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c >= 0x20 && c < 0x7F;
      })) {
    return std::string(text);
  }
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  std::size_t i = 0;
  bool cut = false;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0) {
      ++i;
      continue;
    }
    std::size_t len = utf8SequenceLength(text, i);
    std::string_view piece;
    char space = ' ';
    if (len == 0) {
      piece = kReplacement;
      len = 1;
    } else if (c < 0x20 || c == 0x7F) {
      // Details are one line: they end up in logs, metric labels and table cells.
      piece = std::string_view(&space, 1);
    } else {
      piece = text.substr(i, len);
    }
    if (out.size() + piece.size() > max_bytes) {
      cut = true;
      break;
    }
    out.append(piece);
    i += len;
  }
  if (cut && max_bytes >= 3) {
    while (!out.empty() && out.size() + 3 > max_bytes) {
      // Drop whole characters: continuation bytes, then their lead byte.
      while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80)
        out.pop_back();
      if (!out.empty()) out.pop_back();
    }
    out += "...";
  }
  return out;
}

std::optional<boost::json::value> parseJsonBounded(std::string_view body, std::string* error,
                                                   json::monotonic_resource* storage) {
  try {
    json::parse_options opt;
    opt.max_depth = kMaxJsonDepth;
    // Health pages in Latin-1 exist; their text is cleaned by boundedText().
    opt.allow_invalid_utf8 = true;
    // The parser's own stack starts in this buffer (enough for a page of a few
    // levels), and only grows onto the heap for deeper ones.
    unsigned char temp[512];
    json::parser p(json::storage_ptr(), opt, temp);
    // From the resource's own type: the pointer says deallocation is trivial, so
    // destroying the value does not walk it (4,000 instructions a probe on a small page).
    if (storage) p.reset(json::storage_ptr(storage));
    boost::system::error_code ec;
    std::size_t n = p.write(body.data(), body.size(), ec);
    if (ec) {
      if (error) {
        if (body.empty()) {
          *error = "empty body";
        } else if (ec == json::error::too_deep) {
          *error = fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth);
        } else {
          *error = fmt::format("not JSON ({} at byte {})", ec.message(), n);
        }
      }
      return std::nullopt;
    }
    return p.release();
  } catch (const std::bad_alloc&) {
    if (error) *error = "JSON too large: out of memory";
  } catch (const std::exception& e) {
    if (error) *error = boundedText(fmt::format("JSON parse failed: {}", e.what()));
  }
  return std::nullopt;
}

HealthParse parseHealthPage(HealthFormat format, std::string_view content_type,
                            std::string_view body, const boost::json::value* json,
                            const CustomHealthMapping& custom) {
  try {
    return parseImpl(format, content_type, body, json, custom);
  } catch (const std::bad_alloc&) {
    return parseError("health page: out of memory while parsing");
  } catch (const std::exception& e) {
    return parseError(fmt::format("health page: {}", e.what()));
  }
}

void applyHealthParse(HealthParse parse, Result& result) {
  if (!parse.report) {
    if (result.status != Status::fail) {
      result.status = Status::fail;
      result.reason = Reason::health_parse;
      result.detail = std::move(parse.error);
    }
    return;
  }
  HealthReport& r = *parse.report;
  result.components = std::move(r.components);
  if (!r.version.empty()) result.version = std::move(r.version);
  for (auto& [k, v] : r.info) result.info.insert_or_assign(k, std::move(v));
  if (severity(r.status) > severity(result.status)) {
    result.status = r.status;
    result.reason = r.status == Status::fail ? Reason::health_fail : Reason::health_warn;
    result.detail = r.detail.empty() ? "health page says " + r.status_text : std::move(r.detail);
  }
}

std::string_view healthFormatName(HealthFormat f) {
  switch (f) {
    case HealthFormat::none:
      return "none";
    case HealthFormat::auto_detect:
      return "auto";
    case HealthFormat::health_json:
      return "health+json";
    case HealthFormat::spring:
      return "spring";
    case HealthFormat::microprofile:
      return "microprofile";
    case HealthFormat::text:
      return "text";
    case HealthFormat::custom:
      return "custom";
  }
  return "none";
}

std::optional<HealthFormat> healthFormatFromName(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, HealthFormat>, 9> kNames{{
      {"none", HealthFormat::none},
      {"auto", HealthFormat::auto_detect},
      {"auto_detect", HealthFormat::auto_detect},
      {"health+json", HealthFormat::health_json},
      {"health_json", HealthFormat::health_json},
      {"spring", HealthFormat::spring},
      {"microprofile", HealthFormat::microprofile},
      {"text", HealthFormat::text},
      {"custom", HealthFormat::custom},
  }};
  for (const auto& [n, f] : kNames) {
    if (n == name) return f;
  }
  return std::nullopt;
}

}  // namespace vigie
