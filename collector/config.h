#pragma once
/// \file
/// The validated configuration model (../shared/CONFIG.md), and the loader that
/// builds it from YAML or JSON. Immutable once built: the engine holds it as
/// shared_ptr<const Config> and a reload swaps the pointer whole.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "probes/conditions.h"
#include "probes/health_page.h"

namespace vigie {

using Duration = std::chrono::milliseconds;

/// A value shared, copy on write, by every holder that keeps it as it is: holders
/// copied from one another (or made with the default) hold one object between
/// them instead of one each, 16 bytes inline. Reads as the value; assigning a T or
/// edit() gives the holder its own. Made and edited on one thread (the config
/// loader, a test); read-only afterwards, from any thread.
template <class T>
class CopyOnWrite {
 public:
  CopyOnWrite() : p_(defaultValue()) {}  // T{}, shared by every default holder
  CopyOnWrite(const T& t) : p_(std::make_shared<T>(t)) {}  // NOLINT: made from a T
  CopyOnWrite& operator=(const T& t) {
    p_ = std::make_shared<T>(t);
    return *this;
  }
  const T& operator*() const { return *p_; }
  const T* operator->() const { return p_.get(); }
  operator const T&() const { return *p_; }  // NOLINT: reads as one
  /// The value of this holder's own to change (copied first when shared).
  T& edit() {
    if (p_.use_count() > 1 || p_ == defaultValue()) p_ = std::make_shared<T>(*p_);
    // Every value but the default is made non-const, and is now this holder's alone.
    return const_cast<T&>(*p_);
  }
  /// True when the holder shares the default object. For tests.
  bool sharedDefault() const { return p_ == defaultValue(); }

