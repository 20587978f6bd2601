#include "collector/curl_driver.h"

#include <cerrno>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "collector/fd_limit.h"

namespace vigie {
namespace {

namespace asio = boost::asio;
using Socket = asio::generic::stream_protocol::socket;

// One descriptor watched for curl. `owned`: opened by our opensocket callback, closed
// by our closesocket callback. Otherwise curl created it itself (the threaded
// resolver's socketpair): we watch a dup() of it, so curl closing its own descriptor
// never leaves Asio's reactor with a dangling or reused fd.
struct Watched {
  explicit Watched(asio::io_context& io, bool owned_) : sock(io), owned(owned_) {}
  Socket sock;
  bool owned;
  int what = 0;  // CURL_POLL_* currently wanted by curl
  bool reading = false;
  bool writing = false;
  bool closed = false;

  void close() {
    if (closed) return;
    closed = true;
    boost::system::error_code ec;
    sock.cancel(ec);
    sock.close(ec);
  }
};

// Idle easy handles kept for reuse: enough for the transfers a busy loop starts
// between two completions; a burst above it (hung targets) allocates and frees.
constexpr std::size_t kMaxIdleHandles = 256;

// A global init once per process; curl_global_init is not thread-safe, and the
// engine creates its driver before any other thread uses curl.
void globalInitOnce() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) throw std::runtime_error("curl_global_init failed");
}

}  // namespace

struct CurlDriver::Impl : std::enable_shared_from_this<CurlDriver::Impl> {
  struct Transfer {
    Done done;
    bool added = false;  // false: add failed, a completion is posted
    std::uint64_t gen = 0;
    // Set by the open-socket callback (whose data points here) when socket() found no
    // descriptor; by the socket callback when it could not watch curl's resolver.
    Impl* impl = nullptr;
    CURL* easy = nullptr;
    bool out_of_fds = false;
  };

