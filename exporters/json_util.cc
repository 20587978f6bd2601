#include "exporters/json_util.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <type_traits>
#include <variant>

namespace vigie {
namespace {


int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string formatRfc3339(SystemClock::time_point tp) {
  if (tp == SystemClock::time_point{}) return {};
  using namespace std::chrono;
  const auto ms = time_point_cast<milliseconds>(tp);
  const auto days = floor<std::chrono::days>(ms);
  const year_month_day ymd{days};
  const hh_mm_ss hms{ms - days};
  std::array<char, 40> buf{};
  const int n = std::snprintf(
      buf.data(), buf.size(), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
      static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
      static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
      static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  return std::string(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
}

double unixSeconds(SystemClock::time_point tp) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
  return static_cast<double>(ms) / 1000.0;
}

std::string sanitizeUtf8(std::string_view s, std::size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size() < max_bytes ? s.size() : max_bytes);
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8SequenceLength(s, i);
    const std::string_view piece = len ? s.substr(i, len) : kReplacement;
    if (out.size() + piece.size() > max_bytes) break;
    out.append(piece);
    i += len ? len : 1;
  }
  return out;
}

std::string stripUrlUserinfo(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const auto auth_begin = scheme_end + 3;
  auto auth_end = url.find_first_of("/?#", auth_begin);
  if (auth_end == std::string_view::npos) auth_end = url.size();
  const auto at = url.substr(auth_begin, auth_end - auth_begin).rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  std::string out;
  out.reserve(url.size());
  out.append(url.substr(0, auth_begin));
  out.append(url.substr(auth_begin + at + 1));
  return out;
}

std::string percentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = hexValue(s[i + 1]);
      const int lo = hexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::string_view probeKindLabel(const ProbeSpec& spec) {
  // Local rather than config.cc's probeKindName() so the exporters do not depend
  // on the loader's object file; the names are the YAML keys.
  return std::visit(
      [](const auto& s) -> std::string_view {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, HttpSpec>) return "http";
        if constexpr (std::is_same_v<T, TcpSpec>) return "tcp";
        if constexpr (std::is_same_v<T, PostgresSpec>) return "postgres";
        if constexpr (std::is_same_v<T, DiskSpec>) return "disk";
        if constexpr (std::is_same_v<T, IngressSpec>) return "ingress";
        if constexpr (std::is_same_v<T, HeartbeatSpec>) return "heartbeat";
        return "other";
      },
      spec);
}


}  // namespace vigie
