#include "exporters/metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <malloc.h>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "exporters/json_util.h"

namespace vigie {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

constexpr std::size_t kMaxLabelBytes = 256;
constexpr std::size_t kMaxInfoLabels = 16;

// Family indices, in output order.
enum Fam : std::size_t {
  kProbeSuccess,
  kProbeDuration,
  kHttpStatus,
  kHttpPhase,
  kHttpVersion,
  kHttpBodyLength,
  kHttpRedirects,
  kCertExpiry,
  kCheckFailure,
  kCheckState,
  kCheckPending,
  kConsecutiveFailures,
  kLastResultTs,
  kLastChangeTs,
  kResultsTotal,
  kStateChangesTotal,
  kCheckFlapping,
  kCheckUptime,
  kComponentStatus,
  kTargetInfo,
  kConditionSuccess,
  kTargetSuccess,
  kTargetDuration,
  kTargetHttpStatus,
  kTargetFailure,
  kTargetCertExpiry,
  kServiceState,
  kServiceCause,
  kServiceFlapping,
  kServiceUptime,
  kServiceLastChangeTs,
  kClusterState,
  kClusterReady,
  kProbesInFlight,
  kProbesWaiting,
  kReloadOk,
  kReloadOkTs,
  kReloadsTotal,
  kReloadFailuresTotal,
  kChecks,
  kStartTime,
  kBuildInfo,
  kShardInfo,
  kFamilyCount,
};

struct FamilySpec {
  const char* name;
  const char* help;
  MetricType type;
};

constexpr std::array<FamilySpec, kFamilyCount> kFamilies{{
    {"probe_success", "1 when the last probe succeeded (a warning counts as success), else 0.",
     MetricType::Gauge},
    {"probe_duration_seconds", "Duration of the last probe in seconds.", MetricType::Gauge},
    {"probe_http_status_code", "HTTP status code of the last probe's response, 0 when none.",
     MetricType::Gauge},
    {"probe_http_duration_seconds", "Duration of each phase of the last HTTP probe in seconds.",
     MetricType::Gauge},
    {"probe_http_version", "HTTP version of the last probe's response (1.0, 1.1, 2).",
     MetricType::Gauge},
    {"probe_http_uncompressed_body_length", "Body bytes read by the last HTTP probe.",
     MetricType::Gauge},
    {"probe_http_redirects", "Redirects followed by the last HTTP probe.", MetricType::Gauge},
    {"probe_ssl_earliest_cert_expiry",
     "Unix time of the earliest certificate expiry seen by the last probe.", MetricType::Gauge},
    {"vigie_check_failure", "1 for the reason of the last probe's failure; absent when it passed.",
     MetricType::Gauge},
    {"vigie_check_state", "Hard state of the check after thresholds: 1 for the current state.",
     MetricType::Gauge},
    {"vigie_check_pending",
     "1 when recent results disagree with the state but have not reached the threshold.",
     MetricType::Gauge},
    {"vigie_check_consecutive_failures", "Consecutive failed results of the check.",
     MetricType::Gauge},
    {"vigie_check_last_result_timestamp_seconds", "Unix time when the last probe started.",
     MetricType::Gauge},
    {"vigie_check_last_state_change_timestamp_seconds",
     "Unix time of the check's last state change.", MetricType::Gauge},
    {"vigie_check_results_total", "Probe results of the check by outcome.", MetricType::Counter},
    {"vigie_check_state_changes_total", "State changes of the check.", MetricType::Counter},
    {"vigie_check_flapping",
     "1 while the check is flapping (weighted share of state changes over the last 21 results "
     "above 30%, until below 25%).",
     MetricType::Gauge},
    {"vigie_check_uptime_ratio",
     "Share of passing results over the window; absent when nothing was counted in it.",
     MetricType::Gauge},
    {"vigie_health_component_status",
     "Status of each component reported by a health page: 1 for the current status.",
     MetricType::Gauge},
    {"vigie_target_info", "Version and facts reported by the target; the value is always 1.",
     MetricType::Gauge},
    {"vigie_condition_success", "1 when the condition held on the last response, else 0.",
     MetricType::Gauge},
    {"vigie_check_target_success",
     "Ingress checks: 1 when the last probe through this front-end address succeeded, else 0.",
     MetricType::Gauge},
    {"vigie_check_target_duration_seconds",
     "Ingress checks: duration of the last probe through this front-end address in seconds.",
     MetricType::Gauge},
    {"vigie_check_target_http_status_code",
     "Ingress checks: HTTP status code answered through this front-end address, 0 when none.",
     MetricType::Gauge},
    {"vigie_check_target_failure",
     "Ingress checks: 1 for the reason this front-end address failed; absent when it passed.",
     MetricType::Gauge},
    {"vigie_check_target_cert_expiry_timestamp_seconds",
     "Ingress checks: earliest certificate expiry seen through this front-end address (unix "
     "time).",
     MetricType::Gauge},
    {"vigie_service_state", "State of the service from its checks: 1 for the current state.",
     MetricType::Gauge},
    {"vigie_service_cause",
     "1 for each root service whose being down makes this service down; absent otherwise.",
     MetricType::Gauge},
    {"vigie_service_flapping", "1 while a check of the service is flapping.", MetricType::Gauge},
    {"vigie_service_uptime_ratio",
     "Share of time up or degraded over the window (unknown and maintenance left out); absent "
     "when nothing was counted in it.",
     MetricType::Gauge},
    {"vigie_service_last_state_change_timestamp_seconds",
     "Unix time of the service's last state change.", MetricType::Gauge},
    {"vigie_cluster_state", "State of the cluster from its services: 1 for the current state.",
     MetricType::Gauge},
    {"vigie_cluster_ready", "1 when the cluster should get traffic (up or degraded), else 0.",
     MetricType::Gauge},
    {"vigie_probes_in_flight", "Probes running now.", MetricType::Gauge},
    {"vigie_probes_waiting", "Probes due but held back by max_in_flight.", MetricType::Gauge},
    {"vigie_config_last_reload_successful", "1 when the last configuration load succeeded.",
     MetricType::Gauge},
    {"vigie_config_last_reload_success_timestamp_seconds",
     "Unix time of the last successful configuration load.", MetricType::Gauge},
    {"vigie_config_reloads_total", "Configuration loads attempted.", MetricType::Counter},
    {"vigie_config_reload_failures_total", "Configuration loads refused.", MetricType::Counter},
    {"vigie_checks", "Checks configured.", MetricType::Gauge},
    {"vigie_start_time_seconds", "Unix time when vigie started.", MetricType::Gauge},
    {"vigie_build_info", "vigie's version; the value is always 1.", MetricType::Gauge},
    {"vigie_shard_info",
     "Sharded replicas only: this replica's shard and the number of shards; always 1.",
     MetricType::Gauge},
}};

constexpr std::array<const char*, 5> kPhaseNames{"resolve", "connect", "tls", "processing",
                                                 "transfer"};
constexpr std::array<CheckState, 4> kStates{CheckState::unknown, CheckState::up,
                                            CheckState::degraded, CheckState::down};
constexpr std::array<Status, 3> kStatuses{Status::ok, Status::warn, Status::fail};

struct Extra {
  std::string_view name;
  std::string_view value;  // already valid UTF-8 and bounded
};

// Builds prometheus-cpp MetricFamily objects (the Collectable path).
class FamilySink {
 public:
  FamilySink() {
    for (std::size_t i = 0; i < kFamilyCount; ++i) {
      f_[i].name = kFamilies[i].name;
      f_[i].help = kFamilies[i].help;
      f_[i].type = kFamilies[i].type;
    }
  }
  void reserve(Fam i, std::size_t n) { f_[i].metric.reserve(n); }
  static constexpr bool wants(Fam) { return true; }
  static constexpr bool wantsResult() { return true; }
  void begin(std::initializer_list<Extra> base) {
    base_.clear();
    for (const Extra& e : base) base_.push_back({std::string(e.name), std::string(e.value)});
  }
  void noBase() { base_.clear(); }
  void add(Fam i, double value) { add(i, {}, value); }
  void add(Fam i, std::initializer_list<Extra> extra, double value) {
    addSpan(i, extra.begin(), extra.end(), value);
  }
  void addSpan(Fam i, const Extra* first, const Extra* last, double value) {
    ClientMetric m;
    m.label.reserve(base_.size() + static_cast<std::size_t>(last - first));
    m.label = base_;
    for (; first != last; ++first) {
      m.label.push_back({std::string(first->name), std::string(first->value)});
    }
    if (f_[i].type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    f_[i].metric.push_back(std::move(m));
  }
  std::vector<MetricFamily> finish() {
    std::vector<MetricFamily> out;
    out.reserve(kFamilyCount);
    for (auto& fam : f_) {
      if (!fam.metric.empty()) out.push_back(std::move(fam));
    }
    return out;
  }

 private:
  std::array<MetricFamily, kFamilyCount> f_;
  Labels base_;
};

void appendEscaped(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '"':
        out.append("\\\"");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.push_back(c);
    }
  }
}

