#pragma once
/// \file
/// Small text helpers shared by every exporter (metrics, API, dashboard):
/// timestamps, UTF-8 sanitizing, secret stripping, stable names.
/// Pure functions, callable from any thread.

#include <cstddef>
#include <string>
#include <string_view>

#include "collector/config.h"
#include "collector/snapshot.h"
#include "probes/probe.h"

#include "probes/utf8.h"  // isValidUtf8, utf8SequenceLength

namespace vigie {

/// RFC 3339 in UTC with milliseconds: "2024-05-01T12:34:56.789Z".
/// Returns "" for the zero time_point (callers emit null / omit the field).
std::string formatRfc3339(SystemClock::time_point tp);

/// Seconds since the Unix epoch, as a double with millisecond precision.
double unixSeconds(SystemClock::time_point tp);

/// Returns `s` as valid UTF-8 of at most `max_bytes` bytes: each invalid byte
/// becomes U+FFFD, and the text is cut on a character boundary. Cheap when `s`
/// is already valid and short (one copy).
std::string sanitizeUtf8(std::string_view s, std::size_t max_bytes = 256);

/// Removes the "user:password@" part of a URL's authority
/// ("https://u:p@host/x" -> "https://host/x"); other text is returned unchanged.
std::string stripUrlUserinfo(std::string_view url);

/// Decodes %XX escapes (and '+' as space when `plus_is_space`); invalid escapes
/// are kept as they are.
std::string percentDecode(std::string_view s, bool plus_is_space = false);

/// The probe kind's name as used in the `probe` label and the API's "kind":
/// "http", "tcp", "postgres", "disk", "ingress", "heartbeat".
std::string_view probeKindLabel(const ProbeSpec& spec);


}  // namespace vigie
