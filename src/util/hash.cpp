#include "hfwarm/util/hash.hpp"

#include <openssl/evp.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace hfwarm::util {

struct Hasher::Impl {
    EVP_MD_CTX* ctx = nullptr;
    ~Impl() { EVP_MD_CTX_free(ctx); }
};

Hasher::Hasher(HashKind kind) : impl_(std::make_unique<Impl>()) {
    impl_->ctx = EVP_MD_CTX_new();
    const EVP_MD* md = kind == HashKind::Sha256 ? EVP_sha256() : EVP_sha1();
    if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, md, nullptr) != 1)
        throw std::runtime_error("OpenSSL could not initialise a digest");
}

Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(const void* data, std::size_t size) {
    if (size > 0) EVP_DigestUpdate(impl_->ctx, data, size);
}

std::string Hasher::finishHex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(impl_->ctx, digest, &length);
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
        hex.push_back(kDigits[digest[i] >> 4]);
        hex.push_back(kDigits[digest[i] & 0xf]);
    }
    return hex;
}

std::string sha256Hex(std::string_view data) {
    Hasher h(HashKind::Sha256);
    h.update(data);
    return h.finishHex();
}

std::string gitBlobSha1Hex(std::string_view content) {
    Hasher h(HashKind::Sha1);
    std::string header = "blob " + std::to_string(content.size());
    h.update(header.data(), header.size() + 1);  // the header ends with its NUL
    h.update(content);
    return h.finishHex();
}

std::string hashFileHex(const std::filesystem::path& file, HashKind kind, bool gitBlob) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::system_error(errno, std::generic_category(), "cannot open " + file.string());
    Hasher h(kind);
    if (gitBlob) {
        std::string header = "blob " + std::to_string(std::filesystem::file_size(file));
        h.update(header.data(), header.size() + 1);
    }
    std::vector<char> buffer(1 << 20);
    while (in) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        h.update(buffer.data(), static_cast<std::size_t>(in.gcount()));
    }
    if (in.bad()) throw std::system_error(errno, std::generic_category(), "cannot read " + file.string());
    return h.finishHex();
}

bool isHex(std::string_view s, std::size_t length) {
    if (s.size() != length) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace hfwarm::util