// Formats as TextSerializer does (ostream, classic locale, precision 16, %g style).
void appendValue(std::string& out, double v) {
  if (std::isnan(v)) {
    out.append("Nan");
    return;
  }
  if (std::isinf(v)) {
    out.append(v < 0 ? "-Inf" : "+Inf");
    return;
  }
  char buf[64];
  std::to_chars_result r;
  if (v == std::trunc(v) && std::fabs(v) < 1e15 && !std::signbit(v)) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
  } else {
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 16);
  }
  out.append(buf, r.ptr);
}

// A label block (`a="x",b="y"`) from `base`.
void labelBlock(std::string& out, std::initializer_list<Extra> base) {
  out.clear();
  for (const Extra& e : base) {
    if (!out.empty()) out.push_back(',');
    out.append(e.name);
    out.append("=\"");
    appendEscaped(out, e.value);
    out.push_back('"');
  }
}

// One sample line of family `i`: the base label block, then the extra labels.
void appendLine(std::string& out, Fam i, std::string_view base, const Extra* first,
                const Extra* last, double value) {
  out.append(kFamilies[i].name);
  if (!base.empty() || first != last) {
    out.push_back('{');
    out.append(base);
    for (bool comma = !base.empty(); first != last; ++first, comma = true) {
      if (comma) out.push_back(',');
      out.append(first->name);
      out.append("=\"");
      appendEscaped(out, first->value);
      out.push_back('"');
    }
    out.push_back('}');
  }
  out.push_back(' ');
  appendValue(out, value);
  out.push_back('\n');
}

