#include "probes/heartbeat_probe.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <charconv>
#include <ctime>

#include "collector/units.h"
#include "probes/health_page.h"

namespace vigie {
namespace {

constexpr std::size_t kMaxMessage = 1024;

// Seconds are enough for ages shown to people; "0s" for anything under one.
std::string age(SteadyClock::duration d) {
  return formatDuration(std::chrono::duration_cast<std::chrono::seconds>(d));
}

std::string rfc3339(SystemClock::time_point t) {
  const std::time_t tt = SystemClock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", tm);
}

}  // namespace

void HeartbeatBoard::watch(const std::string& key, SteadyClock::time_point now) {
  auto [it, fresh] = entries_.try_emplace(key);
  if (fresh) it->second.watching_since = now;
}

void HeartbeatBoard::record(const std::string& key, HeartbeatPush push) {
  auto [it, fresh] = entries_.try_emplace(key);
  if (fresh) it->second.watching_since = push.steady;
  it->second.last = std::move(push);
  ++it->second.pushes;
}

void HeartbeatBoard::forget(const std::string& key) { entries_.erase(key); }

const HeartbeatBoard::Entry* HeartbeatBoard::find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

bool tokenMatches(std::string_view expected, std::string_view presented) {
  unsigned char a[SHA256_DIGEST_LENGTH];
  unsigned char b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(presented.data()), presented.size(), b);
  const bool same = CRYPTO_memcmp(a, b, sizeof a) == 0;
  return same && !expected.empty();
}

std::optional<std::string> parseHeartbeatPush(std::string_view status, std::string_view exit_code,
                                              std::string_view body, HeartbeatPush& out) {
  if (status == "fail" || status == "failure") {
    out.failed = true;
  } else if (!(status.empty() || status == "ok" || status == "success")) {
    return fmt::format("status must be ok or fail, got \"{}\"", boundedText(status, 32));
  }
  if (!exit_code.empty()) {
    int code = 0;
    const auto* end = exit_code.data() + exit_code.size();
    auto [p, ec] = std::from_chars(exit_code.data(), end, code);
    if (ec != std::errc() || p != end || code < 0 || code > 255) {
      return fmt::format("exit_code must be an integer from 0 to 255, got \"{}\"",
                         boundedText(exit_code, 32));
    }
    out.exit_code = code;
    if (code != 0) out.failed = true;
  }
  out.message = boundedText(body, kMaxMessage);
  return std::nullopt;
}

HeartbeatProbe::HeartbeatProbe(ProbeContext& ctx, HeartbeatSpec spec, std::string key)
    : ctx_(ctx), spec_(std::move(spec)), key_(std::move(key)) {
  if (!ctx_.heartbeats) throw std::invalid_argument("heartbeat checks need the engine's board");
  ctx_.heartbeats->watch(key_, SteadyClock::now());
}

void HeartbeatProbe::start(SteadyClock::time_point, Done done) {
  const auto now = SteadyClock::now();
  Result r = evaluate(spec_, ctx_.heartbeats->find(key_), now);
  r.started = SystemClock::now();
  r.duration = std::chrono::duration<double>(SteadyClock::now() - now).count();
  done(std::move(r));
}

Result HeartbeatProbe::evaluate(const HeartbeatSpec& spec, const HeartbeatBoard::Entry* entry,
                                SteadyClock::time_point now) {
  const auto allowed = spec.period + spec.grace;
  const std::string expected =
      spec.grace.count() > 0
          ? fmt::format("expected every {} (+{} grace)", formatDuration(spec.period),
                        formatDuration(spec.grace))
          : fmt::format("expected every {}", formatDuration(spec.period));

  if (!entry || !entry->last) {
    const auto waited = entry ? now - entry->watching_since : SteadyClock::duration::zero();
    if (!entry || waited <= allowed) {
      Result r = Result::ok();
      r.inconclusive = true;
      r.detail = fmt::format("waiting for the first push, {}", expected);
      return r;
    }
    return Result::failure(Reason::heartbeat_missed,
                           fmt::format("no push received in {}, {}", age(waited), expected));
  }

  const HeartbeatPush& p = *entry->last;
  const auto since = now - p.steady;
  Result r;
  if (since > allowed) {
    r = Result::failure(Reason::heartbeat_missed,
                        fmt::format("last push {} ago, {}", age(since), expected));
  } else if (p.failed) {
    std::string what = p.exit_code ? fmt::format("job reported failure (exit code {})", *p.exit_code)
                                   : std::string("job reported failure");
    r = Result::failure(Reason::heartbeat_fail,
                        fmt::format("{} {} ago{}{}", what, age(since), p.message.empty() ? "" : ": ",
                                    boundedText(p.message, 200)));
  } else {
    r = Result::ok();
    r.detail = fmt::format("last push {} ago", age(since));
  }
  r.info["last_push"] = rfc3339(p.at);
  r.info["last_push_age_seconds"] =
      fmt::format("{:.0f}", std::chrono::duration<double>(since).count());
  r.info["pushes"] = std::to_string(entry->pushes);
  if (p.exit_code) r.info["exit_code"] = std::to_string(*p.exit_code);
  if (!p.message.empty()) r.info["message"] = p.message;
  return r;
}

}  // namespace vigie
