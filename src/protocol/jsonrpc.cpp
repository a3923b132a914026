#include "hfwarm/protocol/jsonrpc.hpp"

#include <utility>

namespace hfwarm::protocol {

namespace {

bool validId(const json& id) {
    return id.is_string() || id.is_number() || id.is_null();
}

std::string dumpLine(const json& j) {
    // Strings in results come from file names and Hub answers; a stray byte must not throw here.
    std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
    line += '\n';
    return line;
}

}  // namespace

Response makeResult(json id, json result) {
    Response response;
    response.id = std::move(id);
    response.result = std::move(result);
    return response;
}

Response makeError(json id, ErrorCode code, std::string message, json data) {
    Response response;
    response.id = std::move(id);
    response.error = ErrorObject{static_cast<int>(code), std::move(message), std::move(data)};
    return response;
}

std::variant<Request, Response> decodeRequest(std::string_view line) {
    if (line.size() > kMaxLineBytes) {
        return makeError(nullptr, ErrorCode::LineTooLong,
                         "request line of " + std::to_string(line.size()) + " bytes exceeds the limit of " +
                             std::to_string(kMaxLineBytes) + " bytes; send one JSON object a line");
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
        return makeError(nullptr, ErrorCode::ParseError,
                         "parse error: the line is not valid JSON; send one JSON-RPC 2.0 object a line");
    }
    if (!j.is_object()) {
        return makeError(nullptr, ErrorCode::InvalidRequest,
                         j.is_array() ? "invalid request: batches are not supported; send one object a line"
                                      : "invalid request: expected a JSON object");
    }
    Request request;
    if (auto it = j.find("id"); it != j.end()) {
        if (!validId(*it)) {
            return makeError(nullptr, ErrorCode::InvalidRequest,
                             "invalid request: \"id\" must be a number, a string or null");
        }
        request.id = *it;
        request.hasId = true;
    } else {
        request.hasId = false;
    }
    if (auto it = j.find("jsonrpc");
        it == j.end() || !it->is_string() || it->get_ref<const std::string&>() != "2.0") {
        return makeError(request.id, ErrorCode::InvalidRequest,
                         "invalid request: \"jsonrpc\" must be \"2.0\"");
    }
    if (auto it = j.find("method"); it == j.end() || !it->is_string()) {
        return makeError(request.id, ErrorCode::InvalidRequest,
                         "invalid request: \"method\" must be a string");
    } else {
        request.method = it->get<std::string>();
    }
    if (auto it = j.find("params"); it != j.end()) {
        if (it->is_object()) {
            request.params = std::move(*it);
        } else if (it->is_array()) {
            return makeError(request.id, ErrorCode::InvalidParams,
                             "invalid params: hfwarmd takes named parameters; \"params\" must be an object");
        } else {
            return makeError(request.id, ErrorCode::InvalidRequest,
                             "invalid request: \"params\" must be an object when present");
        }
    }
    return request;
}

std::variant<Message, std::string> decodeMessage(std::string_view line) {
    if (line.size() > kMaxLineBytes) {
        return "reply line of " + std::to_string(line.size()) + " bytes exceeds the limit of " +
               std::to_string(kMaxLineBytes) + " bytes";
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) return std::string("reply is not valid JSON");
    if (!j.is_object()) return std::string("reply is not a JSON object");
    auto method = j.find("method");
    if (method != j.end() && method->is_string() && !j.contains("id")) {
        Notification notification;
        notification.method = method->get<std::string>();
        if (auto params = j.find("params"); params != j.end() && params->is_object()) {
            notification.params = std::move(*params);
        }
        return Message{std::move(notification)};
    }
    Response response;
    if (auto id = j.find("id"); id != j.end() && validId(*id)) response.id = *id;
    if (auto result = j.find("result"); result != j.end()) {
        response.result = std::move(*result);
        return Message{std::move(response)};
    }
    if (auto error = j.find("error"); error != j.end() && error->is_object()) {
        ErrorObject object;
        if (auto code = error->find("code"); code != error->end() && code->is_number_integer()) {
            object.code = code->get<int>();
        }
        if (auto message = error->find("message"); message != error->end() && message->is_string()) {
            object.message = message->get<std::string>();
        }
        if (auto data = error->find("data"); data != error->end()) object.data = *data;
        response.error = std::move(object);
        return Message{std::move(response)};
    }
    return std::string("reply has neither \"result\" nor \"error\" nor a notification \"method\"");
}

std::string encode(const Request& request) {
    json j = {{"jsonrpc", "2.0"}, {"method", request.method}};
    if (!request.params.is_null() && !request.params.empty()) j["params"] = request.params;
    if (request.hasId) j["id"] = request.id;
    return dumpLine(j);
}

std::string encode(const Response& response) {
    json j = {{"jsonrpc", "2.0"}};
    if (response.error) {
        json error = {{"code", response.error->code}, {"message", response.error->message}};
        if (!response.error->data.is_null()) error["data"] = response.error->data;
        j["error"] = std::move(error);
    } else {
        j["result"] = response.result.value_or(json(nullptr));
    }
    j["id"] = response.id;
    return dumpLine(j);
}

std::string encode(const Notification& notification) {
    json j = {{"jsonrpc", "2.0"}, {"method", notification.method}, {"params", notification.params}};
    return dumpLine(j);
}

}  // namespace hfwarm::protocol
