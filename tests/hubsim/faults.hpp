// Decides, reproducibly under --seed, which requests get which injected fault.
#pragma once

#include "options.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>

namespace hfwarm::hubsim {

// Where in a body of a given length the faults strike (offsets into the body sent).
struct BodyFaults {
    std::optional<std::uint64_t> resetAt;
    std::optional<std::uint64_t> stallAt;
    std::optional<std::uint64_t> corruptAt;
};

class FaultInjector {
  public:
    FaultInjector(const FaultOptions& options, std::uint64_t seed);

    const FaultOptions& options() const { return options_; }

    // Whether the request for `key` (a file or URL path) fails with options().failStatus.
    bool fail(const std::string& key);
    // The faults of one file body of `length` bytes (`key` names the file).
    BodyFaults planBody(const std::string& key, std::uint64_t length);

  private:
    bool fires(const FaultRule& rule, const char* kind, const std::string& key);
    std::uint64_t offsetIn(std::uint64_t length);

    FaultOptions options_;
    std::mt19937_64 rng_;
    std::map<std::string, unsigned> counts_;  // "kind key" -> times the first-N rule fired
};

}  // namespace hfwarm::hubsim
