// The simulator's TLS identity: a throw-away CA and a server certificate for localhost, 127.0.0.1
// and ::1, made with OpenSSL at start. Clients trust the CA file (`--ca-file`, NODE_EXTRA_CA_CERTS).
#pragma once

#include <filesystem>
#include <string>

namespace hfwarm::hubsim {

struct TlsMaterial {
    std::string chainPem;  // server certificate, then the CA
    std::string keyPem;
    std::filesystem::path caFile;  // absolute
};

// Reuses ca.pem, cert.pem and key.pem from `dir` when all three exist; otherwise generates them and
// writes them there (key.pem with mode 0600). Throws std::runtime_error on OpenSSL or I/O errors.
TlsMaterial prepareTls(const std::filesystem::path& dir);

}  // namespace hfwarm::hubsim
