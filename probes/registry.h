#pragma once
/// \file
/// The plugin system: a probe kind's name maps to a factory (as blackbox_exporter's
/// prober map). The engine makes one Probe per check through makeProbe().

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "collector/config.h"
#include "probes/probe.h"

namespace vigie {

class CurlDriver;
class WorkerPool;
class HeartbeatBoard;

/// What probes share, owned by the engine; all references outlive every probe.
struct ProbeContext {
  boost::asio::io_context& io;
  CurlDriver& curl;
  std::string location;  // config `location`
  WorkerPool* blocking = nullptr;  // pool for blocking disk probes; may be null
  WorkerPool* database = nullptr;  // pool for blocking database probes (libpqxx); may be null
  HeartbeatBoard* heartbeats = nullptr;  // pushes received, read by heartbeat probes; may be null
};

/// Makes the probe for a check. Throws std::invalid_argument when the kind has no
/// probe in this build (reported at config load, never at run time).
std::unique_ptr<Probe> makeProbe(ProbeContext& ctx, const CheckConfig& check);
/// As above; an HTTP probe shares the check's settings (kept alive by `check`) instead
/// of copying them.
std::unique_ptr<Probe> makeProbe(ProbeContext& ctx, std::shared_ptr<const CheckConfig> check);

/// True when makeProbe() can build this kind.
bool probeKindAvailable(const ProbeSpec& spec);

}  // namespace vigie
