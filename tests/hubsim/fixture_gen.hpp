// `hfwarm-hubsim gen`: deterministic fixture trees for the simulator.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace hfwarm::hubsim {

struct GenOptions {
    std::string profile;  // one of profileNames()
    std::filesystem::path dir;
    std::uint64_t largeTotal = 1ull << 30;  // "large": total bytes of the weight files
    unsigned largeFiles = 0;                // "large": number of weight files; 0 = one per 512 MiB
    std::uint64_t seed = 1;
};

const std::vector<std::string>& profileNames();

// Writes the profile's repos under options.dir (created if missing; existing files of the same
// name are overwritten). The same options always give the same bytes. Throws std::runtime_error
// naming the file on I/O errors and std::invalid_argument on an unknown profile.
void generateFixtures(const GenOptions& options);

}  // namespace hfwarm::hubsim
