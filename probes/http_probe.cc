#include "probes/http_probe.h"
#include "probes/base64.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "collector/curl_driver.h"
#include "probes/conditions.h"
#include "probes/health_page.h"
#include "probes/http_native.h"
#include "probes/tls_facts.h"

namespace vigie {

struct HttpProbe::Attempt {
  std::uint64_t max_body = 0;
  bool keep_body = true;       // false: count the bytes, keep none
  std::string body;            // at most max_body bytes
  std::uint64_t received = 0;  // bytes handed to the write callback
  bool too_large = false;
  // wire_facts only: filled by the header callback for the latest response.
  CURL* easy = nullptr;
  bool wire = false;
  bool verify = true;
  bool auto_decoding = false;  // we asked for gzip, so curl decodes what comes
  bool decoded = false;        // ... and the latest response was encoded
  std::optional<TlsFacts> tls;
  SystemClock::time_point started{};
  char error[CURL_ERROR_SIZE] = {};
};

namespace {

constexpr std::size_t kMaxDetail = 300;

// One-line, valid UTF-8, bounded: details go to logs, labels and HTML cells.
std::string cleanText(std::string_view in, std::size_t max = kMaxDetail) {
  std::string out;
  out.reserve(std::min(in.size(), max));
  std::size_t i = 0;
  while (i < in.size() && out.size() < max) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      if (c != 0) out.push_back(c < 0x20 || c == 0x7F ? ' ' : static_cast<char>(c));
      ++i;
      continue;
    }
    std::size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    bool valid = len != 0 && i + len <= in.size() && c >= 0xC2 && c <= 0xF4;
    for (std::size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
    }
    if (!valid || out.size() + len > max) {
      out.push_back('?');
      ++i;
      continue;
    }
    out.append(in.substr(i, len));
    i += len;
  }
  if (i < in.size()) out += "...";
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::size_t HttpProbe::onWrite(char* data, std::size_t size, std::size_t nmemb, void* userp) {
  auto* a = static_cast<Attempt*>(userp);
  const std::size_t n = size * nmemb;
  if (a->received + n > a->max_body) {
    // Returning less than n makes curl stop with CURLE_WRITE_ERROR: the body is never
    // read past max_body.
    a->received += n;
    a->too_large = true;
    return 0;
  }
  a->received += n;
  if (a->keep_body) a->body.append(data, n);
  return n;
}

std::size_t HttpProbe::onHeader(char* data, std::size_t size, std::size_t nmemb, void* userp) {
  auto* a = static_cast<Attempt*>(userp);
  const std::size_t n = size * nmemb;
  const std::string_view line(data, n);
  if (line.substr(0, 5) == "HTTP/") {
    // A new response (after a redirect, or a 100 Continue): its connection is live
    // now, so its TLS state can be read; the previous response's facts no longer count.
    a->decoded = false;
    a->tls.reset();
    const curl_tlssessioninfo* info = nullptr;
    if (curl_easy_getinfo(a->easy, CURLINFO_TLS_SSL_PTR, &info) == CURLE_OK && info != nullptr &&
        info->backend == CURLSSLBACKEND_OPENSSL && info->internals != nullptr) {
      a->tls = tlsFactsOf(static_cast<const SSL*>(info->internals), a->verify);
    }
  } else if (a->auto_decoding && line.size() > 17) {
    static constexpr std::string_view kEncoding = "content-encoding:";
    bool match = true;
    for (std::size_t i = 0; i < kEncoding.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(line[i])) == kEncoding[i];
    }
    if (match) a->decoded = true;
  }
  return n;
}

