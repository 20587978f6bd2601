#include "tests/support/tls_cert.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>

namespace vigie::test {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("TestCa: OpenSSL failed: ") + what);
}

PkeyPtr newKey() {
  PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  check(k != nullptr, "EC key generation");
  return k;
}

void addExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509Ptr newCert(long serial, const char* cn, EVP_PKEY* subject_key, std::chrono::seconds from,
                std::chrono::seconds to) {
  X509Ptr x(X509_new());
  check(x != nullptr, "X509_new");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), static_cast<long>(from.count()));
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(to.count()));
  X509_set_pubkey(x.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("vigie tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  return x;
}

void writePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "open output file");
  bool ok = true;
  if (cert) ok = PEM_write_X509(f, cert) == 1;
  if (key) ok = ok && PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  check(ok, "PEM write");
}

}  // namespace

struct TestCa::Keys {
  PkeyPtr key;
  X509Ptr cert;
};

TestCa::TestCa(std::string dir) : dir_(std::move(dir)), keys_(std::make_unique<Keys>()) {
  keys_->key = newKey();
  keys_->cert = newCert(serial_++, "vigie test CA", keys_->key.get(), std::chrono::hours(-24),
                        std::chrono::hours(24 * 3650));
  X509* c = keys_->cert.get();
  X509_set_issuer_name(c, X509_get_subject_name(c));
  addExt(c, c, NID_basic_constraints, "critical,CA:TRUE");
  addExt(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
  addExt(c, c, NID_subject_key_identifier, "hash");
  check(X509_sign(c, keys_->key.get(), EVP_sha256()) > 0, "CA sign");
  ca_file_ = dir_ + "/ca.pem";
  writePem(ca_file_, c, nullptr);
}

TestCa::~TestCa() = default;

CertFiles TestCa::issue(const std::string& name, std::chrono::seconds not_before,
                        std::chrono::seconds not_after) {
  return issue(name, not_before, not_after, "DNS:localhost,IP:127.0.0.1,IP:::1");
}

CertFiles TestCa::issue(const std::string& name, std::chrono::seconds not_before,
                        std::chrono::seconds not_after, const std::string& subject_alt_names) {
  std::string cn = "localhost";
  if (const auto p = subject_alt_names.find("DNS:"); p != std::string::npos) {
    cn = subject_alt_names.substr(p + 4, subject_alt_names.find(',', p) - (p + 4));
  }
  PkeyPtr key = newKey();
  X509Ptr x = newCert(serial_++, cn.c_str(), key.get(), not_before, not_after);
  X509_set_issuer_name(x.get(), X509_get_subject_name(keys_->cert.get()));
  addExt(x.get(), keys_->cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  addExt(x.get(), keys_->cert.get(), NID_key_usage, "critical,digitalSignature");
  addExt(x.get(), keys_->cert.get(), NID_ext_key_usage, "serverAuth");
  addExt(x.get(), keys_->cert.get(), NID_subject_alt_name, subject_alt_names.c_str());
  addExt(x.get(), keys_->cert.get(), NID_authority_key_identifier, "keyid");
  check(X509_sign(x.get(), keys_->key.get(), EVP_sha256()) > 0, "sign");
  CertFiles files{dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
  writePem(files.cert, x.get(), nullptr);
  writePem(files.key, nullptr, key.get());
  return files;
}

}  // namespace vigie::test
