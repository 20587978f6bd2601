#include "probes/ingress_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <cctype>
#include <optional>
#include <string_view>
#include <utility>

#include "probes/http_probe.h"

namespace vigie {

struct IngressProbe::Target {
  std::string address;  // as configured or as answered, IPv6 without brackets
  std::unique_ptr<HttpProbe> https;
  std::unique_ptr<HttpProbe> redirect;  // only with expect_https_redirect
  std::optional<Result> https_result;
  std::optional<Result> redirect_result;
};

struct IngressProbe::Attempt {
  explicit Attempt(boost::asio::io_context& io) : resolver(io), timer(io) {}
  boost::asio::ip::tcp::resolver resolver;
  boost::asio::steady_timer timer;
  SystemClock::time_point started{};
  SteadyClock::time_point started_steady{};
  SteadyClock::time_point deadline{};
  bool dns_done = false;
  std::optional<Result> dns_failure;  // Reason::dns or Reason::timeout
  double dns_seconds = 0;
  std::vector<std::string> dns_answer;  // unique, in the resolver's order
  // unique_ptr: callbacks keep a Target* while the vector grows.
  std::vector<std::unique_ptr<Target>> targets;
  int pending = 0;  // the DNS lookup plus every request not yet answered
};

namespace {

// Bounds the requests made for a name with a long DNS answer.
constexpr std::size_t kMaxResolvedTargets = 16;

std::string display(const std::string& address) {
  return address.find(':') != std::string::npos ? "[" + address + "]" : address;
}

bool istartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

// Details are copied into every check's history: keep them short.
std::string bounded(std::string s) {
  constexpr std::size_t kMaxDetail = 400;
  if (s.size() > kMaxDetail) {
    // Cut on a UTF-8 boundary (continuation bytes are 10xxxxxx).
    std::size_t n = kMaxDetail;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s.resize(n);
    s += "...";
  }
  return s;
}

double secondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// What is wrong with the answer to the http:// request, if anything.
std::optional<std::pair<Reason, std::string>> redirectProblem(const Result& r,
                                                              const std::string& url) {
  if (r.status == Status::fail) {
    if (r.reason == Reason::http_status) {
      return std::pair(
          Reason::http_status,
          fmt::format("{} answered {}, expected a redirect to https://", url, r.http_status));
    }
    return std::pair(r.reason, fmt::format("{}: {}", url, r.detail));
  }
  const auto it = r.info.find("redirect_url");
  if (it == r.info.end() || it->second.empty()) {
    return std::pair(Reason::http_status,
                     fmt::format("{} answered {} without a Location", url, r.http_status));
  }
  if (!istartsWith(it->second, "https://")) {
    return std::pair(Reason::http_status,
                     fmt::format("{} redirects to {}, expected https://", url, it->second));
  }
  return std::nullopt;
}

}  // namespace

IngressProbe::IngressProbe(ProbeContext& ctx, IngressSpec spec)
    : ctx_(ctx), spec_(std::move(spec)) {
  auto parsed = boost::urls::parse_uri(spec_.url);
  if (!parsed) {
    url_error_ = fmt::format("ingress url {} is not a URL", spec_.url);
    return;
  }
  boost::urls::url u = *parsed;
  const auto scheme = u.scheme_id();
  if (scheme != boost::urls::scheme::https && scheme != boost::urls::scheme::http) {
    url_error_ = fmt::format("ingress url {} is neither https:// nor http://", spec_.url);
    return;
  }
  host_ = std::string(u.host_address());
  if (host_.empty()) {
    url_error_ = fmt::format("ingress url {} has no host", spec_.url);
    return;
  }
  port_ =
      u.has_port() ? std::string(u.port()) : (scheme == boost::urls::scheme::https ? "443" : "80");
  u.set_scheme_id(boost::urls::scheme::http);
  u.remove_port();
  u.remove_fragment();
  redirect_url_ = std::string(u.buffer());
}

IngressProbe::~IngressProbe() { cancel(); }

void IngressProbe::cancel() {
  if (!attempt_) return;
  for (auto& t : attempt_->targets) {
    if (t->https) t->https->cancel();
    if (t->redirect) t->redirect->cancel();
  }
  attempt_->resolver.cancel();
  attempt_->timer.cancel();
  // Pending Asio handlers hold a weak_ptr: they find the attempt gone.
  attempt_.reset();
  done_ = nullptr;
}

void IngressProbe::start(SteadyClock::time_point deadline, Done done) {
  cancel();
  done_ = std::move(done);
  auto a = std::make_shared<Attempt>(ctx_.io);
  attempt_ = a;
  a->started = SystemClock::now();
  a->started_steady = SteadyClock::now();
  a->deadline = deadline;
  const std::weak_ptr<Attempt> weak = a;

  if (!url_error_.empty()) {
    boost::asio::post(ctx_.io, [this, weak] {
      if (weak.lock()) finish(Result::failure(Reason::internal, url_error_));
    });
    return;
  }

  a->pending = 1;  // the DNS lookup
  // Pinned front ends do not depend on the answer: probe them while the name resolves.
  if (!spec_.addresses.empty()) startTargets(spec_.addresses);

  a->timer.expires_at(deadline);
  a->timer.async_wait([this, weak](const boost::system::error_code& ec) {
    auto a = weak.lock();
    if (ec || !a || a->dns_done) return;
    // getaddrinfo runs on Asio's resolver thread and cannot be interrupted; its
    // late answer finds dns_done set and is dropped.
    a->dns_done = true;
    a->dns_seconds = secondsSince(a->started_steady);
    a->resolver.cancel();
    a->dns_failure = Result::failure(
        Reason::timeout,
        fmt::format("name {} did not resolve within {:.3f} s", host_, a->dns_seconds));
    oneDone();
  });

  a->resolver.async_resolve(
      host_, port_,
      [this, weak](const boost::system::error_code& ec,
                   const boost::asio::ip::tcp::resolver::results_type& results) {
        auto a = weak.lock();
        if (!a || a->dns_done) return;
        a->dns_done = true;
        a->dns_seconds = secondsSince(a->started_steady);
        a->timer.cancel();
        if (ec) {
          a->dns_failure = Result::failure(
              Reason::dns, fmt::format("name {} does not resolve: {}", host_, ec.message()));
        } else {
          for (const auto& entry : results) {
            std::string address = entry.endpoint().address().to_string();
            if (std::find(a->dns_answer.begin(), a->dns_answer.end(), address) ==
                a->dns_answer.end()) {
              a->dns_answer.push_back(std::move(address));
            }
          }
          if (a->dns_answer.empty()) {
            a->dns_failure =
                Result::failure(Reason::dns, fmt::format("name {} has no address", host_));
          } else if (spec_.addresses.empty()) {
            std::vector<std::string> use = a->dns_answer;
            if (use.size() > kMaxResolvedTargets) use.resize(kMaxResolvedTargets);
            startTargets(use);
          }
        }
        oneDone();
      });
}

void IngressProbe::startTargets(const std::vector<std::string>& addresses) {
  Attempt& a = *attempt_;
  HttpSpec https;
  https.url = spec_.url;
  https.expect_status = spec_.expect_status;
  https.health_format = HealthFormat::none;
  https.follow_redirects = false;
  https.tls = spec_.tls;
  https.cert_min_days = spec_.cert_min_days;

  HttpSpec redirect;
  redirect.url = redirect_url_;
  redirect.expect_status = {301, 302, 303, 307, 308};
  redirect.health_format = HealthFormat::none;
  redirect.follow_redirects = false;
  redirect.max_body = 64 * 1024;

  for (const std::string& address : addresses) {
    auto t = std::make_unique<Target>();
    Target* tp = t.get();
    t->address = address;
    HttpProbeOptions options;
    options.connect_address = address;
    t->https = std::make_unique<HttpProbe>(ctx_, https, options);
    if (spec_.expect_https_redirect) {
      options.report_redirect_url = true;
      t->redirect = std::make_unique<HttpProbe>(ctx_, redirect, options);
    }
    a.targets.push_back(std::move(t));

    // HttpProbe answers asynchronously, never inside start(): counting as we go is safe.
    ++a.pending;
    tp->https->start(a.deadline, [this, tp](Result r) {
      // The user's done may destroy this probe: keep the attempt (and the HttpProbe
      // running this callback) alive until we return.
      const std::shared_ptr<Attempt> keep = attempt_;
      tp->https_result = std::move(r);
      oneDone();
    });
    if (tp->redirect) {
      ++a.pending;
      tp->redirect->start(a.deadline, [this, tp](Result r) {
        const std::shared_ptr<Attempt> keep = attempt_;
        tp->redirect_result = std::move(r);
        oneDone();
      });
    }
  }
}

void IngressProbe::oneDone() {
  if (--attempt_->pending > 0) return;
  finish(assemble());
}

void IngressProbe::finish(Result r) {
  // The callers hold the attempt alive; releasing it here is safe.
  attempt_.reset();
  Done done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(r));  // may destroy this probe: nothing after
}

