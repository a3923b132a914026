// URL helpers of the http module: parsing, the Hub's percent-encoding, redaction for logs and the
// pure redirect and token rules the client applies on every hop. No I/O; Boost.URL stays in the .cpp.
#pragma once

#include "hfwarm/util/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hfwarm::http {

// Percent-encodes `text` as Python's urllib.parse.quote(text, safe) does: every byte except ASCII
// letters, digits, `_.-~` and the characters of `safe` becomes %XX (upper-case hex, UTF-8 bytes).
// quote("refs/pr/1", "") == "refs%2Fpr%2F1"; quote("a b/c#d+e.txt") == "a%20b/c%23d%2Be.txt".
std::string quote(std::string_view text, std::string_view safe = "/");

// An absolute http or https URL split the way a request needs it.
struct Url {
    std::string scheme;      // "http" or "https", lower case
    std::string host;        // lower case; an IPv6 literal without brackets
    std::uint16_t port = 0;  // explicit or the scheme's default
    std::string target;      // encoded path and query as sent on the request line ("/" when empty)
    std::string path;        // encoded path only ("/" when empty)

    bool https() const { return scheme == "https"; }
    // "host:port" with the effective port; the key of the connection pool and of the token rule.
    std::string authority() const;
};

// The port of a URL ("443"): a decimal number from 1 to 65535, else nullopt (0, 65536, 99999, "",
// "+1", "0x50").
std::optional<std::uint16_t> parsePort(std::string_view digits);

// `url` with its userinfo, if any, replaced by "***" ("https://***@host/x"): what a message may
// show of an endpoint that a user wrote with "user:password@".
std::string maskUserinfo(std::string_view url);

// Parses an absolute http(s) URL; anything else (relative, other schemes, userinfo) is an error
// that names the URL without its query.
Result<Url> parseUrl(std::string_view url);

// The URL without userinfo, query and fragment: what logs and error messages may show, since signed
// CDN URLs carry credentials in their query.
std::string redactUrl(std::string_view url);

// "host:port" of an endpoint given as a URL ("https://huggingface.co" -> "huggingface.co:443") or
// already as "host[:port]" (port 443 assumed); lower case. What ClientOptions::tokenHost compares to.
std::string normalizeAuthority(std::string_view urlOrAuthority);

enum class RedirectPolicy {
    None,          // return every 3xx to the caller
    RelativeOnly,  // follow Location values without a host (renamed repos); return absolute ones
    All,           // follow every redirect (to the CDN too)
};

struct RedirectTarget {
    std::string url;         // absolute URL of the next hop
    bool relative = false;   // the Location had no scheme and host
    bool crossHost = false;  // the next hop's scheme, host or port differs from the current one
};

// Resolves `location` against `currentUrl`. A relative Location (no host) replaces the path of the
// current URL as huggingface_hub does; its own query is used when it has one, else the current
// query is kept (so `?blobs=true` or `?recursive=true` survive a renamed-repo redirect). An https ->
// http hop is an error ("refusing redirect from https to http"), as is an unparsable Location.
Result<RedirectTarget> redirectTarget(std::string_view currentUrl, std::string_view location);

// Whether `policy` follows `target`.
bool followsRedirect(RedirectPolicy policy, const RedirectTarget& target);

// The token rule: `Authorization: Bearer` goes only over https (or also over http with
// `overHttp`, the token_over_http opt-in), only to `tokenHost` (an authority from
// normalizeAuthority), and never once a redirect chain has crossed to another host.
bool sendsToken(const Url& url, std::string_view tokenHost, bool crossedHost, bool overHttp);

// Whether `host` (lower case, port `port`) skips the proxy under a NO_PROXY value: comma- or
// space-separated entries, each a host name, a domain suffix (".example.com" or "example.com" both
// match sub.example.com), an IP literal, optionally with ":port"; "*" matches every host.
bool bypassesProxy(std::string_view host, std::uint16_t port, std::string_view noProxy);

}  // namespace hfwarm::http
