#include "hfwarm/config/config.hpp"

#include "hfwarm/ratelimit/resp.hpp"
#include "hfwarm/util/units.hpp"

#include <fmt/format.h>
#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <sstream>
#include <system_error>

extern char** environ;

namespace hfwarm::config {

namespace {

using nlohmann::json;

// Records the first syntax error of a document that json::parse rejected. nlohmann reports the
// line and column only through its exception text or a SAX handler; this keeps parsing
// exception-free.
struct SyntaxErrorCatcher {
    std::string message;

    bool null() { return true; }
    bool boolean(bool) { return true; }
    bool number_integer(json::number_integer_t) { return true; }
    bool number_unsigned(json::number_unsigned_t) { return true; }
    bool number_float(json::number_float_t, const json::string_t&) { return true; }
    bool string(json::string_t&) { return true; }
    bool binary(json::binary_t&) { return true; }
    bool start_object(std::size_t) { return true; }
    bool key(json::string_t&) { return true; }
    bool end_object() { return true; }
    bool start_array(std::size_t) { return true; }
    bool end_array() { return true; }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
        message = e.what();
        // Drop nlohmann's "[json.exception.parse_error.101] " tag: it means nothing to a reader.
        if (auto tag = message.find("] "); message.starts_with("[json.exception") && tag != std::string::npos)
            message.erase(0, tag + 2);
        return false;
    }
};

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

std::string got(const json& value) {
    return std::string(value.type_name());
}

std::string shown(const json& value) {
    return value.dump();
}

// Walks a config document against the schema, writing into a Config and collecting errors.
class Reader {
  public:
    Reader(Config& config, const FileContext& context, std::vector<std::string>& errors)
        : config_(config), context_(context), errors_(errors) {}

    void document(const json& root) {
        if (!root.is_object()) {
            error("", fmt::format("expected a JSON object at the top level, got {}", got(root)));
            return;
        }
        object(
            root, "",
            {
                {"manifests",
                 [this](const json& v, const std::string& p) { pathList(v, p, config_.manifests); }},
                {"cache_dir", [this](const json& v, const std::string& p) { path(v, p, config_.cacheDir); }},
                {"endpoint", [this](const json& v, const std::string& p) { endpoint(v, p); }},
                {"ca_file", [this](const json& v, const std::string& p) { path(v, p, config_.caFile); }},
                {"socket", [this](const json& v, const std::string& p) { path(v, p, config_.socket); }},
                {"socket_mode", [this](const json& v, const std::string& p) { socketMode(v, p); }},
                {"log_level", [this](const json& v, const std::string& p) { logLevel(v, p); }},
                {"offline", [this](const json& v, const std::string& p) { boolean(v, p, config_.offline); }},
                {"connections",
                 [this](const json& v, const std::string& p) { count(v, p, config_.connections, 1); }},
                {"connections_per_host",
                 [this](const json& v, const std::string& p) { count(v, p, config_.connectionsPerHost, 1); }},
                {"files_in_flight",
                 [this](const json& v, const std::string& p) { count(v, p, config_.filesInFlight, 1); }},
                {"segments",
                 [this](const json& v, const std::string& p) { count(v, p, config_.segments, 1); }},
                {"segment_min_size",
                 [this](const json& v, const std::string& p) { bytes(v, p, config_.segmentMinSize, 1); }},
                {"bandwidth",
                 [this](const json& v, const std::string& p) { bytes(v, p, config_.bandwidth, 0); }},
                {"request_timeout",
                 [this](const json& v, const std::string& p) { positive(v, p, config_.requestTimeout); }},
                {"stall_timeout",
                 [this](const json& v, const std::string& p) { positive(v, p, config_.stallTimeout); }},
                {"retry", [this](const json& v, const std::string& p) { retry(v, p); }},
                {"limits", [this](const json& v, const std::string& p) { limits(v, p); }},
                {"refresh_interval",
                 [this](const json& v, const std::string& p) { positive(v, p, config_.refreshInterval); }},
                {"min_free_space",
                 [this](const json& v, const std::string& p) { bytes(v, p, config_.minFreeSpace, 0); }},
                {"max_clients",
                 [this](const json& v, const std::string& p) { count(v, p, config_.maxClients, 1); }},
                {"client_idle_timeout",
                 [this](const json& v, const std::string& p) { positive(v, p, config_.clientIdleTimeout); }},
                {"redis", [this](const json& v, const std::string& p) { redis(v, p); }},
            });
    }

