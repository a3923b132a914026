// libFuzzer target: the JSON-RPC line decoders on arbitrary lines. Decoding never throws; a decoded
// request re-encodes to a line that decodes to the same request, and every error response can be
// encoded.
#include "hfwarm/protocol/jsonrpc.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <variant>

namespace {

[[noreturn]] void fail(const char* what, const std::string& line) {
    std::fprintf(stderr, "%s: %s\n", what, line.c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view line(reinterpret_cast<const char*>(data), size);
    namespace protocol = hfwarm::protocol;

    auto decoded = protocol::decodeRequest(line);
    if (auto* request = std::get_if<protocol::Request>(&decoded)) {
        if (!request->params.is_object()) fail("decoded params are not an object", std::string(line));
        auto encoded = protocol::encode(*request);
        if (encoded.empty() || encoded.back() != '\n')
            fail("encoded request does not end in a newline", encoded);
        encoded.pop_back();
        auto again = protocol::decodeRequest(encoded);
        auto* same = std::get_if<protocol::Request>(&again);
        if (!same) fail("re-encoded request does not decode", encoded);
        if (same->method != request->method || same->hasId != request->hasId || same->id != request->id ||
            same->params != request->params)
            fail("re-encoded request decodes differently", encoded);
    } else {
        const auto& response = std::get<protocol::Response>(decoded);
        if (!response.error) fail("a rejected line gave a response without an error", std::string(line));
        (void)protocol::encode(response);
    }

    auto message = protocol::decodeMessage(line);
    if (auto* parsed = std::get_if<protocol::Message>(&message)) {
        if (auto* response = std::get_if<protocol::Response>(parsed))
            (void)protocol::encode(*response);
        else
            (void)protocol::encode(std::get<protocol::Notification>(*parsed));
    }
    return 0;
}