namespace {

double seconds(CURL* easy, CURLINFO info) {
  curl_off_t us = 0;
  if (curl_easy_getinfo(easy, info, &us) != CURLE_OK || us < 0) return 0;
  return static_cast<double>(us) / 1e6;
}

// "Mar 10 12:00:00 2027 GMT" as printed by OpenSSL's ASN1_TIME_print.
std::optional<double> parseCertDate(const char* text) {
  char mon[4] = {};
  int day = 0, hour = 0, min = 0, sec = 0, year = 0;
  if (std::sscanf(text, "%3s %d %d:%d:%d %d", mon, &day, &hour, &min, &sec, &year) != 6) {
    return std::nullopt;
  }
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int m = -1;
  for (int k = 0; k < 12; ++k) {
    if (std::strcmp(mon, kMonths[k]) == 0) m = k;
  }
  if (m < 0) return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = m;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return static_cast<double>(timegm(&tm));
}

// Earliest "Expire date" across the chain curl collected (CURLOPT_CERTINFO).
std::optional<double> earliestExpiry(CURL* easy) {
  curl_certinfo* ci = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_CERTINFO, &ci) != CURLE_OK || ci == nullptr) {
    return std::nullopt;
  }
  std::optional<double> earliest;
  static constexpr std::string_view kKey = "Expire date:";
  for (int i = 0; i < ci->num_of_certs; ++i) {
    for (curl_slist* s = ci->certinfo[i]; s != nullptr; s = s->next) {
      if (std::strncmp(s->data, kKey.data(), kKey.size()) != 0) continue;
      if (auto t = parseCertDate(s->data + kKey.size())) {
        if (!earliest || *t < *earliest) earliest = t;
      }
    }
  }
  return earliest;
}

std::string expectedText(const std::vector<int>& expect) {
  if (expect.empty()) return "2xx";
  std::string s;
  for (std::size_t i = 0; i < expect.size(); ++i) {
    if (i > 0) s += i + 1 == expect.size() ? " or " : ", ";
    s += std::to_string(expect[i]);
  }
  return s;
}

bool statusExpected(int status, const std::vector<int>& expect) {
  if (expect.empty()) return status >= 200 && status <= 299;
  return std::find(expect.begin(), expect.end(), status) != expect.end();
}