// A family's HELP and TYPE lines.
void appendHeader(std::string& out, Fam i) {
  out.append("# HELP ").append(kFamilies[i].name).push_back(' ');
  out.append(kFamilies[i].help).push_back('\n');  // constant text, nothing to escape
  out.append("# TYPE ").append(kFamilies[i].name).push_back(' ');
  out.append(kFamilies[i].type == MetricType::Counter ? "counter" : "gauge").push_back('\n');
}

// Writes the text format directly, one buffer per family (the /metrics path):
// no per-series objects, the check's label block escaped once.
class TextSink {
 public:
  void reserve(Fam i, std::size_t n) { buf_[i].reserve(n * 128); }
  static constexpr bool wants(Fam) { return true; }
  static constexpr bool wantsResult() { return true; }
  void begin(std::initializer_list<Extra> base) { labelBlock(base_, base); }
  void noBase() { base_.clear(); }
  void add(Fam i, double value) { add(i, {}, value); }
  void add(Fam i, std::initializer_list<Extra> extra, double value) {
    addSpan(i, extra.begin(), extra.end(), value);
  }
  void addSpan(Fam i, const Extra* first, const Extra* last, double value) {
    appendLine(buf_[i], i, base_, first, last, value);
  }
  // Appends every non-empty family, with its HELP and TYPE lines, to `out`.
  void finish(std::string& out, std::unordered_set<std::string>& seen) {
    // Room for the other sources' families too (vigie's own registries, some KiB):
    // appending them must not reallocate, and so copy, hundreds of MiB.
    std::size_t total = out.size() + (256 << 10);
    for (const auto& b : buf_) total += b.size() + 256;
    out.reserve(total);
    for (std::size_t i = 0; i < kFamilyCount; ++i) {
      if (buf_[i].empty()) continue;
      seen.insert(kFamilies[i].name);
      appendHeader(out, static_cast<Fam>(i));
      out.append(buf_[i]);
      std::string().swap(buf_[i]);
    }
  }

 private:
  std::array<std::string, kFamilyCount> buf_;
  std::string base_;
};

std::string label(std::string_view value) { return sanitizeUtf8(value, kMaxLabelBytes); }

