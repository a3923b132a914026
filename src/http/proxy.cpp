#include "proxy.hpp"

#include "hfwarm/http/url.hpp"

#include <openssl/evp.h>

#include <cctype>

namespace hfwarm::http {

namespace {

std::string percentDecode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::string base64(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3), '\0');
    int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

}  // namespace

Result<Proxy> parseProxy(std::string_view text) {
    std::string url(text);
    if (url.find("://") == std::string::npos) url = "http://" + url;
    auto authorityStart = url.find("://") + 3;
    auto authorityEnd = url.find_first_of("/?#", authorityStart);
    std::string authority = url.substr(
        authorityStart, authorityEnd == std::string::npos ? authorityEnd : authorityEnd - authorityStart);
    std::string credentials;
    if (auto at = authority.rfind('@'); at != std::string::npos) {
        credentials = authority.substr(0, at);
        url.erase(authorityStart, at + 1);
    }
    auto parsed = parseUrl(url);
    if (!parsed) return makeError("invalid proxy " + redactUrl(url) + ": " + parsed.error().message);
    if (parsed->https())
        return makeError("proxy " + redactUrl(url) +
                         " uses https, which is not supported: use an http:// proxy URL");
    Proxy proxy{parsed->host, parsed->port, {}, parsed->scheme + "://" + parsed->authority()};
    if (!credentials.empty()) {
        auto colon = credentials.find(':');
        std::string user = percentDecode(credentials.substr(0, colon));
        std::string password = colon == std::string::npos ? "" : percentDecode(credentials.substr(colon + 1));
        proxy.authorization = "Basic " + base64(user + ":" + password);
    }
    return proxy;
}

}  // namespace hfwarm::http
