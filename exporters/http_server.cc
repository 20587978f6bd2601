#include "exporters/http_server.h"

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <deque>
#include <optional>
#include <stdexcept>
#include <unordered_set>

#include "exporters/json_util.h"

namespace vigie {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using RawRequest = http::request<http::string_body>;

namespace {

// A response body of a shared, immutable prefix (HttpResponse::shared_body) and a
// string of its own, written as two buffers: no copy of the prefix per request.
struct SharedPrefixBody {
  struct value_type {
    std::shared_ptr<const std::string> prefix;
    std::string rest;
  };
  static std::uint64_t size(const value_type& v) {
    return (v.prefix ? v.prefix->size() : 0) + v.rest.size();
  }
  class writer {
   public:
    using const_buffers_type = std::array<asio::const_buffer, 2>;
    template <bool isRequest, class Fields>
    writer(const http::header<isRequest, Fields>&, const value_type& body) : body_(body) {}
    void init(beast::error_code& ec) { ec = {}; }
    boost::optional<std::pair<const_buffers_type, bool>> get(beast::error_code& ec) {
      ec = {};
      if (done_) return boost::none;
      done_ = true;
      const_buffers_type buffers{
          body_.prefix ? asio::buffer(*body_.prefix) : asio::const_buffer(),
          asio::buffer(body_.rest)};
      return std::make_pair(buffers, false);
    }

   private:
    const value_type& body_;
    bool done_ = false;
  };
};

// asio::async_write's default condition (transfer_all) gives each write at most
// 64 KiB: a streamed /metrics of 231 MiB (50,000 checks) took 3,925 sendmsg calls
// and 4,450 wake-ups of the loop. This one offers the socket all that is left, as
// much as its buffer takes per call: one call per 1 MiB piece on loopback.
struct WholeBuffers {
  std::size_t total;
  std::size_t operator()(const beast::error_code& ec, std::size_t written) const {
    return ec ? 0 : total - written;
  }
};

struct Route {
  http::verb method;
  std::string path;  // without the trailing '*' for prefixes
  bool prefix = false;
  HttpHandler handler;
  HttpAsyncHandler async_handler;
};

std::vector<std::pair<std::string, std::string>> parseQuery(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const std::string_view item = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(percentDecode(item, true), std::string{});
    } else {
      out.emplace_back(percentDecode(item.substr(0, eq), true),
                       percentDecode(item.substr(eq + 1), true));
    }
  }
  return out;
}

tcp::endpoint parseListenAddress(const std::string& host_port) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    throw std::runtime_error("listen address \"" + host_port + "\" is not host:port");
  }
  std::string host = host_port.substr(0, colon);
  const std::string port_text = host_port.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty()) {
    throw std::runtime_error("listen address \"" + host_port + "\": bad port");
  }
  boost::system::error_code aec;
  const auto address = asio::ip::make_address(host, aec);
  if (aec) {
    throw std::runtime_error("listen address \"" + host_port +
                             "\": host must be a literal IPv4 or IPv6 address");
  }
  return tcp::endpoint(address, static_cast<unsigned short>(port));
}

std::string jsonBody(const boost::json::object& o) { return boost::json::serialize(o); }

}  // namespace

