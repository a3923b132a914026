#include "hfwarm/http/url.hpp"

#include <boost/url.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace hfwarm::http {

namespace urls = boost::urls;

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

std::uint16_t defaultPort(urls::scheme id) {
    return id == urls::scheme::https ? 443 : 80;
}

// The part of `url` before any query or fragment, and without userinfo: safe to show.
std::string cutSecrets(std::string_view url) {
    auto end = url.find_first_of("?#");
    std::string_view head = url.substr(0, end);
    auto schemeEnd = head.find("://");
    if (schemeEnd == std::string_view::npos) return std::string(head);
    auto authorityStart = schemeEnd + 3;
    auto pathStart = head.find('/', authorityStart);
    auto at = head.substr(0, pathStart).rfind('@');
    if (at == std::string_view::npos || at < authorityStart) return std::string(head);
    return std::string(head.substr(0, authorityStart)) + std::string(head.substr(at + 1));
}

}  // namespace

std::optional<std::uint16_t> parsePort(std::string_view digits) {
    // Boost 1.81's port_number() keeps the low 16 bits of a longer number (99999 -> 34463).
    unsigned value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || value == 0 ||
        value > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

std::string maskUserinfo(std::string_view url) {
    auto schemeEnd = url.find("://");
    if (schemeEnd == std::string_view::npos) return std::string(url);
    auto authorityStart = schemeEnd + 3;
    auto authorityEnd = url.find_first_of("/?#", authorityStart);
    auto at = url.substr(0, authorityEnd).rfind('@');
    if (at == std::string_view::npos || at < authorityStart) return std::string(url);
    return std::string(url.substr(0, authorityStart)) + "***" + std::string(url.substr(at));
}

std::string quote(std::string_view text, std::string_view safe) {
    std::string safeChars(safe);
    urls::grammar::lut_chars allowed = urls::unreserved_chars + urls::grammar::lut_chars(safeChars.c_str());
    return urls::encode(text, allowed);
}

std::string Url::authority() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

Result<Url> parseUrl(std::string_view text) {
    auto parsed = urls::parse_uri(text);
    if (!parsed) return makeError("invalid URL " + cutSecrets(text) + ": " + parsed.error().message());
    const urls::url_view& u = *parsed;
    if (u.scheme_id() != urls::scheme::http && u.scheme_id() != urls::scheme::https)
        return makeError("unsupported URL " + cutSecrets(text) + ": only http and https are supported");
    if (u.has_userinfo())
        return makeError("URL " + cutSecrets(text) + " carries user info, which is not supported");
    Url out;
    out.scheme = u.scheme_id() == urls::scheme::https ? "https" : "http";
    switch (u.host_type()) {
        case urls::host_type::name:
            out.host = lower(u.host_name());
            break;
        case urls::host_type::ipv4:
            out.host = std::string(u.encoded_host());
            break;
        case urls::host_type::ipv6:
            out.host = lower(u.host_address());
            break;
        default:
            return makeError("URL " + cutSecrets(text) + " has no usable host");
    }
    if (out.host.empty()) return makeError("URL " + cutSecrets(text) + " has no host");
    out.port = defaultPort(u.scheme_id());
    if (u.has_port() && !u.port().empty()) {
        auto port = parsePort(u.port());
        if (!port)
            return makeError("URL " + cutSecrets(text) + " has an invalid port: use one from 1 to 65535");
        out.port = *port;
    }
    out.path = u.encoded_path().empty() ? "/" : std::string(u.encoded_path());
    out.target = out.path;
    if (u.has_query()) out.target += "?" + std::string(u.encoded_query());
    return out;
}

std::string redactUrl(std::string_view url) {
    return cutSecrets(url);
}

std::string normalizeAuthority(std::string_view urlOrAuthority) {
    if (urlOrAuthority.find("://") != std::string_view::npos) {
        auto parsed = parseUrl(urlOrAuthority);
        if (parsed) return parsed->authority();
        return lower(urlOrAuthority);
    }
    std::string text = lower(urlOrAuthority);
    auto slash = text.find('/');
    if (slash != std::string::npos) text.resize(slash);
    // A port follows the last ':' unless that ':' is inside an IPv6 literal.
    auto close = text.rfind(']');
    auto colon = text.rfind(':');
    bool hasPort = colon != std::string::npos && (close == std::string::npos || colon > close);
    if (hasPort) return text;
    if (text.find(':') != std::string::npos && text.front() != '[') text = "[" + text + "]";
    return text + ":443";
}

Result<RedirectTarget> redirectTarget(std::string_view currentUrl, std::string_view location) {
    auto base = urls::parse_uri(currentUrl);
    if (!base) return makeError("invalid URL " + cutSecrets(currentUrl));
    auto ref = urls::parse_uri_reference(location);
    if (!ref || location.empty())
        return makeError("redirect from " + cutSecrets(currentUrl) + " has an unusable Location '" +
                         cutSecrets(location) + "'");
    RedirectTarget target;
    target.relative = !ref->has_scheme() && !ref->has_authority();
    urls::url next;
    auto resolved = urls::resolve(*base, *ref, next);
    if (!resolved)
        return makeError("redirect from " + cutSecrets(currentUrl) + " has an unusable Location '" +
                         cutSecrets(location) + "'");
    next.remove_fragment();
    // huggingface_hub replaces only the path on a relative redirect; keeping the current query
    // keeps `?blobs=true` and `?recursive=true` on a renamed repo's listing.
    if (target.relative && !ref->has_query() && base->has_query())
        next.set_encoded_query(base->encoded_query());
    target.url = std::string(next.buffer());

    auto from = parseUrl(currentUrl);
    if (!from) return from.error();
    auto to = parseUrl(target.url);
    if (!to)
        return makeError("redirect from " + cutSecrets(currentUrl) +
                         " to an unsupported URL: " + to.error().message);
    if (from->https() && !to->https())
        return makeError("refusing redirect from https to http (" + cutSecrets(currentUrl) + " -> " +
                         cutSecrets(target.url) + ")");
    target.crossHost = from->scheme != to->scheme || from->authority() != to->authority();
    return target;
}

bool followsRedirect(RedirectPolicy policy, const RedirectTarget& target) {
    switch (policy) {
        case RedirectPolicy::None:
            return false;
        case RedirectPolicy::RelativeOnly:
            return target.relative && !target.crossHost;
        case RedirectPolicy::All:
            return true;
    }
    return false;
}

bool sendsToken(const Url& url, std::string_view tokenHost, bool crossedHost, bool overHttp) {
    return !crossedHost && (url.https() || overHttp) && !tokenHost.empty() && url.authority() == tokenHost;
}

bool bypassesProxy(std::string_view host, std::uint16_t port, std::string_view noProxy) {
    std::string target = lower(host);
    std::size_t pos = 0;
    while (pos < noProxy.size()) {
        auto end = noProxy.find_first_of(", ", pos);
        if (end == std::string_view::npos) end = noProxy.size();
        std::string entry = lower(noProxy.substr(pos, end - pos));
        pos = end + 1;
        if (entry.empty()) continue;
        if (entry == "*") return true;
        // An optional ":port" (after "]" for an IPv6 literal) restricts the entry to that port.
        auto close = entry.rfind(']');
        auto colon = entry.rfind(':');
        if (colon != std::string::npos &&
            (close == std::string::npos ? entry.find(':') == colon : colon > close)) {
            if (entry.substr(colon + 1) != std::to_string(port)) continue;
            entry.resize(colon);
        }
        if (entry.size() > 1 && entry.front() == '[' && entry.back() == ']')
            entry = entry.substr(1, entry.size() - 2);
        if (entry.front() == '.') entry.erase(0, 1);
        if (target == entry) return true;
        if (target.size() > entry.size() && target.ends_with(entry) &&
            target[target.size() - entry.size() - 1] == '.')
            return true;
    }
    return false;
}

}  // namespace hfwarm::http
