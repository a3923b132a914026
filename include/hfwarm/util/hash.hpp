// Streaming SHA-256 and SHA-1 on OpenSSL's EVP interface, and the git blob id.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace hfwarm::util {

enum class HashKind { Sha256, Sha1 };

class Hasher {
  public:
    explicit Hasher(HashKind kind);
    ~Hasher();
    Hasher(Hasher&&) noexcept;
    Hasher& operator=(Hasher&&) noexcept;
    Hasher(const Hasher&) = delete;
    Hasher& operator=(const Hasher&) = delete;

    void update(const void* data, std::size_t size);
    void update(std::string_view data) { update(data.data(), data.size()); }
    // Lower-case hex digest; the hasher cannot be updated afterwards.
    std::string finishHex();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string sha256Hex(std::string_view data);

// The git blob sha1 of `content`: sha1("blob <len>\0" + content), as `git hash-object` prints it.
std::string gitBlobSha1Hex(std::string_view content);

// Hashes a whole file; for a git blob the header is fed first. Throws std::system_error on I/O errors.
std::string hashFileHex(const std::filesystem::path& file, HashKind kind, bool gitBlob = false);

bool isHex(std::string_view s, std::size_t length);

}  // namespace hfwarm::util
