#include "hfwarm/cache/root.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <system_error>
#include <vector>

namespace hfwarm::cache {

namespace fs = std::filesystem;

Env processEnv() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        if (value == nullptr) return std::nullopt;
        return std::string(value);
    };
}

Env mapEnv(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

namespace {

std::optional<std::string> passwdHome(const char* user) {
    long suggested = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buffer(suggested > 0 ? static_cast<std::size_t>(suggested) : 16384);
    struct passwd entry {};
    struct passwd* found = nullptr;
    int rc = user == nullptr ? ::getpwuid_r(::getuid(), &entry, buffer.data(), buffer.size(), &found)
                             : ::getpwnam_r(user, &entry, buffer.data(), buffer.size(), &found);
    if (rc != 0 || found == nullptr || found->pw_dir == nullptr) return std::nullopt;
    return std::string(found->pw_dir);
}

bool isWordChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The home folder hf-hub 0.x uses: the dirs crate takes a non-empty HOME, else the password entry.
std::optional<std::string> rustHome(const Env& env) {
    auto home = env("HOME");
    if (home && !home->empty()) return home;
    return passwdHome(nullptr);
}

std::string envOr(const Env& env, const char* name, std::string fallback) {
    auto value = env(name);
    return value ? *value : std::move(fallback);
}

// os.path.join for two parts: an absolute second part replaces the first.
std::string pyJoin(const std::string& a, const std::string& b) {
    if (!b.empty() && b.front() == '/') return b;
    if (a.empty() || a.back() == '/') return a + b;
    return a + "/" + b;
}

fs::path makeAbsolute(const std::string& path) {
    // Python keeps a relative cache path relative to the working directory; making it absolute here
    // names the same folder and keeps paths in status output unambiguous.
    std::error_code ec;
    fs::path absolute = fs::absolute(path.empty() ? fs::path(".") : fs::path(path), ec);
    if (ec) return fs::path(path);
    if (absolute.filename() == ".") absolute = absolute.parent_path();
    return absolute;
}

}  // namespace

std::string expandUser(std::string_view path, const Env& env) {
    if (path.empty() || path.front() != '~') return std::string(path);
    std::size_t slash = path.find('/', 1);
    if (slash == std::string_view::npos) slash = path.size();
    std::optional<std::string> home;
    if (slash == 1) {
        home = env("HOME");
        if (!home) home = passwdHome(nullptr);
    } else {
        home = passwdHome(std::string(path.substr(1, slash - 1)).c_str());
    }
    if (!home) return std::string(path);
    std::string userHome = *home;
    while (!userHome.empty() && userHome.back() == '/') userHome.pop_back();
    std::string result = userHome + std::string(path.substr(slash));
    return result.empty() ? "/" : result;
}

std::string expandVars(std::string_view path, const Env& env) {
    std::string out;
    std::size_t i = 0;
    while (i < path.size()) {
        std::size_t dollar = path.find('$', i);
        if (dollar == std::string_view::npos) break;
        out.append(path.substr(i, dollar - i));
        std::size_t nameStart = dollar + 1;
        std::size_t end;
        std::string name;
        if (nameStart < path.size() && path[nameStart] == '{') {
            std::size_t close = path.find('}', nameStart + 1);
            if (close == std::string_view::npos) {
                out.push_back('$');
                i = nameStart;
                continue;
            }
            name = std::string(path.substr(nameStart + 1, close - nameStart - 1));
            end = close + 1;
        } else {
            end = nameStart;
            while (end < path.size() && isWordChar(path[end])) ++end;
            if (end == nameStart) {
                out.push_back('$');
                i = nameStart;
                continue;
            }
            name = std::string(path.substr(nameStart, end - nameStart));
        }
        auto value = name.empty() ? std::nullopt : env(name);
        if (value)
            out.append(*value);
        else
            out.append(path.substr(dollar, end - dollar));
        i = end;
    }
    if (i < path.size()) out.append(path.substr(i));
    return out;
}

fs::path resolveRoot(const std::optional<fs::path>& cacheDirOverride, const Env& env) {
    if (cacheDirOverride) return makeAbsolute(expandUser(cacheDirOverride->string(), env));

    // huggingface_hub constants.py, step by step: HF_HOME falls back to XDG_CACHE_HOME/huggingface
    // and then ~/.cache/huggingface; only HF_HOME and HF_HUB_CACHE get expanduser + expandvars, the
    // legacy HUGGINGFACE_HUB_CACHE is expanded through HF_HUB_CACHE's default.
    std::string defaultHome = pyJoin(expandUser("~", env), ".cache");
    std::string hfHome = expandVars(
        expandUser(envOr(env, "HF_HOME", pyJoin(envOr(env, "XDG_CACHE_HOME", defaultHome), "huggingface")),
                   env),
        env);
    std::string legacy = envOr(env, "HUGGINGFACE_HUB_CACHE", pyJoin(hfHome, "hub"));
    std::string hubCache = expandVars(expandUser(envOr(env, "HF_HUB_CACHE", legacy), env), env);
    return makeAbsolute(hubCache);
}

std::optional<std::string> candleRootNote(const fs::path& root, const Env& env) {
    auto home = rustHome(env);
    if (!home) {
        return "hf-hub 0.x (Candle's Api::new()) reads ~/.cache/huggingface/hub, and no home folder is "
               "known here; Candle programs need ApiBuilder::with_cache_dir(\"" +
               root.string() + "\") to use this cache";
    }
    fs::path candle = fs::path(*home) / ".cache" / "huggingface" / "hub";
    std::error_code ec;
    bool same = fs::equivalent(candle, root, ec);
    if (ec) same = fs::weakly_canonical(candle, ec) == fs::weakly_canonical(root, ec);
    if (same) return std::nullopt;
    std::string note = "hf-hub 0.x (Candle's Api::new()) always reads " + candle.string() + ", not " +
                       root.string() + ": Candle programs find these files only with ";
    if (root.filename() == "hub")
        note += "ApiBuilder::from_env() and HF_HOME=" + root.parent_path().string() + ", or ";
    note += "ApiBuilder::with_cache_dir(\"" + root.string() + "\")";
    return note;
}

std::string repoFolderName(const manifest::RepoRef& repo) {
    std::string name = std::string(manifest::typeName(repo.type)) + "s";
    std::size_t start = 0;
    while (true) {
        std::size_t slash = repo.id.find('/', start);
        name += "--";
        name += repo.id.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    return name;
}

}  // namespace hfwarm::cache
