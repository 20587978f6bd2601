#pragma once
/// \file
/// Parsers for the units users write in the configuration: durations ("500ms",
/// "15s", "5m", "1h", "7d", combinations "1m30s", decimals "1.5s"), sizes
/// ("512KiB", "1MiB", "10GiB", "1MB", plain bytes "1048576") and percentages
/// ("5%"). Pure functions, any thread. On failure they return nullopt and, when
/// `error` is not null, set it to a sentence for the user (no file or path: the
/// caller adds those).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vigie {

/// Units ms, s, m, h, d; every number needs its unit; the result is rounded to
/// the millisecond. Error: `expected a duration like 30s, got "abc"`.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text,
                                                       std::string* error = nullptr);

/// Units (case-insensitive) B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB,
/// TiB (powers of 1024); no unit means bytes. Error:
/// `expected a size like 10MiB or 1048576, got "abc"`.
std::optional<std::uint64_t> parseSize(std::string_view text, std::string* error = nullptr);

/// "5%" -> 0.05; 0% to 100%. Error: `expected a percentage like 5%, got "abc"`.
std::optional<double> parsePercent(std::string_view text, std::string* error = nullptr);

/// The shortest form parseDuration() reads back: "1m30s", "500ms", "2h", "0s".
std::string formatDuration(std::chrono::milliseconds d);

}  // namespace vigie