std::string_view mediaType(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  while (!ct.empty() && ct.front() == ' ') ct.remove_prefix(1);
  return ct;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool istartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool declaresHealthFormat(std::string_view media) {
  return iequals(media, "application/health+json") ||
         istartsWith(media, "application/vnd.spring-boot.actuator");
}

bool looksLikeJson(std::string_view body, std::string_view media) {
  const auto p = body.find_first_not_of(" \t\r\n");
  if (p != std::string_view::npos && (body[p] == '{' || body[p] == '[')) return true;
  for (std::size_t i = 0; i + 4 <= media.size(); ++i) {
    if (iequals(media.substr(i, 4), "json")) return true;
  }
  return false;
}

// Where a transfer stood when it stopped, from curl's cumulative timings.
std::string phaseOf(CURL* easy, bool https, std::uint64_t received) {
  if (seconds(easy, CURLINFO_NAMELOOKUP_TIME_T) == 0) return "while resolving the name";
  long local_port = 0;
  curl_easy_getinfo(easy, CURLINFO_LOCAL_PORT, &local_port);
  // With TLS, curl stamps the connect time only once the handshake is done too.
  if (seconds(easy, CURLINFO_CONNECT_TIME_T) == 0 && (!https || local_port == 0)) {
    return "while connecting";
  }
  if (https && seconds(easy, CURLINFO_APPCONNECT_TIME_T) == 0) return "during the TLS handshake";
  if (seconds(easy, CURLINFO_STARTTRANSFER_TIME_T) == 0) return "waiting for the response";
  return fmt::format("while reading the body ({} bytes received)", received);
}

// "HTTP/1.1" from Result::http_version, as Go's Response.Proto.
std::string protoName(int version) {
  return fmt::format("HTTP/{}.{}", version / 10, version % 10);
}

std::string joinFailing(const std::vector<Component>& cs, Status which) {
  std::string s;
  for (const auto& c : cs) {
    if (c.status != which) continue;
    if (!s.empty()) s += ", ";
    s += c.name;
  }
  return s;
}

bool credentialHeader(std::string_view name) {
  std::string n(name);
  for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* word :
       {"auth", "token", "key", "secret", "pass", "session", "cookie", "signature", "credential"}) {
    if (n.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> httpSecrets(const HttpSpec& spec) {
  std::vector<std::string> out;
  if (auto parsed = boost::urls::parse_uri(spec.url); parsed && parsed->has_userinfo()) {
    const std::string user = parsed->user();
    if (parsed->has_password()) {
      const std::string password = parsed->password();
      out.push_back(password);
      out.emplace_back(parsed->encoded_password());
      out.push_back(base64Encode(user + ":" + password));
    } else {
      out.push_back(user);  // a token given as the user name
      out.push_back(base64Encode(user + ":"));
    }
  }
  for (const auto& [name, value] : spec.headers) {
    if (!credentialHeader(name)) continue;
    // "Bearer <token>" shows as "Bearer ***": the scheme says what was sent.
    const auto space = value.find(' ');
    std::string rest = space == std::string::npos ? value : value.substr(space + 1);
    while (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
    out.push_back(rest.size() >= 6 ? rest : value);
  }
  return out;
}

HttpProbe::HttpProbe(ProbeContext& ctx, HttpSpec spec)
    : HttpProbe(ctx, std::make_shared<const HttpSpec>(std::move(spec)), HttpProbeOptions{}) {}

HttpProbe::HttpProbe(ProbeContext& ctx, HttpSpec spec, HttpProbeOptions options)
    : HttpProbe(ctx, std::make_shared<const HttpSpec>(std::move(spec)), std::move(options)) {}

HttpProbe::HttpProbe(ProbeContext& ctx, std::shared_ptr<const HttpSpec> spec,
                     HttpProbeOptions options)
    : ctx_(ctx),
      spec_(std::move(spec)),
      wire_facts_(options.wire_facts),
      report_redirect_url_(options.report_redirect_url) {
  secrets_ = httpSecrets(*spec_);

  const bool plain_options = options.connect_address.empty() && !options.report_redirect_url;
  auto plan = wire_facts_ ? planNativeHttpWire(*spec_, plain_options)
                                  : planNativeHttp(*spec_, plain_options);
  if (plan) {
    native_ = std::make_unique<NativeHttpClient>(ctx_.io, std::move(*plan));
  }
  const bool sni = !spec_->tls->server_name.empty();
  const bool pinned = !options.connect_address.empty();
  if (sni || pinned) {
    // SNI override: ask for the server name, connect to the configured host.
    // Pinned address: ask for the URL's host, connect to the address.
    auto parsed = boost::urls::parse_uri(spec_->url);
    if (parsed) {
      boost::urls::url u = *parsed;
      const std::string host(u.encoded_host_address());
      std::string port =
          u.has_port() ? std::string(u.port()) : (u.scheme() == "https" ? "443" : "80");
      auto bracket = [](const std::string& h) {
        return h.find(':') != std::string::npos && h.front() != '[' ? "[" + h + "]" : h;
      };
      std::string name = host;
      if (sni && host != spec_->tls->server_name) {
        u.set_host(spec_->tls->server_name);
        url_ = std::make_unique<const std::string>(u.buffer());
        name = spec_->tls->server_name;
      }
      if (name != host || pinned) {
        const std::string target = bracket(pinned ? options.connect_address : host);
        const std::string entry = bracket(name) + ":" + port + ":" + target + ":" + port;
        connect_to_ = curl_slist_append(connect_to_, entry.c_str());
      }
    }
  }
}

HttpProbe::~HttpProbe() {
  cancel();
  curl_slist_free_all(headers_);
  curl_slist_free_all(connect_to_);
}

void HttpProbe::cancel() {
  if (!running_) return;
  if (native_) native_->cancel();
  if (easy_ != nullptr) {  // libcurl's attempt, or the native client's handoff to it
    ctx_.curl.remove(easy_);
    ctx_.curl.release(easy_);
    easy_ = nullptr;
  }
  running_ = false;
  done_ = nullptr;
}

void HttpProbe::configure(SteadyClock::time_point deadline) {
  CURL* e = easy_;  // fresh from the driver's pool: every option at its default
  if (headers_ == nullptr) {
    // At the first libcurl attempt: a probe on the native client (a /probe request
    // is one probe, one attempt) never needs the list.
    bool has_agent = false;
    for (const auto& [name, value] : spec_->headers) {
      if (iequals(name, "User-Agent")) has_agent = true;
      // "Name;" is curl's way to send a header with an empty value.
      const std::string line = value.empty() ? name + ";" : name + ": " + value;
      headers_ = curl_slist_append(headers_, line.c_str());
    }
    if (!has_agent) headers_ = curl_slist_append(headers_, "User-Agent: vigie");
  }
  curl_easy_setopt(e, CURLOPT_URL, url_ ? url_->c_str() : spec_->url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, attempt_->error);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
  if (connect_to_) curl_easy_setopt(e, CURLOPT_CONNECT_TO, connect_to_);

  const std::string& m = spec_->method;
  if (m == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (m != "GET" || !spec_->body.empty()) {
    if (m != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m.c_str());
    if (!spec_->body.empty() || m == "POST") {
      // spec_ outlives the attempt: curl may point at the body without copying it.
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(spec_->body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, spec_->body.c_str());
    }
  }

  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, spec_->follow_redirects ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(spec_->max_redirects));

  // Every attempt measures connect and TLS, and sees the certificate chain: a resumed
  // TLS session would carry no peer certificates.
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, spec_->tls->verify ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, spec_->tls->verify ? 2L : 0L);
  if (!spec_->tls->ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, spec_->tls->ca_file.c_str());
  if (!spec_->tls->cert_file.empty()) {
    curl_easy_setopt(e, CURLOPT_SSLCERT, spec_->tls->cert_file.c_str());
  }
  if (!spec_->tls->key_file.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, spec_->tls->key_file.c_str());

  if (spec_->ip_version == "ip4") curl_easy_setopt(e, CURLOPT_IPRESOLVE, CURL_IPRESOLVE_V4);
  if (spec_->ip_version == "ip6") curl_easy_setopt(e, CURLOPT_IPRESOLVE, CURL_IPRESOLVE_V6);

  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  const long timeout_ms = std::max<long>(1, static_cast<long>(left.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);

  // An unlimited max_body (a blackbox module without body_size_limit) is no limit for curl.
  if (spec_->max_body < static_cast<std::uint64_t>(std::numeric_limits<curl_off_t>::max())) {
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(spec_->max_body));
  }
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &onWrite);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, attempt_.get());
  if (wire_facts_) {
    attempt_->easy = e;
    attempt_->wire = true;
    attempt_->verify = spec_->tls->verify;
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &onHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, attempt_.get());
    curl_easy_setopt(e, CURLOPT_FILETIME, 1L);
    // Go's client asks for gzip and decodes it unless the request names its own
    // Accept-Encoding; blackbox's lengths depend on it, so do the same.
    const bool own = std::any_of(spec_->headers.begin(), spec_->headers.end(),
                                 [](const auto& h) { return iequals(h.first, "Accept-Encoding"); });
    if (!own) {
      curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
      attempt_->auto_decoding = true;
    }
  }
}