  private:
    using Apply = std::function<void(const json&, const std::string&)>;
    struct Field {
        std::string_view key;
        Apply apply;
    };

    void error(const std::string& path, const std::string& message) {
        if (path.empty())
            errors_.push_back(fmt::format("{}: {}", context_.source, message));
        else
            errors_.push_back(fmt::format("{}: {}: {}", context_.source, path, message));
    }

    void object(const json& value, const std::string& path, const std::vector<Field>& fields) {
        if (!value.is_object()) {
            error(path, fmt::format("expected an object, got {}", got(value)));
            return;
        }
        for (const auto& [key, item] : value.items()) {
            std::string itemPath = path.empty() ? key : path + "." + key;
            auto field = std::find_if(fields.begin(), fields.end(),
                                      [&name = key](const Field& f) { return f.key == name; });
            if (field == fields.end()) {
                std::vector<std::string> known;
                for (const auto& f : fields) known.emplace_back(f.key);
                error(itemPath, fmt::format("unknown key; known keys here: {}", join(known, ", ")));
                continue;
            }
            field->apply(item, itemPath);
        }
    }

    bool string(const json& value, const std::string& path, std::string& out) {
        if (!value.is_string()) {
            error(path, fmt::format("expected a string, got {}", got(value)));
            return false;
        }
        out = value.get<std::string>();
        return true;
    }

    std::filesystem::path expand(const std::string& text) const {
        if (text.empty()) return {};
        if (text == "~" && context_.home) return *context_.home;
        if (text.starts_with("~/") && context_.home)
            return std::filesystem::path(*context_.home) / text.substr(2);
        std::filesystem::path p(text);
        if (p.is_relative() && !context_.baseDir.empty()) return context_.baseDir / p;
        return p;
    }

    void path(const json& value, const std::string& path, std::filesystem::path& out) {
        std::string text;
        if (string(value, path, text)) out = expand(text);
    }

    void pathList(const json& value, const std::string& path, std::vector<std::filesystem::path>& out) {
        if (!value.is_array()) {
            error(path, fmt::format("expected an array of file names, got {}", got(value)));
            return;
        }
        std::vector<std::filesystem::path> paths;
        for (std::size_t i = 0; i < value.size(); ++i) {
            std::string itemPath = fmt::format("{}[{}]", path, i);
            std::string text;
            if (!string(value[i], itemPath, text)) continue;
            if (text.empty()) {
                error(itemPath, "expected a file name, got an empty string");
                continue;
            }
            paths.push_back(expand(text));
        }
        out = std::move(paths);
    }

    void boolean(const json& value, const std::string& path, bool& out) {
        if (!value.is_boolean()) {
            error(path, fmt::format("expected true or false, got {}", got(value)));
            return;
        }
        out = value.get<bool>();
    }

    void count(const json& value, const std::string& path, int& out, int minimum) {
        constexpr std::int64_t maximum = 1'000'000;
        if (!value.is_number()) {
            error(path, fmt::format("expected a whole number, got {}", got(value)));
            return;
        }
        if (!value.is_number_integer()) {
            error(path, fmt::format("expected a whole number, got {}", shown(value)));
            return;
        }
        // Unsigned values above int64 range would wrap in get<int64_t>(): compare as unsigned first.
        if (value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(maximum)) {
            error(path, fmt::format("must be at most {}, got {}", maximum, shown(value)));
            return;
        }
        auto n = value.get<std::int64_t>();
        if (n < minimum || n > maximum) {
            error(path, fmt::format("must be between {} and {}, got {}", minimum, maximum, n));
            return;
        }
        out = static_cast<int>(n);
    }