bool isLabelName(std::string_view n) {
  if (n.empty() || (n.size() >= 2 && n[0] == '_' && n[1] == '_')) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool isReservedLabel(std::string_view n) {
  static constexpr std::array<std::string_view, 9> kReserved{
      "service", "check", "group", "probe", "location", "version", "instance", "job", "shard"};
  for (auto r : kReserved) {
    if (r == n) return true;
  }
  return false;
}

bool isHttpKind(const ProbeSpec& spec) {
  return std::holds_alternative<HttpSpec>(spec) || std::holds_alternative<IngressSpec>(spec);
}

template <class Sink>
void addUptime(Sink& sink, Fam fam, const UptimeRatios& uptime) {
  for (std::size_t i = 0; i < kUptimeWindows.size(); ++i) {
    if (uptime[i]) sink.add(fam, {{"window", kUptimeWindows[i]}}, *uptime[i]);
  }
}

// The check's own labels (service, check, group, probe, location[, shard]).
template <class Sink>
void beginCheck(Sink& sink, const CheckStatus& c, std::string_view location,
                std::string_view shard) {
  const CheckConfig& cfg = *c.check;
  const std::string service = label(c.service ? std::string_view(c.service->name) : "");
  const std::string check = label(cfg.name);
  const std::string group = label(c.service ? std::string_view(c.service->group) : "");
  if (shard.empty()) {
    sink.begin({{"service", service},
                {"check", check},
                {"group", group},
                {"probe", probeKindLabel(cfg.spec)},
                {"location", location}});
  } else {
    // Sharded: the replica that runs the check says so, and only it exports it.
    sink.begin({{"service", service},
                {"check", check},
                {"group", group},
                {"probe", probeKindLabel(cfg.spec)},
                {"location", location},
                {"shard", shard}});
  }
}

// The check's samples, after beginCheck(). `wants` spares a sink that keeps one
// family the labels of the others.
// `http`: the check is of an HTTP kind (isHttpKind of its spec).
template <class Sink>
void addCheckSamples(Sink& sink, const CheckStatus& c, bool http,
                     std::vector<std::string>& scratch, std::vector<Extra>& extras) {
  if (c.last && sink.wantsResult()) {
    const Result& r = *c.last;
    // Each family only when the sink keeps it: a stream's pass over every check for
    // one family costs a comparison per other family.
    if (sink.wants(kProbeSuccess)) sink.add(kProbeSuccess, r.status == Status::fail ? 0 : 1);
    if (sink.wants(kProbeDuration)) sink.add(kProbeDuration, r.duration);
    if (http) {
      if (sink.wants(kHttpStatus)) sink.add(kHttpStatus, r.http_status);
      if (sink.wants(kHttpPhase)) {
        const std::array<double, 5> phases{r.phases.resolve, r.phases.connect, r.phases.tls,
                                           r.phases.processing, r.phases.transfer};
        for (std::size_t i = 0; i < phases.size(); ++i) {
          sink.add(kHttpPhase, {{"phase", kPhaseNames[i]}}, phases[i]);
        }
      }
      if (r.http_version > 0 && sink.wants(kHttpVersion)) {
        sink.add(kHttpVersion, r.http_version / 10.0);
      }
      if (sink.wants(kHttpBodyLength)) sink.add(kHttpBodyLength, static_cast<double>(r.body_bytes));
      if (sink.wants(kHttpRedirects)) sink.add(kHttpRedirects, r.redirects);
    }
    if (r.cert_expiry && sink.wants(kCertExpiry)) sink.add(kCertExpiry, *r.cert_expiry);
    if (r.status == Status::fail && sink.wants(kCheckFailure)) {
      sink.add(kCheckFailure, {{"reason", reasonName(r.reason)}}, 1);
    }
    if (sink.wants(kLastResultTs)) sink.add(kLastResultTs, unixSeconds(r.started));
    for (const Component& comp : r.components) {
      if (!sink.wants(kComponentStatus)) break;
      const std::string name = label(comp.name);
      for (Status s : kStatuses) {
        sink.add(kComponentStatus, {{"component", name}, {"status", statusName(s)}},
                 comp.status == s ? 1 : 0);
      }
    }
    if ((!r.version.empty() || !r.info.empty()) && sink.wants(kTargetInfo)) {
      scratch.clear();
      extras.clear();
      scratch.reserve(kMaxInfoLabels + 1);  // no reallocation: extras point into it
      scratch.push_back(label(r.version));
      extras.push_back({"version", scratch.back()});
      for (const auto& [k, v] : r.info) {
        if (extras.size() > kMaxInfoLabels) break;
        if (!isLabelName(k) || isReservedLabel(k)) continue;
        scratch.push_back(label(v));
        extras.push_back({k, scratch.back()});
      }
      sink.addSpan(kTargetInfo, extras.data(), extras.data() + extras.size(), 1);
    }
    for (const ConditionResult& cond : r.conditions) {
      if (!sink.wants(kConditionSuccess)) break;
      sink.add(kConditionSuccess, {{"condition", label(cond.name)}}, cond.ok ? 1 : 0);
    }
    for (const TargetResult& t : r.targets) {
      if (!sink.wants(kTargetSuccess) && !sink.wants(kTargetDuration) &&
          !sink.wants(kTargetHttpStatus) && !sink.wants(kTargetFailure) &&
          !sink.wants(kTargetCertExpiry)) {
        break;
      }
      const std::string address = label(t.address);
      sink.add(kTargetSuccess, {{"address", address}}, t.status == Status::fail ? 0 : 1);
      sink.add(kTargetDuration, {{"address", address}}, t.duration);
      sink.add(kTargetHttpStatus, {{"address", address}}, t.http_status);
      if (t.status == Status::fail) {
        sink.add(kTargetFailure, {{"address", address}, {"reason", reasonName(t.reason)}}, 1);
      }
      if (t.cert_expiry) sink.add(kTargetCertExpiry, {{"address", address}}, *t.cert_expiry);
    }
  }

  if (sink.wants(kCheckState)) {
    for (CheckState s : kStates) {
      sink.add(kCheckState, {{"state", checkStateName(s)}}, c.state == s ? 1 : 0);
    }
  }
  if (sink.wants(kCheckPending)) sink.add(kCheckPending, c.pending ? 1 : 0);
  if (sink.wants(kConsecutiveFailures)) sink.add(kConsecutiveFailures, c.consecutive_failures);
  if (c.last_change != SystemClock::time_point{} && sink.wants(kLastChangeTs)) {
    sink.add(kLastChangeTs, unixSeconds(c.last_change));
  }
  if (sink.wants(kResultsTotal)) {
    for (Status s : kStatuses) {
      sink.add(kResultsTotal, {{"result", statusName(s)}},
               static_cast<double>(c.results_total[static_cast<std::size_t>(s)]));
    }
  }
  if (sink.wants(kStateChangesTotal)) {
    sink.add(kStateChangesTotal, static_cast<double>(c.state_changes));
  }
  if (sink.wants(kCheckFlapping)) sink.add(kCheckFlapping, c.flapping ? 1 : 0);
  if (sink.wants(kCheckUptime)) addUptime(sink, kCheckUptime, c.uptime);
}

template <class Sink>
void addCheck(Sink& sink, const CheckStatus& c, std::string_view location, std::string_view shard,
              std::vector<std::string>& scratch, std::vector<Extra>& extras) {
  if (!c.check) return;
  beginCheck(sink, c, location, shard);
  addCheckSamples(sink, c, isHttpKind(c.check->spec), scratch, extras);
}

template <class Sink>
void beginService(Sink& sink, const ServiceStatus& s) {
  const std::string service = label(s.service->name);
  const std::string group = label(s.service->group);
  sink.begin({{"service", service}, {"group", group}});
}

template <class Sink>
void addServiceSamples(Sink& sink, const ServiceStatus& s) {
  for (ServiceState st : kServiceStates) {
    sink.add(kServiceState, {{"state", serviceStateName(st)}}, s.state == st ? 1 : 0);
  }
  for (const std::string& cause : s.causes) sink.add(kServiceCause, {{"cause", label(cause)}}, 1);
  sink.add(kServiceFlapping, s.flapping ? 1 : 0);
  addUptime(sink, kServiceUptime, s.uptime);
  if (s.last_change != SystemClock::time_point{}) {
    sink.add(kServiceLastChangeTs, unixSeconds(s.last_change));
  }
}

template <class Sink>
void addService(Sink& sink, const ServiceStatus& s) {
  if (!s.service) return;
  beginService(sink, s);
  addServiceSamples(sink, s);
}

template <class Sink>
void addCluster(Sink& sink, const ClusterStatus& c) {
  if (!c.cluster) return;
  const std::string cluster = label(c.cluster->name);
  sink.begin({{"cluster", cluster}});
  for (ServiceState st : kServiceStates) {
    sink.add(kClusterState, {{"state", serviceStateName(st)}}, c.state == st ? 1 : 0);
  }
  sink.add(kClusterReady, c.ready ? 1 : 0);
}

template <class Sink>
void addBuildInfo(Sink& sink, std::string_view version) {
  sink.noBase();
  const std::string v = label(version.empty() ? "unknown" : version);
  sink.add(kBuildInfo, {{"version", v}}, 1);
}

template <class Sink>
void addSelf(Sink& sink, const Snapshot& snap, std::string_view version);

template <class Sink>
void addSnapshot(Sink& sink, const Snapshot& snap, std::string_view version) {
  const std::size_t n = snap.checks.size();
  for (Fam i : {kProbeSuccess, kProbeDuration, kHttpStatus, kHttpVersion, kHttpBodyLength,
                kHttpRedirects, kLastResultTs, kCheckPending, kConsecutiveFailures, kLastChangeTs,
                kStateChangesTotal, kCheckFlapping}) {
    sink.reserve(i, n);
  }
  sink.reserve(kHttpPhase, n * kPhaseNames.size());
  sink.reserve(kCheckState, n * kStates.size());
  sink.reserve(kResultsTotal, n * kStatuses.size());

  const std::string location = label(snap.config ? std::string_view(snap.config->location) : "");
  const bool sharded = snap.config && snap.config->shard.count > 1;
  const std::string shard = sharded ? std::to_string(snap.config->shard.index) : std::string();
  std::vector<std::string> scratch;
  std::vector<Extra> extras;
  for (const auto& c : snap.checks) {
    if (c) addCheck(sink, *c, location, shard, scratch, extras);
  }
  sink.reserve(kServiceState, snap.services.size() * kServiceStates.size());
  for (const ServiceStatus& s : snap.services) addService(sink, s);
  sink.reserve(kClusterState, snap.clusters.size() * kServiceStates.size());
  for (const ClusterStatus& c : snap.clusters) addCluster(sink, c);

  addSelf(sink, snap, version);
}

// vigie's own figures of the snapshot, then build (and shard) info.
template <class Sink>
void addSelf(Sink& sink, const Snapshot& snap, std::string_view version) {
  const std::size_t n = snap.checks.size();
  const bool sharded = snap.config && snap.config->shard.count > 1;
  const std::string shard = sharded ? std::to_string(snap.config->shard.index) : std::string();
  const SelfStats& s = snap.self;
  sink.noBase();
  sink.add(kProbesInFlight, static_cast<double>(s.probes_in_flight));
  sink.add(kProbesWaiting, static_cast<double>(s.probes_waiting));
  sink.add(kReloadOk, s.config_last_reload_successful ? 1 : 0);
  if (s.config_last_reload_success != SystemClock::time_point{}) {
    sink.add(kReloadOkTs, unixSeconds(s.config_last_reload_success));
  }
  sink.add(kReloadsTotal, static_cast<double>(s.config_reloads_total));
  sink.add(kReloadFailuresTotal, static_cast<double>(s.config_reload_failures_total));
  sink.add(kChecks, static_cast<double>(n));
  if (s.started != SystemClock::time_point{}) sink.add(kStartTime, unixSeconds(s.started));
  addBuildInfo(sink, version);
  if (sharded) {
    const std::string shards = std::to_string(snap.config->shard.count);
    sink.add(kShardInfo, {{"shard", shard}, {"shards", shards}}, 1);
  }
}

// One sample line as TextSerializer writes it: name+suffix, labels (plus an extra
// one), the value already formatted, the timestamp.
void appendSample(std::string& out, const MetricFamily& fam, const prometheus::ClientMetric& m,
                  std::string_view suffix, std::string_view extra_name,
                  std::string_view extra_value, std::string_view value) {
  out.append(fam.name).append(suffix);
  if (!m.label.empty() || !extra_name.empty()) {
    out.push_back('{');
    bool comma = false;
    for (const auto& lp : m.label) {
      if (comma) out.push_back(',');
      comma = true;
      out.append(lp.name).append("=\"");
      appendEscaped(out, lp.value);
      out.push_back('"');
    }
    if (!extra_name.empty()) {
      if (comma) out.push_back(',');
      out.append(extra_name).append("=\"");
      appendEscaped(out, extra_value);
      out.push_back('"');
    }
    out.push_back('}');
  }
  out.push_back(' ');
  out.append(value);
  if (m.timestamp_ms != 0) {
    char buf[24];
    out.push_back(' ');
    out.append(buf, std::to_chars(buf, buf + sizeof buf, m.timestamp_ms).ptr);
  }
  out.push_back('\n');
}

std::string valueText(double v) {
  std::string s;
  appendValue(s, v);
  return s;
}

std::string countText(std::uint64_t n) {
  char buf[24];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
}

}  // namespace

