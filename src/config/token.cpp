#include "hfwarm/config/token.hpp"

#include "hfwarm/http/url.hpp"

#include <fstream>
#include <sstream>

namespace hfwarm::config {

namespace {

std::string trim(std::string text) {
    std::string kept;
    for (char c : text)
        if (c != '\r' && c != '\n') kept.push_back(c);
    auto first = kept.find_first_not_of(" \t");
    if (first == std::string::npos) return {};
    auto last = kept.find_last_not_of(" \t");
    return kept.substr(first, last - first + 1);
}

std::filesystem::path hfHome(const Environment& env) {
    if (auto home = env.get("HF_HOME")) return *home;
    if (auto xdg = env.get("XDG_CACHE_HOME")) return std::filesystem::path(*xdg) / "huggingface";
    return std::filesystem::path(env.get("HOME").value_or("")) / ".cache" / "huggingface";
}

}  // namespace

std::optional<std::string> findToken(const Environment& env) {
    for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
        if (auto value = env.get(name)) {
            std::string token = trim(*value);
            if (!token.empty()) return token;
        }
    }
    std::filesystem::path file = env.get("HF_TOKEN_PATH").value_or((hfHome(env) / "token").string());
    std::ifstream in(file);
    if (!in) return std::nullopt;
    std::ostringstream content;
    content << in.rdbuf();
    std::string token = trim(content.str());
    if (token.empty()) return std::nullopt;
    return token;
}

std::optional<std::string> plainHttpTokenWarning(const Config& config, bool tokenFound) {
    if (!tokenFound || config.tokenOverHttp || !config.endpoint.starts_with("http://")) return std::nullopt;
    return "a token is set (HF_TOKEN or the token file) but the endpoint " +
           http::maskUserinfo(config.endpoint) +
           " is plain http: the token is not sent there, so gated and private repos will fail; use an "
           "https:// "
           "endpoint, or, for a trusted cache on your own network, set \"token_over_http\": true in the "
           "config "
           "file";
}

}  // namespace hfwarm::config
