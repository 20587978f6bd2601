#include "collector/config.h"
#include "probes/base64.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "collector/config_tree.h"
#include "collector/units.h"

namespace vigie {

namespace {

using Node = ConfigTree;

constexpr std::array<std::string_view, 6> kKinds = {"http", "tcp",     "postgres",
                                                    "disk", "ingress", "heartbeat"};

// Values shown back to the user are cut, so one huge scalar does not flood the
// log, and lose any password they carry (a DSN or URL in the wrong place).
std::string quote(std::string_view raw) {
  const std::string s = redactDsn(raw);
  if (s.size() > 120) return fmt::format("\"{}...\"", s.substr(0, 117));
  return fmt::format("\"{}\"", s);
}

std::string join(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string out;
  out.reserve(path.size() + key.size() + 1);
  out += path;
  out += '.';
  out += key;
  return out;
}

std::string index(const std::string& path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

std::string listWords(const std::vector<std::string>& words) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i) out += i + 1 == words.size() ? " and " : ", ";
    out += words[i];
  }
  return out;
}

bool isNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

bool validName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isNameChar);
}

bool validLabelName(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      // A swap of two neighbours ("tpc") counts as one edit.
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    prev2 = prev;
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// host:port, host a name, an IPv4 address or a bracketed IPv6 address.
bool validHostPort(std::string_view s, bool allow_port_zero) {
  std::string_view host, port;
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return false;
    if (!boost::urls::parse_ipv6_address(s.substr(1, close - 1))) return false;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return false;
    for (char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_')
        return false;
    }
  }
  if (host.empty() || port.empty() || port.size() > 5) return false;
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  const int p = std::stoi(std::string(port));
  return p <= 65535 && (allow_port_zero || p > 0);
}

bool validIp(std::string_view s) {
  return static_cast<bool>(boost::urls::parse_ipv4_address(s)) ||
         static_cast<bool>(boost::urls::parse_ipv6_address(s));
}

// Maintenance windows start within these years: system_clock counts nanoseconds in
// 64 bits (up to 2262), and a window may last a hundred years (units.cc).
constexpr int kMinYear = 1970;
constexpr int kMaxYear = 2100;

