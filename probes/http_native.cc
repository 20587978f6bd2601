#include "probes/http_native.h"

#include <fmt/format.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "collector/fd_limit.h"

namespace vigie {
namespace {

namespace asio = boost::asio;

// libcurl's limit for one response's headers is larger (300 KiB in all); a health
// endpoint never comes near either.
constexpr std::size_t kMaxHead = 100 * 1024;
constexpr std::size_t kMaxChunkLine = 4096;
constexpr int kMaxInterim = 8;  // 100 Continue and the like before the response

// ASCII only, inline: header names are compared for every header of every response
// (std::tolower is a call into libc per byte).
char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return lowerAscii(x) == lowerAscii(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool envSet(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

// A path libcurl would rewrite (it removes dot segments): left to libcurl.
bool hasDotSegment(std::string_view path) {
  std::size_t i = 0;
  while (i < path.size()) {
    const std::size_t end = std::min(path.find('/', i + 1), path.size());
    const std::string_view seg = path.substr(i + 1, end - i - 1);
    if (seg == "." || seg == "..") return true;
    i = end;
  }
  return false;
}

bool hasLineBreak(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

// One read buffer for every native attempt on this thread: a read is consumed before
// the next handler runs, so attempts never share its contents.
char* readBuffer() {
  thread_local std::array<char, 64 * 1024> buffer;
  return buffer.data();
}
constexpr std::size_t kReadBuffer = 64 * 1024;

double secondsBetween(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::max(0.0, std::chrono::duration<double>(b - a).count());
}

}  // namespace

bool nativeHttpEnabled() {
  const char* v = std::getenv("VIGIE_HTTP_CLIENT");
  return v == nullptr || std::string_view(v) != "curl";
}

namespace {

std::optional<NativeHttpPlan> makePlan(const HttpSpec& spec, bool plain_options, bool wire) {
  if (!plain_options || !nativeHttpEnabled()) return std::nullopt;
  if ((spec.follow_redirects && !wire) || !spec.body.empty()) return std::nullopt;
  // HEAD under /probe: libcurl's Content-Length for a bodiless answer is its own business.
  if (spec.method != "GET" && (spec.method != "HEAD" || wire)) return std::nullopt;
  // libcurl reads these for an http:// URL (never HTTP_PROXY in capitals for http, but
  // a proxy meant for curl must not be bypassed either way).
  for (const char* v : {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"}) {
    if (envSet(v)) return std::nullopt;
  }
  auto parsed = boost::urls::parse_uri(spec.url);
  if (!parsed) return std::nullopt;
  const boost::urls::url_view& u = *parsed;
  if (u.scheme_id() != boost::urls::scheme::http || u.has_userinfo()) return std::nullopt;

  NativeHttpPlan plan;
  std::uint16_t port = 80;
  if (u.has_port() && !u.port().empty()) {
    if (u.port_number() == 0) return std::nullopt;
    port = u.port_number();
  }
  if (u.host_type() == boost::urls::host_type::ipv4) {
    if (spec.ip_version == "ip6") return std::nullopt;
    sockaddr_in* sin = &plan.address.in4;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    const auto bytes = u.host_ipv4_address().to_bytes();
    std::memcpy(&sin->sin_addr, bytes.data(), bytes.size());
    plan.address_len = sizeof(sockaddr_in);
  } else if (u.host_type() == boost::urls::host_type::ipv6) {
    if (spec.ip_version == "ip4") return std::nullopt;
    if (std::string_view(u.encoded_host()).find('%') != std::string_view::npos) {
      return std::nullopt;  // a zone id: libcurl's business
    }
    sockaddr_in6* sin6 = &plan.address.in6;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    const auto bytes = u.host_ipv6_address().to_bytes();
    std::memcpy(&sin6->sin6_addr, bytes.data(), bytes.size());
    plan.address_len = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;  // a name to resolve: libcurl's resolver and DNS cache
  }

  std::string path(u.encoded_path());
  if (path.empty()) path = "/";
  if (path.front() != '/' || hasDotSegment(path)) return std::nullopt;
  if (u.has_query()) path += "?" + std::string(u.encoded_query());
  if (hasLineBreak(path) || path.find(' ') != std::string::npos) return std::nullopt;

  bool own_host = false, own_accept = false, own_agent = false, own_encoding = false;
  for (const auto& [name, value] : spec.headers) {
    if (name.empty() || hasLineBreak(name) || hasLineBreak(value) ||
        name.find(':') != std::string::npos) {
      return std::nullopt;
    }
    own_host = own_host || iequals(name, "Host");
    own_accept = own_accept || iequals(name, "Accept");
    own_agent = own_agent || iequals(name, "User-Agent");
    own_encoding = own_encoding || iequals(name, "Accept-Encoding");
  }
  // As libcurl writes it: request line, Host (no port when it is 80), Accept, then
  // the configured headers in file order, then the default User-Agent.
  std::string& q = plan.request;
  q.reserve(128 + path.size());
  q += spec.method;
  q += ' ';
  q += path;
  q += " HTTP/1.1\r\n";
  if (!own_host) {
    q += "Host: ";
    q += u.encoded_host();
    if (port != 80) q += fmt::format(":{}", port);
    q += "\r\n";
  }
  if (!own_accept) q += "Accept: */*\r\n";
  // HttpProbe sets CURLOPT_ACCEPT_ENCODING "gzip" for wire facts: libcurl writes it
  // right after Accept.
  if (wire && !own_encoding) q += "Accept-Encoding: gzip\r\n";
  for (const auto& [name, value] : spec.headers) {
    q += name;
    q += value.empty() ? ":" : ": ";
    q += value;
    q += "\r\n";
  }
  if (!own_agent) q += "User-Agent: vigie\r\n";
  q += "\r\n";
  q.shrink_to_fit();  // kept by every idle check: no spare capacity
  plan.head = spec.method == "HEAD";
  if (wire) {
    plan.wire_facts = true;
    plan.accept_gzip = !own_encoding;
    plan.follow_redirects = spec.follow_redirects;
  }
  return plan;
}

}  // namespace

std::string NativeHttpPlan::ip() const {
  char text[INET6_ADDRSTRLEN] = {};
  const void* raw = address.sa.sa_family == AF_INET ? static_cast<const void*>(&address.in4.sin_addr)
                                                    : static_cast<const void*>(&address.in6.sin6_addr);
  if (::inet_ntop(address.sa.sa_family, raw, text, sizeof text) == nullptr) return {};
  return text;
}

std::string NativeHttpPlan::peer() const {
  const std::uint16_t port =
      ntohs(address.sa.sa_family == AF_INET ? address.in4.sin_port : address.in6.sin6_port);
  return fmt::format("{} port {}", ip(), port);
}

std::optional<NativeHttpPlan> planNativeHttp(const HttpSpec& spec, bool plain_options) {
  return makePlan(spec, plain_options, false);
}

std::optional<NativeHttpPlan> planNativeHttpWire(const HttpSpec& spec, bool plain_options) {
  return makePlan(spec, plain_options, true);
}

struct NativeHttpClient::State : std::enable_shared_from_this<NativeHttpClient::State> {
  State(asio::io_context& io_, const NativeHttpPlan& plan_, NativeHttpClient* owner_)
      : io(io_), plan(plan_), owner(owner_), sock(io_), timer(io_) {}

  enum class Phase { head, length, chunked, until_close, complete };
  // Chunked framing, byte by byte: size [; ext] CRLF data CRLF ... 0 CRLF trailers CRLF.
  enum class Chunk { size, ext, size_lf, data, data_cr, data_lf, trailer, trailer_line,
                     trailer_lf, end_lf };

  asio::io_context& io;
  // The client's: read only while an attempt runs (the client's destructor cancels it).
  const NativeHttpPlan& plan;
  NativeHttpClient* owner;  // null once the client is gone
  asio::generic::stream_protocol::socket sock;
  asio::steady_timer timer;
  std::uint64_t gen = 0;  // handlers of an older attempt see another value
  bool running = false;
  bool in_start = false;  // finish() must not call done inside start()
  Done done;
  NativeHttpOutcome out;

  // The attempt.
  SteadyClock::time_point t0, t_connected, t_first;
  bool connected = false, first_byte = false;
  bool read_waiting = false;  // an async_wait for reading is queued
  bool read_ready = false;    // ... and it completed before the request was sent
  std::size_t sent = 0;
  std::uint64_t max_body = 0;
  std::string* body = nullptr;

  // The response.
  Phase phase = Phase::head;
  std::string head;            // only when the head spans reads
  std::size_t head_scan = 0;   // where to look for its end next
  std::size_t head_seen = 0;   // bytes of the current head so far
  int interim = 0;
  std::uint64_t remaining = 0;  // Content-Length left, or the current chunk's
  Chunk chunk = Chunk::size;
  std::size_t chunk_line = 0;   // bytes of the current size or trailer line
  bool chunk_digit = false;

  void start(SteadyClock::time_point deadline, std::uint64_t max, std::string* b, Done d) {
    cancel();
    ++gen;
    running = true;
    in_start = true;
    done = std::move(d);
    out = NativeHttpOutcome{};
    connected = first_byte = false;
    read_waiting = read_ready = false;
    sent = 0;
    max_body = max;
    body = b;
    phase = Phase::head;
    head.clear();
    head_scan = head_seen = 0;
    interim = 0;
    remaining = 0;
    t0 = SteadyClock::now();

    // Opened by Asio rather than assigned: a socket Asio opened is closed without an
    // EPOLL_CTL_DEL (an assigned one might be a dup, so Asio deletes it first).
    boost::system::error_code ec;
    sock.open(asio::generic::stream_protocol(plan.address.sa.sa_family, IPPROTO_TCP), ec);
    if (!ec) sock.non_blocking(true, ec);
    if (ec) {
      if (isOutOfDescriptors(ec.value())) {
        out.out_of_descriptors = true;
        fail(Reason::internal, "vigie is out of file descriptors (ulimit -n): the attempt could "
                               "not open a socket");
      } else {
        fail(Reason::internal, fmt::format("cannot open a socket: {}", ec.message()));
      }
      in_start = false;
      return;
    }
    const int fd = sock.native_handle();
    timer.expires_at(deadline);
    timer.async_wait([self = shared_from_this(), g = gen](const boost::system::error_code& e) {
      if (e || !self->running || self->gen != g) return;
      self->onDeadline();
    });
    if (::connect(fd, &plan.address.sa, plan.address_len) == 0) {
      onConnected();
    } else if (errno == EINPROGRESS) {
      // The read wait now: Asio re-arms the descriptor (EPOLL_CTL_MOD) for each wait
      // it queues, so one queued after the send would cost a system call and a
      // spurious wake-up for the write edge it re-arms. Then the request at once: a
      // target on this host has finished the handshake inside connect() (the kernel
      // ran both sides), which saves the wait for writability and a wake-up of the
      // loop; elsewhere send() says EAGAIN and the write wait follows.
      waitRead();
      onConnected();
    } else {
      connectFailed(errno);
    }
    in_start = false;
  }

  // Also drops a completion that finish() posted and that has not run yet.
  void cancel() {
    ++gen;
    done = nullptr;
    if (!running) return;
    running = false;
    release();
  }

  void release() {
    boost::system::error_code ec;
    sock.close(ec);  // pending waits complete with operation_aborted, and are ignored
    timer.cancel();
    head.clear();
    if (head.capacity() > 4096) head.shrink_to_fit();
    body = nullptr;
  }

  void waitWrite() {
    sock.async_wait(asio::socket_base::wait_write,
                    [self = shared_from_this(), g = gen](const boost::system::error_code& e) {
                      if (!self->running || self->gen != g) return;
                      if (e) return self->fail(Reason::internal, e.message());
                      self->onConnected();
                    });
  }

  void waitRead() {
    read_waiting = true;
    sock.async_wait(asio::socket_base::wait_read,
                    [self = shared_from_this(), g = gen](const boost::system::error_code& e) {
                      if (!self->running || self->gen != g) return;
                      self->read_waiting = false;
                      if (e) return self->fail(Reason::internal, e.message());
                      if (self->sent < self->plan.request.size()) {
                        self->read_ready = true;  // a failed connect: send says why
                        return;
                      }
                      self->onReadable();
                    });
  }

  // Writable: connected, or the connect failed (send then says why).
  void onConnected() {
    const int fd = sock.native_handle();
    while (sent < plan.request.size()) {
      const ssize_t n = ::send(fd, plan.request.data() + sent, plan.request.size() - sent,
                               MSG_NOSIGNAL);
      if (n > 0) {
        if (!connected) {
          connected = true;
          t_connected = SteadyClock::now();
        }
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return waitWrite();
      return connected ? fail(Reason::connect, fmt::format("Send failure: {}",
                                                           std::strerror(errno)))
                       : connectFailed(errno);
    }
    // No read now: the answer cannot be there yet; the read wait queued at connect
    // (or now) reports it.
    if (read_ready) {
      read_ready = false;
      return onReadable();
    }
    if (!read_waiting) waitRead();
  }

  void connectFailed(int err) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0);
    fail(Reason::connect, fmt::format("Failed to connect to {} after {} ms: {}", plan.peer(),
                                      ms.count(), std::strerror(err)));
  }

  void onReadable() {
    const int fd = sock.native_handle();
    char* buf = readBuffer();
    for (;;) {
      const ssize_t n = ::recv(fd, buf, kReadBuffer, 0);
      if (n > 0) {
        if (!first_byte) {
          first_byte = true;
          t_first = SteadyClock::now();
        }
        if (!consume(buf, static_cast<std::size_t>(n))) return;  // finished
        continue;
      }
      if (n == 0) return onEof();
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return waitRead();
      return onRecvError(errno);
    }
  }

  void onRecvError(int err) {
    if (out.status == 0) {
      return fail(Reason::connect, fmt::format("connection lost before a response: Recv failure: {}",
                                               std::strerror(err)));
    }
    fail(Reason::http_protocol, fmt::format("connection lost mid-body after {} bytes: Recv "
                                            "failure: {}",
                                            out.received, std::strerror(err)));
  }

  void onEof() {
    switch (phase) {
      case Phase::head:
        if (head_seen == 0 && out.status == 0) {
          return fail(Reason::http_protocol, "server closed the connection without a response");
        }
        return fail(Reason::http_protocol,
                    "not an HTTP response: the connection closed inside the response headers");
      case Phase::length:
        return fail(Reason::http_protocol,
                    fmt::format("body cut short: transfer closed with {} bytes remaining to read",
                                remaining));
      case Phase::chunked:
        return fail(Reason::http_protocol,
                    "body cut short: transfer closed with outstanding read data remaining");
      case Phase::until_close:
      case Phase::complete:
        return succeed();
    }
  }

  void onDeadline() {
    const double elapsed = secondsBetween(t0, SteadyClock::now());
    std::string where = !connected     ? std::string("while connecting")
                        : !first_byte  ? std::string("waiting for the response")
                                       : fmt::format("while reading the body ({} bytes received)",
                                                     out.received);
    fail(Reason::timeout, fmt::format("timed out {} after {:.3f} s", where, elapsed));
  }

  // Takes `n` bytes from the socket; false once the attempt is finished.
  bool consume(const char* p, std::size_t n) {
    while (n > 0) {
      switch (phase) {
        case Phase::head: {
          const std::size_t used = consumeHead(p, n);
          if (!running) return false;
          if (used == 0) return true;  // all kept, the head goes on in the next read
          p += used;
          n -= used;
          break;
        }
        case Phase::length: {
          const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, n));
          if (!deliver(p, take)) return false;
          remaining -= take;
          p += take;
          n -= take;
          if (remaining == 0) phase = Phase::complete;
          break;
        }
        case Phase::chunked: {
          const std::size_t used = consumeChunked(p, n);
          if (!running) return false;
          p += used;
          n -= used;
          break;
        }
        case Phase::until_close:
          if (!deliver(p, n)) return false;
          n = 0;
          break;
        case Phase::complete:
          n = 0;  // bytes after the response (a keep-alive server's next answer): ignored
          break;
      }
      if (phase == Phase::complete) {
        succeed();
        return false;
      }
    }
    return true;
  }

  bool deliver(const char* p, std::size_t n) {
    if (n == 0) return true;
    out.received += n;
    if (out.received > max_body) {
      fail(Reason::body_too_large, fmt::format("body larger than max_body ({} bytes)", max_body));
      return false;
    }
    if (body != nullptr) body->append(p, n);
    return true;
  }

  // Bytes of the head used (the rest is body), 0 when all were kept for later.
  // Finishes the attempt on a malformed head.
  std::size_t consumeHead(const char* p, std::size_t n) {
    // Not HTTP at all (a TLS server, garbage): say so at the first bytes.
    static constexpr std::string_view kProto = "HTTP/";
    const std::size_t checked = std::min(head_seen, kProto.size());
    for (std::size_t i = checked; i < kProto.size() && i - head_seen < n; ++i) {
      if (p[i - head_seen] != kProto[i]) {
        fail(Reason::http_protocol, "not an HTTP response: it does not start with HTTP/");
        return 0;
      }
    }
    const char* data = p;
    std::size_t len = n;
    std::size_t from = 0;
    if (!head.empty()) {
      head.append(p, n);
      data = head.data();
      len = head.size();
      from = head_scan;
    }
    std::size_t end = 0;
    for (std::size_t i = from; i < len; ++i) {
      if (data[i] != '\n') continue;
      if (i + 1 < len && data[i + 1] == '\n') {
        end = i + 2;
        break;
      }
      if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n') {
        end = i + 3;
        break;
      }
    }
    if (end == 0) {
      if (len > kMaxHead) {
        fail(Reason::http_protocol,
             fmt::format("response headers larger than {} KiB", kMaxHead / 1024));
        return 0;
      }
      if (head.empty()) head.assign(p, n);
      head_seen = head.size();
      head_scan = len >= 2 ? len - 2 : 0;
      return 0;
    }
    if (end > kMaxHead) {
      fail(Reason::http_protocol,
           fmt::format("response headers larger than {} KiB", kMaxHead / 1024));
      return 0;
    }
    const std::size_t previous = head.empty() ? 0 : head.size() - n;  // bytes kept before p
    if (!parseHead(std::string_view(data, end))) return 0;
    head.clear();
    head_scan = 0;
    head_seen = 0;
    return end - previous;
  }