const std::string* HttpRequest::param(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::string_view HttpRequest::header(std::string_view name) const {
  if (raw == nullptr) return {};
  const auto& req = *static_cast<const RawRequest*>(raw);
  const auto it = req.find(name);
  if (it == req.end()) return {};
  return it->value();
}

void HttpResponse::jsonError(unsigned code, std::string_view message,
                             std::vector<std::pair<std::string, std::string>> extra) {
  boost::json::object o;
  o["error"] = sanitizeUtf8(message, 1024);
  for (auto& [k, v] : extra) o[k] = sanitizeUtf8(v, 1024);
  status = code;
  content_type = "application/json";
  body = jsonBody(o);
  body.push_back('\n');
}

class Connection;

struct Acceptor {
  explicit Acceptor(asio::io_context& io) : acceptor(io), retry(io) {}
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  bool paused = false;
};

struct HttpServer::State : std::enable_shared_from_this<HttpServer::State> {
  State(asio::io_context& i, HttpServerOptions o)
      : io(i), options(std::move(o)), turn_timer(i), refilled(std::chrono::steady_clock::now()) {}

  asio::io_context& io;
  HttpServerOptions options;
  std::vector<Route> routes;
  HttpGuard guard;
  std::vector<std::shared_ptr<Acceptor>> acceptors;
  std::unordered_set<Connection*> connections;
  HttpServerStats stats;
  bool stopped = false;
  std::vector<std::function<void()>> on_stop;

  // Loop share (options.max_loop_share): a token bucket of handler time, in
  // nanoseconds of loop time; requests read while it is empty wait in `deferred`.
  using Clock = std::chrono::steady_clock;
  asio::steady_timer turn_timer;
  bool turn_armed = false;
  Clock::time_point refilled;
  double tokens = 0;
  std::deque<std::shared_ptr<Connection>> deferred;  // they hold no pending operation

  bool bounded() const { return options.max_loop_share > 0 && options.max_loop_share < 1; }
  double burst() const { return options.max_loop_share * 50e6; }
  void refill(Clock::time_point now) {
    tokens = std::min(burst(), tokens + options.max_loop_share *
                                           static_cast<double>((now - refilled).count()));
    refilled = now;
  }
  /// Runs the request now if the handlers' share allows, else queues it.
  void admit(const std::shared_ptr<Connection>& c);
  void charge(Clock::duration spent) { tokens -= static_cast<double>(spent.count()); }
  void armTurn();
  void serveDeferred();

  void accept(const std::shared_ptr<Acceptor>& a);
  void connectionClosed(Connection* c);
  // Best route for a path: exact first, then the longest prefix. nullptr if none.
  // `allowed` receives the methods known for that path.
  const Route* match(std::string_view path, http::verb method, bool* path_known,
                     std::string* allowed) const;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<HttpServer::State> state, tcp::socket socket)
      : state_(std::move(state)), stream_(std::move(socket)) {
    boost::system::error_code ec;
    const auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      remote_ =
          ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
      remote_ += ":" + std::to_string(ep.port());
    }
    state_->connections.insert(this);
    ++state_->stats.connections_total;
    state_->stats.connections_open = state_->connections.size();
  }

  ~Connection() { state_->connectionClosed(this); }

  void start() { read(); }

  // Closes the socket; pending operations complete with operation_aborted.
  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(state_->options.max_header_bytes));
    parser_->body_limit(state_->options.max_body_bytes);
    stream_.expires_after(state_->options.read_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (closed_) return;
    if (ec) {
      if (ec == http::error::header_limit) {
        HttpResponse r;
        r.jsonError(431, "request header too large");
        ++state_->stats.rejected;
        return send(std::move(r), 11, /*head=*/false, /*keep_alive=*/false);
      }
      if (ec == http::error::body_limit) {
        HttpResponse r;
        r.jsonError(413, "request body too large");
        ++state_->stats.rejected;
        return send(std::move(r), 11, false, false);
      }
      if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message) {
        HttpResponse r;
        r.jsonError(400, "bad request");
        ++state_->stats.rejected;
        return send(std::move(r), 11, false, false);
      }
      // end of stream, timeout (slow or idle client), reset: just close.
      return close();
    }
    state_->admit(shared_from_this());
  }

 public:
  bool closed() const { return closed_; }

  // Handles the request read last; its time is charged to the handlers' share.
  void dispatch() {
    const auto t0 = HttpServer::State::Clock::now();
    dispatchNow();
    if (state_->bounded()) state_->charge(HttpServer::State::Clock::now() - t0);
  }

 private:
  void dispatchNow() {
    ++state_->stats.requests;
    const RawRequest& raw = parser_->get();
    HttpRequest req;
    req.method = raw.method();
    req.head = raw.method() == http::verb::head;
    req.target = raw.target();
    const auto q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string_view::npos) req.query = parseQuery(req.target.substr(q + 1));
    req.body = raw.body();
    req.remote = remote_;
    req.raw = &raw;
    const unsigned version = raw.version();
    const bool keep_alive = raw.keep_alive();

    bool path_known = false;
    std::string allowed;
    const Route* route = state_->match(req.path, req.method, &path_known, &allowed);
    HttpResponse res;
    if (route == nullptr) {
      ++state_->stats.rejected;
      if (path_known) {
        res.jsonError(
            405, "method not allowed",
            {{"method", std::string(raw.method_string())}, {"path", std::string(req.path)}});
        res.headers.emplace_back("Allow", allowed);
      } else {
        res.jsonError(404, "not found", {{"path", std::string(req.path)}});
      }
      return send(std::move(res), version, req.head, keep_alive);
    }

    auto done = std::make_shared<bool>(false);
    try {
      if (state_->guard && !state_->guard(req, res)) {
        ++state_->stats.rejected;
        if (res.status == 401 || res.status == 403) ++state_->stats.unauthorized;
        return send(std::move(res), version, req.head, keep_alive);
      }
      if (route->async_handler) {
        waiting_ = true;
        const bool head = req.head;
        route->async_handler(
            req, [self = shared_from_this(), done, version, head, keep_alive](HttpResponse r) {
              if (*done) return;
              *done = true;
              self->waiting_ = false;
              if (self->closed_) return;
              self->send(std::move(r), version, head, keep_alive);
            });
        return;
      }
      route->handler(req, res);
    } catch (const std::exception& e) {
      handlerFailed(e.what(), res);
    } catch (...) {
      handlerFailed("unknown exception", res);
    }
    if (*done) return;  // an async handler answered before throwing
    // An async handler that threw may still hold `respond`: make it a no-op.
    *done = true;
    waiting_ = false;
    send(std::move(res), version, req.head, keep_alive);
  }

  void handlerFailed(std::string_view what, HttpResponse& res) {
    ++state_->stats.handler_errors;
    if (state_->options.on_handler_error) state_->options.on_handler_error(what);
    res = HttpResponse{};
    res.jsonError(500, "internal error");
  }

  void send(HttpResponse r, unsigned version, bool head, bool keep_alive) {
    if (r.source) return sendSource(std::move(r), version, head, keep_alive);
    res_ = {};
    res_.version(version);
    res_.result(r.status);
    res_.set(http::field::server, state_->options.server_header);
    res_.set(http::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) res_.set(name, value);
    res_.keep_alive(keep_alive);
    if (head) {
      res_.content_length((r.shared_body ? r.shared_body->size() : 0) + r.body.size());
    } else {
      res_.body().prefix = std::move(r.shared_body);
      res_.body().rest = std::move(r.body);
      res_.prepare_payload();
    }
    stream_.expires_after(state_->options.write_timeout);
    http::async_write(
        stream_, res_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onWrite(ec); });
  }

  void onWrite(beast::error_code ec) {
    if (closed_) return;
    if (ec || !res_.keep_alive() || state_->stopped) return close();
    res_ = {};
    read();
  }

  // A body from an HttpBodySource: the header, then each piece as a chunk as it comes
  // (the next one asked for while this one is written), then the last chunk.
  void sendSource(HttpResponse r, unsigned version, bool head, bool keep_alive) {
    auto& h = stream_res_.emplace();
    h.version(version);
    h.result(r.status);
    h.set(http::field::server, state_->options.server_header);
    h.set(http::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) h.set(name, value);
    chunked_ = version >= 11;
    if (chunked_) {
      h.chunked(true);
    } else {
      keep_alive = false;  // HTTP/1.0: the body ends with the connection
    }
    h.keep_alive(keep_alive);
    stream_keep_alive_ = keep_alive;
    source_ = head ? nullptr : std::move(r.source);
    source_end_ = false;
    next_piece_.reset();
    stream_serializer_.emplace(h);
    writing_ = true;
    stream_.expires_after(state_->options.write_timeout);
    http::async_write_header(stream_, *stream_serializer_,
                             [self = shared_from_this()](beast::error_code ec, std::size_t) {
                               self->onPieceWritten(ec);
                             });
    if (source_) pull();  // the first piece is made while the header is written
  }

  void pull() {
    source_->pull([self = shared_from_this()](std::string piece, bool failed) {
      self->onPiece(std::move(piece), failed);
    });
  }

  void onPiece(std::string piece, bool failed) {
    if (closed_) return;
    if (failed) return close();
    if (piece.empty()) {
      source_end_ = true;
    } else {
      next_piece_ = std::move(piece);
    }
    if (!writing_) writeNextPiece();
  }

  void onPieceWritten(beast::error_code ec) {
    writing_ = false;
    std::string().swap(piece_);
    if (closed_) return;
    if (ec) return close();
    writeNextPiece();
  }

  void writeNextPiece() {
    if (next_piece_) {
      piece_ = std::move(*next_piece_);
      next_piece_.reset();
      if (!source_end_) pull();  // made while this one is written
      writing_ = true;
      stream_.expires_after(state_->options.write_timeout);
      auto done = [self = shared_from_this()](beast::error_code ec, std::size_t) {
        self->onPieceWritten(ec);
      };
      if (chunked_) {
        const auto chunk = http::make_chunk(asio::buffer(piece_));
        asio::async_write(stream_, chunk, WholeBuffers{asio::buffer_size(chunk)}, std::move(done));
      } else {
        asio::async_write(stream_, asio::buffer(piece_), WholeBuffers{piece_.size()},
                          std::move(done));
      }
      return;
    }
    if (source_ && !source_end_) return;  // the next piece is on its way
    // The end (or a HEAD answer: the header only).
    auto finished = [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->onSourceDone(ec);
    };
    if (source_ && chunked_) {
      writing_ = true;
      stream_.expires_after(state_->options.write_timeout);
      asio::async_write(stream_, http::make_chunk_last(), std::move(finished));
      return;
    }
    onSourceDone({});
  }

  void onSourceDone(beast::error_code ec) {
    writing_ = false;
    source_.reset();
    stream_serializer_.reset();
    stream_res_.reset();
    if (closed_) return;
    if (ec || !stream_keep_alive_ || state_->stopped) return close();
    read();
  }

  std::shared_ptr<HttpServer::State> state_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<SharedPrefixBody> res_;
  // An answer from an HttpBodySource (see sendSource).
  std::optional<http::response<http::empty_body>> stream_res_;
  std::optional<http::response_serializer<http::empty_body>> stream_serializer_;
  std::shared_ptr<HttpBodySource> source_;
  std::string piece_;                     // being written
  std::optional<std::string> next_piece_;  // given, waiting for the write of piece_
  bool chunked_ = true;
  bool stream_keep_alive_ = false;
  bool writing_ = false;
  bool source_end_ = false;
  std::string remote_;
  bool closed_ = false;
  bool waiting_ = false;
};