// RFC 3339: 2026-12-01T06:00:00Z, 2026-12-01T08:00:00.5+02:00 (t and z accepted).
// Years outside kMinYear..kMaxYear set `*out_of_range` and give nullopt.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view s,
                                                                  bool* out_of_range) {
  auto num = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
    if (pos + len > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  auto at = [&](std::size_t pos, char c) { return pos < s.size() && s[pos] == c; };
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2),
       sec = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !sec || !at(4, '-') || !at(7, '-') ||
      !(at(10, 'T') || at(10, 't') || at(10, ' ')) || !at(13, ':') || !at(16, ':')) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(*y), std::chrono::month(*mo),
                                        std::chrono::day(*d)};
  if (!ymd.ok() || *h > 23 || *mi > 59 || *sec > 60) return std::nullopt;
  std::size_t pos = 19;
  std::chrono::milliseconds frac{0};
  if (at(pos, '.')) {
    ++pos;
    int digits = 0, ms = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) ms = ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 3; ++i) ms *= 10;
    frac = std::chrono::milliseconds(ms);
  }
  std::chrono::minutes offset{0};
  if (at(pos, 'Z') || at(pos, 'z')) {
    ++pos;
  } else if (at(pos, '+') || at(pos, '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    auto oh = num(pos + 1, 2), om = num(pos + 4, 2);
    if (!oh || !om || !at(pos + 3, ':') || *oh > 23 || *om > 59) return std::nullopt;
    offset = std::chrono::minutes(sign * (*oh * 60 + *om));
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  if (*y < kMinYear || *y > kMaxYear) {
    *out_of_range = true;
    return std::nullopt;
  }
  return std::chrono::sys_days(ymd) + std::chrono::hours(*h) + std::chrono::minutes(*mi) +
         std::chrono::seconds(*sec) + frac - offset;
}

std::string basename(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

struct HealthFormatName {
  std::string_view name;
  HealthFormat format;
};
constexpr std::array<HealthFormatName, 7> kHealthFormats = {{
    {"auto", HealthFormat::auto_detect},
    {"health+json", HealthFormat::health_json},
    {"spring", HealthFormat::spring},
    {"microprofile", HealthFormat::microprofile},
    {"text", HealthFormat::text},
    {"custom", HealthFormat::custom},
    {"none", HealthFormat::none},
}};

// A reference by name from one part of the file to another, resolved after the
// whole file is read.
struct Ref {
  std::string name;
  int line = 0;
  std::string path;
};

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)), pos_file_(file_) {}

  std::vector<ConfigError>& errors() { return errors_; }

  void error(int line, std::string path, std::string message) {
    errors_.push_back(ConfigError{file_, line, std::move(path), std::move(message)});
  }
  void error(const Node& n, std::string path, std::string message) {
    error(n.data().line, std::move(path), std::move(message));
  }

  /// The keys of one mapping, checked against the keys it may hold.
  class Fields {
   public:
    Fields(Loader& loader, const Node& map, std::string path,
           std::initializer_list<std::string_view> keys,
           std::initializer_list<std::string_view> unsupported = {})
        : loader_(loader),
          map_(map),
          path_(std::move(path)),
          keys_(keys),
          values_(keys.size(), nullptr) {
      if (map.data().kind == NodeKind::null) return;
      if (map.data().kind != NodeKind::map) {
        loader.error(map, path_, fmt::format("expected a mapping, got {}", describe(map)));
        return;
      }
      for (const auto& [key, child] : map) {
        const auto it = std::find(keys_.begin(), keys_.end(), key);
        const int line = child.data().key_line ? child.data().key_line : child.data().line;
        if (it == keys_.end()) {
          if (std::find(unsupported.begin(), unsupported.end(), key) != unsupported.end()) {
            loader.error(line, path_, fmt::format("{} is not supported yet by vigie", quote(key)));
          } else {
            loader.error(line, path_, unknownKey(key));
          }
          continue;
        }
        const auto i = static_cast<std::size_t>(it - keys_.begin());
        if (values_[i]) {
          const auto& first = values_[i]->data();
          loader.error(line, path_,
                       fmt::format("duplicate key {} (first at line {})", quote(key),
                                   first.key_line ? first.key_line : first.line));
          continue;
        }
        values_[i] = &child;
      }
    }

    /// The value of `key` (which must be one of the keys given), or null when absent.
    const Node* operator[](std::string_view key) const {
      const auto it = std::find(keys_.begin(), keys_.end(), key);
      if (it == keys_.end())
        throw std::logic_error("config.cc: key not declared: " + std::string(key));
      return values_[static_cast<std::size_t>(it - keys_.begin())];
    }
    std::string path(std::string_view key) const { return join(path_, key); }
    const std::string& path() const { return path_; }
    const Node& node() const { return map_; }

    /// Reports `key` as missing when absent; returns its value otherwise.
    const Node* required(std::string_view key) const {
      const Node* n = (*this)[key];
      // A mapping of the wrong kind was reported already: no second error about it.
      const bool usable = map_.data().kind == NodeKind::map || map_.data().kind == NodeKind::null;
      if (!n && usable) {
        loader_.error(map_, path_, fmt::format("missing required key {}", quote(key)));
      }
      return n;
    }

   private:
    std::string unknownKey(const std::string& key) const {
      std::string_view best;
      std::size_t best_d = 3;
      for (auto k : keys_) {
        const std::size_t d = editDistance(key, k);
        if (d < best_d && d * 2 < std::max(key.size(), k.size())) {
          best_d = d;
          best = k;
        }
      }
      if (best.empty()) return fmt::format("unknown key {}", quote(key));
      return fmt::format("unknown key {} (did you mean {}?)", quote(key), quote(best));
    }

    Loader& loader_;
    const Node& map_;
    std::string path_;
    std::vector<std::string_view> keys_;
    std::vector<const Node*> values_;
  };

  static std::string describe(const Node& n) {
    if (n.data().kind == NodeKind::scalar) {
      // A value from ${ENV} may be a secret (`auth: ${TOKEN}` written by mistake).
      if (n.data().from_env) return "a scalar set from the environment";
      return "a scalar " + quote(n.data().value);
    }
    return nodeKindName(n.data().kind);
  }

  // ---- typed readers: false (and an error) when present but wrong; false when absent.

  /// A usable scalar: not a collection, and ${ENV} substitution succeeded.
  bool scalar(const Node* n, const std::string& path, std::string_view expected) {
    if (!n) return false;
    if (!n->data().error.empty()) {
      error(*n, path, n->data().error);
      return false;
    }
    if (n->data().kind != NodeKind::scalar) {
      error(*n, path, fmt::format("expected {}, got {}", expected, describe(*n)));
      return false;
    }
    return true;
  }

  bool str(const Node* n, const std::string& path, std::string& out) {
    if (!scalar(n, path, "a string")) return false;
    out = n->data().value;
    return true;
  }

  bool nonEmpty(const Node* n, const std::string& path, std::string& out) {
    if (!str(n, path, out)) return false;
    if (out.empty()) {
      error(*n, path, "must not be empty");
      return false;
    }
    return true;
  }

  bool boolean(const Node* n, const std::string& path, bool& out) {
    if (!scalar(n, path, "true or false")) return false;
    const std::string& v = n->data().value;
    if (v == "true" || v == "True" || v == "TRUE") {
      out = true;
    } else if (v == "false" || v == "False" || v == "FALSE") {
      out = false;
    } else {
      error(*n, path, fmt::format("expected true or false, got {}", quote(v)));
      return false;
    }
    return true;
  }

  bool integer(const Node* n, const std::string& path, int& out, long long min, long long max) {
    if (!scalar(n, path, "an integer")) return false;
    const std::string& v = n->data().value;
    std::size_t i = (!v.empty() && (v[0] == '-' || v[0] == '+')) ? 1 : 0;
    bool ok = i < v.size() && v.size() - i <= 12;
    for (std::size_t j = i; ok && j < v.size(); ++j) ok = v[j] >= '0' && v[j] <= '9';
    if (!ok) {
      error(*n, path, fmt::format("expected an integer, got {}", quote(v)));
      return false;
    }
    const long long x = std::stoll(v);
    if (x < min) {
      error(*n, path, fmt::format("must be at least {}, got {}", min, x));
      return false;
    }
    if (x > max) {
      error(*n, path, fmt::format("must be at most {}, got {}", max, x));
      return false;
    }
    out = static_cast<int>(x);
    return true;
  }

  bool duration(const Node* n, const std::string& path, Duration& out, bool positive) {
    if (!scalar(n, path, "a duration like 30s")) return false;
    std::string err;
    auto d = parseDuration(n->data().value, &err);
    if (!d) {
      error(*n, path, err);
      return false;
    }
    if (positive && d->count() <= 0) {
      error(*n, path, fmt::format("must be longer than 0s, got {}", quote(n->data().value)));
      return false;
    }
    out = *d;
    return true;
  }

  bool size(const Node* n, const std::string& path, std::uint64_t& out) {
    if (!scalar(n, path, "a size like 10MiB")) return false;
    std::string err;
    auto v = parseSize(n->data().value, &err);
    if (!v) {
      error(*n, path, err);
      return false;
    }
    out = *v;
    return true;
  }

  /// One of `choices`, reported as `"x" is not one of a, b, c`.
  bool choice(const Node* n, const std::string& path, std::string& out,
              std::initializer_list<std::string_view> choices) {
    if (!str(n, path, out)) return false;
    if (std::find(choices.begin(), choices.end(), out) != choices.end()) return true;
    std::string list;
    for (auto c : choices) list += (list.empty() ? "" : ", ") + std::string(c.empty() ? "\"\"" : c);
    error(*n, path, fmt::format("{} is not one of {}", quote(out), list));
    return false;
  }

  bool stringList(const Node* n, const std::string& path, std::vector<std::string>& out,
                  std::vector<int>* lines = nullptr) {
    if (!n || n->data().kind == NodeKind::null) return false;
    if (n->data().kind != NodeKind::sequence) {
      error(*n, path, fmt::format("expected a sequence, got {}", describe(*n)));
      return false;
    }
    std::size_t i = 0;
    for (const auto& [k, item] : *n) {
      std::string v;
      if (str(&item, index(path, i), v)) {
        out.push_back(std::move(v));
        if (lines) lines->push_back(item.data().line);
      }
      ++i;
    }
    return true;
  }

  bool stringMap(const Node* n, const std::string& path,
                 std::vector<std::pair<std::string, std::string>>& out) {
    if (!n || n->data().kind == NodeKind::null) return false;
    if (n->data().kind != NodeKind::map) {
      error(*n, path, fmt::format("expected a mapping, got {}", describe(*n)));
      return false;
    }
    for (const auto& [k, item] : *n) {
      std::string v;
      if (str(&item, join(path, k), v)) out.emplace_back(k, std::move(v));
    }
    return true;
  }

  /// A status code or a list of them, each 100..599.
  void statuses(const Node* n, const std::string& path, std::vector<int>& out) {
    if (!n || n->data().kind == NodeKind::null) return;
    auto one = [&](const Node& item) {
      if (!scalar(&item, path, "an HTTP status")) return;
      const std::string& v = item.data().value;
      int code = 0;
      bool digits = !v.empty() && v.size() <= 6 &&
                    std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (digits) code = std::stoi(v);
      if (!digits || code < 100 || code > 599) {
        error(item, path, fmt::format("{} is not an HTTP status", v));
        return;
      }
      out.push_back(code);
    };
    if (n->data().kind == NodeKind::sequence) {
      for (const auto& [k, item] : *n) one(item);
    } else {
      one(*n);
    }
  }

  bool url(const Node* n, const std::string& path, std::string& out) {
    if (!nonEmpty(n, path, out)) return false;
    auto r = boost::urls::parse_uri(out);
    if (!r) {
      error(*n, path,
            fmt::format("invalid URL {}: {}", quote(redactDsn(out)), r.error().message()));
      return false;
    }
    std::string scheme(r->scheme());
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme != "http" && scheme != "https") {
      error(*n, path, fmt::format("URL {} must use http or https", quote(redactDsn(out))));
      return false;
    }
    if (r->encoded_host().empty()) {
      error(*n, path, fmt::format("URL {} has no host", quote(redactDsn(out))));
      return false;
    }
    return true;
  }

  bool hostPort(const Node* n, const std::string& path, std::string& out, bool allow_port_zero) {
    if (!str(n, path, out)) return false;
    if (!validHostPort(out, allow_port_zero)) {
      error(*n, path, fmt::format("expected host:port like 0.0.0.0:9877, got {}", quote(out)));
      return false;
    }
    return true;
  }

  std::shared_ptr<const CompiledRegex> regex(const Node& n, const std::string& path,
                                             const std::string& pattern) {
    try {
      return compileRegex(pattern);
    } catch (const std::exception& e) {
      error(n, path, e.what());  // "invalid regex \"(\": ...", the pattern cleaned
      return nullptr;
    }
  }

  bool pointer(const Node* n, const std::string& path, std::string& out) {
    if (!str(n, path, out)) return false;
    if (!out.empty() && out[0] != '/') {
      error(*n, path, fmt::format("a JSON pointer starts with \"/\", got {}", quote(out)));
      return false;
    }
    return true;
  }

  bool name(const Node* n, const std::string& path, std::string& out) {
    if (!str(n, path, out)) return false;
    if (!validName(out)) {
      error(*n, path,
            fmt::format("invalid name {}: use letters, digits, '-', '_' and '.'", quote(out)));
      return false;
    }
    return true;
  }

  // ---- sections

  void tls(const Node* n, const std::string& path, TlsSpec& t) {
    if (!n) return;
    Fields f(*this, *n, path, {"verify", "ca_file", "cert_file", "key_file", "server_name"});
    boolean(f["verify"], f.path("verify"), t.verify);
    str(f["ca_file"], f.path("ca_file"), t.ca_file);
    str(f["cert_file"], f.path("cert_file"), t.cert_file);
    str(f["key_file"], f.path("key_file"), t.key_file);
    str(f["server_name"], f.path("server_name"), t.server_name);
    if (t.cert_file.empty() != t.key_file.empty()) {
      error(*n, path, "cert_file and key_file go together");
    }
  }

  void condition(const Node& n, const std::string& path, ConditionSpec& c) {
    Fields f(*this, n, path,
             {"json", "equals", "body_matches", "body_contains", "latency_below", "status"});
    std::vector<std::string> kinds;
    for (auto k : {"json", "body_matches", "body_contains", "latency_below", "status"}) {
      if (f[k]) kinds.emplace_back(k);
    }
    if (n.data().kind != NodeKind::map) return;
    if (kinds.empty()) {
      error(n, path, "expected one of json, body_matches, body_contains, latency_below, status");
      return;
    }
    if (kinds.size() > 1) {
      error(n, path, fmt::format("one condition per item, got {}", listWords(kinds)));
      return;
    }
    if (f["equals"] && kinds[0] != "json") {
      error(*f["equals"], f.path("equals"), "\"equals\" goes with \"json\"");
    }
    const std::string& k = kinds[0];
    if (k == "json") {
      pointer(f["json"], f.path("json"), c.pointer);
      if (f["equals"]) {
        c.kind = ConditionSpec::Kind::json_equals;
        str(f["equals"], f.path("equals"), c.value);
      } else {
        c.kind = ConditionSpec::Kind::json_exists;
      }
    } else if (k == "body_matches") {
      c.kind = ConditionSpec::Kind::body_matches;
      if (str(f["body_matches"], f.path("body_matches"), c.value)) {
        c.regex = regex(*f["body_matches"], f.path("body_matches"), c.value);
      }
    } else if (k == "body_contains") {
      c.kind = ConditionSpec::Kind::body_contains;
      str(f["body_contains"], f.path("body_contains"), c.value);
    } else if (k == "latency_below") {
      c.kind = ConditionSpec::Kind::latency_below;
      duration(f["latency_below"], f.path("latency_below"), c.latency, true);
    } else {
      c.kind = ConditionSpec::Kind::status_in;
      statuses(f["status"], f.path("status"), c.statuses);
    }
  }

  void custom(const Node& n, const std::string& path, CustomHealthMapping& m) {
    Fields f(*this, n, path, {"status", "up", "warn", "components", "version"});
    pointer(f["status"], f.path("status"), m.status_pointer);
    if (f["up"]) {
      m.up_values.clear();
      stringList(f["up"], f.path("up"), m.up_values);
    }
    if (f["warn"]) {
      m.warn_values.clear();
      stringList(f["warn"], f.path("warn"), m.warn_values);
    }
    pointer(f["components"], f.path("components"), m.components_pointer);
    pointer(f["version"], f.path("version"), m.version_pointer);
  }

  void ipVersion(const Node* n, const std::string& path, std::string& out) {
    choice(n, path, out, {"ip4", "ip6"});
  }

  void http(const Node& n, const std::string& path, HttpSpec& h) {
    Fields f(*this, n, path,
             {"url", "method", "headers", "body", "expect_status", "health_format", "custom",
              "conditions", "max_body", "follow_redirects", "max_redirects", "tls", "cert_min_days",
              "ip_version"});
    if (n.data().kind != NodeKind::map) return;
    if (f.required("url")) url(f["url"], f.path("url"), h.url);
    method(f["method"], f.path("method"), h.method);
    stringMap(f["headers"], f.path("headers"), h.headers);
    str(f["body"], f.path("body"), h.body);
    statuses(f["expect_status"], f.path("expect_status"), h.expect_status);
    std::string format;
    if (str(f["health_format"], f.path("health_format"), format)) {
      auto it = std::find_if(kHealthFormats.begin(), kHealthFormats.end(),
                             [&](const HealthFormatName& x) { return x.name == format; });
      if (it == kHealthFormats.end()) {
        error(*f["health_format"], f.path("health_format"),
              fmt::format("{} is not one of auto, health+json, spring, microprofile, text, "
                          "custom, none",
                          quote(format)));
      } else {
        h.health_format = it->format;
      }
    }
    if (const Node* c = f["custom"]) {
      if (h.health_format != HealthFormat::custom) {
        error(*c, f.path("custom"), "only used with health_format: custom");
      } else {
        custom(*c, f.path("custom"), h.custom.edit());
      }
    }
    if (const Node* cs = f["conditions"]; cs && cs->data().kind != NodeKind::null) {
      if (cs->data().kind != NodeKind::sequence) {
        error(*cs, f.path("conditions"), fmt::format("expected a sequence, got {}", describe(*cs)));
      } else {
        std::size_t i = 0;
        for (const auto& [k, item] : *cs) {
          ConditionSpec c;
          condition(item, index(f.path("conditions"), i++), c);
          h.conditions.push_back(std::move(c));
        }
      }
    }
    size(f["max_body"], f.path("max_body"), h.max_body);
    boolean(f["follow_redirects"], f.path("follow_redirects"), h.follow_redirects);
    integer(f["max_redirects"], f.path("max_redirects"), h.max_redirects, 0, 100);
    if (f["tls"]) tls(f["tls"], f.path("tls"), h.tls.edit());
    int days = 0;
    if (integer(f["cert_min_days"], f.path("cert_min_days"), days, 0, 3650)) h.cert_min_days = days;
    ipVersion(f["ip_version"], f.path("ip_version"), h.ip_version);
  }

  void method(const Node* n, const std::string& path, std::string& out) {
    std::string m;
    if (!str(n, path, m)) return;
    const bool ok = !m.empty() && m.size() <= 20 && std::all_of(m.begin(), m.end(), [](char c) {
      return std::isalpha(static_cast<unsigned char>(c));
    });
    if (!ok) {
      error(*n, path, fmt::format("invalid HTTP method {}", quote(m)));
      return;
    }
    for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out = m;
  }

  // `tls: true` or `tls: {verify: false, ...}` (which implies true).
  void tcpTls(const Node* n, const std::string& path, bool& on, SharedTlsSpec& t) {
    if (!n) return;
    if (n->data().kind == NodeKind::map) {
      on = true;
      tls(n, path, t.edit());
    } else {
      boolean(n, path, on);
    }
  }

  void tcp(const Node& n, const std::string& path, TcpSpec& t) {
    Fields f(*this, n, path, {"address", "send", "expect", "tls"});
    if (n.data().kind != NodeKind::map) return;
    if (f.required("address")) hostPort(f["address"], f.path("address"), t.address, false);
    str(f["send"], f.path("send"), t.send);
    if (str(f["expect"], f.path("expect"), t.expect))
      regex(*f["expect"], f.path("expect"), t.expect);
    tcpTls(f["tls"], f.path("tls"), t.tls, t.tls_config);
  }

  void postgres(const Node& n, const std::string& path, PostgresSpec& p) {
    Fields f(*this, n, path, {"dsn", "query", "expect"});
    if (n.data().kind != NodeKind::map) return;
    if (f.required("dsn")) dsn(f["dsn"], f.path("dsn"), p.dsn);
    nonEmpty(f["query"], f.path("query"), p.query);
    std::string e;
    if (str(f["expect"], f.path("expect"), e)) p.expect = e;
  }

  void dsn(const Node* n, const std::string& path, std::string& out) {
    if (!nonEmpty(n, path, out)) return;
    const bool uri = out.rfind("postgresql://", 0) == 0 || out.rfind("postgres://", 0) == 0;
    const bool kv = out.find("://") == std::string::npos && out.find('=') != std::string::npos;
    if (!uri && !kv) {
      error(*n, path,
            fmt::format("expected a PostgreSQL DSN (postgresql://user@host/db or host=... "
                        "dbname=...), got {}",
                        quote(redactDsn(out))));
    }
  }

  void disk(const Node& n, const std::string& path, DiskSpec& d) {
    Fields f(*this, n, path, {"path", "min_free", "write"});
    if (n.data().kind != NodeKind::map) return;
    if (f.required("path") && nonEmpty(f["path"], f.path("path"), d.path) && d.path[0] != '/') {
      error(*f["path"], f.path("path"),
            fmt::format("must be an absolute path, got {}", quote(d.path)));
    }
    if (const Node* m = f["min_free"];
        m && scalar(m, f.path("min_free"), "a size or a percentage")) {
      const std::string& v = m->data().value;
      std::string err;
      if (!v.empty() && v.back() == '%') {
        if (auto r = parsePercent(v, &err)) {
          d.min_free_ratio = *r;
        } else {
          error(*m, f.path("min_free"), err);
        }
      } else if (auto b = parseSize(v, &err)) {
        d.min_free_bytes = *b;
      } else {
        error(*m, f.path("min_free"),
              fmt::format("expected a size like 10GiB or a percentage like 5%, got {}", quote(v)));
      }
    }
    boolean(f["write"], f.path("write"), d.write);
  }

  void ingress(const Node& n, const std::string& path, IngressSpec& g) {
    Fields f(*this, n, path,
             {"url", "addresses", "mode", "cert_min_days", "expect_https_redirect", "expect_status",
              "tls"});
    if (n.data().kind != NodeKind::map) return;
    if (f.required("url")) url(f["url"], f.path("url"), g.url);
    std::vector<int> lines;
    if (stringList(f["addresses"], f.path("addresses"), g.addresses, &lines)) {
      for (std::size_t i = 0; i < g.addresses.size(); ++i) {
        if (!validIp(g.addresses[i])) {
          error(lines[i], f.path("addresses"),
                fmt::format("{} is not an IP address", quote(g.addresses[i])));
        }
      }
    }
    std::string mode;
    if (choice(f["mode"], f.path("mode"), mode, {"all", "any"})) {
      g.mode = mode == "any" ? IngressSpec::Mode::any : IngressSpec::Mode::all;
    }
    integer(f["cert_min_days"], f.path("cert_min_days"), g.cert_min_days, 0, 3650);
    boolean(f["expect_https_redirect"], f.path("expect_https_redirect"), g.expect_https_redirect);
    statuses(f["expect_status"], f.path("expect_status"), g.expect_status);
    tls(f["tls"], f.path("tls"), g.tls);
  }

  void heartbeat(const Node& n, const std::string& path, HeartbeatSpec& h) {
    Fields f(*this, n, path, {"period", "grace", "token"});
    if (n.data().kind != NodeKind::map) return;
    duration(f["period"], f.path("period"), h.period, true);
    duration(f["grace"], f.path("grace"), h.grace, false);
    if (f.required("token")) {
      str(f["token"], f.path("token"), h.token);
      tokenStrength(*f["token"], f.path("token"), h.token);
    }
  }

  // A token anyone could guess protects nothing; one a client cannot send as
  // `Authorization: Bearer <token>` locks everyone out.
  void tokenStrength(const Node& n, const std::string& path, const std::string& token) {
    if (token.size() < 16) {
      error(n, path,
            fmt::format("the token is {} characters long, at least 16 are needed (anyone who "
                        "can reach vigie could guess it): try `openssl rand -hex 16`",
                        token.size()));
      return;
    }
    for (const char c : token) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f) {
        error(n, path,
              "the token must be printable ASCII without spaces (it is sent as "
              "`Authorization: Bearer <token>`)");
        return;
      }
    }
  }

  void auth(const Node& n, AuthConfig& a) {
    Fields f(*this, n, "auth", {"admin_token", "read_token", "protect_metrics"});
    if (n.data().kind != NodeKind::map) return;
    if (str(f["admin_token"], f.path("admin_token"), a.admin_token)) {
      tokenStrength(*f["admin_token"], f.path("admin_token"), a.admin_token);
    }
    if (str(f["read_token"], f.path("read_token"), a.read_token)) {
      tokenStrength(*f["read_token"], f.path("read_token"), a.read_token);
      if (!a.admin_token.empty() && a.read_token == a.admin_token) {
        error(*f["read_token"], f.path("read_token"),
              "must differ from admin_token (whoever reads could also reload)");
      }
    }
    boolean(f["protect_metrics"], f.path("protect_metrics"), a.protect_metrics);
    if (a.protect_metrics && !f["read_token"]) {
      error(*f["protect_metrics"], f.path("protect_metrics"),
            "needs read_token (the token Prometheus sends as its bearer token)");
    }
  }

  void check(const Node& n, const std::string& path, const std::string& service,
             const Defaults& defaults, CheckConfig& c) {
    c.pos = SourcePos{pos_file_, n.data().line};
    c.interval = defaults.interval;
    c.timeout = defaults.timeout;
    c.failure_threshold = defaults.failure_threshold;
    c.success_threshold = defaults.success_threshold;
    Fields f(*this, n, path,
             {"name", "interval", "timeout", "failure_threshold", "success_threshold", "critical",
              "http", "tcp", "postgres", "disk", "ingress", "heartbeat"});
    // An empty item (`- ` alone) is an empty mapping, refused below for what it lacks,
    // as an empty service or group is; it used to load as a check with no name.
    if (n.data().kind != NodeKind::map && n.data().kind != NodeKind::null) return;
    if (f.required("name")) name(f["name"], f.path("name"), c.name);
    c.key = service + "/" + c.name;
    const bool has_interval = duration(f["interval"], f.path("interval"), c.interval, true);
    const bool has_timeout = duration(f["timeout"], f.path("timeout"), c.timeout, true);
    if ((has_interval || has_timeout) && c.timeout > c.interval) {
      const Node* at = has_timeout ? f["timeout"] : f["interval"];
      error(*at, has_timeout ? f.path("timeout") : f.path("interval"),
            fmt::format("the timeout {} is longer than the interval {}", formatDuration(c.timeout),
                        formatDuration(c.interval)));
    }
    integer(f["failure_threshold"], f.path("failure_threshold"), c.failure_threshold, 1, 1000);
    integer(f["success_threshold"], f.path("success_threshold"), c.success_threshold, 1, 1000);
    boolean(f["critical"], f.path("critical"), c.critical);

    std::vector<std::string> kinds;
    for (auto k : kKinds) {
      if (f[k]) kinds.emplace_back(k);
    }
    if (kinds.empty()) {
      error(n, path, "no probe kind (one of http, tcp, postgres, disk, ingress, heartbeat)");
      return;
    }
    if (kinds.size() > 1) {
      error(
          *f[kinds[1]], path,
          fmt::format("{} probe kinds: {}",
                      kinds.size() == 2 ? "two" : std::to_string(kinds.size()), listWords(kinds)));
      return;
    }
    const std::string& k = kinds[0];
    const Node& spec = *f[k];
    const std::string sp = f.path(k);
    if (spec.data().kind != NodeKind::map) {
      error(spec, sp, fmt::format("expected a mapping, got {}", describe(spec)));
      return;
    }
    if (k == "http") {
      HttpSpec h;
      http(spec, sp, h);
      c.spec = std::move(h);
    } else if (k == "tcp") {
      TcpSpec t;
      tcp(spec, sp, t);
      c.spec = std::move(t);
    } else if (k == "postgres") {
      PostgresSpec p;
      postgres(spec, sp, p);
      c.spec = std::move(p);
    } else if (k == "disk") {
      DiskSpec d;
      disk(spec, sp, d);
      c.spec = std::move(d);
    } else if (k == "ingress") {
      IngressSpec g;
      ingress(spec, sp, g);
      c.spec = std::move(g);
    } else {
      HeartbeatSpec h;
      heartbeat(spec, sp, h);
      c.spec = std::move(h);
      // A job's failure or a missed push is known for sure at once: one evaluation
      // suffices, unless the check says otherwise.
      if (!f["failure_threshold"]) c.failure_threshold = 1;
    }
  }

  // Unique names within one list: reports the second and later uses.
  class Unique {
   public:
    Unique(Loader& l, std::string what) : loader_(l), what_(std::move(what)) {}
    void add(const std::string& name, int line, const std::string& path) {
      if (name.empty()) return;
      auto [it, fresh] = seen_.emplace(name, line);
      if (!fresh) {
        loader_.error(
            line, path,
            fmt::format("duplicate {} name {} (first at line {})", what_, quote(name), it->second));
      }
    }

   private:
    Loader& loader_;
    std::string what_;
    std::unordered_map<std::string, int> seen_;
  };

  /// Items of a sequence (null: none); reports anything else.
  template <class F>
  void each(const Node* n, const std::string& path, F&& f) {
    if (!n || n->data().kind == NodeKind::null) return;
    if (n->data().kind != NodeKind::sequence) {
      error(*n, path, fmt::format("expected a sequence, got {}", describe(*n)));
      return;
    }
    std::size_t i = 0;
    for (const auto& [k, item] : *n) {
      f(item, index(path, i));
      ++i;
    }
  }

  void refs(const Node* n, const std::string& path, std::vector<std::string>& names,
            std::vector<Ref>& out) {
    std::vector<int> lines;
    if (!stringList(n, path, names, &lines)) return;
    for (std::size_t i = 0; i < names.size(); ++i) out.push_back(Ref{names[i], lines[i], path});
  }

  // ---- modules (blackbox_exporter's schema)

  void module(const Node& n, const std::string& path, ModuleConfig& m) {
    Fields f(*this, n, path, {"prober", "timeout", "http", "tcp"}, {"icmp", "dns", "grpc"});
    if (n.data().kind != NodeKind::map && n.data().kind != NodeKind::null) return;  // as check()
    if (f.required("prober")) {
      if (str(f["prober"], f.path("prober"), m.prober)) {
        if (m.prober == "icmp" || m.prober == "dns" || m.prober == "grpc") {
          error(*f["prober"], f.path("prober"),
                fmt::format("prober {} is not supported yet by vigie", quote(m.prober)));
        } else if (m.prober != "http" && m.prober != "tcp") {
          error(*f["prober"], f.path("prober"),
                fmt::format("{} is not one of http, tcp", quote(m.prober)));
        }
      }
    }
    duration(f["timeout"], f.path("timeout"), m.timeout, true);
    if (m.prober == "http") {
      HttpSpec h;
      // blackbox's defaults: redirects followed, no health-page reading (success is the status).
      h.follow_redirects = true;
      h.health_format = HealthFormat::none;
      h.max_body = std::numeric_limits<std::uint64_t>::max();  // body_size_limit: 0, no limit
      if (f["http"]) moduleHttp(*f["http"], f.path("http"), h);
      if (f["tcp"]) error(*f["tcp"], f.path("tcp"), "only used with prober: tcp");
      m.spec = std::move(h);
    } else if (m.prober == "tcp") {
      TcpSpec t;
      if (f["tcp"]) moduleTcp(*f["tcp"], f.path("tcp"), t);
      if (f["http"]) error(*f["http"], f.path("http"), "only used with prober: http");
      m.spec = std::move(t);
    }
  }

  void moduleTls(const Node* n, const std::string& path, TlsSpec& t) {
    if (!n) return;
    Fields f(*this, *n, path,
             {"insecure_skip_verify", "ca_file", "cert_file", "key_file", "server_name"},
             {"ca", "cert", "key", "min_version", "max_version"});
    bool insecure = false;
    if (boolean(f["insecure_skip_verify"], f.path("insecure_skip_verify"), insecure)) {
      t.verify = !insecure;
    }
    str(f["ca_file"], f.path("ca_file"), t.ca_file);
    str(f["cert_file"], f.path("cert_file"), t.cert_file);
    str(f["key_file"], f.path("key_file"), t.key_file);
    str(f["server_name"], f.path("server_name"), t.server_name);
  }

  void moduleHttp(const Node& n, const std::string& path, HttpSpec& h) {
    Fields f(*this, n, path,
             {"valid_status_codes", "valid_http_versions", "method", "headers", "body",
              "no_follow_redirects", "follow_redirects", "fail_if_ssl", "fail_if_not_ssl",
              "fail_if_body_matches_regexp", "fail_if_body_not_matches_regexp", "tls_config",
              "preferred_ip_protocol", "body_size_limit", "basic_auth", "bearer_token",
              "authorization"},
             {"body_file", "compression", "fail_if_header_matches", "fail_if_header_not_matches",
              "bearer_token_file", "oauth2",
              "proxy_url", "no_proxy", "proxy_from_environment", "proxy_connect_header",
              "enable_http2", "ip_protocol_fallback", "skip_resolve_phase_with_proxy",
              "http_client_config", "enable_http2"});
    statuses(f["valid_status_codes"], f.path("valid_status_codes"), h.expect_status);
    std::vector<int> lines;
    if (stringList(f["valid_http_versions"], f.path("valid_http_versions"), h.valid_http_versions,
                   &lines)) {
      for (std::size_t i = 0; i < h.valid_http_versions.size(); ++i) {
        const auto& v = h.valid_http_versions[i];
        if (v != "HTTP/1.0" && v != "HTTP/1.1" && v != "HTTP/2" && v != "HTTP/2.0" &&
            v != "HTTP/3" && v != "HTTP/3.0") {
          error(lines[i], f.path("valid_http_versions"),
                fmt::format("{} is not one of HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0", quote(v)));
        }
      }
    }
    method(f["method"], f.path("method"), h.method);
    stringMap(f["headers"], f.path("headers"), h.headers);
    str(f["body"], f.path("body"), h.body);
    bool no_follow = false;
    if (boolean(f["no_follow_redirects"], f.path("no_follow_redirects"), no_follow)) {
      h.follow_redirects = !no_follow;
    }
    boolean(f["follow_redirects"], f.path("follow_redirects"), h.follow_redirects);
    boolean(f["fail_if_ssl"], f.path("fail_if_ssl"), h.fail_if_ssl);
    boolean(f["fail_if_not_ssl"], f.path("fail_if_not_ssl"), h.fail_if_not_ssl);
    // "Fail if the body matches R" is "the body matches: R appears nowhere", a
    // negative lookahead anchored at the start, so the one evaluator serves both.
    std::vector<std::string> patterns;
    if (stringList(f["fail_if_body_matches_regexp"], f.path("fail_if_body_matches_regexp"),
                   patterns)) {
      for (const auto& p : patterns) {
        ConditionSpec c;
        c.kind = ConditionSpec::Kind::body_matches;
        if (!regex(*f["fail_if_body_matches_regexp"], f.path("fail_if_body_matches_regexp"), p))
          continue;
        c.value = "\\A(?![\\s\\S]*?(?:" + p + "))";
        c.regex = regex(*f["fail_if_body_matches_regexp"], f.path("fail_if_body_matches_regexp"),
                        c.value);
        h.conditions.push_back(std::move(c));
      }
    }
    patterns.clear();
    if (stringList(f["fail_if_body_not_matches_regexp"], f.path("fail_if_body_not_matches_regexp"),
                   patterns)) {
      for (const auto& p : patterns) {
        ConditionSpec c;
        c.kind = ConditionSpec::Kind::body_matches;
        c.value = p;
        c.regex = regex(*f["fail_if_body_not_matches_regexp"],
                        f.path("fail_if_body_not_matches_regexp"), p);
        h.conditions.push_back(std::move(c));
      }
    }
    if (f["tls_config"]) moduleTls(f["tls_config"], f.path("tls_config"), h.tls.edit());
    ipVersion(f["preferred_ip_protocol"], f.path("preferred_ip_protocol"), h.ip_version);
    if (size(f["body_size_limit"], f.path("body_size_limit"), h.max_body) && h.max_body == 0) {
      h.max_body = std::numeric_limits<std::uint64_t>::max();
    }
    // Credentials become an Authorization header (never shown: /probe's debug output
    // and every log redact it).
    int auth_kinds = 0;
    if (const Node* b = f["basic_auth"]) {
      ++auth_kinds;
      Fields a(*this, *b, f.path("basic_auth"), {"username", "password"}, {"password_file"});
      std::string user, password;
      if (a.required("username")) str(a["username"], a.path("username"), user);
      str(a["password"], a.path("password"), password);
      h.headers.emplace_back("Authorization", "Basic " + base64Encode(user + ":" + password));
    }
    if (const Node* t = f["bearer_token"]) {
      ++auth_kinds;
      std::string token;
      if (str(t, f.path("bearer_token"), token)) h.headers.emplace_back("Authorization", "Bearer " + token);
    }
    if (const Node* z = f["authorization"]) {
      ++auth_kinds;
      Fields a(*this, *z, f.path("authorization"), {"type", "credentials"}, {"credentials_file"});
      std::string type = "Bearer", credentials;
      str(a["type"], a.path("type"), type);
      str(a["credentials"], a.path("credentials"), credentials);
      h.headers.emplace_back("Authorization", type + " " + credentials);
    }
    if (auth_kinds > 1) {
      error(n, path, "at most one of basic_auth, bearer_token and authorization may be set");
    }
  }

  void moduleTcp(const Node& n, const std::string& path, TcpSpec& t) {
    Fields f(*this, n, path, {"query_response", "tls", "tls_config", "preferred_ip_protocol"},
             {"ip_protocol_fallback", "source_ip_address"});
    each(f["query_response"], f.path("query_response"),
         [&](const Node& item, const std::string& p) {
           Fields q(*this, item, p, {"expect", "send", "starttls"}, {"labels"});
           TcpQueryStep step;
           if (str(q["expect"], q.path("expect"), step.expect))
             regex(*q["expect"], q.path("expect"), step.expect);
           str(q["send"], q.path("send"), step.send);
           boolean(q["starttls"], q.path("starttls"), step.starttls);
           t.query_response.push_back(std::move(step));
         });
    boolean(f["tls"], f.path("tls"), t.tls);
    if (f["tls_config"]) moduleTls(f["tls_config"], f.path("tls_config"), t.tls_config.edit());
    ipVersion(f["preferred_ip_protocol"], f.path("preferred_ip_protocol"), t.ip_version);
  }

  // ---- the whole file

  void root(const Node& root, Config& cfg) {
    if (root.data().kind != NodeKind::map) {
      if (root.data().kind == NodeKind::null) {
        error(root, "", "the file is empty");
      } else {
        error(root, "", fmt::format("expected a mapping at the top level, got {}", describe(root)));
      }
      return;
    }
    Fields f(*this, root, "",
             {"listen", "location", "defaults", "max_in_flight", "groups", "services", "clusters",
              "maintenance", "modules", "history", "auth"});
    hostPort(f["listen"], "listen", cfg.listen, true);
    str(f["location"], "location", cfg.location);
    if (const Node* d = f["defaults"]) {
      Fields df(*this, *d, "defaults",
                {"interval", "timeout", "failure_threshold", "success_threshold"});
      Defaults& x = cfg.defaults;
      const bool has_interval = duration(df["interval"], df.path("interval"), x.interval, true);
      const bool has_timeout = duration(df["timeout"], df.path("timeout"), x.timeout, true);
      if ((has_interval || has_timeout) && x.timeout > x.interval) {
        const Node* at = has_timeout ? df["timeout"] : df["interval"];
        error(*at, has_timeout ? df.path("timeout") : df.path("interval"),
              fmt::format("the timeout {} is longer than the interval {}",
                          formatDuration(x.timeout), formatDuration(x.interval)));
      }
      integer(df["failure_threshold"], df.path("failure_threshold"), x.failure_threshold, 1, 1000);
      integer(df["success_threshold"], df.path("success_threshold"), x.success_threshold, 1, 1000);
    }
    integer(f["max_in_flight"], "max_in_flight", cfg.max_in_flight, 1, 10'000'000);

    Unique group_names(*this, "group");
    each(f["groups"], "groups", [&](const Node& item, const std::string& p) {
      Fields g(*this, item, p, {"name", "description"});
      GroupConfig gc;
      if (g.required("name") && name(g["name"], g.path("name"), gc.name)) {
        group_names.add(gc.name, g["name"]->data().line, g.path("name"));
      }
      str(g["description"], g.path("description"), gc.description);
      cfg.groups.push_back(std::move(gc));
    });

    std::vector<Ref> group_refs;
    std::vector<std::vector<Ref>> deps;
    Unique service_names(*this, "service");
    each(f["services"], "services", [&](const Node& item, const std::string& p) {
      Fields s(*this, item, p, {"name", "group", "description", "labels", "depends_on", "checks"});
      ServiceConfig sc;
      sc.pos = SourcePos{pos_file_, item.data().line};
      if (s.required("name") && name(s["name"], s.path("name"), sc.name)) {
        service_names.add(sc.name, s["name"]->data().line, s.path("name"));
      }
      if (str(s["group"], s.path("group"), sc.group)) {
        group_refs.push_back(Ref{sc.group, s["group"]->data().line, s.path("group")});
      }
      str(s["description"], s.path("description"), sc.description);
      std::vector<std::pair<std::string, std::string>> labels;
      if (stringMap(s["labels"], s.path("labels"), labels)) {
        for (auto& [k, v] : labels) {
          if (!validLabelName(k)) {
            error(*s["labels"], s.path("labels"),
                  fmt::format("invalid label name {}: use letters, digits and '_', not starting "
                              "with a digit",
                              quote(k)));
          }
          sc.labels[k] = v;
        }
      }
      deps.emplace_back();
      refs(s["depends_on"], s.path("depends_on"), sc.depends_on, deps.back());
      Unique check_names(*this, "check");
      each(s["checks"], s.path("checks"), [&](const Node& cn, const std::string& cp) {
        CheckConfig c;
        check(cn, cp, sc.name, cfg.defaults, c);
        if (!c.name.empty()) check_names.add(c.name, c.pos.line, join(cp, "name"));
        sc.checks.push_back(std::move(c));
      });
      cfg.services.push_back(std::move(sc));
    });

    std::vector<Ref> service_refs;
    Unique cluster_names(*this, "cluster");
    std::unordered_map<std::string, std::string> agents;
    each(f["clusters"], "clusters", [&](const Node& item, const std::string& p) {
      Fields c(*this, item, p, {"name", "services", "agent_listen"});
      ClusterConfig cc;
      if (c.required("name") && name(c["name"], c.path("name"), cc.name)) {
        cluster_names.add(cc.name, c["name"]->data().line, c.path("name"));
      }
      if (c.required("services"))
        refs(c["services"], c.path("services"), cc.services, service_refs);
      if (hostPort(c["agent_listen"], c.path("agent_listen"), cc.agent_listen, true)) {
        auto [it, fresh] = agents.emplace(cc.agent_listen, cc.name);
        if (!fresh) {
          error(*c["agent_listen"], c.path("agent_listen"),
                fmt::format("{} is already used by cluster {}", quote(cc.agent_listen),
                            quote(it->second)));
        }
      }
      cfg.clusters.push_back(std::move(cc));
    });

    each(f["maintenance"], "maintenance", [&](const Node& item, const std::string& p) {
      Fields m(*this, item, p, {"services", "start", "duration", "reason"});
      MaintenanceWindow w;
      if (m.required("services")) refs(m["services"], m.path("services"), w.services, service_refs);
      std::string start;
      if (m.required("start") && str(m["start"], m.path("start"), start)) {
        bool out_of_range = false;
        if (auto t = parseRfc3339(start, &out_of_range)) {
          w.start = *t;
        } else if (out_of_range) {
          error(*m["start"], m.path("start"),
                fmt::format("{} is not between the years {} and {}", quote(start), kMinYear,
                            kMaxYear));
        } else {
          error(*m["start"], m.path("start"),
                fmt::format("expected an RFC 3339 time like 2026-12-01T06:00:00Z, got {}",
                            quote(start)));
        }
      }
      if (m.required("duration")) duration(m["duration"], m.path("duration"), w.duration, true);
      str(m["reason"], m.path("reason"), w.reason);
      cfg.maintenance.push_back(std::move(w));
    });

    if (const Node* ms = f["modules"]; ms && ms->data().kind != NodeKind::null) {
      if (ms->data().kind != NodeKind::map) {
        error(*ms, "modules", fmt::format("expected a mapping, got {}", describe(*ms)));
      } else {
        for (const auto& [key, item] : *ms) {
          ModuleConfig m;
          m.name = key;
          module(item, join("modules", key), m);
          if (!cfg.modules.emplace(key, std::move(m)).second) {
            error(item.data().key_line, "modules", fmt::format("duplicate key {}", quote(key)));
          }
        }
      }
    }

    if (const Node* h = f["history"]) {
      Fields hf(*this, *h, "history", {"store", "dsn", "retention"});
      choice(hf["store"], hf.path("store"), cfg.history.store, {"memory", "postgres"});
      if (hf["dsn"]) dsn(hf["dsn"], hf.path("dsn"), cfg.history.dsn);
      if (cfg.history.store == "postgres" && !hf["dsn"]) {
        error(*h, "history", "missing required key \"dsn\" (store is postgres)");
      }
      duration(hf["retention"], hf.path("retention"), cfg.history.retention, true);
    }

    if (const Node* a = f["auth"]) auth(*a, cfg.auth);

    crossCheck(cfg, group_refs, deps, service_refs, f["groups"] != nullptr);
  }

  void crossCheck(const Config& cfg, const std::vector<Ref>& group_refs,
                  const std::vector<std::vector<Ref>>& deps, const std::vector<Ref>& service_refs,
                  bool groups_declared) {
    if (groups_declared) {
      std::unordered_map<std::string, int> groups;
      std::string declared;
      for (const auto& g : cfg.groups) {
        if (g.name.empty()) continue;
        groups.emplace(g.name, 0);
        declared += (declared.empty() ? "" : ", ") + g.name;
      }
      for (const auto& r : group_refs) {
        if (!groups.count(r.name)) {
          error(r.line, r.path,
                fmt::format("unknown group {} (groups: {})", quote(r.name),
                            declared.empty() ? "none declared" : declared));
        }
      }
    }
    std::unordered_map<std::string, std::size_t> services;
    for (std::size_t i = 0; i < cfg.services.size(); ++i) {
      if (!cfg.services[i].name.empty()) services.emplace(cfg.services[i].name, i);
    }
    for (const auto& r : service_refs) {
      if (!services.count(r.name))
        error(r.line, r.path, fmt::format("unknown service {}", quote(r.name)));
    }
    // Dependencies: each must exist; then an iterative depth-first search finds
    // cycles (a chain of 50,000 services must not exhaust the stack).
    const std::size_t n = cfg.services.size();
    std::vector<std::vector<std::pair<std::size_t, const Ref*>>> edges(n);
    for (std::size_t i = 0; i < n && i < deps.size(); ++i) {
      for (const auto& r : deps[i]) {
        auto it = services.find(r.name);
        if (it == services.end()) {
          error(r.line, r.path, fmt::format("unknown service {}", quote(r.name)));
        } else {
          edges[i].emplace_back(it->second, &r);
        }
      }
    }
    enum Color : unsigned char { white, gray, black };
    std::vector<Color> color(n, white);
    struct Frame {
      std::size_t node;
      std::size_t next = 0;
    };
    for (std::size_t start = 0; start < n; ++start) {
      if (color[start] != white) continue;
      std::vector<Frame> stack{{start}};
      color[start] = gray;
      while (!stack.empty()) {
        Frame& top = stack.back();
        if (top.next == edges[top.node].size()) {
          color[top.node] = black;
          stack.pop_back();
          continue;
        }
        const auto [to, ref] = edges[top.node][top.next++];
        if (color[to] == white) {
          color[to] = gray;
          stack.push_back(Frame{to});
        } else if (color[to] == gray) {
          std::string cycle;
          bool in = false;
          for (const auto& fr : stack) {
            in = in || fr.node == to;
            if (in) cycle += cfg.services[fr.node].name + " -> ";
          }
          cycle += cfg.services[to].name;
          error(ref->line, ref->path, "dependency cycle: " + cycle);
        }
      }
    }
  }

 private:
  std::string file_;
  CopyOnWrite<std::string> pos_file_;  // file_, shared by every SourcePos
  std::vector<ConfigError> errors_;
};

}  // namespace

