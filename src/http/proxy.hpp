// An https proxy for the http client, from HTTPS_PROXY / https_proxy.
#pragma once

#include "hfwarm/util/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace hfwarm::http {

// An https proxy reached with CONNECT.
struct Proxy {
    std::string host;
    std::uint16_t port = 0;
    std::string authorization;  // "Basic ..." from the URL's user info, or empty
    std::string shown;          // the proxy URL without credentials
};

// "http://[user:password@]host[:port]" (scheme optional, as curl reads it); TLS to the proxy itself
// is not supported.
Result<Proxy> parseProxy(std::string_view text);

}  // namespace hfwarm::http