Result IngressProbe::assemble() {
  const Attempt& a = *attempt_;
  Result r;
  r.started = a.started;

  std::vector<std::string> sorted = a.dns_answer;
  std::sort(sorted.begin(), sorted.end());
  std::string dns;
  for (const auto& s : sorted) dns += (dns.empty() ? "" : ",") + s;
  if (!dns.empty()) r.info["dns"] = dns;
  if (!ctx_.location.empty()) r.info["location"] = ctx_.location;

  for (const auto& tp : a.targets) {
    const Target& t = *tp;
    TargetResult out;
    out.address = t.address;
    const Result& h = *t.https_result;
    out.http_status = h.http_status;
    out.duration = h.duration;
    out.cert_expiry = h.cert_expiry;
    out.status = h.status;
    out.reason = h.reason;
    out.detail = h.detail;
    if (h.status != Status::fail && t.redirect_result) {
      if (auto problem = redirectProblem(*t.redirect_result, redirect_url_)) {
        out.status = Status::fail;
        out.reason = problem->first;
        out.detail = std::move(problem->second);
      }
    }
    if (out.cert_expiry && (!r.cert_expiry || *out.cert_expiry < *r.cert_expiry)) {
      r.cert_expiry = out.cert_expiry;
    }
    r.targets.push_back(std::move(out));
  }

  if (!a.targets.empty()) {
    const Result& first = *a.targets.front()->https_result;
    r.http_status = first.http_status;
    r.http_version = first.http_version;
    r.phases = first.phases;
    r.body_bytes = first.body_bytes;
    r.redirects = first.redirects;
  }
  // Pinned requests connect to an address: their own name lookup is nil.
  r.phases.resolve = a.dns_seconds;
  r.duration = secondsSince(a.started_steady);

  auto failWith = [&r](Reason reason, std::string detail) {
    r.status = Status::fail;
    r.reason = reason;
    r.detail = bounded(std::move(detail));
    return r;
  };

  if (a.dns_failure) return failWith(a.dns_failure->reason, a.dns_failure->detail);
  if (r.targets.empty()) return failWith(Reason::internal, "no front-end address to probe");
  // An address vigie could not even try (no descriptor left) says nothing of the front end.
  for (const auto& tp : a.targets) {
    const auto& h = tp->https_result;
    const auto& redirect = tp->redirect_result;
    if ((h && h->out_of_descriptors) || (redirect && redirect->out_of_descriptors)) {
      const std::string& why = h && h->out_of_descriptors ? h->detail : redirect->detail;
      failWith(Reason::internal, fmt::format("{}: {}", display(tp->address), why));
      r.out_of_descriptors = true;
      return r;
    }
  }

  const TargetResult* first_failing = nullptr;
  std::size_t failing = 0;
  std::string failing_list;
  for (const auto& t : r.targets) {
    if (t.status != Status::fail) continue;
    if (!first_failing) first_failing = &t;
    ++failing;
    if (!failing_list.empty()) failing_list += ", ";
    failing_list += fmt::format("{} ({})", display(t.address), reasonName(t.reason));
  }
  if (failing == 0) {
    r.status = Status::ok;
    r.reason = Reason::none;
    return r;
  }
  const std::string first_text =
      fmt::format("{}: {}", display(first_failing->address), first_failing->detail);
  if (spec_.mode == IngressSpec::Mode::all) return failWith(first_failing->reason, first_text);
  if (failing == r.targets.size()) {
    return failWith(first_failing->reason,
                    fmt::format("all {} front-end addresses failing; {}", failing, first_text));
  }
  r.status = Status::ok;
  r.reason = Reason::none;
  r.detail = bounded(fmt::format("{} of {} front-end addresses failing: {}", failing,
                                 r.targets.size(), failing_list));
  return r;
}

}  // namespace vigie
