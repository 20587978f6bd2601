#pragma once
/// \file
/// What every fuzz target checks beyond "no crash": the promises of the code under
/// test (bounded, valid UTF-8 text; no exception where none is allowed). A broken
/// promise aborts with a message, so libFuzzer saves the input as a crash.

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "probes/utf8.h"

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
inline bool validUtf8(std::string_view s) { return ::vigie::isValidUtf8(s); }

/// One line of text for a human: valid UTF-8, no NUL, no control character.
inline bool cleanLine(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) return false;
  }
  return validUtf8(s);
}

}  // namespace vigie::fuzz
