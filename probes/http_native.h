#pragma once
/// \file
/// vigie's own HTTP/1.1 client for plain `http://` checks to an IP address: one
/// socket, a non-blocking connect, one send of a request built once per check, reads
/// into a buffer shared by the loop, close. About 8 system calls per attempt where
/// libcurl makes about 21, and no allocation per attempt beyond the kept body.
/// Everything it does not cover (https, names to resolve, proxies, credentials in the
/// URL, redirects to follow, request bodies, ingress's pinned addresses) stays with
/// libcurl: HttpProbe decides once, when it is built (planNativeHttp). /probe's http
/// modules (wire facts, planNativeHttpWire) use it too, and hand a response back to
/// libcurl when its headers show one it would end differently (gzip, a redirect).

#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "collector/config.h"
#include "probes/probe.h"

namespace vigie {

/// What one check sends and where, computed once when its probe is built. Kept by
/// every idle check (50,000 of them in the bench): the address without the 100 spare
/// bytes of a sockaddr_storage, the request text at its exact size, and the address as
/// text made only when a message or the wire facts need it.
struct NativeHttpPlan {
  union Address {
    sockaddr sa;
    sockaddr_in in4;
    sockaddr_in6 in6;
  };
  Address address{};
  socklen_t address_len = 0;
  bool head = false;    // HEAD: the response has no body whatever it says
  /// /probe (HttpProbeOptions::wire_facts): the request asks for gzip as Go's client
  /// does (when `accept_gzip`), and the outcome carries the final response's
  /// Content-Length, Last-Modified and the address. A response this client would not
  /// end as libcurl does (an encoded body libcurl would decode, a redirect libcurl
  /// would follow, a bodiless status with a Content-Length...) is handed back to
  /// libcurl (NativeHttpOutcome::handoff) as soon as its headers are read.
  bool wire_facts = false;
  bool accept_gzip = false;
  bool follow_redirects = false;  // a 3xx with a Location: handed off
  std::string request;  // the whole request, as written to the socket

  /// The address as libcurl's CURLINFO_PRIMARY_IP says it ("127.0.0.1", "::1").
  std::string ip() const;
  /// "127.0.0.1 port 8080", for messages.
  std::string peer() const;
};

/// False when the environment says VIGIE_HTTP_CLIENT=curl: every check then uses
/// libcurl (the escape hatch, README "Limits").
bool nativeHttpEnabled();

/// The plan for `spec` when the native client covers it and nativeHttpEnabled();
/// nullopt when the check needs libcurl. `plain_options`: the probe was built without
/// HttpProbeOptions (no pinned address, no redirect URL, no wire facts). The request
/// carries the headers libcurl would send (Host, Accept, the configured ones, in the
/// same order). Pure but for the environment (proxy variables, VIGIE_HTTP_CLIENT).
std::optional<NativeHttpPlan> planNativeHttp(const HttpSpec& spec, bool plain_options);
/// As above for a probe built with HttpProbeOptions::wire_facts and nothing else
/// (`plain_options`: no pinned address, no redirect URL): follow_redirects is allowed
/// (a redirect hands off to libcurl), HEAD is not, and the request carries
/// `Accept-Encoding: gzip` after Accept unless the spec names its own.
std::optional<NativeHttpPlan> planNativeHttpWire(const HttpSpec& spec, bool plain_options);

/// How one native attempt ended.
struct NativeHttpOutcome {
  /// none: a whole response came (judged by the probe); otherwise the transport
  /// failure, with `detail` in the words the libcurl path uses for the same case.
  Reason reason = Reason::none;
  std::string detail;
  bool out_of_descriptors = false;
  int status = 0;        // 0 until a status line was read
  int version = 0;       // 10, 11
  std::string content_type;
  std::uint64_t received = 0;  // body bytes (chunk framing excluded)
  double duration = 0;         // seconds
  HttpPhases phases;           // tls always 0
  /// Plan::wire_facts only. True: the response needs libcurl (see NativeHttpPlan);
  /// reason is none and nothing else is meaningful, the caller starts again with it.
  bool handoff = false;
  std::int64_t content_length = -1;  // the final response's Content-Length, -1 none
  std::string last_modified;         // its Last-Modified value, "" none
};

/// Runs one attempt at a time of one plan on the loop.
///
/// An idle client keeps only its plan: the attempt's state (socket, timer, parser,
/// outcome, about 800 bytes) is made when an attempt starts and dropped once its done
/// has returned (or the attempt is cancelled).
///
/// Threading: every member on the loop thread of `io`; the done callback runs there,
/// never inside start(). Destroying the client cancels a running attempt (its done
/// is never called); pending handlers hold only the attempt's shared state, so
/// destruction is safe at any time, including from inside done.
class NativeHttpClient {
 public:
  using Done = std::function<void()>;

  NativeHttpClient(boost::asio::io_context& io, NativeHttpPlan plan);
  ~NativeHttpClient();
  NativeHttpClient(const NativeHttpClient&) = delete;
  NativeHttpClient& operator=(const NativeHttpClient&) = delete;

  /// Starts an attempt (a running one is cancelled first). The body is appended to
  /// `*body` up to `max_body` bytes (`body` null: counted only); one byte more ends
  /// the attempt with body_too_large. Everything, connect included, ends by
  /// `deadline` (timeout). `done` reads outcome().
  void start(SteadyClock::time_point deadline, std::uint64_t max_body, std::string* body,
             Done done);
  /// Stops the running attempt and closes its socket; done is never called.
  void cancel();
  /// The last attempt's outcome; valid inside done only (an empty outcome elsewhere:
  /// the attempt's state is dropped when done returns).
  const NativeHttpOutcome& outcome() const;
  const NativeHttpPlan& plan() const { return plan_; }
  /// True while an attempt runs or its done is being called. For tests: an idle
  /// client holds no attempt state.
  bool holdsAttempt() const { return state_ != nullptr; }

 private:
  struct State;
  boost::asio::io_context& io_;
  NativeHttpPlan plan_;
  std::shared_ptr<State> state_;  // null when idle
};

}  // namespace vigie
