// JSON-RPC 2.0 over newline-delimited lines, as hfwarmd's socket speaks it (DESIGN.md section 5).
//
// Shared by the daemon and hfwarmctl; no Asio here. Decoding never throws: a line that is not a
// valid request becomes the error response to send back, with the request's id when it could be
// read.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace hfwarm::protocol {

using json = nlohmann::json;

// The longest line either side accepts, newline excluded (DESIGN.md section 5: 64 KiB).
inline constexpr std::size_t kMaxLineBytes = 64 * 1024;

// Standard JSON-RPC 2.0 codes, then hfwarm's own in the implementation-defined range.
enum class ErrorCode : int {
    ParseError = -32700,
    InvalidRequest = -32600,
    MethodNotFound = -32601,
    InvalidParams = -32602,
    InternalError = -32603,
    TooManyClients = -32000,   // the server's client limit was reached; retry later
    LineTooLong = -32001,      // a line over kMaxLineBytes; the connection is closed
    UnknownRepo = -32002,      // the named repo is not in the daemon's manifests
    Unavailable = -32003,      // the daemon cannot do that now (shutting down, offline, ...)
    OperationFailed = -32004,  // the method ran and failed; the message says why
};

struct ErrorObject {
    int code = 0;
    std::string message;
    json data;  // null when absent
};

// A request's id: a number, a string or null. A request without an id is a notification and gets
// no reply.
struct Request {
    json id;  // number, string or null
    bool hasId = true;
    std::string method;
    json params = json::object();  // always an object once decoded
};

struct Response {
    json id;  // echoes the request's id; null when it could not be read
    std::optional<json> result;
    std::optional<ErrorObject> error;

    bool ok() const { return result.has_value(); }
};

// Server-to-client message without an id, e.g. the progress stream of `subscribe`.
struct Notification {
    std::string method;
    json params = json::object();
};

Response makeResult(json id, json result);
Response makeError(json id, ErrorCode code, std::string message, json data = nullptr);

// Parses one line (without its newline) into a Request, or into the error Response to send:
// -32700 for bad JSON, -32600 for a wrong jsonrpc/method/id/params type or a line over
// kMaxLineBytes. The id is kept in the error whenever it was readable and of a valid type.
std::variant<Request, Response> decodeRequest(std::string_view line);

// What a client reads: a Response (it has an id) or a Notification (it has a method and no id).
// Tolerant: unknown members are ignored. Returns an error text when the line is neither.
using Message = std::variant<Response, Notification>;
std::variant<Message, std::string> decodeMessage(std::string_view line);

// Serialized message followed by '\n'. Non-UTF-8 bytes in strings are replaced, never thrown on.
std::string encode(const Request& request);
std::string encode(const Response& response);
std::string encode(const Notification& notification);

}  // namespace hfwarm::protocol