  // The status line and headers; sets the body phase. False (and finished) when bad.
  bool parseHead(std::string_view h) {
    if (h.find('\0') != std::string_view::npos) {
      fail(Reason::http_protocol, "not an HTTP response: a NUL byte in the headers");
      return false;
    }
    auto nextLine = [&h]() {
      const std::size_t nl = h.find('\n');
      std::string_view line = h.substr(0, nl);
      h.remove_prefix(nl == std::string_view::npos ? h.size() : nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      return line;
    };
    const std::string_view status_line = nextLine();
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
        (status_line[7] != '0' && status_line[7] != '1') || status_line[8] != ' ' ||
        !digit(status_line[9]) || !digit(status_line[10]) || !digit(status_line[11]) ||
        (status_line.size() > 12 && status_line[12] != ' ')) {
      fail(Reason::http_protocol, "not an HTTP response: a malformed status line");
      return false;
    }
    const int status = (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 +
                       (status_line[11] - '0');
    std::optional<std::uint64_t> length;
    bool chunked = false, encoded = false;
    std::string content_type;
    bool has_type = false;
    bool content_encoding = false, location = false;
    std::string_view last_modified;
    for (std::string_view line = nextLine(); !line.empty(); line = nextLine()) {
      if (line.front() == ' ' || line.front() == '\t') continue;  // obsolete folding
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        fail(Reason::http_protocol, "not an HTTP response: a header line without a name");
        return false;
      }
      const std::string_view name = trim(line.substr(0, colon));
      const std::string_view value = trim(line.substr(colon + 1));
      if (iequals(name, "Content-Length")) {
        std::uint64_t v = 0;
        if (value.empty() || value.size() > 18 ||
            !std::all_of(value.begin(), value.end(), digit)) {
          fail(Reason::http_protocol, "not an HTTP response: a bad Content-Length");
          return false;
        }
        for (char c : value) v = v * 10 + static_cast<std::uint64_t>(c - '0');
        if (length && *length != v) {
          fail(Reason::http_protocol, "not an HTTP response: two different Content-Length");
          return false;
        }
        length = v;
      } else if (iequals(name, "Transfer-Encoding")) {
        encoded = true;
        const std::size_t comma = value.rfind(',');
        chunked = iequals(trim(comma == std::string_view::npos ? value : value.substr(comma + 1)),
                          "chunked");
      } else if (iequals(name, "Content-Type")) {
        content_type.assign(value);
        has_type = true;
      } else if (plan.wire_facts) {
        if (iequals(name, "Content-Encoding")) {
          content_encoding = true;
        } else if (iequals(name, "Location")) {
          location = true;
        } else if (iequals(name, "Last-Modified")) {
          last_modified = value;  // the last one wins, as in libcurl
        }
      }
    }
    if (status >= 100 && status <= 199 && status != 101) {
      if (++interim > kMaxInterim) {
        fail(Reason::http_protocol, "not an HTTP response: too many interim (1xx) responses");
        return false;
      }
      return true;  // the final response follows
    }
    out.status = status;
    out.version = status_line[7] == '0' ? 10 : 11;
    if (has_type) out.content_type = std::move(content_type);
    if (plan.wire_facts) {
      // What libcurl would end otherwise, or whose Content-Length it reports its own
      // way: handed back, the request is made again through it.
      const bool handoff = (plan.accept_gzip && content_encoding) ||
                           (plan.follow_redirects && status >= 300 && status <= 399 && location) ||
                           status == 101 || status == 204 || status == 304 ||
                           (encoded && (!chunked || length));
      if (handoff) {
        out.handoff = true;
        succeed();
        return false;
      }
      out.content_length = length ? static_cast<std::int64_t>(*length) : -1;
      out.last_modified.assign(last_modified);
    }
    if (plan.head || status == 204 || status == 304 || status == 101) {
      phase = Phase::complete;
    } else if (chunked) {
      phase = Phase::chunked;
      chunk = Chunk::size;
      chunk_line = 0;
      chunk_digit = false;
      remaining = 0;
    } else if (encoded || !length) {
      phase = Phase::until_close;
    } else if (*length > max_body) {
      // As CURLOPT_MAXFILESIZE: refused before a byte of the body is read.
      fail(Reason::body_too_large, fmt::format("body larger than max_body ({} bytes)", max_body));
      return false;
    } else {
      remaining = *length;
      phase = remaining == 0 ? Phase::complete : Phase::length;
    }
    return true;
  }

