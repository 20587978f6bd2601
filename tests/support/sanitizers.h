#pragma once
/// \file
/// Whether this test build runs under a sanitizer (scripts/sanitizers.sh), for the
/// few bounds that do not hold there: RSS under ASan's quarantine, and wall-clock
/// tolerances under TSan, which runs code 5 to 15 times slower.

namespace vigie::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

/// How much a wall-clock tolerance stretches in this build.
inline constexpr int kTimingSlack = kThreadSanitizer ? 3 : kAddressSanitizer ? 2 : 1;

}  // namespace vigie::test
