#pragma once
/// \file
/// The one HTTP/1.1 server of vigie (Boost.Beast), running on the caller's
/// io_context: the same single loop thread that runs the probes, so nothing here
/// blocks. Serves /metrics, /api, the dashboard and whatever else is routed.
///
/// Threading: every member function, every handler and every `respond` callback
/// runs on the loop thread only.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vigie {

/// What a handler sees of a request. Views are valid during the handler call only
/// (copy what an async handler keeps).
struct HttpRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  bool head = false;        // a HEAD request served by a GET route
  std::string_view target;  // as sent: "/api/v1/checks?state=down"
  std::string_view path;    // target without the query, still %-encoded
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::string_view body;
  std::string_view remote;  // "127.0.0.1:53122"

  /// The first query parameter named `name`, or nullptr.
  const std::string* param(std::string_view name) const;
  /// A request header (case-insensitive name); "" when absent.
  std::string_view header(std::string_view name) const;

  const void* raw = nullptr;  // the beast::http::request<string_body>, for the server's use
};

/// A body made piece by piece while it is written, for answers too big to hold whole
/// (/metrics at 50,000 checks: 200+ MiB). The server sends it with chunked
/// transfer-encoding (to an HTTP/1.0 client: until the connection closes), asks for the
/// next piece when it starts writing one, and never holds more than that piece and the
/// next: whatever the size and however slow the reader, a few pieces in memory.
class HttpBodySource {
 public:
  /// `piece`: the next bytes, or "" at the end. `failed`: the body cannot be finished;
  /// the connection is closed without the last chunk (the client sees a cut answer).
  using Give = std::function<void(std::string piece, bool failed)>;
  virtual ~HttpBodySource() = default;
  /// Called on the loop thread, never again before `give` was called: `give` must be
  /// called exactly once, later, on the loop thread (not from inside pull()).
  virtual void pull(Give give) = 0;
};

/// What a handler fills. Defaults: 200, text/plain.
struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  /// Sent before `body` without being copied: a large answer many requests share
  /// (the /metrics text of a snapshot), held only until it is written.
  std::shared_ptr<const std::string> shared_body;
  /// When set, the body comes from it (`body` and `shared_body` are ignored).
  std::shared_ptr<HttpBodySource> source;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers

  /// Sets status, `application/json` and a body {"error": message, ...extra}.
  void jsonError(unsigned status, std::string_view message,
                 std::vector<std::pair<std::string, std::string>> extra = {});
};

/// Synchronous handler: fills `res` before returning. Throwing gives a 500.
using HttpHandler = std::function<void(const HttpRequest&, HttpResponse& res)>;
/// Asynchronous handler: calls `respond` exactly once, later, on the loop thread
/// (for work that waits, such as running a probe for /probe). If the connection
/// closed meanwhile, `respond` does nothing.
using HttpRespond = std::function<void(HttpResponse)>;
using HttpAsyncHandler = std::function<void(const HttpRequest&, HttpRespond respond)>;

/// Runs before the handler of every request that matched a route: returns true to
/// let it go on, or false after filling `res` (a 401 or 403 answered instead).
/// Runs on the loop thread; must not block.
using HttpGuard = std::function<bool(const HttpRequest&, HttpResponse& res)>;

struct HttpServerOptions {
  std::size_t max_header_bytes = 8 * 1024;        // beyond: 431
  std::size_t max_body_bytes = 64 * 1024;         // beyond: 413
  std::chrono::milliseconds read_timeout{10000};  // a whole request, or an idle keep-alive
  std::chrono::milliseconds write_timeout{10000};
  std::size_t max_connections = 10000;  // beyond: accept waits for a close
  /// The share of the loop's time request handlers may take (measured, as a token
  /// bucket with a 50 ms burst): beyond it, a request waits a moment for its turn, so
  /// a flood of /metrics or /api requests cannot hold back the probes that share the
  /// loop. 1 (or more) disables the bound.
  double max_loop_share = 0.5;
  std::string server_header = "vigie";
  /// Called with the exception's what() when a handler throws (for the log).
  std::function<void(std::string_view)> on_handler_error;
};

/// Counters of the server's life, for self-metrics.
struct HttpServerStats {
  std::uint64_t requests = 0;
  std::uint64_t handler_errors = 0;  // exceptions thrown by handlers (answered 500)
  std::uint64_t rejected = 0;        // 4xx answered by the server itself (limits, 404, 405)
  std::uint64_t connections_total = 0;
  std::size_t connections_open = 0;
  std::uint64_t accept_pauses = 0;  // times max_connections was reached
  std::uint64_t unauthorized = 0;   // requests the guard answered 401 or 403
  std::uint64_t accept_errors = 0;  // accept() failed (no descriptor left, ...): retried in 100 ms
  std::uint64_t deferred = 0;       // requests that waited because handlers used their share
};

class HttpServer {
 public:
  /// The io_context must outlive the server.
  explicit HttpServer(boost::asio::io_context& io, HttpServerOptions options = {});
  /// Calls stop().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds and starts accepting on "host:port" ("0.0.0.0:9877", "[::1]:0",
  /// "127.0.0.1:0"; a literal address, no name resolution). Throws
  /// std::runtime_error when the address is malformed or cannot be bound
  /// (start-up error). May be called again for another address.
  void listen(const std::string& host_port);

  /// Serves one connection that is already open, exactly as an accepted one (the
  /// fuzzer feeds raw bytes through a socketpair this way). Closed at once after stop().
  void serve(boost::asio::ip::tcp::socket socket);

  /// The port bound by the last listen() (useful with port 0); 0 before.
  unsigned short port() const;

  /// Adds a route. `path` is exact ("/metrics"), or a prefix when it ends with
  /// '*' ("/api/v1/checks/*" matches "/api/v1/checks/a/b"). Exact routes win over
  /// prefixes, longer prefixes over shorter ones. A GET route also answers HEAD
  /// (same headers, no body). A path known under another method answers 405.
  void route(boost::beast::http::verb method, std::string path, HttpHandler handler);
  void routeAsync(boost::beast::http::verb method, std::string path, HttpAsyncHandler handler);

  /// Sets the guard every routed request passes first (replaces the previous one;
  /// empty: none). Unknown paths and methods are answered 404/405 before it.
  void setGuard(HttpGuard guard);

  /// Closes the acceptors and every connection; pending handlers' `respond`
  /// become no-ops. After stop() the server holds no pending operation, so the
  /// io_context can run out of work. Idempotent.
  void stop();
  /// Runs `fn` on stop() (or destruction), after the connections are closed: for
  /// what a route started beside the loop (a render thread), to be ended while the
  /// io_context is still alive.
  void onStop(std::function<void()> fn);

  const HttpServerStats& stats() const;

  /// The io_context the server runs on: an asynchronous handler that works on
  /// another thread posts its `respond` back there.
  boost::asio::io_context& io() const;

  struct State;  // shared with the connections, which may outlive the server object

 private:
  std::shared_ptr<State> state_;
};

}  // namespace vigie