  std::size_t consumeChunked(const char* p, std::size_t n) {
    std::size_t i = 0;
    auto bad = [this](std::string_view why) {
      fail(Reason::http_protocol, fmt::format("bad chunked encoding: {}", why));
    };
    while (i < n) {
      const char c = p[i];
      switch (chunk) {
        case Chunk::size: {
          int v = -1;
          if (c >= '0' && c <= '9') v = c - '0';
          if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
          if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
          if (v >= 0) {
            if (remaining > (std::uint64_t{1} << 59)) return bad("chunk size too large"), i;
            remaining = remaining * 16 + static_cast<std::uint64_t>(v);
            chunk_digit = true;
          } else if (chunk_digit && (c == ';' || c == ' ' || c == '\t')) {
            chunk = Chunk::ext;
          } else if (chunk_digit && c == '\r') {
            chunk = Chunk::size_lf;
          } else {
            return bad("not a chunk size"), i;
          }
          ++i;
          if (++chunk_line > kMaxChunkLine) return bad("chunk size line too long"), i;
          break;
        }
        case Chunk::ext:
          if (c == '\r') chunk = Chunk::size_lf;
          ++i;
          if (++chunk_line > kMaxChunkLine) return bad("chunk extension too long"), i;
          break;
        case Chunk::size_lf:
          if (c != '\n') return bad("no line feed after the chunk size"), i;
          ++i;
          chunk_line = 0;
          chunk_digit = false;
          chunk = remaining == 0 ? Chunk::trailer : Chunk::data;
          break;
        case Chunk::data: {
          const std::size_t take =
              static_cast<std::size_t>(std::min<std::uint64_t>(remaining, n - i));
          if (!deliver(p + i, take)) return i;
          remaining -= take;
          i += take;
          if (remaining == 0) chunk = Chunk::data_cr;
          break;
        }
        case Chunk::data_cr:
          if (c != '\r') return bad("no CRLF after the chunk data"), i;
          ++i;
          chunk = Chunk::data_lf;
          break;
        case Chunk::data_lf:
          if (c != '\n') return bad("no CRLF after the chunk data"), i;
          ++i;
          chunk = Chunk::size;
          break;
        case Chunk::trailer:
          ++i;
          if (c == '\r') {
            chunk = Chunk::end_lf;
          } else {
            chunk = Chunk::trailer_line;
            if (++chunk_line > kMaxHead) return bad("trailers too large"), i;
          }
          break;
        case Chunk::trailer_line:
          ++i;
          if (++chunk_line > kMaxHead) return bad("trailers too large"), i;
          if (c == '\r') chunk = Chunk::trailer_lf;
          break;
        case Chunk::trailer_lf:
          if (c != '\n') return bad("no line feed after a trailer"), i;
          ++i;
          chunk = Chunk::trailer;
          break;
        case Chunk::end_lf:
          if (c != '\n') return bad("no line feed after the last chunk"), i;
          ++i;
          phase = Phase::complete;
          return i;
      }
    }
    return i;
  }