void HttpProbe::start(SteadyClock::time_point deadline, Done done) {
  cancel();
  attempt_ = std::make_unique<Attempt>();
  attempt_->max_body = spec_->max_body;
  attempt_->keep_body = spec_->health_format != HealthFormat::none || !spec_->conditions.empty();
  attempt_->started = SystemClock::now();
  done_ = std::move(done);
  running_ = true;
  deadline_ = deadline;
  if (native_) {
    native_->start(deadline, spec_->max_body, attempt_->keep_body ? &attempt_->body : nullptr,
                   [this] { finishNative(); });
    return;
  }
  startCurl();
}

void HttpProbe::startCurl() {
  // One handle per attempt from the driver's pool: an idle check holds none.
  easy_ = ctx_.curl.acquire();
  if (easy_ == nullptr) {
    // Only when libcurl could not allocate: still answer once, on the loop.
    boost::asio::post(ctx_.io, [this] { finish(CURLE_FAILED_INIT); });
    return;
  }
  configure(deadline_);
  ctx_.curl.add(easy_, [this](CURLcode rc, CURL*) { finish(rc); });
}

void HttpProbe::finish(CURLcode rc) {
  if (!running_) return;
  Result r = buildResult(rc);
  if (wire_facts_) addWireFacts(r);
  scrubSecrets(r, secrets_);
  running_ = false;
  ctx_.curl.release(easy_);  // everything needed was read into r
  easy_ = nullptr;
  Done done = std::move(done_);
  done_ = nullptr;
  attempt_.reset();  // an idle check keeps no attempt (its body, its curl error buffer)
  if (done) done(std::move(r));  // may destroy this probe: nothing after
}