    bool number(const json& value, const std::string& path, double& out) {
        if (!value.is_number()) {
            error(path, fmt::format("expected a number, got {}", got(value)));
            return false;
        }
        out = value.get<double>();
        return true;
    }

    void positive(const json& value, const std::string& path, double& out) {
        double n = 0;
        if (!number(value, path, n)) return;
        if (!(n > 0)) {
            error(path, fmt::format("must be greater than 0, got {}", shown(value)));
            return;
        }
        out = n;
    }

    void nonNegative(const json& value, const std::string& path, double& out) {
        double n = 0;
        if (!number(value, path, n)) return;
        if (n < 0) {
            error(path, fmt::format("must not be negative, got {}", shown(value)));
            return;
        }
        out = n;
    }

    void bytes(const json& value, const std::string& path, std::uint64_t& out, std::uint64_t minimum) {
        std::optional<std::uint64_t> n;
        if (value.is_number_unsigned()) {
            n = value.get<std::uint64_t>();
        } else if (value.is_number_integer()) {
            error(path, fmt::format("must not be negative, got {}", shown(value)));
            return;
        } else if (value.is_string()) {
            n = util::parseByteSize(value.get<std::string>());
            if (!n) {
                error(path,
                      fmt::format("expected a byte count such as 4096, \"512K\", \"10M\" or \"1G\", got {}",
                                  shown(value)));
                return;
            }
        } else {
            error(path,
                  fmt::format("expected a byte count (a whole number or a string such as \"10M\"), got {}",
                              value.is_number() ? shown(value) : got(value)));
            return;
        }
        if (*n < minimum) {
            error(path, fmt::format("must be at least {}, got {}", minimum, shown(value)));
            return;
        }
        out = *n;
    }

    void endpoint(const json& value, const std::string& path) {
        std::string text;
        if (!string(value, path, text)) return;
        auto normalized = normalizeEndpoint(text);
        if (!normalized) {
            error(path, fmt::format(
                            "expected an http:// or https:// URL such as \"https://huggingface.co\", got {}",
                            shown(value)));
            return;
        }
        config_.endpoint = *normalized;
    }

    void socketMode(const json& value, const std::string& path) {
        if (!value.is_string()) {
            error(path, fmt::format("expected an octal mode string such as \"0660\", got {}", got(value)));
            return;
        }
        const auto text = value.get<std::string>();
        unsigned mode = 0;
        bool octal = !text.empty() && text.size() <= 4;
        for (char c : text) {
            if (c < '0' || c > '7') octal = false;
            mode = mode * 8 + static_cast<unsigned>(c - '0');
        }
        if (!octal || mode > 0777) {
            error(path,
                  fmt::format("expected an octal mode from \"0000\" to \"0777\" such as \"0660\", got {}",
                              shown(value)));
            return;
        }
        config_.socketMode = mode;
    }

    void logLevel(const json& value, const std::string& path) {
        std::string text;
        if (!string(value, path, text)) return;
        const auto& levels = logLevels();
        if (std::find(levels.begin(), levels.end(), text) == levels.end()) {
            error(path, fmt::format("expected one of {}, got {}", join(levels, ", "), shown(value)));
            return;
        }
        config_.logLevel = text;
    }

    void retry(const json& value, const std::string& path) {
        object(
            value, path,
            {
                {"max_attempts",
                 [this](const json& v, const std::string& p) { count(v, p, config_.retry.maxAttempts, 1); }},
                {"base_delay",
                 [this](const json& v, const std::string& p) { nonNegative(v, p, config_.retry.baseDelay); }},
                {"max_delay",
                 [this](const json& v, const std::string& p) { nonNegative(v, p, config_.retry.maxDelay); }},
            });
    }

