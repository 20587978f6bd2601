#pragma once
/// \file
/// What every fuzz target checks beyond "no crash": the promises of the code under
/// test (bounded, valid UTF-8 text; no exception where none is allowed). A broken
/// promise aborts with a message, so libFuzzer saves the input as a crash.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace vigie::fuzz {

[[noreturn]] inline void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz invariant broken: %s [%.*s]\n", what,
               static_cast<int>(detail.size() > 400 ? 400 : detail.size()), detail.data());
  std::abort();
}

#define VIGIE_FUZZ_CHECK(cond, detail) \
  do {                                 \
    if (!(cond)) ::vigie::fuzz::fail(#cond, (detail)); \
  } while (0)

/// Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF).
inline bool validUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

/// One line of text for a human: valid UTF-8, no NUL, no control character.
inline bool cleanLine(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) return false;
  }
  return validUtf8(s);
}

}  // namespace vigie::fuzz