void appendTextFormat(const std::vector<MetricFamily>& families, std::string& out) {
  using prometheus::MetricType;
  for (const MetricFamily& fam : families) {
    if (!fam.help.empty()) out.append("# HELP ").append(fam.name).append(" ").append(fam.help).push_back('\n');
    const char* type = "untyped";
    switch (fam.type) {
      case MetricType::Counter: type = "counter"; break;
      case MetricType::Gauge: type = "gauge"; break;
      case MetricType::Summary: type = "summary"; break;
      case MetricType::Histogram: type = "histogram"; break;
      default: break;
    }
    out.append("# TYPE ").append(fam.name).append(" ").append(type).push_back('\n');
    for (const auto& m : fam.metric) {
      switch (fam.type) {
        case MetricType::Counter:
          appendSample(out, fam, m, "", "", "", valueText(m.counter.value));
          break;
        case MetricType::Gauge:
          appendSample(out, fam, m, "", "", "", valueText(m.gauge.value));
          break;
        case MetricType::Untyped:
          appendSample(out, fam, m, "", "", "", valueText(m.untyped.value));
          break;
        case MetricType::Summary:
          appendSample(out, fam, m, "_count", "", "", countText(m.summary.sample_count));
          appendSample(out, fam, m, "_sum", "", "", valueText(m.summary.sample_sum));
          for (const auto& q : m.summary.quantile) {
            appendSample(out, fam, m, "", "quantile", valueText(q.quantile), valueText(q.value));
          }
          break;
        case MetricType::Histogram: {
          appendSample(out, fam, m, "_count", "", "", countText(m.histogram.sample_count));
          appendSample(out, fam, m, "_sum", "", "", valueText(m.histogram.sample_sum));
          double last = -std::numeric_limits<double>::infinity();
          for (const auto& b : m.histogram.bucket) {
            appendSample(out, fam, m, "_bucket", "le", valueText(b.upper_bound),
                         countText(b.cumulative_count));
            last = b.upper_bound;
          }
          if (last != std::numeric_limits<double>::infinity()) {
            appendSample(out, fam, m, "_bucket", "le", "+Inf", countText(m.histogram.sample_count));
          }
          break;
        }
        default:
          break;
      }
    }
  }
}