    void bucket(const json& value, const std::string& path, BucketLimit& out) {
        object(value, path,
               {
                   {"rate", [this, &out](const json& v, const std::string& p) { positive(v, p, out.rate); }},
                   {"burst",
                    [this, &out](const json& v, const std::string& p) {
                        double burst = 0;
                        if (!number(v, p, burst)) return;
                        // A bucket that cannot hold one token never lets a request through.
                        if (burst < 1) {
                            error(p, fmt::format("must be at least 1, got {}", shown(v)));
                            return;
                        }
                        out.burst = burst;
                    }},
               });
    }

    void limits(const json& value, const std::string& path) {
        object(value, path,
               {
                   {"api", [this](const json& v, const std::string& p) { bucket(v, p, config_.limits.api); }},
                   {"resolvers",
                    [this](const json& v, const std::string& p) { bucket(v, p, config_.limits.resolvers); }},
                   {"reserve", [this](const json& v, const std::string& p) { reserve(v, p); }},
               });
    }

    void reserve(const json& value, const std::string& path) {
        double share = 0;
        if (!number(value, path, share)) return;
        if (!(share >= 0 && share <= kMaxReserve)) {
            error(path, fmt::format("must be a fraction from 0 to {} (0.1 keeps a tenth of each window for "
                                    "other tools), got {}",
                                    kMaxReserve, shown(value)));
            return;
        }
        config_.limits.reserve = share;
    }

    void redis(const json& value, const std::string& path) {
        std::string text;
        if (!string(value, path, text)) return;
        if (!text.empty() && !text.starts_with("redis://") && !text.starts_with("rediss://")) {
            error(path, "expected a redis:// or rediss:// URL, or \"\" for local rate limits only");
            return;
        }
        // The shared budget's own parser: rediss:// (TLS), a bad port or database is an error here
        // rather than at start.
        if (auto endpoint = ratelimit::resp::parseUrl(text); !text.empty() && !endpoint) {
            error(path, endpoint.error().message);
            return;
        }
        config_.redis = text;
    }

    Config& config_;
    const FileContext& context_;
    std::vector<std::string>& errors_;
};

std::optional<std::filesystem::path> existingFile(const std::filesystem::path& file) {
    std::error_code ec;
    if (!file.empty() && std::filesystem::is_regular_file(file, ec)) return file;
    return std::nullopt;
}

}  // namespace

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

const std::vector<std::string>& logLevels() {
    static const std::vector<std::string> levels{"trace", "debug",    "info", "warn",
                                                 "error", "critical", "off"};
    return levels;
}

std::optional<std::string> normalizeEndpoint(std::string_view url) {
    auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) return std::nullopt;
    const auto& u = *parsed;
    if (u.scheme() != "http" && u.scheme() != "https") return std::nullopt;
    // Credentials in the endpoint would end up in logs and status; the token has its own channel.
    if (!u.has_authority() || u.host().empty() || u.has_userinfo() || u.has_query() || u.has_fragment())
        return std::nullopt;
    std::string text(url);
    while (text.ends_with('/')) text.pop_back();
    return text;
}

LoadResult applyJson(const Config& base, std::string_view text, const FileContext& context) {
    LoadResult result{base, {}, {}};
    auto root = json::parse(text, nullptr, false, /*ignore_comments=*/true);
    if (root.is_discarded()) {
        SyntaxErrorCatcher catcher;
        json::sax_parse(text, &catcher, json::input_format_t::json, true, /*ignore_comments=*/true);
        result.errors.push_back(fmt::format("{}: not valid JSON: {}", context.source,
                                            catcher.message.empty() ? "syntax error" : catcher.message));
        return result;
    }
    Reader reader(result.config, context, result.errors);
    reader.document(root);
    return result;
}

LoadResult applyFile(const Config& base, const std::filesystem::path& file, const Environment& env) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
        return LoadResult{
            base, {fmt::format("{}: cannot read the config file: not a regular file", file.string())}, file};
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return LoadResult{
            base,
            {fmt::format("{}: cannot read the config file: permission denied; check its owner and mode",
                         file.string())},
            file};
    std::ostringstream text;
    text << in.rdbuf();
    FileContext context{file.string(), file.parent_path(), env.get("HOME")};
    auto result = applyJson(base, text.str(), context);
    result.configFile = file;
    return result;
}

