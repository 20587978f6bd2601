#include "collector/shard.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdlib>
#include <stdexcept>

namespace vigie {
namespace {

constexpr unsigned kMaxShards = 10000;

std::optional<unsigned> parseNumber(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  unsigned v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::uint64_t shardHash(std::string_view key) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : key) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

unsigned shardOf(std::string_view key, unsigned count) {
  if (count <= 1) return 0;
  return static_cast<unsigned>(shardHash(key) % count);
}

std::string shardName(const ShardSpec& shard) {
  return fmt::format("{}/{}", shard.index, shard.count);
}

std::optional<ShardSpec> parseShardSpec(std::string_view text, std::string& error) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    error = fmt::format(
        "\"{}\" is not of the form N/M (this replica's index / the number of "
        "replicas, e.g. 0/3)",
        text);
    return std::nullopt;
  }
  const auto n = parseNumber(text.substr(0, slash));
  const auto m = parseNumber(text.substr(slash + 1));
  if (!n || !m) {
    error = fmt::format("\"{}\" is not of the form N/M with decimal numbers (e.g. 0/3)", text);
    return std::nullopt;
  }
  if (*m < 1 || *m > kMaxShards) {
    error = fmt::format("\"{}\": the number of shards must be between 1 and {}", text, kMaxShards);
    return std::nullopt;
  }
  if (*n >= *m) {
    error = fmt::format("\"{}\": the shard index must be below the number of shards (0 to {})",
                        text, *m - 1);
    return std::nullopt;
  }
  return ShardSpec{*n, *m};
}

std::optional<unsigned> podOrdinal(std::string_view pod_name) {
  const auto dash = pod_name.rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  return parseNumber(pod_name.substr(dash + 1));
}

ShardSpec resolveShard(std::string_view flag, std::string_view count_flag,
                       const std::function<const char*(const char*)>& getenv) {
  const auto env = [&getenv](const char* name) -> std::string {
    const char* v = getenv ? getenv(name) : std::getenv(name);
    return v ? std::string(v) : std::string();
  };

  std::optional<unsigned> count;
  std::string count_source;
  if (!count_flag.empty()) {
    count_source = "--shard-count";
    count = parseNumber(count_flag);
  } else if (const std::string v = env("VIGIE_SHARD_COUNT"); !v.empty()) {
    count_source = "VIGIE_SHARD_COUNT";
    count = parseNumber(v);
    if (!count || *count < 1 || *count > kMaxShards) {
      throw std::invalid_argument(fmt::format(
          "VIGIE_SHARD_COUNT=\"{}\": the number of shards must be a number from 1 to {}", v,
          kMaxShards));
    }
  }
  if (count_source == "--shard-count" && (!count || *count < 1 || *count > kMaxShards)) {
    throw std::invalid_argument(
        fmt::format("--shard-count \"{}\": the number of shards must be a number from 1 to {}",
                    count_flag, kMaxShards));
  }

  std::string text;
  std::string source;
  if (!flag.empty()) {
    text = std::string(flag);
    source = "--shard";
  } else if (std::string v = env("VIGIE_SHARD"); !v.empty()) {
    text = std::move(v);
    source = "VIGIE_SHARD";
  }
  if (!text.empty()) {
    std::string error;
    const auto spec = parseShardSpec(text, error);
    if (!spec) throw std::invalid_argument(source + " " + error);
    if (count && *count != spec->count) {
      throw std::invalid_argument(fmt::format("{} {} says {} shards but {} says {}", source, text,
                                              spec->count, count_source, *count));
    }
    return *spec;
  }
  if (!count) return ShardSpec{};

  std::string pod_var = "POD_NAME";
  std::string pod = env("POD_NAME");
  if (pod.empty()) {
    pod_var = "HOSTNAME";
    pod = env("HOSTNAME");
  }
  if (pod.empty()) {
    throw std::invalid_argument(fmt::format(
        "{} is {} but neither POD_NAME nor HOSTNAME is set to give this replica's ordinal "
        "(e.g. vigie-2); use --shard N/M instead",
        count_source, *count));
  }
  const auto ordinal = podOrdinal(pod);
  if (!ordinal) {
    throw std::invalid_argument(fmt::format(
        "{}=\"{}\" does not end in -<ordinal> as a StatefulSet pod name does (e.g. vigie-2); "
        "use --shard N/M instead",
        pod_var, pod));
  }
  if (*ordinal >= *count) {
    throw std::invalid_argument(
        fmt::format("the ordinal {} of {}=\"{}\" is not below the number of shards {} (from {})",
                    *ordinal, pod_var, pod, *count, count_source));
  }
  return ShardSpec{*ordinal, *count};
}

Config filterForShard(const Config& config, ShardSpec shard) {
  // A whole copy, then the checks dropped: every field of Config and
  // ServiceConfig, present and future, goes along without being listed here.
  Config out = config;
  out.shard = shard;
  for (ServiceConfig& s : out.services) {
    std::erase_if(s.checks, [&shard](const CheckConfig& c) { return !ownsCheck(shard, c.key); });
  }
  return out;
}

}  // namespace vigie
