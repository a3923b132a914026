#include "hfwarm/config/config.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <cctype>
#include <system_error>

extern char** environ;

namespace hfwarm::config {

namespace {

std::optional<std::filesystem::path> existingFile(const std::filesystem::path& file) {
    std::error_code ec;
    if (!file.empty() && std::filesystem::is_regular_file(file, ec)) return file;
    return std::nullopt;
}

// $XDG_CONFIG_HOME/hfwarm, else ~/.config/hfwarm; empty when neither variable is set.
std::filesystem::path userConfigDir(const Environment& env) {
    if (auto xdg = env.get("XDG_CONFIG_HOME")) return std::filesystem::path(*xdg) / "hfwarm";
    if (auto home = env.get("HOME")) return std::filesystem::path(*home) / ".config" / "hfwarm";
    return {};
}

}  // namespace

std::optional<std::filesystem::path> findConfigFile(const Environment& env) {
    auto userDir = userConfigDir(env);
    if (!userDir.empty()) {
        if (auto file = existingFile(userDir / "hfwarmd.json")) return file;
    }
    return existingFile(env.systemConfigFile);
}

std::optional<std::filesystem::path> findDefaultManifest(const Environment& env) {
    auto userDir = userConfigDir(env);
    if (userDir.empty()) return std::nullopt;
    return existingFile(userDir / "manifest.txt");
}

std::filesystem::path defaultSocketPath(const Environment& env) {
    if (auto socket = env.get("HFWARM_SOCKET")) return *socket;
    if (auto runtime = env.get("XDG_RUNTIME_DIR"))
        return std::filesystem::path(*runtime) / "hfwarm" / "hfwarmd.sock";
    if (env.uid == 0) return "/run/hfwarm/hfwarmd.sock";
    return fmt::format("/tmp/hfwarm-{}/hfwarmd.sock", env.uid);
}

std::optional<std::string> Environment::get(std::string_view name) const {
    auto it = variables.find(name);
    if (it == variables.end() || it->second.empty()) return std::nullopt;
    return it->second;
}

Environment Environment::current() {
    Environment env;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        std::string_view text(*entry);
        auto eq = text.find('=');
        if (eq == std::string_view::npos) continue;
        env.variables.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
    }
    env.uid = static_cast<unsigned>(::geteuid());
    env.systemConfigFile = "/etc/hfwarm/hfwarmd.json";
    return env;
}

bool isTrue(std::string_view value) {
    std::string upper;
    for (char c : value) upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    return upper == "1" || upper == "ON" || upper == "YES" || upper == "TRUE";
}

}  // namespace hfwarm::config