namespace {

void serializeFamilies(std::vector<MetricFamily> families, std::unordered_set<std::string>& seen,
                       std::string& out) {
  std::vector<MetricFamily> all;
  for (auto& fam : families) {
    if (fam.metric.empty() || !seen.insert(fam.name).second) continue;
    all.push_back(std::move(fam));
  }
  if (all.empty()) return;
  appendTextFormat(all, out);
}

// The families of `sources`, collected in order (serializeFamilies drops the
// empty ones and the names already written).
std::vector<MetricFamily> collectAll(const std::vector<const prometheus::Collectable*>& sources) {
  std::vector<MetricFamily> all;
  for (const prometheus::Collectable* source : sources) {
    if (source == nullptr) continue;
    for (auto& fam : source->Collect()) all.push_back(std::move(fam));
  }
  return all;
}

}  // namespace

std::vector<MetricFamily> snapshotFamilies(const Snapshot& snap, std::string_view version) {
  FamilySink sink;
  addSnapshot(sink, snap, version);
  return sink.finish();
}

SnapshotCollectable::SnapshotCollectable(SnapshotSource source, std::string version)
    : source_(std::move(source)), version_(std::move(version)) {}

std::vector<MetricFamily> SnapshotCollectable::Collect() const {
  const std::shared_ptr<const Snapshot> snap = source_ ? source_() : nullptr;
  if (snap) return snapshotFamilies(*snap, version_);
  FamilySink sink;
  addBuildInfo(sink, version_);
  return sink.finish();
}

std::string renderMetrics(const std::vector<const prometheus::Collectable*>& sources) {
  std::unordered_set<std::string> seen;
  std::string out;
  serializeFamilies(collectAll(sources), seen, out);
  return out;
}

std::string renderSnapshotMetrics(const Snapshot* snapshot, std::string_view version,
                                  const std::vector<const prometheus::Collectable*>& others) {
  return renderSnapshotMetricsWith(snapshot, version, collectAll(others));
}

