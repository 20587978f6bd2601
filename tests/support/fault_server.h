#pragma once
/// \file
/// A misbehaving TCP server for tests, on 127.0.0.1 with a kernel-chosen port, run by
/// its own thread. Each mode is one way a target can hurt a probe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace vigie::test {

class FaultServer {
 public:
  enum class Mode {
    trickle,         // HTTP 200 with Content-Length 1000, then one body byte per second
    reset_mid_body,  // headers + 1000 of 100000 announced bytes, then a TCP reset (after 200 ms)
    never_answer,    // accepts, reads, never writes a byte
    garbage,         // answers the request with bytes that are not HTTP, then closes
    huge_body,       // HTTP 200 without length, then an endless body until the client leaves
    tls_stall,       // accepts TCP (a TLS port), reads the ClientHello, never answers
    redirect_loop,   // every request: 302 to the same path (a redirect to itself)
    nested_json,     // a health+json page of 100,000 nested arrays ([[[...]]])
    hostile_bytes,   // invalid UTF-8 and control bytes in a header and NUL bytes and
                     // invalid UTF-8 in a health+json page that says "fail"
    nul_header,      // a NUL byte inside a response header
    gib_body,        // HTTP 200, chunked (no length announced), a 1 GiB body
  };

  /// Listens at once; connections are served until destruction.
  /// Throws std::runtime_error if it cannot listen.
  explicit FaultServer(Mode mode);
  /// Stops the thread and closes every connection.
  ~FaultServer();
  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  int port() const;
  /// "http://127.0.0.1:<port><path>", or https:// for tls_stall.
  std::string url(std::string_view path = "/") const;
  /// Connections accepted so far (any thread).
  std::size_t accepted() const;
  /// Connections open now, from the server's side (any thread).
  std::size_t open() const;
  /// Response bytes written so far, all connections together (any thread).
  std::uint64_t bytesSent() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigie::test