  void fail(Reason reason, std::string detail) {
    out.reason = reason;
    out.detail = std::move(detail);
    finish();
  }

  void succeed() {
    out.reason = Reason::none;
    finish();
  }

  void finish() {
    if (!running) return;
    running = false;
    const auto end = SteadyClock::now();
    out.duration = secondsBetween(t0, end);
    if (connected) out.phases.connect = secondsBetween(t0, t_connected);
    if (first_byte) {
      out.phases.processing = secondsBetween(t_connected, t_first);
      out.phases.transfer = secondsBetween(t_first, end);
    }
    release();
    if (in_start) {
      // Never inside start(): the caller's done runs from the loop.
      asio::post(io, [self = shared_from_this(), g = gen] {
        if (self->gen == g && !self->running) self->callDone();
      });
      return;
    }
    callDone();
  }

  // Runs only from a handler (or the completion start() posted), which holds a
  // shared_ptr to this state: dropping the client's reference here is safe.
  void callDone() {
    Done d = std::move(done);
    done = nullptr;
    if (d) d();  // may destroy the client (owner is then null) or start another attempt
    if (owner != nullptr && !running && owner->state_.get() == this) {
      owner->state_.reset();  // idle: the client keeps its plan only
    }
  }
};

NativeHttpClient::NativeHttpClient(boost::asio::io_context& io, NativeHttpPlan plan)
    : io_(io), plan_(std::move(plan)) {}

NativeHttpClient::~NativeHttpClient() {
  if (state_) {
    state_->owner = nullptr;
    state_->cancel();
  }
}

void NativeHttpClient::start(SteadyClock::time_point deadline, std::uint64_t max_body,
                             std::string* body, Done done) {
  // Reused when start() comes from inside done (a retry); made afresh otherwise.
  if (!state_) state_ = std::make_shared<State>(io_, plan_, this);
  state_->start(deadline, max_body, body, std::move(done));
}

void NativeHttpClient::cancel() {
  if (!state_) return;
  state_->owner = nullptr;
  state_->cancel();
  state_.reset();  // a pending handler keeps it until it sees operation_aborted
}

const NativeHttpOutcome& NativeHttpClient::outcome() const {
  static const NativeHttpOutcome kNone;
  return state_ ? state_->out : kNone;
}

}  // namespace vigie