std::string renderSnapshotMetricsWith(const Snapshot* snapshot, std::string_view version,
                                      std::vector<MetricFamily> others) {
  std::unordered_set<std::string> seen;
  std::string out;
  TextSink sink;
  if (snapshot != nullptr) {
    addSnapshot(sink, *snapshot, version);
  } else {
    addBuildInfo(sink, version);
  }
  sink.finish(out, seen);
  serializeFamilies(std::move(others), seen, out);
  return out;
}

namespace {
// Above this, SnapshotMetricsCache renders every time (scrapes of that many checks
// come every few seconds, not thousands a second).
constexpr std::size_t kMaxCachedMetrics = 16 << 20;
}  // namespace

std::string MetricsText::joined() const {
  std::string out;
  out.reserve((snapshot_part ? snapshot_part->size() : 0) + others_part.size());
  if (snapshot_part) out = *snapshot_part;
  out += others_part;
  return out;
}

MetricsText SnapshotMetricsCache::finish(const Entry& e, std::vector<MetricFamily> others) {
  MetricsText t;
  t.snapshot_part = e.text;
  // Families the snapshot part wrote are not written again; `seen` holds only the
  // others' names (a copy of the snapshot's set per request would cost more).
  std::unordered_set<std::string> seen;
  std::vector<MetricFamily> kept;
  for (auto& fam : others) {
    if (e.names->count(fam.name) == 0) kept.push_back(std::move(fam));
  }
  serializeFamilies(std::move(kept), seen, t.others_part);
  return t;
}

std::optional<MetricsText> SnapshotMetricsCache::find(const std::shared_ptr<const Snapshot>& snapshot,
                                                      std::string_view version,
                                                      std::vector<MetricFamily>& others) const {
  std::optional<Entry> e;
  {
    std::lock_guard lock(mu_);
    // Same control block: the same snapshot (an expired one never matches a new one).
    if (entry_ && !entry_->snapshot.owner_before(snapshot) &&
        !snapshot.owner_before(entry_->snapshot) && entry_->version == version) {
      e = *entry_;
    }
  }
  if (!e) return std::nullopt;
  return finish(*e, std::move(others));
}

MetricsText SnapshotMetricsCache::render(const std::shared_ptr<const Snapshot>& snapshot,
                                         std::string_view version,
                                         std::vector<MetricFamily> others) {
  if (auto hit = find(snapshot, version, others)) return std::move(*hit);
  auto text = std::make_shared<std::string>();
  auto names = std::make_shared<std::unordered_set<std::string>>();
  TextSink sink;
  if (snapshot != nullptr) {
    addSnapshot(sink, *snapshot, version);
  } else {
    addBuildInfo(sink, version);
  }
  sink.finish(*text, *names);
  Entry e{snapshot, std::string(version), std::move(text), std::move(names)};
  // Thousands of checks: not worth keeping the text beyond this scrape (their scrapes
  // come every few seconds, not thousands a second).
  if (e.text->size() <= kMaxCachedMetrics) {
    std::lock_guard lock(mu_);
    entry_ = e;
  }
  return finish(e, std::move(others));
}

namespace {

// Where a family's samples come from (families are grouped so in the enum).
enum class Source { checks, services, clusters, self };
constexpr Source sourceOf(Fam f) {
  if (f <= kTargetCertExpiry) return Source::checks;
  if (f <= kServiceLastChangeTs) return Source::services;
  if (f <= kClusterReady) return Source::clusters;
  return Source::self;
}

// Keeps one family's samples, written straight to `out` with the family's HELP and
// TYPE lines before its first one (MetricsStream's sink).
class OneFamilySink {
 public:
  OneFamilySink(std::string& out, Fam fam, bool& started) : out_(out), fam_(fam), started_(started) {}
  static constexpr void reserve(Fam, std::size_t) {}
  bool wants(Fam i) const { return i == fam_; }
  // Families written from the check's last result (the others read only its status).
  bool wantsResult() const {
    return fam_ <= kCheckFailure || fam_ == kLastResultTs ||
           (fam_ >= kComponentStatus && fam_ <= kTargetCertExpiry);
  }
  void begin(std::initializer_list<Extra> base) {
    labelBlock(own_, base);
    base_ = own_;
  }
  void setBase(std::string_view base) { base_ = base; }
  std::string_view base() const { return base_; }
  void noBase() { base_ = {}; }
  void add(Fam i, double value) { add(i, {}, value); }
  void add(Fam i, std::initializer_list<Extra> extra, double value) {
    addSpan(i, extra.begin(), extra.end(), value);
  }
  void addSpan(Fam i, const Extra* first, const Extra* last, double value) {
    if (i != fam_) return;
    if (!started_) {
      appendHeader(out_, i);
      started_ = true;
    }
    appendLine(out_, i, base_, first, last, value);
  }

 private:
  std::string& out_;
  Fam fam_;
  bool& started_;
  std::string own_;
  std::string_view base_;
};

// Notes which families have a sample, writing nothing.
class PresenceSink {
 public:
  explicit PresenceSink(std::array<bool, kFamilyCount>& present) : present_(present) {}
  static constexpr void reserve(Fam, std::size_t) {}
  bool wants(Fam i) const { return !present_[i]; }
  static constexpr bool wantsResult() { return true; }
  static constexpr void begin(std::initializer_list<Extra>) {}
  static constexpr void noBase() {}
  void add(Fam i, double) { present_[i] = true; }
  void add(Fam i, std::initializer_list<Extra>, double) { present_[i] = true; }
  void addSpan(Fam i, const Extra*, const Extra*, double) { present_[i] = true; }

