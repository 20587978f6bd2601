#include "probes/tls_facts.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <string>
#include <string_view>

namespace vigie {

namespace {

std::optional<double> notAfter(const X509* cert) {
  const ASN1_TIME* t = X509_get0_notAfter(cert);
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return static_cast<double>(timegm(&tm));
}

void earliest(std::optional<double>& into, const X509* cert) {
  if (auto t = notAfter(cert); t && (!into || *t < *into)) into = t;
}

std::string nameOf(const X509_NAME* name) {
  if (name == nullptr) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  // RFC 2253: most specific first, comma-separated, as Go's pkix.Name.String().
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data != nullptr && n > 0 ? data : "", n > 0 ? static_cast<std::size_t>(n) : 0);
  BIO_free(bio);
  return out;
}

std::string dnsNames(X509* cert) {
  std::string out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_DNS) continue;
    const auto* s = g->d.dNSName;
    if (!out.empty()) out += ',';
    out.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
               static_cast<std::size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string sha256Hex(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xF];
  }
  return out;
}

}  // namespace

std::string goTlsVersionName(std::string_view n) {
  if (n == "TLSv1") return "TLS 1.0";
  if (n == "TLSv1.1") return "TLS 1.1";
  if (n == "TLSv1.2") return "TLS 1.2";
  if (n == "TLSv1.3") return "TLS 1.3";
  if (n == "SSLv3") return "SSL 3.0";
  return std::string(n);
}

TlsFacts tlsFactsOf(const SSL* ssl, bool verified) {
  TlsFacts f;
  if (ssl == nullptr) return f;
  f.version = goTlsVersionName(SSL_get_version(ssl));
  // On the client side the peer chain includes the leaf.
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl)) {
    for (int i = 0; i < sk_X509_num(chain); ++i)
      earliest(f.earliest_expiry, sk_X509_value(chain, i));
  }
  if (X509* leaf = SSL_get0_peer_certificate(ssl)) {
    earliest(f.earliest_expiry, leaf);
    f.fingerprint_sha256 = sha256Hex(leaf);
    f.subject = nameOf(X509_get_subject_name(leaf));
    f.issuer = nameOf(X509_get_issuer_name(leaf));
    f.dns_names = dnsNames(leaf);
  }
  if (verified && SSL_get_verify_result(ssl) == X509_V_OK) {
    if (STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl)) {
      for (int i = 0; i < sk_X509_num(chain); ++i) {
        earliest(f.last_chain_expiry, sk_X509_value(chain, i));
      }
    }
  }
  return f;
}

}  // namespace vigie
