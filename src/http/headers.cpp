// The Beast-free parts of the http module: header fields, failures and the default hooks.
#include "hfwarm/http/client.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace hfwarm::http {

namespace {

bool sameName(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(),
                      [](unsigned char x, unsigned char y) { return std::tolower(x) == std::tolower(y); });
}

}  // namespace

void Headers::add(std::string name, std::string value) {
    fields_.emplace_back(std::move(name), std::move(value));
}

void Headers::set(std::string name, std::string value) {
    remove(name);
    add(std::move(name), std::move(value));
}

void Headers::remove(std::string_view name) {
    std::erase_if(fields_, [&](const auto& field) { return sameName(field.first, name); });
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
    for (const auto& [key, value] : fields_)
        if (sameName(key, name)) return std::string_view(value);
    return std::nullopt;
}

std::vector<std::string_view> Headers::getAll(std::string_view name) const {
    std::vector<std::string_view> values;
    for (const auto& [key, value] : fields_)
        if (sameName(key, name)) values.emplace_back(value);
    return values;
}

void readProxyEnvironment(ClientOptions& options) {
    auto read = [](const char* lowerName, const char* upperName) -> std::string {
        for (const char* name : {lowerName, upperName})
            if (const char* value = std::getenv(name); value && *value) return value;
        return {};
    };
    if (options.httpsProxy.empty()) options.httpsProxy = read("https_proxy", "HTTPS_PROXY");
    if (options.noProxy.empty()) options.noProxy = read("no_proxy", "NO_PROXY");
}

bool Failure::retryable() const {
    switch (kind) {
        case FailureKind::Connect:
        case FailureKind::Timeout:
        case FailureKind::Stall:
        case FailureKind::Network:
            return true;
        default:
            return false;
    }
}

void throw_exception_from_error(const Failure& failure, const boost::source_location&) {
    throw ErrorException(Error{failure.message});
}

net::awaitable<void> Hooks::beforeRequest(const RequestInfo&) {
    co_return;
}

void Hooks::afterResponse(const RequestInfo&, const Response&) {}

void Hooks::afterFailure(const RequestInfo&, const Failure&) {}

net::awaitable<void> Hooks::beforeBodyChunk(std::size_t) {
    co_return;
}

}  // namespace hfwarm::http
