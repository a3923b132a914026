#include "tls_setup.hpp"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

namespace hfwarm::hubsim {
namespace {

namespace fs = std::filesystem;

template <class T, void (*Free)(T*)>
struct Deleter {
    void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

[[noreturn]] void fail(const char* what) {
    char detail[256] = "no detail";
    if (const unsigned long code = ERR_get_error(); code != 0)
        ERR_error_string_n(code, detail, sizeof detail);
    throw std::runtime_error(fmt::format("OpenSSL could not {}: {}", what, detail));
}

Key newKey() {
    Key key(EVP_EC_gen("P-256"));
    if (!key) fail("generate a P-256 key");
    return key;
}

// Issues a certificate for `key`; self-signed when `issuer` is null.
Cert issue(EVP_PKEY* key, const char* commonName, X509* issuer, EVP_PKEY* issuerKey,
           const std::vector<std::pair<int, const char*>>& extensions) {
    Cert cert(X509_new());
    if (!cert) fail("allocate a certificate");
    std::uint64_t serial = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1)
        fail("draw a serial number");
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial >> 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3650L * 24 * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("hfwarm-hubsim"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(commonName),
                               -1, -1, 0);
    X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
    for (const auto& [nid, value] : extensions) {
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
        if (ext == nullptr) fail("build a certificate extension");
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(cert.get(), issuerKey != nullptr ? issuerKey : key, EVP_sha256()) == 0)
        fail("sign a certificate");
    return cert;
}

std::string drain(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::string certPem(X509* cert) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("encode a certificate");
    return drain(bio.get());
}

std::string keyPem(EVP_PKEY* key) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        fail("encode a private key");
    return drain(bio.get());
}

std::string readFile(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) throw std::runtime_error(fmt::format("cannot read {}", file.string()));
    return text.str();
}

void writeFile(const fs::path& file, const std::string& text, fs::perms perms) {
    const fs::path temp = file.string() + ".tmp";
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out.flush()) throw std::runtime_error(fmt::format("cannot write {}", temp.string()));
    }
    fs::permissions(temp, perms);
    fs::rename(temp, file);
}

}  // namespace

TlsMaterial prepareTls(const fs::path& dir) {
    fs::create_directories(dir);
    const fs::path caFile = fs::absolute(dir / "ca.pem");
    const fs::path certFile = dir / "cert.pem";
    const fs::path keyFile = dir / "key.pem";
    if (fs::exists(caFile) && fs::exists(certFile) && fs::exists(keyFile))
        return {readFile(certFile), readFile(keyFile), caFile};

    Key caKey = newKey();
    Cert ca = issue(caKey.get(), "hfwarm-hubsim test CA", nullptr, nullptr,
                    {{NID_basic_constraints, "critical,CA:TRUE"},
                     {NID_key_usage, "critical,keyCertSign,cRLSign"},
                     {NID_subject_key_identifier, "hash"}});
    Key serverKey = newKey();
    Cert server = issue(serverKey.get(), "localhost", ca.get(), caKey.get(),
                        {{NID_basic_constraints, "critical,CA:FALSE"},
                         {NID_key_usage, "critical,digitalSignature"},
                         {NID_ext_key_usage, "serverAuth"},
                         {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"},
                         {NID_subject_key_identifier, "hash"},
                         {NID_authority_key_identifier, "keyid:always"}});
    TlsMaterial material{certPem(server.get()) + certPem(ca.get()), keyPem(serverKey.get()), caFile};
    const auto readable =
        fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read;
    writeFile(keyFile, material.keyPem, fs::perms::owner_read | fs::perms::owner_write);
    writeFile(certFile, material.chainPem, readable);
    writeFile(caFile, certPem(ca.get()), readable);
    return material;
}

}  // namespace hfwarm::hubsim
