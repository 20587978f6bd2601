#pragma once
/// \file
/// libcurl's multi/socket interface driven by one Boost.Asio io_context.
///
/// Asio owns every connection socket (curl's open/close-socket callbacks), waits for
/// readiness with async_wait and a steady_timer stands for curl's single timeout, so
/// thousands of transfers run on the loop thread without a thread per transfer and
/// without a blocking call (name resolution uses curl's threaded resolver).

#include <curl/curl.h>

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <functional>
#include <memory>

namespace vigie {

/// Runs libcurl easy handles on an io_context.
///
/// Threading: every member is called on the thread that runs `io` (the loop), and
/// every Done callback is invoked there. Not copyable, not movable.
///
/// Transfers share one CURLSH (DNS cache and TLS session cache). add() installs the
/// driver's own socket, share and signal options on the easy handle; the caller
/// sets everything else (URL, timeouts, CURLOPT_FRESH_CONNECT/FORBID_REUSE, ...).
class CurlDriver {
 public:
  /// Called once per add(), on the loop thread, after the transfer has been taken
  /// out of the multi handle: the callback may add(), remove(), reset or clean up
  /// the easy handle, or destroy its owner. Never called synchronously inside add().
  using Done = std::function<void(CURLcode, CURL*)>;

  /// Keeps a reference to `io`, which must outlive the driver. Throws
  /// std::runtime_error if libcurl cannot be initialised (start-up only).
  explicit CurlDriver(boost::asio::io_context& io);
  /// Removes every transfer still running (their Done is never called) and closes
  /// every socket. Must run on the loop thread (or after the loop stopped).
  ~CurlDriver();

  CurlDriver(const CurlDriver&) = delete;
  CurlDriver& operator=(const CurlDriver&) = delete;

  /// Starts a transfer. The easy handle stays owned by the caller and must stay
  /// alive until `done` runs or remove() is called. Adding a handle that is already
  /// running completes the new request with CURLE_FAILED_INIT (asynchronously).
  /// Must not be called from inside a libcurl callback (write, header, ...).
  void add(CURL* easy, Done done);

  /// Cancels a transfer: its Done is never called. No-op for an unknown handle.
  /// Must not be called from inside a libcurl callback; safe from any Done.
  void remove(CURL* easy);

  /// An easy handle for one transfer, from the driver's pool of idle handles or new;
  /// nullptr only if libcurl cannot allocate one. A libcurl easy handle carries a
  /// 16 KiB receive buffer: pooling keeps one per transfer in flight instead of one
  /// per configured check. Give it back with release() once its result is read.
  CURL* acquire();

  /// Returns a handle from acquire() that is not running (completed, removed or never
  /// added): reset (every option back to its default) and kept idle for reuse, or
  /// cleaned up when enough are idle already. nullptr is ignored.
  void release(CURL* easy);

  /// Idle handles kept for reuse (for tests).
  std::size_t idleHandles() const;

  /// Transfers added and not yet completed or removed.
  std::size_t active() const;

  /// Sockets currently open or watched by the driver (for leak checks in tests).
  std::size_t openSockets() const;

  /// Inside the Done callback of `easy`: true when the transfer failed because the
  /// process had no descriptor left (EMFILE/ENFILE) for its socket or for watching
  /// curl's resolver. That is vigie's limit, not the target's fault (its code is then
  /// CURLE_COULDNT_CONNECT). Other transfers are never disturbed by it.
  bool outOfDescriptors(CURL* easy) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared so that pending Asio handlers can detect its end
};

}  // namespace vigie
