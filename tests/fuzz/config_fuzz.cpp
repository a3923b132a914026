// libFuzzer target: the config loader (applyJson) on arbitrary text. Besides "no crash": every
// error names the source, a config without errors keeps every duration within its bound and an
// endpoint that normalizeEndpoint accepts as it is, and applying the same text again changes
// nothing.
#include "hfwarm/config/config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "%s\n", what);
    std::abort();
}

bool within(double value, double maximum) {
    return value > 0 && value <= maximum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace config = hfwarm::config;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    const config::FileContext context{"fuzz.json", "/etc/hfwarm", "/home/user"};
    auto first = config::applyJson(config::Config{}, text, context);
    for (const auto& error : first.errors)
        if (!error.starts_with("fuzz.json: ")) fail("an error does not name its source");
    if (!first.ok()) return 0;

    const auto& c = first.config;
    if (!within(c.requestTimeout, 3600) || !within(c.stallTimeout, 3600) ||
        !within(c.clientIdleTimeout, 3600) || !within(c.refreshInterval, 604800))
        fail("a duration outside its bound was accepted");
    if (c.retry.baseDelay < 0 || c.retry.baseDelay > 3600 || c.retry.maxDelay < 0 || c.retry.maxDelay > 3600)
        fail("a retry delay outside 0..3600 was accepted");
    if (config::normalizeEndpoint(c.endpoint) != c.endpoint)
        fail("the accepted endpoint does not normalize to itself");

    auto again = config::applyJson(c, text, context);
    if (!again.ok() || !(again.config == c)) fail("applying the same config twice changed it");
    return 0;
}
