#pragma once
/// \file
/// `/`: a plain server-rendered status page over every check (state as colour and
/// word, reason, detail, version, last change). Every value is HTML-escaped; no
/// script; refreshes itself. The full dashboard (groups, services, charts) builds on it.

#include <string>

#include "collector/snapshot.h"

namespace vigie {

/// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string htmlEscape(std::string_view s);

/// The whole page for a snapshot (null: "no configuration yet").
std::string renderIndexPage(const Snapshot* snapshot, SystemClock::time_point now);

/// Content-Security-Policy sent with the page: nothing from outside, no script.
inline constexpr const char* kIndexPageCsp =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

}  // namespace vigie
