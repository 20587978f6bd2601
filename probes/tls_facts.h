#pragma once
/// \file
/// What blackbox_exporter reports of a TLS connection, read from an OpenSSL SSL*:
/// shared by the HTTP probe (curl's CURLINFO_TLS_SSL_PTR) and the TCP probe (Asio).

#include <openssl/ssl.h>

#include "probes/probe.h"

namespace vigie {

/// The facts of a live, handshaken connection: protocol version named as Go names
/// it ("TLS 1.2"), the earliest expiry of the chain the server presented, the
/// earliest expiry of the verified chain (only when `verified`: peer verification
/// was on and succeeded), and the leaf's SHA-256 fingerprint, subject, issuer
/// (RFC 2253) and DNS subjectAltNames. Pure read of `ssl`; any thread that owns it.
TlsFacts tlsFactsOf(const SSL* ssl, bool verified);

/// "TLSv1.3" (OpenSSL) -> "TLS 1.3" (Go, blackbox's label). Unknown names are kept.
std::string goTlsVersionName(std::string_view openssl_name);

}  // namespace vigie
