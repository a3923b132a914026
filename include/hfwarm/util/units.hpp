// Byte sizes for people: "1.5 MiB" out, "4M" in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hfwarm::util {

// "0 B", "512 B", "1.5 KiB", "3.2 GiB".
std::string humanBytes(std::uint64_t bytes);

// Parses a byte count with an optional K/M/G/T suffix (powers of 1024, case-insensitive, an
// optional trailing "B" or "iB"): "0", "4096", "4M", "1.5G", "10MiB". Rejects negatives and garbage.
std::optional<std::uint64_t> parseByteSize(std::string_view text);

}  // namespace hfwarm::util
