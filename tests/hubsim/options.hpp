// Settings of `hfwarm-hubsim serve`, filled from the command line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hfwarm::hubsim {

// Each fault fires either for the first N requests of a file (or URL path), deterministically, or
// at a rate drawn from the --seed generator. Both may be set; the first-N rule is checked first.
struct FaultRule {
    double rate = 0.0;
    unsigned first = 0;

    bool enabled() const { return rate > 0.0 || first > 0; }
};

struct FaultOptions {
    FaultRule fail;                           // answer 5xx instead of serving the request
    unsigned failStatus = 503;                // the status of an injected failure
    FaultRule reset;                          // close the connection (TCP RST) part-way through a file body
    std::optional<std::uint64_t> resetAfter;  // body bytes sent before the reset; random when unset
    FaultRule stall;                          // stop sending part-way through a file body...
    double stallSeconds = 0.0;                // ...for this long
    FaultRule corrupt;                        // flip one byte of a file body
    std::uint64_t cdnBytesPerSecond = 0;      // per-connection cap on the CDN; 0 = unlimited
    bool ignoreRange = false;                 // answer 200 with the whole body to ranged requests
    std::uint64_t cdnMaxRequest = 0;          // the CDN refuses GETs of more bytes than this; 0 = none
    bool hostileListing = false;              // listings carry unsafe file names
};

struct ServeOptions {
    std::filesystem::path fixtures;
    std::string bindAddress = "127.0.0.1";
    std::uint16_t port = 0;
    std::uint16_t cdnPort = 0;
    std::optional<std::filesystem::path> readyFile;
    std::optional<std::filesystem::path> logFile;
    std::optional<std::filesystem::path> tlsDir;
    std::vector<std::string> tokens;
    std::uint64_t apiQuota = 500;  // the Hub's anonymous limits (hub-protocol.md section 8); 0 = none
    std::uint64_t resolverQuota = 3000;
    unsigned windowSeconds = 300;
    unsigned pageSize = 1000;
    std::uint64_t lfsThreshold = 64 * 1024;  // files larger than this are LFS files
    unsigned urlTtlSeconds = 3600;
    std::uint64_t seed = 1;
    FaultOptions faults;
};

}  // namespace hfwarm::hubsim
