// The pure half of the Redis client the shared budget uses: RESP2 (the Redis serialization protocol,
// https://redis.io/docs/reference/protocol-spec/) encoding of commands, decoding of replies, and the
// `redis://` URL of the config key `redis`. No I/O, so unit tests drive it directly.
#pragma once

#include "hfwarm/util/result.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::ratelimit::resp {

// One reply. RESP2 has five types; a null bulk string and a null array are both Null.
struct Value {
    enum class Type { Simple, Error, Integer, Bulk, Null, Array };
    Type type = Type::Null;
    std::string text;             // Simple, Error, Bulk
    std::int64_t integer = 0;     // Integer
    std::vector<Value> elements;  // Array
};

// A command as Redis expects it from clients: an array of bulk strings, binary-safe.
std::string encodeCommand(const std::vector<std::string>& args);

struct Decoded {
    Value value;
    std::size_t consumed = 0;  // bytes of the input the value took
};

// Decodes the first reply in `input`. nullopt (in the result) when the input ends before the reply
// does: read more and call again with the whole buffer. An error when the bytes are not RESP2 or a
// length is beyond the limits below: the connection can no longer be trusted and must be closed.
Result<std::optional<Decoded>> decode(std::string_view input);

// Bounds on what decode() accepts; the shared budget's replies are a few bytes.
inline constexpr std::size_t kMaxBulkLength = 1 << 20;
inline constexpr std::size_t kMaxArrayLength = 1 << 16;
inline constexpr std::size_t kMaxDepth = 8;

// Where the shared budget lives: `redis://[user:password@]host[:port][/db]`.
struct Endpoint {
    std::string host;
    std::uint16_t port = 6379;
    std::string user;      // empty: AUTH with the password alone (Redis before 6, or the default user)
    std::string password;  // empty: no AUTH
    unsigned db = 0;

    // `redis://host:port/db`, without the user and password: safe to log.
    std::string display() const;
};

// Parses the config value. `rediss://` (TLS) is refused with an error saying so; so is any other
// scheme, a missing host, a bad port or database number, and a path beyond `/db`.
Result<Endpoint> parseUrl(std::string_view url);

}  // namespace hfwarm::ratelimit::resp
