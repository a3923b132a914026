#include "hfwarm/ratelimit/resp.hpp"

#include <fmt/format.h>
#include <boost/url/parse.hpp>

#include <charconv>

namespace hfwarm::ratelimit::resp {

std::string encodeCommand(const std::vector<std::string>& args) {
    std::string out = fmt::format("*{}\r\n", args.size());
    for (const auto& a : args) {
        out += fmt::format("${}\r\n", a.size());
        out += a;
        out += "\r\n";
    }
    return out;
}

namespace {

struct Decoder {
    std::string_view in;
    std::size_t pos = 0;

    // The line starting at pos without its CRLF, or nullopt when the CRLF has not arrived yet.
    std::optional<std::string_view> line() {
        auto end = in.find("\r\n", pos);
        if (end == std::string_view::npos) return std::nullopt;
        auto out = in.substr(pos, end - pos);
        pos = end + 2;
        return out;
    }

    static std::optional<std::int64_t> integer(std::string_view text) {
        std::int64_t v = 0;
        if (text.empty()) return std::nullopt;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || p != text.data() + text.size()) return std::nullopt;
        return v;
    }

    // nullopt inside the result: incomplete input.
    Result<std::optional<Value>> value(std::size_t depth) {
        if (pos >= in.size()) return std::optional<Value>{};
        char type = in[pos++];
        auto text = line();
        if (!text) return std::optional<Value>{};
        Value v;
        switch (type) {
            case '+':
                v.type = Value::Type::Simple;
                v.text = std::string(*text);
                return std::optional<Value>{std::move(v)};
            case '-':
                v.type = Value::Type::Error;
                v.text = std::string(*text);
                return std::optional<Value>{std::move(v)};
            case ':': {
                auto n = integer(*text);
                if (!n) return makeError(fmt::format("RESP integer reply is not a number: '{}'", *text));
                v.type = Value::Type::Integer;
                v.integer = *n;
                return std::optional<Value>{std::move(v)};
            }
            case '$': {
                auto n = integer(*text);
                if (!n || *n < -1 || *n > static_cast<std::int64_t>(kMaxBulkLength))
                    return makeError(fmt::format("RESP bulk string has a bad length: '{}'", *text));
                if (*n == -1) return std::optional<Value>{std::move(v)};
                auto len = static_cast<std::size_t>(*n);
                if (in.size() - pos < len + 2) return std::optional<Value>{};
                if (in.substr(pos + len, 2) != "\r\n")
                    return makeError("RESP bulk string is not followed by CRLF");
                v.type = Value::Type::Bulk;
                v.text = std::string(in.substr(pos, len));
                pos += len + 2;
                return std::optional<Value>{std::move(v)};
            }
            case '*': {
                auto n = integer(*text);
                if (!n || *n < -1 || *n > static_cast<std::int64_t>(kMaxArrayLength))
                    return makeError(fmt::format("RESP array has a bad length: '{}'", *text));
                if (*n == -1) return std::optional<Value>{std::move(v)};
                if (depth >= kMaxDepth) return makeError("RESP arrays are nested too deep");
                v.type = Value::Type::Array;
                for (std::int64_t i = 0; i < *n; ++i) {
                    auto element = value(depth + 1);
                    if (!element) return element.error();
                    if (!*element) return std::optional<Value>{};
                    v.elements.push_back(std::move(**element));
                }
                return std::optional<Value>{std::move(v)};
            }
            default:
                return makeError(fmt::format("RESP reply starts with an unknown type byte 0x{:02x}",
                                             static_cast<unsigned char>(type)));
        }
    }
};

}  // namespace

Result<std::optional<Decoded>> decode(std::string_view input) {
    Decoder d{input};
    auto v = d.value(0);
    if (!v) return v.error();
    if (!*v) return std::optional<Decoded>{};
    return std::optional<Decoded>{Decoded{std::move(**v), d.pos}};
}

std::string Endpoint::display() const {
    auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return fmt::format("redis://{}:{}/{}", h, port, db);
}

Result<Endpoint> parseUrl(std::string_view url) {
    namespace urls = boost::urls;
    // The URL may hold a password: messages name the config key, never the value.
    auto parsed = urls::parse_uri(url);
    if (!parsed)
        return makeError(
            "the redis URL (config key redis) is not a URL: expected "
            "redis://[user:password@]host[:port][/db]");
    const urls::url_view& u = *parsed;
    if (u.scheme() == "rediss")
        return makeError(
            "the redis URL (config key redis) uses rediss:// (TLS), which hfwarmd does not "
            "support: use redis:// on a trusted network, or a local TLS tunnel (stunnel, "
            "spiped) to the Redis server");
    if (u.scheme() != "redis") return makeError("the redis URL (config key redis) must start with redis://");
    Endpoint out;
    if (u.host_type() != urls::host_type::name && u.host_type() != urls::host_type::ipv4 &&
        u.host_type() != urls::host_type::ipv6)
        return makeError("the redis URL (config key redis) has no usable host");
    out.host = u.host_address();
    if (out.host.empty()) return makeError("the redis URL (config key redis) has no host");
    if (u.has_port()) {
        if (u.port().empty() || u.port_number() == 0)
            return makeError("the redis URL (config key redis) has an invalid port");
        out.port = u.port_number();
    }
    if (u.has_userinfo()) {
        out.user = u.user();
        out.password = u.password();
    }
    auto path = u.path();
    if (!path.empty() && path != "/") {
        std::string_view db(path);
        db.remove_prefix(1);
        auto n = Decoder::integer(db);
        if (path.front() != '/' || !n || *n < 0 || *n > 65535 || db.front() == '+')
            return makeError(
                "the redis URL (config key redis) has a path that is not a database number: "
                "expected redis://host:port/0");
        out.db = static_cast<unsigned>(*n);
    }
    if (u.has_query() || u.has_fragment())
        return makeError("the redis URL (config key redis) has a query or fragment, which is not supported");
    return out;
}

}  // namespace hfwarm::ratelimit::resp