void HttpServer::State::admit(const std::shared_ptr<Connection>& c) {
  if (!bounded()) return c->dispatch();
  refill(Clock::now());
  if (deferred.empty() && tokens > 0) return c->dispatch();
  ++stats.deferred;
  deferred.push_back(c);
  armTurn();
}

void HttpServer::State::armTurn() {
  if (turn_armed || stopped || deferred.empty()) return;
  turn_armed = true;
  // When the bucket holds a millisecond of handler time again.
  const double wait_ns = (1e6 - tokens) / options.max_loop_share;
  turn_timer.expires_after(std::chrono::nanoseconds(static_cast<std::int64_t>(wait_ns)));
  turn_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->turn_armed = false;
    if (ec || self->stopped) return;
    self->serveDeferred();
  });
}

void HttpServer::State::serveDeferred() {
  refill(Clock::now());
  while (tokens > 0 && !deferred.empty()) {
    auto c = std::move(deferred.front());
    deferred.pop_front();
    if (!c->closed()) c->dispatch();
    refill(Clock::now());
  }
  armTurn();
}

void HttpServer::State::accept(const std::shared_ptr<Acceptor>& a) {
  if (stopped) return;
  a->acceptor.async_accept(
      [self = shared_from_this(), a](boost::system::error_code ec, tcp::socket socket) {
        if (self->stopped || !a->acceptor.is_open()) return;
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          ++self->stats.accept_errors;
          // Out of descriptors or similar: retry later rather than spin.
          a->retry.expires_after(std::chrono::milliseconds(100));
          a->retry.async_wait([self, a](boost::system::error_code wec) {
            if (!wec) self->accept(a);
          });
          return;
        }
        std::make_shared<Connection>(self, std::move(socket))->start();
        if (self->connections.size() >= self->options.max_connections) {
          // Resumed by connectionClosed(); meanwhile the kernel backlog holds newcomers.
          a->paused = true;
          ++self->stats.accept_pauses;
          return;
        }
        self->accept(a);
      });
}