const char* probeKindName(const ProbeSpec& spec) { return kKinds[spec.index()].data(); }

const ServiceConfig* Config::findService(const std::string& name) const {
  // Accepts a service name or a check key "service/check".
  const auto slash = name.find('/');
  const std::string_view service = std::string_view(name).substr(0, slash);
  for (const auto& s : services) {
    if (s.name != service) continue;
    if (slash == std::string::npos) return &s;
    for (const auto& c : s.checks) {
      if (c.key == name) return &s;
    }
    return nullptr;
  }
  return nullptr;
}

std::string ConfigError::str() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

ConfigException::ConfigException(std::vector<ConfigError> errors) : errors_(std::move(errors)) {
  for (const auto& e : errors_) {
    if (!what_.empty()) what_ += '\n';
    what_ += e.str();
  }
}

std::string redactDsn(std::string_view dsn) {
  std::string s(dsn);
  const auto scheme = s.find("://");
  if (scheme != std::string::npos) {
    const auto auth = scheme + 3;
    const auto end = s.find_first_of("/?#", auth);
    const auto at = s.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at != std::string::npos && at >= auth) {
      const auto colon = s.find(':', auth);
      if (colon != std::string::npos && colon < at) s.replace(colon + 1, at - colon - 1, "***");
    }
    // password=... among the query parameters.
    for (auto q = s.find('?'); q != std::string::npos;) {
      auto p = s.find("password=", q);
      if (p == std::string::npos) break;
      if (s[p - 1] != '?' && s[p - 1] != '&') {
        q = p + 1;
        continue;
      }
      const auto v = p + 9;
      const auto e = s.find_first_of("&#", v);
      s.replace(v, (e == std::string::npos ? s.size() : e) - v, "***");
      q = v + 3;
    }
    return s;
  }
  // key=value form: password = 'quoted \' value' or password=plain.
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    const bool word_start = i == 0 || std::isspace(static_cast<unsigned char>(s[i - 1]));
    if (word_start && s.compare(i, 8, "password") == 0) {
      std::size_t j = i + 8;
      while (j < s.size() && s[j] == ' ') ++j;
      if (j < s.size() && s[j] == '=') {
        ++j;
        while (j < s.size() && s[j] == ' ') ++j;
        out += "password=***";
        if (j < s.size() && s[j] == '\'') {
          ++j;
          while (j < s.size() && s[j] != '\'') j += s[j] == '\\' ? 2 : 1;
          ++j;
        } else {
          while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
        }
        i = std::min(j, s.size());
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

std::shared_ptr<const Config> parseConfig(const std::string& text, const std::string& file_name,
                                          const std::map<std::string, std::string>* env) {
  const std::string shown = basename(file_name);
  ConfigTree tree;
  std::vector<TreeError> tree_errors;
  if (!readConfigTree(text, env, tree, tree_errors)) {
    std::vector<ConfigError> errors;
    for (auto& e : tree_errors) errors.push_back(ConfigError{shown, e.line, "", e.message});
    throw ConfigException(std::move(errors));
  }
  auto cfg = std::make_shared<Config>();
  cfg->source_file = file_name;
  Loader loader(shown);
  loader.root(tree, *cfg);
  auto& errors = loader.errors();
  if (!errors.empty()) {
    std::stable_sort(errors.begin(), errors.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    throw ConfigException(std::move(errors));
  }
  // Kept while the configuration runs: no spare capacity from the vector's growth
  // (65,536 places for 50,000 services).
  cfg->services.shrink_to_fit();
  return cfg;
}

std::shared_ptr<const Config> loadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigException({ConfigError{
        basename(path), 0, "", fmt::format("cannot read {}: {}", path, std::strerror(errno))}});
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parseConfig(text.str(), path, nullptr);
}

}  // namespace vigie
