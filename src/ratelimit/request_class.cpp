#include "hfwarm/ratelimit/request_class.hpp"

namespace hfwarm::ratelimit {

RequestClass classify(std::string_view path, bool hubHost) {
    if (!hubHost) return RequestClass::Other;
    // A `/resolve/` inside a query string (a redirect target passed as a parameter) is not a
    // resolver call.
    if (auto end = path.find_first_of("?#"); end != std::string_view::npos) path = path.substr(0, end);
    if (path == "/api" || path.starts_with("/api/")) return RequestClass::Api;
    if (path.find("/resolve/") != std::string_view::npos) return RequestClass::Resolvers;
    return RequestClass::Other;
}

std::string_view className(RequestClass cls) {
    switch (cls) {
        case RequestClass::Api:
            return "api";
        case RequestClass::Resolvers:
            return "resolvers";
        case RequestClass::Other:
            break;
    }
    return "other";
}

}  // namespace hfwarm::ratelimit
