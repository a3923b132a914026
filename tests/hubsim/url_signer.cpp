#include "url_signer.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace hfwarm::hubsim {

UrlSigner::UrlSigner() : key_(32, '\0') {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key_.data()), static_cast<int>(key_.size())) != 1)
        throw std::runtime_error("OpenSSL could not generate the URL signing key");
}

std::string UrlSigner::sign(std::string_view object, std::uint64_t expires) const {
    const std::string message = fmt::format("{}\n{}", object, expires);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &length);
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", mac[i]);
    return hex;
}

bool UrlSigner::valid(std::string_view object, std::uint64_t expires, std::string_view signature) const {
    const std::string expected = sign(object, expires);
    return signature.size() == expected.size() &&
           CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) == 0;
}

}  // namespace hfwarm::hubsim