 private:
  static const std::shared_ptr<const T>& defaultValue() {
    static const auto kDefault = std::make_shared<const T>();
    return kDefault;
  }
  std::shared_ptr<const T> p_;
};

/// Where a value came from, for messages: "vigie.yaml:41". The file name is shared
/// by every position read from one file.
struct SourcePos {
  CopyOnWrite<std::string> file;
  int line = 0;  // 1-based; 0 when unknown
};

struct TlsSpec {
  bool verify = true;
  std::string ca_file;        // empty: system store
  std::string cert_file;      // client certificate (optional)
  std::string key_file;
  std::string server_name;    // SNI override (optional)
};

/// HttpSpec::tls, TcpSpec::tls_config: a TlsSpec shared by every check that keeps
/// the default (no `tls:` block): 50,000 plain checks hold one copy of its four
/// strings instead of one each (136 bytes inline). The default: verify, system
/// store, no client certificate, no SNI.
using SharedTlsSpec = CopyOnWrite<TlsSpec>;

/// HttpSpec::custom: a CustomHealthMapping shared by every check that keeps the
/// default (all but those with `health_format: custom`).
using SharedCustomMapping = CopyOnWrite<CustomHealthMapping>;

struct HttpSpec {
  std::string url;
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers;  // in file order
  std::string body;                            // request body (optional)
  std::vector<int> expect_status;              // empty: any 2xx
  HealthFormat health_format = HealthFormat::auto_detect;
  int max_redirects = 10;
  SharedCustomMapping custom;
  std::vector<ConditionSpec> conditions;
  std::uint64_t max_body = 1024 * 1024;        // bytes; the transfer is cut past it
  SharedTlsSpec tls;
  std::optional<int> cert_min_days;            // fail when the certificate expires sooner
  std::string ip_version;                      // "", "ip4", "ip6"
  bool follow_redirects = false;
  // From blackbox modules (/probe); unset by vigie's own `http:` checks.
  bool fail_if_ssl = false;                    // fail when the final response came over TLS
  bool fail_if_not_ssl = false;                // fail when it did not
  std::vector<std::string> valid_http_versions;  // blackbox: "HTTP/1.1", "HTTP/2.0"; empty: any
};

/// One step of a blackbox tcp module's query_response, kept as written.
struct TcpQueryStep {
  std::string expect;  // regex (validated at load)
  std::string send;
  bool starttls = false;
};

struct TcpSpec {
  std::string address;  // host:port
  std::string send;     // optional
  std::string expect;   // optional regex on what is read back
  bool tls = false;
  SharedTlsSpec tls_config;
  std::string ip_version;                     // "", "ip4", "ip6" (blackbox preferred_ip_protocol)
  std::vector<TcpQueryStep> query_response;   // blackbox modules only; empty otherwise
};

struct PostgresSpec {
  std::string dsn;                   // with ${ENV} already substituted: a secret
  std::string query = "SELECT 1";
  std::optional<std::string> expect; // optional expected first value
};

struct DiskSpec {
  std::string path;
  // min_free: either a ratio (0.05 for 5%) or bytes; unset: no space check.
  std::optional<double> min_free_ratio;
  std::optional<std::uint64_t> min_free_bytes;
  bool write = true;
};

struct IngressSpec {
  std::string url;
  std::vector<std::string> addresses;  // front-end addresses to pin (curl --resolve)
  enum class Mode { all, any } mode = Mode::all;
  int cert_min_days = 14;
  bool expect_https_redirect = false;
  std::vector<int> expect_status;      // empty: any 2xx
  TlsSpec tls;
};

struct HeartbeatSpec {
  Duration period{std::chrono::hours(1)};
  Duration grace{std::chrono::minutes(5)};
  std::string token;  // secret
};

/// One kind per alternative; the kind's name is its key in the YAML
/// (`http:`, `tcp:`, ...). A new kind adds an alternative here, a parser in
/// config.cc's kind table and a factory in probes/registry.cc.
using ProbeSpec = std::variant<HttpSpec, TcpSpec, PostgresSpec, DiskSpec, IngressSpec, HeartbeatSpec>;

/// "http", "tcp", "postgres", "disk", "ingress", "heartbeat".
const char* probeKindName(const ProbeSpec& spec);

struct CheckConfig {
  std::string name;
  std::string key;  // "service/check"
  Duration interval{30000};
  Duration timeout{5000};
  int failure_threshold = 3;
  int success_threshold = 1;
  bool critical = true;
  ProbeSpec spec;
  SourcePos pos;
};

struct ServiceConfig {
  std::string name;
  std::string group;  // may be empty
  std::string description;
  std::map<std::string, std::string> labels;
  std::vector<std::string> depends_on;
  std::vector<CheckConfig> checks;
  SourcePos pos;
};

struct GroupConfig {
  std::string name;
  std::string description;
};

struct ClusterConfig {
  std::string name;
  std::vector<std::string> services;
  std::string agent_listen;  // "host:port", empty: no agent
};

struct MaintenanceWindow {
  std::vector<std::string> services;
  std::chrono::system_clock::time_point start;
  Duration duration{0};
  std::string reason;
};

/// blackbox_exporter module, kept as parsed for /probe (same schema as blackbox.yml).
struct ModuleConfig {
  std::string name;
  std::string prober;  // http | tcp | ...
  Duration timeout{0};  // 0: unset, the scrape's timeout governs (blackbox's default)
  ProbeSpec spec;      // the module translated to vigie's own spec (url/address filled per target)
};

struct HistoryConfig {
  std::string store = "memory";  // memory | postgres
  std::string dsn;               // secret
  Duration retention{std::chrono::hours(24 * 30)};
};

/// Optional bearer tokens for vigie's own HTTP server (README "Security"). Empty:
/// not set. Compared in constant time; never logged or served.
struct AuthConfig {
  /// POST /-/reload needs it (without it, reloading over HTTP is off); it also opens
  /// everything `read_token` protects.
  std::string admin_token;
  /// When set, the API, the page and the badges need it (or admin_token).
  std::string read_token;
  /// /metrics needs read_token (or admin_token) too; needs read_token set.
  bool protect_metrics = false;
};

struct Defaults {
  Duration interval{30000};
  Duration timeout{5000};
  int failure_threshold = 3;
  int success_threshold = 1;
};

/// This replica's share of the checks when several replicas split one config
/// (--shard N/M, collector/shard.h): it runs the checks whose key hashes to
/// `index` modulo `count`. Not read from the file; set by filterForShard().
struct ShardSpec {
  unsigned index = 0;
  unsigned count = 1;  // 1: not sharded
};

struct Config {
  std::string listen = "0.0.0.0:9877";
  std::string location;
  Defaults defaults;
  int max_in_flight = 4096;
  std::vector<GroupConfig> groups;
  std::vector<ServiceConfig> services;
  std::vector<ClusterConfig> clusters;
  std::vector<MaintenanceWindow> maintenance;
  std::map<std::string, ModuleConfig> modules;
  HistoryConfig history;
  AuthConfig auth;
  std::string source_file;
  /// Which share of the checks this process runs (0/1 unless sharded).
  ShardSpec shard;

  /// The service that holds a check with this key, or nullptr.
  const ServiceConfig* findService(const std::string& name) const;
};

/// One problem found in a file: rendered "vigie.yaml:41: services[0].checks[0].http.expect_status: 99 is not an HTTP status".
struct ConfigError {
  std::string file;
  int line = 0;
  std::string path;     // "services[0].checks[0].http.expect_status"; empty for file-level errors
  std::string message;  // "99 is not an HTTP status"
  std::string str() const;
};

/// Thrown by loadConfig() with every error found (not just the first).
class ConfigException : public std::exception {
 public:
  explicit ConfigException(std::vector<ConfigError> errors);
  const char* what() const noexcept override { return what_.c_str(); }
  const std::vector<ConfigError>& errors() const { return errors_; }

 private:
  std::vector<ConfigError> errors_;
  std::string what_;
};

/// `dsn` with its password replaced by `***`, for logs and messages: the URI form
/// (postgresql://user:pass@host/db, and a `password=` query parameter) and the
/// key=value form (host=h password=secret, quoted or not). Also fit for any URL
/// with user:password@. Pure; any thread.
std::string redactDsn(std::string_view dsn);

/// Reads, substitutes ${ENV}, parses (YAML; JSON is accepted by the same reader),
/// validates. Throws ConfigException listing every error. `env` defaults to the
/// process environment; tests pass their own.
std::shared_ptr<const Config> loadConfig(const std::string& path);
std::shared_ptr<const Config> parseConfig(const std::string& text, const std::string& file_name,
                                          const std::map<std::string, std::string>* env = nullptr);

}  // namespace vigie