void HttpServer::State::connectionClosed(Connection* c) {
  connections.erase(c);
  stats.connections_open = connections.size();
  if (stopped || connections.size() >= options.max_connections) return;
  for (auto& a : acceptors) {
    if (a->paused) {
      a->paused = false;
      accept(a);
    }
  }
}

const Route* HttpServer::State::match(std::string_view path, http::verb method, bool* path_known,
                                      std::string* allowed) const {
  const Route* best_path = nullptr;
  for (const auto& r : routes) {
    if (r.prefix ? path.substr(0, r.path.size()) != r.path : path != r.path) continue;
    if (best_path == nullptr || (best_path->prefix && !r.prefix) ||
        (best_path->prefix && r.prefix && r.path.size() > best_path->path.size())) {
      best_path = &r;
    }
  }
  if (best_path == nullptr) return nullptr;
  *path_known = true;
  const Route* found = nullptr;
  for (const auto& r : routes) {
    if (r.prefix != best_path->prefix || r.path != best_path->path) continue;
    if (r.method == method || (method == http::verb::head && r.method == http::verb::get)) {
      if (found == nullptr || r.method == method) found = &r;
    }
    if (!allowed->empty()) allowed->append(", ");
    allowed->append(http::to_string(r.method));
    if (r.method == http::verb::get) allowed->append(", HEAD");
  }
  return found;
}

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options)
    : state_(std::make_shared<State>(io, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::listen(const std::string& host_port) {
  const tcp::endpoint ep = parseListenAddress(host_port);
  auto a = std::make_shared<Acceptor>(state_->io);
  boost::system::error_code ec;
  a->acceptor.open(ep.protocol(), ec);
  if (!ec) a->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a->acceptor.bind(ep, ec);
  if (!ec) a->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + host_port + ": " + ec.message());
  state_->stopped = false;
  state_->acceptors.push_back(a);
  state_->accept(a);
}

void HttpServer::serve(tcp::socket socket) {
  if (state_->stopped) {
    boost::system::error_code ec;
    socket.close(ec);
    return;
  }
  std::make_shared<Connection>(state_, std::move(socket))->start();
}

unsigned short HttpServer::port() const {
  if (state_->acceptors.empty()) return 0;
  boost::system::error_code ec;
  const auto ep = state_->acceptors.back()->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void HttpServer::route(http::verb method, std::string path, HttpHandler handler) {
  Route r{method, std::move(path), false, std::move(handler), {}};
  if (!r.path.empty() && r.path.back() == '*') {
    r.path.pop_back();
    r.prefix = true;
  }
  state_->routes.push_back(std::move(r));
}

void HttpServer::setGuard(HttpGuard guard) { state_->guard = std::move(guard); }

void HttpServer::routeAsync(http::verb method, std::string path, HttpAsyncHandler handler) {
  Route r{method, std::move(path), false, {}, std::move(handler)};
  if (!r.path.empty() && r.path.back() == '*') {
    r.path.pop_back();
    r.prefix = true;
  }
  state_->routes.push_back(std::move(r));
}

void HttpServer::onStop(std::function<void()> fn) { state_->on_stop.push_back(std::move(fn)); }

void HttpServer::stop() {
  if (!state_->stopped) {
    state_->stopped = true;
    for (auto& a : state_->acceptors) {
      boost::system::error_code ec;
      a->acceptor.close(ec);
      a->retry.cancel();
    }
    state_->acceptors.clear();
    state_->turn_timer.cancel();
    state_->deferred.clear();
    // close() never runs completion handlers inline, so the set is stable here.
    const std::vector<Connection*> open(state_->connections.begin(), state_->connections.end());
    for (Connection* c : open) c->close();
  }
  // Also for a server that never listened (its routes may own threads).
  auto hooks = std::move(state_->on_stop);
  state_->on_stop.clear();
  for (auto& fn : hooks) fn();
}

const HttpServerStats& HttpServer::stats() const { return state_->stats; }

asio::io_context& HttpServer::io() const { return state_->io; }

}  // namespace vigie