  explicit Impl(asio::io_context& io_) : io(io_), timer(io_) {
    globalInitOnce();
    multi = curl_multi_init();
    share = curl_share_init();
    if (multi == nullptr || share == nullptr) {
      if (multi) curl_multi_cleanup(multi);
      if (share) curl_share_cleanup(share);
      throw std::runtime_error("cannot create a libcurl multi or share handle");
    }
    // Only the loop thread touches the share (the resolver threads do not), so it
    // needs no lock functions.
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);

    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &Impl::onSocket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &Impl::onTimer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
    // Probes use fresh connections, so the cache only holds what callers choose to
    // keep; a small cap bounds idle sockets whatever they do.
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 64L);
  }

  ~Impl() {
    shutting_down = true;
    for (auto& [easy, t] : transfers) {
      if (t.added) {
        curl_multi_remove_handle(multi, easy);
        curl_easy_setopt(easy, CURLOPT_SHARE, nullptr);
      }
    }
    transfers.clear();
    curl_multi_cleanup(multi);  // closes cached connections through onCloseSocket
    if (curl_share_cleanup(share) != CURLSHE_OK) {
      spdlog::warn("curl driver: share handle still in use at exit, leaked");
    }
    for (auto& [fd, w] : sockets) w->close();
    sockets.clear();
    timer.cancel();
    for (CURL* easy : idle) curl_easy_cleanup(easy);
  }

  // ---- curl callbacks: never call back into curl from these ----

  static curl_socket_t onOpenSocket(void* clientp, curlsocktype purpose,
                                    struct curl_sockaddr* addr) {
    auto* transfer = static_cast<Transfer*>(clientp);
    auto* self = transfer->impl;
    if (purpose != CURLSOCKTYPE_IPCXN || (addr->family != AF_INET && addr->family != AF_INET6) ||
        addr->socktype != SOCK_STREAM) {
      return CURL_SOCKET_BAD;
    }
    auto w = std::make_shared<Watched>(self->io, true);
    boost::system::error_code ec;
    w->sock.open(asio::generic::stream_protocol(addr->family, addr->protocol), ec);
    if (ec) {
      if (isOutOfDescriptors(ec.value())) transfer->out_of_fds = true;
      return CURL_SOCKET_BAD;
    }
    const int fd = w->sock.native_handle();
    // The number may have belonged to a foreign descriptor curl closed without telling
    // us; that entry is stale (only our dup of it is still open).
    if (auto it = self->sockets.find(fd); it != self->sockets.end()) {
      it->second->close();
      self->sockets.erase(it);
    }
    self->sockets.emplace(fd, std::move(w));
    return fd;
  }

  static int onCloseSocket(void* clientp, curl_socket_t fd) {
    auto* self = static_cast<Impl*>(clientp);
    auto it = self->sockets.find(fd);
    if (it == self->sockets.end() || !it->second->owned) {
      return ::close(fd);
    }
    it->second->close();  // a pending async_wait completes with operation_aborted
    self->sockets.erase(it);
    return 0;
  }

  static int onSocket(CURL* easy, curl_socket_t fd, int what, void* userp, void* /*socketp*/) {
    auto* self = static_cast<Impl*>(userp);
    auto it = self->sockets.find(fd);
    if (what == CURL_POLL_REMOVE) {
      if (it == self->sockets.end()) return 0;
      it->second->what = 0;
      // An owned socket stays until closesocket; its pending waits are ignored when
      // they fire. A foreign one is no longer curl's business: drop our dup.
      if (!it->second->owned) {
        it->second->close();
        self->sockets.erase(it);
      }
      return 0;
    }
    if (self->shutting_down) return 0;
    if (it == self->sockets.end()) {
      // Returning -1 here would make curl abort every transfer of the multi handle,
      // so a descriptor that cannot be watched fails its own transfer only.
      const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (dup < 0) {
        self->failLater(easy, isOutOfDescriptors(errno));
        return 0;
      }
      auto w = std::make_shared<Watched>(self->io, false);
      boost::system::error_code ec;
      w->sock.assign(asio::generic::stream_protocol(AF_UNIX, 0), dup, ec);
      if (ec) {
        ::close(dup);
        self->failLater(easy, false);
        return 0;
      }
      it = self->sockets.emplace(fd, std::move(w)).first;
    }
    it->second->what = what;
    self->arm(it->second, fd);
    return 0;
  }

  // curl calls this each time its earliest timeout moves, several times per transfer.
  // Re-arming an Asio timer each time costs a cancelled wait (a handler run) and
  // often a timerfd_settime: instead the wanted time is noted, and the timer is moved
  // only when it must fire earlier. A timer firing before the wanted time re-arms
  // itself for it (curl does not repeat an unchanged timeout).
  static int onTimer(CURLM* /*multi*/, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    if (timeout_ms < 0 || self->shutting_down) {
      // No timeout wanted (curl says so once, when its last transfer ends): drop the
      // pending wait too, so an idle driver holds no work on the loop (a loop run
      // until it has nothing to do returns now, not at a stale transfer timeout).
      self->wanted.reset();
      if (self->armed) {
        self->armed.reset();
        self->timer.cancel();
      }
      return 0;
    }
    const auto now = std::chrono::steady_clock::now();
    self->wanted = now + std::chrono::milliseconds(timeout_ms);
    if (timeout_ms == 0) {
      // Now, but not from inside this callback (socket_action must not nest).
      if (!self->posted) {
        self->posted = true;
        asio::post(self->io, [weak = self->weak_from_this()] {
          auto impl = weak.lock();
          if (!impl) return;
          impl->posted = false;
          impl->onTimeout();
        });
      }
      return 0;
    }
    if (!self->armed || *self->armed > *self->wanted) self->armTimer(*self->wanted);
    return 0;
  }

  void armTimer(std::chrono::steady_clock::time_point at) {
    armed = at;
    timer.expires_at(at);  // cancels a pending wait: it completes with an error, ignored
    timer.async_wait([weak = weak_from_this(), at](const boost::system::error_code& ec) {
      if (ec) return;
      auto impl = weak.lock();
      if (!impl || impl->armed != at) return;
      impl->armed.reset();
      impl->onTimeout();
    });
  }

  void onTimeout() {
    if (!wanted || shutting_down) return;
    if (*wanted > std::chrono::steady_clock::now()) {
      if (!armed || *armed > *wanted) armTimer(*wanted);
      return;
    }
    wanted.reset();  // curl sets the next one during the action
    action(CURL_SOCKET_TIMEOUT, 0);
  }

  // ---- loop side ----

  void arm(const std::shared_ptr<Watched>& w, curl_socket_t fd) {
    if (w->closed || shutting_down) return;
    if ((w->what & CURL_POLL_IN) && !w->reading) {
      w->reading = true;
      w->sock.async_wait(Socket::wait_read,
                         [weak = weak_from_this(), w, fd](const boost::system::error_code& ec) {
                           onReady(weak, w, fd, CURL_CSELECT_IN, ec);
                         });
    }
    if ((w->what & CURL_POLL_OUT) && !w->writing) {
      w->writing = true;
      w->sock.async_wait(Socket::wait_write,
                         [weak = weak_from_this(), w, fd](const boost::system::error_code& ec) {
                           onReady(weak, w, fd, CURL_CSELECT_OUT, ec);
                         });
    }
  }

  // `w` is held by the handler, so the socket object outlives the wait even when
  // curl closed it meanwhile; `closed` says so and nothing touches it then.
  static void onReady(const std::weak_ptr<Impl>& weak, const std::shared_ptr<Watched>& w,
                      curl_socket_t fd, int dir, const boost::system::error_code& ec) {
    (dir == CURL_CSELECT_IN ? w->reading : w->writing) = false;
    if (w->closed) return;
    auto impl = weak.lock();
    if (!impl) return;
    const int wanted = dir == CURL_CSELECT_IN ? CURL_POLL_IN : CURL_POLL_OUT;
    if (ec == asio::error::operation_aborted) {
      impl->arm(w, fd);
      return;
    }
    if ((w->what & wanted) == 0) return;  // interest dropped while we waited
    impl->action(fd, ec ? (dir | CURL_CSELECT_ERR) : dir);
    if (!ec) impl->arm(w, fd);  // re-arm from curl's current interest
  }

  void action(curl_socket_t fd, int flags) {
    int running = 0;
    const CURLMcode mc = curl_multi_socket_action(multi, fd, flags, &running);
    if (mc != CURLM_OK) {
      spdlog::error("curl_multi_socket_action: {}", curl_multi_strerror(mc));
    }
    drain();
  }

  void drain() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode rc = msg->data.result;
      // msg is invalid after remove_handle: everything needed was copied above.
      curl_multi_remove_handle(multi, easy);
      curl_easy_setopt(easy, CURLOPT_SHARE, nullptr);
      auto it = transfers.find(easy);
      if (it == transfers.end()) continue;
      complete(it, rc);
    }
  }

  // Takes the transfer out of the table and calls its Done, which may add/remove
  // transfers, even destroy the easy.
  void complete(std::unordered_map<CURL*, Transfer>::iterator it, CURLcode rc) {
    CURL* easy = it->first;
    Done done = std::move(it->second.done);
    const bool out_of_fds = it->second.out_of_fds;
    transfers.erase(it);
    completing_out_of_fds = out_of_fds ? easy : nullptr;
    if (done) done(out_of_fds ? CURLE_COULDNT_CONNECT : rc, easy);
    completing_out_of_fds = nullptr;
  }

  // Ends a running transfer from the loop, outside curl's callbacks.
  void failLater(CURL* easy, bool out_of_fds) {
    auto it = transfers.find(easy);
    if (it == transfers.end()) return;
    if (out_of_fds) it->second.out_of_fds = true;
    asio::post(io, [weak = weak_from_this(), easy, gen = it->second.gen] {
      auto impl = weak.lock();
      if (!impl) return;
      auto it = impl->transfers.find(easy);
      if (it == impl->transfers.end() || it->second.gen != gen || !it->second.added) return;
      curl_multi_remove_handle(impl->multi, easy);
      curl_easy_setopt(easy, CURLOPT_SHARE, nullptr);
      impl->complete(it, CURLE_COULDNT_RESOLVE_HOST);
    });
  }

  void postFailure(CURL* easy, std::uint64_t gen) {
    asio::post(io, [weak = weak_from_this(), easy, gen] {
      auto impl = weak.lock();
      if (!impl) return;
      auto it = impl->transfers.find(easy);
      if (it == impl->transfers.end() || it->second.gen != gen || it->second.added) return;
      impl->complete(it, CURLE_FAILED_INIT);
    });
  }

  void add(CURL* easy, Done done) {
    const std::uint64_t gen = ++next_gen;
    if (transfers.count(easy) != 0) {
      // Already running: fail the new request alone, without disturbing the first.
      asio::post(io, [weak = weak_from_this(), easy, done = std::move(done)] {
        if (weak.lock() && done) done(CURLE_FAILED_INIT, easy);
      });
      return;
    }
    // The entry first: its address (stable in an unordered_map) is the open-socket
    // callback's data.
    Transfer& t = transfers.emplace(easy, Transfer{std::move(done), false, gen}).first->second;
    t.impl = this;
    t.easy = easy;
    curl_easy_setopt(easy, CURLOPT_SHARE, share);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &Impl::onOpenSocket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, &Impl::onCloseSocket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, this);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    const CURLMcode mc = curl_multi_add_handle(multi, easy);
    if (mc == CURLM_OK) {
      t.added = true;
    } else {
      spdlog::error("curl_multi_add_handle: {}", curl_multi_strerror(mc));
      curl_easy_setopt(easy, CURLOPT_SHARE, nullptr);
      postFailure(easy, gen);
    }
  }

  void remove(CURL* easy) {
    auto it = transfers.find(easy);
    if (it == transfers.end()) return;
    const bool added = it->second.added;
    transfers.erase(it);
    if (added) {
      curl_multi_remove_handle(multi, easy);
      curl_easy_setopt(easy, CURLOPT_SHARE, nullptr);
    }
  }

  CURL* acquire() {
    if (idle.empty()) return curl_easy_init();
    CURL* easy = idle.back();
    idle.pop_back();
    return easy;
  }

  void release(CURL* easy) {
    if (easy == nullptr) return;
    if (transfers.count(easy) != 0) remove(easy);  // a caller's slip: never free it running
    if (idle.size() >= kMaxIdleHandles) {
      curl_easy_cleanup(easy);
      return;
    }
    curl_easy_reset(easy);  // drops pointers into the caller's buffers
    idle.push_back(easy);
  }

  asio::io_context& io;
  asio::steady_timer timer;
  std::optional<std::chrono::steady_clock::time_point> wanted;  // curl's timeout, if any
  std::optional<std::chrono::steady_clock::time_point> armed;   // when `timer` fires
  bool posted = false;  // a zero timeout is queued on the loop
  std::vector<CURL*> idle;
  CURLM* multi = nullptr;
  CURLSH* share = nullptr;
  bool shutting_down = false;
  CURL* completing_out_of_fds = nullptr;  // during a Done call, see outOfDescriptors()
  std::uint64_t next_gen = 0;
  std::unordered_map<CURL*, Transfer> transfers;
  std::unordered_map<curl_socket_t, std::shared_ptr<Watched>> sockets;
};

CurlDriver::CurlDriver(boost::asio::io_context& io) : impl_(std::make_shared<Impl>(io)) {}

CurlDriver::~CurlDriver() = default;

void CurlDriver::add(CURL* easy, Done done) { impl_->add(easy, std::move(done)); }

void CurlDriver::remove(CURL* easy) { impl_->remove(easy); }

CURL* CurlDriver::acquire() { return impl_->acquire(); }

void CurlDriver::release(CURL* easy) { impl_->release(easy); }

std::size_t CurlDriver::idleHandles() const { return impl_->idle.size(); }

std::size_t CurlDriver::active() const { return impl_->transfers.size(); }

std::size_t CurlDriver::openSockets() const { return impl_->sockets.size(); }

bool CurlDriver::outOfDescriptors(CURL* easy) const {
  return easy != nullptr && impl_->completing_out_of_fds == easy;
}

}  // namespace vigie
