// libFuzzer target: the RateLimit, RateLimit-Policy and Retry-After parsers on arbitrary header
// values. They must never throw, and what they accept must keep their documented guarantees.
#include "hfwarm/ratelimit/headers.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

// A structured-field integer has at most 15 digits.
constexpr std::uint64_t kMaxInteger = 999'999'999'999'999;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "%s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view header(reinterpret_cast<const char*>(data), size);
    namespace rl = hfwarm::ratelimit;

    if (auto items = rl::parseRateLimit(header)) {
        if (items->empty()) fail("parseRateLimit accepted a header with no item");
        for (const auto& item : *items)
            if (item.remaining > kMaxInteger || item.resetIn > kMaxInteger)
                fail("RateLimit value over 15 digits");
    }
    if (auto items = rl::parseRateLimitPolicy(header)) {
        if (items->empty()) fail("parseRateLimitPolicy accepted a header with no item");
        for (const auto& item : *items) {
            if (item.window == 0) fail("RateLimit-Policy accepted w=0");
            if (item.quota > kMaxInteger || item.window > kMaxInteger)
                fail("RateLimit-Policy value over 15 digits");
        }
    }
    // 2026-01-01T00:00:00Z: dates on both sides of it are plausible inputs.
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'767'225'600));
    if (auto delay = rl::parseRetryAfter(header, now))
        if (delay->count() < 0) fail("parseRetryAfter returned a negative delay");
    return 0;
}
