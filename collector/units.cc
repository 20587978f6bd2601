#include "collector/units.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace vigie {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Reads an unsigned decimal number ("12", "1.5", ".5") at the start of `s`;
// advances `s` past it. nullopt when no digit is found.
std::optional<long double> readNumber(std::string_view& s) {
  std::size_t i = 0;
  long double v = 0;
  bool digits = false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    v = v * 10 + (s[i] - '0');
    digits = true;
    ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    long double scale = 0.1L;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      v += (s[i] - '0') * scale;
      scale /= 10;
      digits = true;
      ++i;
    }
  }
  if (!digits) return std::nullopt;
  s.remove_prefix(i);
  return v;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

template <class T>
std::optional<T> fail(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text, std::string* error) {
  using R = std::chrono::milliseconds;
  const std::string generic = "expected a duration like 30s, got \"" + std::string(text) + "\"";
  std::string_view s = trim(text);
  if (s.empty()) return fail<R>(error, generic);
  long double total = 0;
  while (!s.empty()) {
    auto n = readNumber(s);
    if (!n) return fail<R>(error, generic);
    std::size_t u = 0;
    while (u < s.size() && std::isalpha(static_cast<unsigned char>(s[u]))) ++u;
    const std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    long double factor = 0;
    if (unit == "ms") {
      factor = 1;
    } else if (unit == "s") {
      factor = 1000;
    } else if (unit == "m") {
      factor = 60'000;
    } else if (unit == "h") {
      factor = 3'600'000;
    } else if (unit == "d") {
      factor = 86'400'000;
    } else if (unit.empty()) {
      return fail<R>(error, generic + ": a unit is required (ms, s, m, h, d)");
    } else {
      return fail<R>(error, "unknown unit \"" + std::string(unit) + "\" in duration \"" +
                                std::string(text) + "\" (use ms, s, m, h, d)");
    }
    total += *n * factor;
  }
  // A hundred years is far past any sensible interval, and keeps clear of overflow.
  if (total > 100.0L * 365 * 86'400'000) {
    return fail<R>(error, "duration \"" + std::string(text) + "\" is too large");
  }
  return R(static_cast<R::rep>(std::llround(static_cast<double>(total))));
}

std::optional<std::uint64_t> parseSize(std::string_view text, std::string* error) {
  using R = std::uint64_t;
  const std::string generic =
      "expected a size like 10MiB or 1048576, got \"" + std::string(text) + "\"";
  std::string_view s = trim(text);
  auto n = readNumber(s);
  if (!n) return fail<R>(error, generic);
  const std::string unit = lower(trim(s));
  long double factor = 0;
  if (unit.empty() || unit == "b") {
    factor = 1;
  } else if (unit == "kb") {
    factor = 1e3L;
  } else if (unit == "mb") {
    factor = 1e6L;
  } else if (unit == "gb") {
    factor = 1e9L;
  } else if (unit == "tb") {
    factor = 1e12L;
  } else if (unit == "kib") {
    factor = 1024.0L;
  } else if (unit == "mib") {
    factor = 1024.0L * 1024;
  } else if (unit == "gib") {
    factor = 1024.0L * 1024 * 1024;
  } else if (unit == "tib") {
    factor = 1024.0L * 1024 * 1024 * 1024;
  } else if (std::all_of(unit.begin(), unit.end(),
                         [](char c) { return std::isalpha(static_cast<unsigned char>(c)); })) {
    return fail<R>(error, "unknown unit \"" + std::string(trim(s)) + "\" in size \"" +
                              std::string(text) + "\" (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
  } else {
    return fail<R>(error, generic);
  }
  const long double bytes = *n * factor;
  if (bytes > 1e18L) return fail<R>(error, "size \"" + std::string(text) + "\" is too large");
  return static_cast<R>(bytes);
}

std::optional<double> parsePercent(std::string_view text, std::string* error) {
  const std::string generic = "expected a percentage like 5%, got \"" + std::string(text) + "\"";
  std::string_view s = trim(text);
  if (s.empty() || s.back() != '%') return fail<double>(error, generic);
  s.remove_suffix(1);
  s = trim(s);
  auto n = readNumber(s);
  if (!n || !s.empty()) return fail<double>(error, generic);
  if (*n > 100) {
    return fail<double>(
        error, "a percentage must be between 0% and 100%, got \"" + std::string(text) + "\"");
  }
  return static_cast<double>(*n / 100);
}

std::string formatDuration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  struct Unit {
    long long size;
    const char* name;
  };
  for (const Unit u : {Unit{86'400'000, "d"}, Unit{3'600'000, "h"}, Unit{60'000, "m"},
                       Unit{1000, "s"}, Unit{1, "ms"}}) {
    if (ms >= u.size) {
      out += std::to_string(ms / u.size) + u.name;
      ms %= u.size;
    }
  }
  return out;
}

}  // namespace vigie
