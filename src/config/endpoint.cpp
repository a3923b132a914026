#include "hfwarm/config/config.hpp"

#include "hfwarm/http/url.hpp"

#include <boost/url/parse.hpp>

namespace hfwarm::config {

std::optional<std::string> normalizeEndpoint(std::string_view url) {
    auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) return std::nullopt;
    const auto& u = *parsed;
    if (u.scheme() != "http" && u.scheme() != "https") return std::nullopt;
    // Credentials in the endpoint would end up in logs and status; the token has its own channel.
    if (!u.has_authority() || u.host().empty() || u.has_userinfo() || u.has_query() || u.has_fragment())
        return std::nullopt;
    if (u.has_port() && !http::parsePort(u.port())) return std::nullopt;
    std::string text(url);
    while (text.ends_with('/')) text.pop_back();
    return text;
}

std::string endpointNote(std::string_view url) {
    auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) return {};
    if (parsed->has_userinfo())
        return " (user and password are not accepted in the endpoint: HF_TOKEN carries the credential)";
    if (parsed->has_port() && !http::parsePort(parsed->port())) return " (the port must be from 1 to 65535)";
    return {};
}

}  // namespace hfwarm::config