void HttpProbe::finishNative() {
  if (!running_) return;
  const NativeHttpOutcome& o = native_->outcome();
  if (o.handoff) {
    // A response libcurl ends its own way (wire facts): the request again, through it.
    ++handoffs_;
    attempt_->body.clear();
    attempt_->received = 0;
    startCurl();
    return;
  }
  Result r;
  r.started = attempt_->started;
  r.duration = o.duration;
  r.phases = o.phases;
  r.http_status = o.status;
  r.http_version = o.version;
  r.body_bytes = o.received;
  if (o.reason != Reason::none) {
    r.status = Status::fail;
    r.reason = o.reason;
    r.detail = cleanText(o.detail);
    r.out_of_descriptors = o.out_of_descriptors;
  } else {
    judge(r, attempt_->body, o.content_type, false);
  }
  if (wire_facts_) nativeWireFacts(r);
  scrubSecrets(r, secrets_);
  running_ = false;
  Done done = std::move(done_);
  done_ = nullptr;
  attempt_.reset();  // an idle check keeps no attempt (its body, its curl error buffer)
  if (done) done(std::move(r));  // may destroy this probe: nothing after
}

void HttpProbe::addWireFacts(Result& r) {
  auto w = std::make_shared<WireFacts>();
  const Attempt& a = *attempt_;
  CURL* e = easy_;
  const char* ip = nullptr;
  if (curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != nullptr) w->ip = ip;
  if (r.http_status > 0) {
    curl_off_t length = -1;
    curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    // Go reports -1 for a body it decoded: the header gave the encoded size.
    w->content_length = a.decoded ? -1 : static_cast<std::int64_t>(length);
    curl_off_t filetime = -1;
    if (curl_easy_getinfo(e, CURLINFO_FILETIME_T, &filetime) == CURLE_OK && filetime >= 0) {
      w->last_modified = static_cast<double>(filetime);
    }
    w->tls = a.tls;
  } else {
    w->content_length = 0;  // no response: Go's empty http.Response
  }
  regexFailed(r, *w);
  r.wire = std::move(w);
}

// The facts addWireFacts reads from libcurl, from the native client's outcome: the
// same values for the responses it keeps (the others are handed off to libcurl).
void HttpProbe::nativeWireFacts(Result& r) {
  auto w = std::make_shared<WireFacts>();
  const NativeHttpOutcome& o = native_->outcome();
  w->ip = native_->plan().ip();
  if (r.http_status > 0) {
    w->content_length = o.content_length;
    if (!o.last_modified.empty()) {
      // libcurl's own parser (CURLOPT_FILETIME reads the header with it).
      const std::time_t t = curl_getdate(o.last_modified.c_str(), nullptr);
      if (t >= 0) w->last_modified = static_cast<double>(t);
    }
  } else {
    w->content_length = 0;
  }
  regexFailed(r, *w);
  r.wire = std::move(w);
}