 private:
  std::array<bool, kFamilyCount>& present_;
};

}  // namespace

struct MetricsStream::Impl {
  std::shared_ptr<const Snapshot> snapshot;
  std::string version;
  std::vector<MetricFamily> others;
  std::vector<std::string> check_bases;    // each check's label block, made once
  std::vector<bool> check_http;            // each check is of an HTTP kind
  std::array<bool, kFamilyCount> present{};  // families with a sample (checks, services)
  std::vector<std::string> service_bases;  // each service's
  bool prepared = false;
  bool done = false;
  std::size_t fam = 0;  // the family being written
  std::size_t index = 0;  // the next check, service or cluster of it
  bool started = false;  // its HELP and TYPE lines are written
  std::unordered_set<std::string> seen;
  std::vector<std::string> scratch;
  std::vector<Extra> extras;

  void prepare() {
    prepared = true;
    if (!snapshot) return;
    const Snapshot& snap = *snapshot;
    const std::string location = label(snap.config ? std::string_view(snap.config->location) : "");
    const bool sharded = snap.config && snap.config->shard.count > 1;
    const std::string shard = sharded ? std::to_string(snap.config->shard.index) : std::string();
    bool unused = false;
    std::string sink_out;
    OneFamilySink sink(sink_out, kBuildInfo, unused);  // only its label blocks are used
    PresenceSink presence(present);
    check_bases.resize(snap.checks.size());
    check_http.resize(snap.checks.size());
    for (std::size_t i = 0; i < snap.checks.size(); ++i) {
      const auto& c = snap.checks[i];
      if (!c || !c->check) continue;
      beginCheck(sink, *c, location, shard);
      check_bases[i] = sink.base();
      check_http[i] = isHttpKind(c->check->spec);
      addCheckSamples(presence, *c, check_http[i], scratch, extras);
    }
    service_bases.resize(snap.services.size());
    for (std::size_t i = 0; i < snap.services.size(); ++i) {
      if (!snap.services[i].service) continue;
      beginService(sink, snap.services[i]);
      service_bases[i] = sink.base();
      addServiceSamples(presence, snap.services[i]);
    }
  }

  // Appends to `out` until it holds `piece` bytes or everything is written.
  void fill(std::string& out, std::size_t piece) {
    if (!prepared) prepare();
    while (fam < kFamilyCount) {
      const Fam f = static_cast<Fam>(fam);
      OneFamilySink sink(out, f, started);
      if (snapshot) {
        const Snapshot& snap = *snapshot;
        switch (sourceOf(f)) {
          case Source::checks:
            // A pass over every check per family: skip those nobody has.
            for (; present[f] && index < snap.checks.size(); ++index) {
              const auto& c = snap.checks[index];
              if (!c || !c->check) continue;
              sink.setBase(check_bases[index]);
              addCheckSamples(sink, *c, check_http[index], scratch, extras);
              if (out.size() >= piece) {
                ++index;
                return;
              }
            }
            break;
          case Source::services:
            for (; present[f] && index < snap.services.size(); ++index) {
              const ServiceStatus& s = snap.services[index];
              if (!s.service) continue;
              sink.setBase(service_bases[index]);
              addServiceSamples(sink, s);
              if (out.size() >= piece) {
                ++index;
                return;
              }
            }
            break;
          case Source::clusters:
            for (const ClusterStatus& c : snap.clusters) addCluster(sink, c);
            break;
          case Source::self:
            addSelf(sink, snap, version);
            break;
        }
      } else if (f == kBuildInfo) {
        addBuildInfo(sink, version);
      }
      if (started) seen.insert(kFamilies[f].name);
      ++fam;
      index = 0;
      started = false;
      if (out.size() >= piece) return;
    }
    if (!done) {
      done = true;
      serializeFamilies(std::move(others), seen, out);
      others.clear();
      // What the text needed goes back now, not when the stream is destroyed.
      std::vector<std::string>().swap(check_bases);
      std::vector<std::string>().swap(service_bases);
      std::vector<bool>().swap(check_http);
    }
  }
};

MetricsStream::MetricsStream(std::shared_ptr<const Snapshot> snapshot, std::string version,
                             std::vector<MetricFamily> others)
    : impl_(std::make_unique<Impl>()) {
  impl_->snapshot = std::move(snapshot);
  impl_->version = std::move(version);
  impl_->others = std::move(others);
}

MetricsStream::~MetricsStream() = default;
MetricsStream::MetricsStream(MetricsStream&&) noexcept = default;
MetricsStream& MetricsStream::operator=(MetricsStream&&) noexcept = default;

std::string MetricsStream::next(std::size_t piece_bytes) {
  std::string out;
  if (impl_->done) return out;
  out.reserve(piece_bytes + (64 << 10));
  impl_->fill(out, std::max<std::size_t>(piece_bytes, 1));
  return out;
}

bool MetricsStream::finished() const { return impl_->done; }

}  // namespace vigie
