#pragma once
/// \file
/// Test certificates made at test time with OpenSSL: a CA, and server certificates
/// for localhost, 127.0.0.1 and ::1 with a chosen validity (valid, expiring, expired).

#include <chrono>
#include <memory>
#include <string>

namespace vigie::test {

/// PEM files of one issued certificate.
struct CertFiles {
  std::string cert;  // certificate (PEM)
  std::string key;   // private key (PEM, unencrypted)
};

/// A throw-away certificate authority (EC P-256, SHA-256).
/// Thread: use from one thread. Throws std::runtime_error on any OpenSSL failure.
class TestCa {
 public:
  /// Makes the CA key and certificate and writes `dir`/ca.pem (dir must exist).
  explicit TestCa(std::string dir);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  /// The CA certificate, for ca_file.
  const std::string& caFile() const { return ca_file_; }

  /// Issues a server certificate valid from now+`not_before` to now+`not_after` (either
  /// may be negative: an expired certificate has both in the past), with subjectAltName
  /// DNS:localhost, IP:127.0.0.1, IP:::1. Writes `dir`/<name>.pem and <name>.key.
  CertFiles issue(const std::string& name, std::chrono::seconds not_before,
                  std::chrono::seconds not_after);

  /// As above, with the given subjectAltName instead, in OpenSSL's config syntax
  /// ("DNS:public.vigie.test,IP:127.0.0.2"); the subject CN is the first DNS name, or
  /// "localhost" without one.
  CertFiles issue(const std::string& name, std::chrono::seconds not_before,
                  std::chrono::seconds not_after, const std::string& subject_alt_names);

 private:
  struct Keys;
  std::string dir_;
  std::string ca_file_;
  std::unique_ptr<Keys> keys_;
  long serial_ = 1;
};

}  // namespace vigie::test
