#include "hfwarm/cli/env.hpp"

#include "hfwarm/cache/root.hpp"
#include "hfwarm/cli/client.hpp"
#include "hfwarm/config/config.hpp"
#include "hfwarm/protocol/messages.hpp"

#include <map>
#include <optional>
#include <variant>

namespace hfwarm::cli {

namespace {

using protocol::json;
using namespace std::chrono_literals;

// The file hfwarmd reads when a user has none (config::Environment::current()).
constexpr const char* kSystemConfigFile = "/etc/hfwarm/hfwarmd.json";

std::string oneLine(std::string text) {
    for (char& c : text) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    return text;
}

// A heredoc delimiter for $GITHUB_ENV that does not occur in `value`.
std::string delimiterFor(std::string_view value) {
    std::string delimiter = "HFWARM_EOF";
    for (int n = 1; value.find(delimiter) != std::string_view::npos; ++n) {
        delimiter = "HFWARM_EOF_" + std::to_string(n);
    }
    return delimiter;
}

// A workflow command's message: %, CR and LF are escaped as the runner expects.
std::string commandData(std::string_view text) {
    std::string escaped;
    for (char c : text) {
        if (c == '%')
            escaped += "%25";
        else if (c == '\r')
            escaped += "%0D";
        else if (c == '\n')
            escaped += "%0A";
        else
            escaped += c;
    }
    return escaped;
}

cache::Env envOf(const Context& context) {
    return cache::mapEnv(std::map<std::string, std::string>(context.env.begin(), context.env.end()));
}

// The cache root hfwarmd would use with these flags, or the exit code after printing why not.
std::variant<std::filesystem::path, int> resolvedRoot(const EnvOptions& options, Context& context) {
    config::Environment environment;
    environment.variables = context.env;
    environment.uid = context.uid;
    environment.systemConfigFile = kSystemConfigFile;
    config::Overrides overrides;
    if (!options.configFile.empty()) overrides.configFile = options.configFile;
    if (!options.cacheDir.empty()) overrides.cacheDir = options.cacheDir;
    auto loaded = config::resolve(overrides, environment);
    if (!loaded.ok()) {
        for (const auto& error : loaded.errors) context.err << "hfwarmctl: env: " << error << '\n';
        context.err << "hfwarmctl: env: fix the configuration above, as hfwarmd would refuse it too\n";
        return kExitUsage;
    }
    std::optional<std::filesystem::path> override;
    if (!loaded.config.cacheDir.empty()) override = loaded.config.cacheDir;
    return cache::resolveRoot(override, envOf(context));
}

// The running daemon's cache root, or the exit code after printing why there is none.
std::variant<std::filesystem::path, int> daemonRoot(Context& context, const std::string& socketPath) {
    auto connected = Client::connect(socketPath);
    if (auto* failure = std::get_if<CallFailure>(&connected)) {
        context.err << "hfwarmctl: " << failure->message
                    << "; without a daemon, `hfwarmctl env --cache-dir DIR` or `--config FILE` prints the "
                       "same from hfwarmd's settings\n";
        return kExitUnreachable;
    }
    auto reply = std::get<Client>(connected).call(std::string(protocol::method::status), json::object(), 30s);
    if (auto* failure = std::get_if<CallFailure>(&reply)) {
        context.err << "hfwarmctl: " << failure->message << '\n';
        return kExitUnreachable;
    }
    auto& response = std::get<protocol::Response>(reply);
    if (response.error) {
        context.err << "hfwarmctl: status failed: " << response.error->message << " (code "
                    << response.error->code << ")\n";
        return kExitFailed;
    }
    const json& result = *response.result;
    auto cacheDir = result.find("cache_dir");
    if (cacheDir == result.end() || !cacheDir->is_string() || cacheDir->get<std::string>().empty()) {
        context.err << "hfwarmctl: env: hfwarmd at " << socketPath
                    << " did not report its cache root (cache_dir); upgrade it, or pass --cache-dir DIR\n";
        return kExitFailed;
    }
    return std::filesystem::path(cacheDir->get<std::string>());
}

}  // namespace

std::vector<std::pair<std::string, std::string>> offlineVariables(const std::filesystem::path& root) {
    return {{"HF_HUB_CACHE", root.string()},
            {"HF_HUB_OFFLINE", "1"},
            {"HF_OFFLINE", "true"},
            {"CI_OFFLINE_MODE", "true"}};
}

std::string shellQuote(std::string_view text) {
    std::string quoted = "'";
    for (char c : text) {
        if (c == '\'')
            quoted += "'\\''";
        else
            quoted += c;
    }
    return quoted + "'";
}

std::string formatEnv(const EnvReport& report, EnvFormat format) {
    std::string text;
    switch (format) {
        case EnvFormat::Sh:
            for (const auto& [name, value] : report.variables)
                text += "export " + name + '=' + shellQuote(value) + '\n';
            for (const auto& note : report.notes) text += "# " + oneLine(note) + '\n';
            break;
        case EnvFormat::Github:
            for (const auto& [name, value] : report.variables) {
                if (value.find_first_of("\r\n") == std::string::npos) {
                    text += name + '=' + value + '\n';
                } else {
                    const std::string delimiter = delimiterFor(value);
                    text += name + "<<" + delimiter + '\n' + value + '\n' + delimiter + '\n';
                }
            }
            break;
        case EnvFormat::Json: {
            json env = json::object();
            for (const auto& [name, value] : report.variables) env[name] = value;
            json doc{{"env", env}, {"notes", report.notes}};
            text = doc.dump(2, ' ', false, json::error_handler_t::replace) + '\n';
            break;
        }
    }
    return text;
}

CLI::App* addEnvCommand(CLI::App& app, EnvOptions& options) {
    auto* env = app.add_subcommand(
        "env", "print HF_HUB_CACHE and the offline switches for the tests: eval \"$(hfwarmctl env)\"");
    env->add_option("--format", options.format, "sh (default), github (lines for $GITHUB_ENV) or json")
        ->check(CLI::IsMember({"sh", "github", "json"}));
    env->add_option("--cache-dir", options.cacheDir,
                    "take this cache root instead of asking the daemon (resolved as hfwarmd does)");
    env->add_option("--config", options.configFile,
                    "take the cache root from this hfwarmd config file (and the environment) instead of "
                    "asking the daemon");
    return env;
}

int runEnv(const EnvOptions& options, Context& context, const std::string& socketPath, bool jsonOutput) {
    EnvFormat format = jsonOutput ? EnvFormat::Json : EnvFormat::Sh;
    if (options.format == "sh") format = EnvFormat::Sh;
    if (options.format == "github") format = EnvFormat::Github;
    if (options.format == "json") format = EnvFormat::Json;

    auto root = options.cacheDir.empty() && options.configFile.empty() ? daemonRoot(context, socketPath)
                                                                       : resolvedRoot(options, context);
    if (auto* code = std::get_if<int>(&root)) return *code;
    const auto& path = std::get<std::filesystem::path>(root);

    EnvReport report{offlineVariables(path), {}};
    if (auto note = cache::candleRootNote(path, envOf(context))) report.notes.push_back(*note);
    // huggingface_hub passes HF_HUB_CACHE through os.path.expandvars: a "$NAME" in the root would
    // be replaced by that variable's value when one is set.
    if (path.string().find('$') != std::string::npos) {
        report.notes.push_back("the cache root " + path.string() +
                               " contains '$', which huggingface_hub expands in HF_HUB_CACHE: move the cache "
                               "to a folder without '$' for Python programs to find it");
    }
    context.out << formatEnv(report, format);
    if (format == EnvFormat::Github) {
        for (const auto& note : report.notes) context.err << "::notice::" << commandData(note) << '\n';
    }
    return kExitOk;
}

}  // namespace hfwarm::cli
