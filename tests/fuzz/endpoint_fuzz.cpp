// libFuzzer target: the endpoint parser (normalizeEndpoint, http::parseUrl, parsePort) and the
// userinfo mask on arbitrary text. An accepted endpoint parses as a URL with a port from 1 to
// 65535 and normalizes to itself; a masked URL never shows what stood before its '@'.
#include "hfwarm/config/config.hpp"
#include "hfwarm/http/url.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
    std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(input.size()), input.data());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace http = hfwarm::http;
    std::string_view text(reinterpret_cast<const char*>(data), size);

    if (auto port = http::parsePort(text); port && *port == 0) fail("port 0 accepted", text);

    if (auto endpoint = hfwarm::config::normalizeEndpoint(text)) {
        // parseUrl also refuses userinfo: an accepted endpoint carries no password.
        auto url = http::parseUrl(*endpoint);
        if (!url) fail("an accepted endpoint does not parse as a URL", text);
        if (url->port == 0) fail("an accepted endpoint has port 0", text);
        if (hfwarm::config::normalizeEndpoint(*endpoint) != endpoint)
            fail("normalizing is not idempotent", text);
    }

    const std::string masked = http::maskUserinfo(text);
    const auto scheme = text.find("://");
    if (scheme != std::string_view::npos) {
        const auto start = scheme + 3;
        const auto end = text.find_first_of("/?#", start);
        const auto at = text.substr(0, end).rfind('@');
        if (at != std::string_view::npos && at >= start) {
            // Everything between "://" and the last '@' of the authority is gone, whatever it was.
            if (masked != std::string(text.substr(0, start)) + "***" + std::string(text.substr(at)))
                fail("the mask kept more than the URL without its userinfo", text);
            return 0;
        }
    }
    if (masked != text) fail("a URL without userinfo was changed by the mask", text);
    return 0;
}
