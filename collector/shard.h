#pragma once
/// \file
/// Sharding: several replicas share one configuration, each running the checks
/// whose key hashes to it, as Prometheus `hashmod` relabelling does. The hash is
/// FNV-1a 64 of the check key "service/check" (its UTF-8 bytes as written in
/// the config), and shard = hash % count: stable across versions, platforms
/// and restarts, so users can predict it (README "Sharding").
/// Pure functions; any thread.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "collector/config.h"

namespace vigie {

/// FNV-1a 64 (offset basis 14695981039346656037, prime 1099511628211) of `key`.
std::uint64_t shardHash(std::string_view key);

/// The shard that runs check `key` among `count` (>= 1) shards.
unsigned shardOf(std::string_view key, unsigned count);

/// True when `shard` runs check `key`.
inline bool ownsCheck(const ShardSpec& shard, std::string_view key) {
  return shard.count <= 1 || shardOf(key, shard.count) == shard.index;
}

/// "N/M".
std::string shardName(const ShardSpec& shard);

/// Parses "N/M" (decimal, 0 <= N < M, 1 <= M <= 10000, no spaces). On failure
/// returns nullopt and says why in `error`.
std::optional<ShardSpec> parseShardSpec(std::string_view text, std::string& error);

/// The ordinal of a StatefulSet pod name: the digits after the last '-'
/// ("vigie-2" -> 2, "vigie-shard-10" -> 10); nullopt when there is none.
std::optional<unsigned> podOrdinal(std::string_view pod_name);

/// Where this replica's shard comes from, first match wins:
///  1. `flag` (--shard N/M) when not empty;
///  2. env VIGIE_SHARD ("N/M");
///  3. a shard count (`count_flag`, --shard-count, else env VIGIE_SHARD_COUNT)
///     with the ordinal of the pod name in env POD_NAME, else HOSTNAME;
///  4. otherwise 0/1 (not sharded).
/// A count given beside an explicit N/M must agree with it. Throws
/// std::invalid_argument with a sentence naming the source of a bad value.
/// `getenv` defaults to the process environment (tests pass their own).
ShardSpec resolveShard(std::string_view flag, std::string_view count_flag,
                       const std::function<const char*(const char*)>& getenv = {});

/// A copy of `config` for `shard`: every group, service, cluster, maintenance
/// window and module is kept (a service whose checks all run elsewhere is still
/// there, unknown locally), but each service keeps only the checks the shard
/// owns. `shard` is recorded in the copy's `shard` field.
Config filterForShard(const Config& config, ShardSpec shard);

}  // namespace vigie
