#include "probes/registry.h"

#include <array>
#include <stdexcept>
#include <string>
#include <variant>

#include "probes/disk_probe.h"
#include "probes/heartbeat_probe.h"
#include "probes/http_probe.h"
#include "probes/ingress_probe.h"
#include "probes/postgres_probe.h"
#include "probes/tcp_probe.h"

namespace vigie {
namespace {

// Indexed like ProbeSpec's alternatives; kept here so the registry does not depend
// on the config loader's own table.
constexpr std::array<const char*, std::variant_size_v<ProbeSpec>> kKindNames = {
    "http", "tcp", "postgres", "disk", "ingress", "heartbeat"};

}  // namespace

bool probeKindAvailable(const ProbeSpec& spec) {
  return std::holds_alternative<HttpSpec>(spec) || std::holds_alternative<DiskSpec>(spec) ||
         std::holds_alternative<TcpSpec>(spec) || std::holds_alternative<HeartbeatSpec>(spec) ||
         std::holds_alternative<IngressSpec>(spec) || std::holds_alternative<PostgresSpec>(spec);
}

std::unique_ptr<Probe> makeProbe(ProbeContext& ctx, const CheckConfig& check) {
  if (const auto* http = std::get_if<HttpSpec>(&check.spec)) {
    return std::make_unique<HttpProbe>(ctx, *http);
  }
  if (const auto* tcp = std::get_if<TcpSpec>(&check.spec)) {
    return std::make_unique<TcpProbe>(ctx, *tcp);
  }
  if (const auto* pg = std::get_if<PostgresSpec>(&check.spec)) {
    return std::make_unique<PostgresProbe>(ctx, *pg);
  }
  if (const auto* disk = std::get_if<DiskSpec>(&check.spec)) {
    return std::make_unique<DiskProbe>(ctx, *disk);
  }
  if (const auto* ingress = std::get_if<IngressSpec>(&check.spec)) {
    return std::make_unique<IngressProbe>(ctx, *ingress);
  }
  if (const auto* hb = std::get_if<HeartbeatSpec>(&check.spec)) {
    return std::make_unique<HeartbeatProbe>(ctx, *hb, check.key);
  }
  throw std::invalid_argument(std::string("probe kind \"") + kKindNames[check.spec.index()] +
                              "\" is not available in this build");
}

std::unique_ptr<Probe> makeProbe(ProbeContext& ctx, std::shared_ptr<const CheckConfig> check) {
  if (const auto* http = std::get_if<HttpSpec>(&check->spec)) {
    return std::make_unique<HttpProbe>(ctx, std::shared_ptr<const HttpSpec>(check, http));
  }
  return makeProbe(ctx, *check);
}

}  // namespace vigie