std::vector<std::string> applyEnvironment(Config& config, const Environment& env) {
    std::vector<std::string> errors;
    if (auto endpoint = env.get("HF_ENDPOINT")) {
        if (auto normalized = normalizeEndpoint(*endpoint))
            config.endpoint = *normalized;
        else
            errors.push_back(
                fmt::format("HF_ENDPOINT: expected an http:// or https:// URL, got \"{}\"; fix or "
                            "unset the variable",
                            *endpoint));
    }
    // huggingface_hub reads HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE); older tools and CI images
    // set HF_OFFLINE or CI_OFFLINE_MODE. As there, only a true value switches anything: "0" or
    // "false" means "not asked for", so it cannot turn off an offline set in the config file.
    for (const char* name : {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_OFFLINE", "CI_OFFLINE_MODE"}) {
        if (auto value = env.get(name); value && isTrue(*value)) config.offline = true;
    }
    if (auto socket = env.get("HFWARM_SOCKET")) config.socket = *socket;
    return errors;
}

namespace {

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

LoadResult resolve(const Overrides& overrides, const Environment& env) {
    LoadResult result;

    // Layer 2: the config file.
    std::optional<std::filesystem::path> file = overrides.configFile;
    if (file) {
        std::error_code ec;
        if (!std::filesystem::exists(*file, ec)) {
            result.errors.push_back(fmt::format(
                "--config {}: no such file; give the path of an existing JSON config file, or leave "
                "--config out to use the defaults",
                file->string()));
            file.reset();
        }
    } else {
        file = findConfigFile(env);
    }
    if (file) result = applyFile(result.config, *file, env);

    // Layer 3: the environment.
    auto envErrors = applyEnvironment(result.config, env);
    result.errors.insert(result.errors.end(), envErrors.begin(), envErrors.end());

    // Layer 4: the command line. Values were checked when the flags were parsed.
    Config& c = result.config;
    if (!overrides.manifests.empty()) c.manifests = overrides.manifests;
    if (overrides.apiRate) c.limits.api.rate = *overrides.apiRate;
    if (overrides.apiBurst) c.limits.api.burst = *overrides.apiBurst;
    if (overrides.resolverRate) c.limits.resolvers.rate = *overrides.resolverRate;
    if (overrides.resolverBurst) c.limits.resolvers.burst = *overrides.resolverBurst;
    if (overrides.reserve) c.limits.reserve = *overrides.reserve;
    if (overrides.cacheDir) c.cacheDir = *overrides.cacheDir;
    if (overrides.endpoint) {
        if (auto normalized = normalizeEndpoint(*overrides.endpoint))
            c.endpoint = *normalized;
        else
            result.errors.push_back(fmt::format("--endpoint: expected an http:// or https:// URL, got \"{}\"",
                                                *overrides.endpoint));
    }
    if (overrides.caFile) c.caFile = *overrides.caFile;
    if (overrides.socket) c.socket = *overrides.socket;
    if (overrides.offline) c.offline = true;
    if (overrides.logLevel) c.logLevel = *overrides.logLevel;
    if (overrides.connections) c.connections = *overrides.connections;
    if (overrides.bandwidth) c.bandwidth = *overrides.bandwidth;

    // Checks that involve several keys or the file system, on the merged result.
    if (c.retry.maxDelay < c.retry.baseDelay)
        result.errors.push_back(fmt::format("retry.max_delay ({}) must not be below retry.base_delay ({})",
                                            c.retry.maxDelay, c.retry.baseDelay));
    if (!c.caFile.empty()) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(c.caFile, ec))
            result.errors.push_back(fmt::format(
                "ca_file {}: no such file; give a PEM file of certificates to trust", c.caFile.string()));
    }
    if (c.socket.empty()) c.socket = defaultSocketPath(env);
    return result;
}

}  // namespace hfwarm::config