void HttpProbe::regexFailed(const Result& r, WireFacts& w) const {
  if (!statusExpected(r.http_status, spec_->expect_status)) return;
  for (std::size_t i = 0; i < r.conditions.size() && i < spec_->conditions.size(); ++i) {
    if (!r.conditions[i].ok && spec_->conditions[i].kind == ConditionSpec::Kind::body_matches) {
      w.regex_failed = true;
    }
  }
}

Result HttpProbe::buildResult(CURLcode rc) {
  Attempt& a = *attempt_;
  CURL* e = easy_;
  Result r;
  r.started = a.started;
  if (e == nullptr) return Result::failure(Reason::internal, "libcurl could not allocate a handle");

  r.duration = seconds(e, CURLINFO_TOTAL_TIME_T);
  const double dns = seconds(e, CURLINFO_NAMELOOKUP_TIME_T);
  const double conn = seconds(e, CURLINFO_CONNECT_TIME_T);
  const double app = seconds(e, CURLINFO_APPCONNECT_TIME_T);
  const double first = seconds(e, CURLINFO_STARTTRANSFER_TIME_T);
  r.phases.resolve = dns;
  r.phases.connect = conn > dns ? conn - dns : 0;
  r.phases.tls = app > conn ? app - conn : 0;
  if (first > 0) {
    r.phases.processing = std::max(0.0, first - std::max(app, conn));
    r.phases.transfer = std::max(0.0, r.duration - first);
  }

  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  r.http_status = static_cast<int>(status);
  long version = 0;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
  switch (version) {
    case CURL_HTTP_VERSION_1_0:
      r.http_version = 10;
      break;
    case CURL_HTTP_VERSION_1_1:
      r.http_version = 11;
      break;
    case CURL_HTTP_VERSION_2_0:
      r.http_version = 20;
      break;
    case CURL_HTTP_VERSION_3:
      r.http_version = 30;
      break;
    default:
      r.http_version = 0;
  }
  long redirects = 0;
  curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects);
  r.redirects = static_cast<int>(redirects);
  r.body_bytes = a.received;
  r.cert_expiry = earliestExpiry(e);

  const char* scheme = nullptr;
  curl_easy_getinfo(e, CURLINFO_SCHEME, &scheme);
  const bool https = scheme != nullptr && iequals(scheme, "https");
  const std::string curl_text = cleanText(a.error[0] != '\0' ? a.error : curl_easy_strerror(rc));

  auto fail = [&r](Reason reason, std::string detail) {
    r.status = Status::fail;
    r.reason = reason;
    r.detail = cleanText(detail);
    return r;
  };

  if (rc != CURLE_OK && (ctx_.curl.outOfDescriptors(e) ||
                         (rc == CURLE_COULDNT_RESOLVE_HOST &&
                          curl_text.find("thread failed to start") != std::string::npos))) {
    // No socket (or no resolver thread and its socketpair) for this attempt.
    fail(Reason::internal, "vigie is out of file descriptors (ulimit -n): the attempt could "
                           "not open a socket");
    r.out_of_descriptors = true;
    return r;
  }
  if (rc != CURLE_OK) {
    switch (rc) {
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        return fail(Reason::dns, curl_text);
      case CURLE_COULDNT_CONNECT:
      case CURLE_SEND_ERROR:
        return fail(Reason::connect, curl_text);
      case CURLE_OPERATION_TIMEDOUT:
        return fail(Reason::timeout, fmt::format("timed out {} after {:.3f} s",
                                                 phaseOf(e, https, a.received), r.duration));
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_CRL_BADFILE:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_ENGINE_NOTFOUND:
      case CURLE_SSL_ENGINE_SETFAILED:
      case CURLE_SSL_ENGINE_INITFAILED:
      case CURLE_SSL_SHUTDOWN_FAILED:
      case CURLE_USE_SSL_FAILED:
        return fail(Reason::tls, curl_text);
      case CURLE_TOO_MANY_REDIRECTS:
        return fail(Reason::http_protocol, fmt::format("too many redirects ({} followed, max {})",
                                                       r.redirects, spec_->max_redirects));
      case CURLE_WRITE_ERROR:
      case CURLE_FILESIZE_EXCEEDED:
        if (a.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
          return fail(Reason::body_too_large,
                      fmt::format("body larger than max_body ({} bytes)", spec_->max_body));
        }
        return fail(Reason::internal, curl_text);
      case CURLE_RECV_ERROR:
        if (r.http_status == 0) {
          return fail(Reason::connect,
                      fmt::format("connection lost before a response: {}", curl_text));
        }
        return fail(
            Reason::http_protocol,
            fmt::format("connection lost mid-body after {} bytes: {}", a.received, curl_text));
      case CURLE_PARTIAL_FILE:
        return fail(Reason::http_protocol, fmt::format("body cut short: {}", curl_text));
      case CURLE_GOT_NOTHING:
        return fail(Reason::http_protocol, "server closed the connection without a response");
      case CURLE_WEIRD_SERVER_REPLY:
        return fail(Reason::http_protocol, fmt::format("not an HTTP response: {}", curl_text));
      case CURLE_UNSUPPORTED_PROTOCOL:
        // After a connection this is the server's fault (an HTTP/0.9-looking reply, a
        // redirect to ftp://); before one, the configured URL's.
        if (r.redirects > 0 || seconds(e, CURLINFO_CONNECT_TIME_T) > 0) {
          return fail(Reason::http_protocol, fmt::format("not an HTTP response: {}", curl_text));
        }
        return fail(Reason::internal, curl_text);
      case CURLE_URL_MALFORMAT:
      case CURLE_FAILED_INIT:
      case CURLE_OUT_OF_MEMORY:
        return fail(Reason::internal, curl_text);
      case CURLE_LOGIN_DENIED:
      case CURLE_REMOTE_ACCESS_DENIED:
        return fail(Reason::auth, curl_text);
      default:
        return fail(Reason::http_protocol, curl_text);
    }
  }

  if (report_redirect_url_ && r.http_status >= 300 && r.http_status <= 399) {
    const char* location = nullptr;
    curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &location);
    if (location != nullptr) r.info["redirect_url"] = cleanText(location);
  }
  const char* ct_raw = nullptr;
  curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct_raw);
  judge(r, a.body, ct_raw ? std::string_view(ct_raw) : std::string_view(), https);
  return r;
}

