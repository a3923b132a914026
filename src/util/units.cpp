#include "hfwarm/util/units.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cmath>

namespace hfwarm::util {

std::string humanBytes(std::uint64_t bytes) {
    static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) return fmt::format("{} B", bytes);
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 5) {
        value /= 1024.0;
        ++unit;
    }
    return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::optional<std::uint64_t> parseByteSize(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    std::string_view number = text.substr(0, i);
    std::string suffix;
    for (char c : text.substr(i))
        suffix.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (number.empty()) return std::nullopt;
    double value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc{} || end != number.data() + number.size()) return std::nullopt;
    double multiplier = 1;
    if (suffix.empty() || suffix == "B")
        multiplier = 1;
    else if (suffix == "K" || suffix == "KB" || suffix == "KIB")
        multiplier = 1024.0;
    else if (suffix == "M" || suffix == "MB" || suffix == "MIB")
        multiplier = 1024.0 * 1024;
    else if (suffix == "G" || suffix == "GB" || suffix == "GIB")
        multiplier = 1024.0 * 1024 * 1024;
    else if (suffix == "T" || suffix == "TB" || suffix == "TIB")
        multiplier = 1024.0 * 1024 * 1024 * 1024;
    else
        return std::nullopt;
    double bytes = value * multiplier;
    if (!std::isfinite(bytes) || bytes >= 18446744073709551615.0) return std::nullopt;
    return static_cast<std::uint64_t>(std::llround(bytes));
}

}  // namespace hfwarm::util
