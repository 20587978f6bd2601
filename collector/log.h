#pragma once
/// \file
/// Logging set-up: one line per event on stdout, as text or JSON (VIGIE_LOG_FORMAT).

#include <string>

namespace vigie {

/// `format`: "text" (default) or "json"; `level`: trace|debug|info|warn|error.
/// Throws std::invalid_argument for an unknown format or level.
void setupLogging(const std::string& format, const std::string& level);

/// Escapes a string for a JSON string literal (no quotes added).
std::string jsonEscape(const std::string& s);

}  // namespace vigie