// A response came back: judge it, first failure wins.
void HttpProbe::judge(Result& r, std::string_view body, std::string_view content_type,
                      bool https) {
  r.status = Status::ok;
  r.reason = Reason::none;
  auto fail = [&r](Reason reason, std::string detail) {
    r.status = Status::fail;
    r.reason = reason;
    r.detail = cleanText(detail);
  };
  const std::string_view media = mediaType(content_type);

  const bool want_health = spec_->health_format != HealthFormat::none;
  // The parsed page lives only in this call: its memory comes from a buffer on the
  // stack (the heap only past it), instead of an allocation per key and value.
  unsigned char arena[2048];
  boost::json::monotonic_resource json_memory(arena, sizeof arena);
  std::optional<boost::json::value> json;
  if ((want_health || !spec_->conditions.empty()) && looksLikeJson(body, media)) {
    std::string ignored;
    json = parseJsonBounded(body, &ignored, &json_memory);
  }

  std::optional<HealthReport> health;
  std::string health_error;
  if (want_health) {
    HealthParse p = parseHealthPage(spec_->health_format, content_type, body,
                                    json ? &*json : nullptr, spec_->custom);
    const bool automatic = spec_->health_format == HealthFormat::auto_detect;
    if (p.report) {
      const bool text_ok = media.empty() || iequals(media, "text/plain");
      if (!automatic || p.report->format != HealthFormat::text || text_ok) {
        health = std::move(p.report);
      }
    } else if (!automatic || declaresHealthFormat(media)) {
      health_error = p.error.empty() ? "health page not understood" : p.error;
    }
  }
  if (!statusExpected(r.http_status, spec_->expect_status)) {
    std::string d =
        fmt::format("got {}, expected {}", r.http_status, expectedText(spec_->expect_status));
    if (health && health->status != Status::ok) {
      const std::string failing = joinFailing(health->components, Status::fail);
      d += fmt::format("; health page says {}", health->status_text);
      if (!failing.empty()) d += " (failing: " + failing + ")";
    }
    fail(Reason::http_status, d);
  } else if (!spec_->valid_http_versions.empty() &&
             std::none_of(spec_->valid_http_versions.begin(), spec_->valid_http_versions.end(),
                          [&](const std::string& v) {
                            return protoName(r.http_version) == v ||
                                   protoName(r.http_version) == v + ".0";
                          })) {
    std::string valid;
    for (const auto& v : spec_->valid_http_versions) valid += (valid.empty() ? "" : ", ") + v;
    fail(Reason::http_protocol, fmt::format("{} is not one of valid_http_versions ({})",
                                            protoName(r.http_version), valid));
  } else if (spec_->fail_if_ssl && https) {
    fail(Reason::tls, "the final response came over TLS (fail_if_ssl)");
  } else if (spec_->fail_if_not_ssl && !https) {
    fail(Reason::tls, "the final response did not come over TLS (fail_if_not_ssl)");
  } else if (spec_->cert_min_days && r.cert_expiry) {
    const double now = std::chrono::duration<double>(SystemClock::now().time_since_epoch()).count();
    const double days = (*r.cert_expiry - now) / 86400.0;
    if (days < *spec_->cert_min_days) {
      fail(Reason::cert_expiring, fmt::format("certificate expires in {:.1f} days (minimum {})",
                                              days, *spec_->cert_min_days));
    }
  }

  if (r.status == Status::ok && !health_error.empty()) fail(Reason::health_parse, health_error);
  if (r.status == Status::ok && health && health->status == Status::fail) {
    const std::string failing = joinFailing(health->components, Status::fail);
    std::string d = fmt::format("health page says {}", health->status_text);
    if (!failing.empty()) d += "; failing: " + failing;
    if (!health->detail.empty()) d += " (" + health->detail + ")";
    fail(Reason::health_fail, d);
  }

  if (!spec_->conditions.empty()) {
    ResponseView view;
    view.status = r.http_status;
    view.body = body;
    view.latency_seconds = r.duration;
    view.json = json ? &*json : nullptr;
    r.conditions = evaluateAll(spec_->conditions, view);
    if (r.status == Status::ok) {
      for (std::size_t i = 0; i < r.conditions.size() && i < spec_->conditions.size(); ++i) {
        const ConditionResult& c = r.conditions[i];
        if (c.ok) continue;
        const auto kind = spec_->conditions[i].kind;
        const Reason reason = kind == ConditionSpec::Kind::latency_below ? Reason::latency
                              : kind == ConditionSpec::Kind::status_in   ? Reason::http_status
                                                                         : Reason::body;
        fail(reason, c.detail.empty() ? c.name : c.name + ": " + c.detail);
        break;
      }
    }
  }

  if (r.status == Status::ok && health && health->status == Status::warn) {
    const std::string warning = joinFailing(health->components, Status::warn);
    r.status = Status::warn;
    r.reason = Reason::health_warn;
    r.detail = cleanText(fmt::format("health page says {}{}", health->status_text,
                                     warning.empty() ? "" : "; warning: " + warning));
  }
  // Last, so the page's parts move into the result instead of being copied.
  if (health) {
    r.components = std::move(health->components);
    r.version = cleanText(health->version);
    if (r.info.empty()) {
      r.info = std::move(health->info);
    } else {
      for (auto& [k, v] : health->info) r.info[k] = std::move(v);
    }
  }
}

}  // namespace vigie
