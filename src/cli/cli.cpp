#include "hfwarm/cli/cli.hpp"

#include "hfwarm/cli/client.hpp"
#include "hfwarm/cli/env.hpp"
#include "hfwarm/config/config.hpp"
#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/protocol/summary.hpp"
#include "hfwarm/util/units.hpp"
#include "hfwarm_version.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>
#include <thread>

extern char** environ;

namespace hfwarm::cli {

namespace {

using protocol::json;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kCallTimeout = 30s;
// The longest `wait --timeout`: a week of seconds.
constexpr double kMaxWaitSeconds = 7 * 24 * 3600;

// The daemon-facing half of a command: one request, printed errors, exit codes.
class Session {
  public:
    Session(Context& context, std::string socketPath, bool jsonOutput)
        : context_(context), socketPath_(std::move(socketPath)), json_(jsonOutput) {}

    bool jsonOutput() const { return json_; }
    Context& context() { return context_; }

    // The result of `method`, or the exit code after printing why there is none. With `quiet`, an
    // unreachable daemon is not printed but kept for reportUnreachable().
    std::variant<json, int> call(const std::string& method, const json& params,
                                 std::chrono::milliseconds timeout = kCallTimeout, bool quiet = false) {
        if (!client_) {
            auto connected = Client::connect(socketPath_);
            if (auto* failure = std::get_if<CallFailure>(&connected)) return fail(*failure, quiet);
            client_.emplace(std::move(std::get<Client>(connected)));
        }
        auto reply = client_->call(method, params, timeout);
        if (auto* failure = std::get_if<CallFailure>(&reply)) {
            client_.reset();
            return fail(*failure, quiet);
        }
        auto& response = std::get<protocol::Response>(reply);
        if (response.error) {
            context_.err << "hfwarmctl: " << method << " failed: " << response.error->message << " (code "
                         << response.error->code << ")\n";
            return kExitFailed;
        }
        return std::move(*response.result);
    }

    // A request whose failure changes nothing for the command (an older daemon without the
    // method): true when it succeeded; prints nothing either way.
    bool callQuietly(const std::string& method, const json& params) {
        if (!client_) return false;
        auto reply = client_->call(method, params, kCallTimeout);
        if (std::holds_alternative<CallFailure>(reply)) {
            client_.reset();
            return false;
        }
        return !std::get<protocol::Response>(reply).error;
    }

    // Prints the raw result for --json; true when it did.
    bool printJson(const json& result) {
        if (!json_) return false;
        context_.out << result.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
        return true;
    }

    void reportUnreachable() {
        if (lastFailure_) context_.err << "hfwarmctl: " << lastFailure_->message << '\n';
    }

  private:
    int fail(const CallFailure& failure, bool quiet) {
        lastFailure_ = failure;
        if (!quiet) reportUnreachable();
        return kExitUnreachable;
    }

    Context& context_;
    std::string socketPath_;
    bool json_;
    std::optional<Client> client_;
    std::optional<CallFailure> lastFailure_;
};

int runStatus(Session& session, const std::string& repo) {
    protocol::StatusParams params;
    if (!repo.empty()) params.repo = repo;
    auto reply = session.call(std::string(protocol::method::status), json(params));
    if (auto* code = std::get_if<int>(&reply)) return *code;
    auto status = std::get<json>(reply).get<protocol::StatusResult>();
    if (!session.printJson(std::get<json>(reply))) {
        session.context().out << formatStatus(status, std::chrono::system_clock::now());
    }
    bool failed = std::any_of(status.entries.begin(), status.entries.end(),
                              [](const auto& entry) { return !entry.optional && isFinalFailure(entry); });
    return failed ? kExitFailed : kExitOk;
}

// The summary line of `status`, over the entries a wait watches.
std::string watchedSummary(const WaitState& state) {
    std::vector<protocol::EntryStatus> watched;
    for (const auto* entry : state.watched) watched.push_back(*entry);
    return protocol::summaryLine(watched);
}

void printWaitFailure(std::ostream& err, const WaitState& state) {
    for (const auto& name : state.missing) {
        err << "hfwarmctl: " << name
            << " is not in hfwarmd's manifests; check the name or add it to a manifest\n";
    }
    for (const auto* entry : state.watched) {
        if (!isFinalFailure(*entry)) continue;
        err << "hfwarmctl: " << entry->display() << " " << protocol::stateName(entry->state) << ": "
            << entry->error.value_or("no reason given") << '\n';
    }
}

int runWait(Session& session, double timeoutSeconds, const std::vector<std::string>& repos) {
    Context& context = session.context();
    const auto start = std::chrono::steady_clock::now();
    const bool limited = timeoutSeconds > 0;
    const auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(timeoutSeconds));
    auto nextPlainLine = start + context.plainProgressInterval;
    bool barShown = false;
    auto clearBar = [&] {
        if (barShown) context.err << "\r\x1b[K" << std::flush;
        barShown = false;
    };
    // `hfwarmd & hfwarmctl wait` must not lose the race against the daemon binding its socket, nor
    // fail while a daemon restarts: an unreachable daemon is retried for a grace period.
    std::optional<std::chrono::steady_clock::time_point> unreachableSince;
    bool promoted = false;
    for (;;) {
        auto reply = session.call(std::string(protocol::method::status), json::object(), kCallTimeout, true);
        if (auto* code = std::get_if<int>(&reply)) {
            const auto now = std::chrono::steady_clock::now();
            if (!unreachableSince) unreachableSince = now;
            if (*code == kExitUnreachable && now - *unreachableSince < context.unreachableGrace &&
                (!limited || now < deadline)) {
                std::this_thread::sleep_for(context.pollInterval);
                continue;
            }
            clearBar();
            if (*code == kExitUnreachable) session.reportUnreachable();
            return *code;
        }
        unreachableSince.reset();
        auto status = std::get<json>(reply).get<protocol::StatusResult>();
        auto state = evaluateWait(status, repos);
        if (!promoted && !repos.empty()) {
            // The named entries go to the front of the daemon's queue, once.
            protocol::PromoteParams promote;
            for (const auto* entry : state.watched)
                if (!isDone(*entry)) promote.repos.push_back(entry->display());
            if (!promote.repos.empty())
                session.callQuietly(std::string(protocol::method::promote), json(promote));
            promoted = true;
        }
        if (state.verdict == WaitVerdict::Ready) {
            clearBar();
            if (!session.printJson(std::get<json>(reply))) context.out << watchedSummary(state) << '\n';
            return kExitOk;
        }
        if (state.verdict == WaitVerdict::Failed) {
            clearBar();
            session.printJson(std::get<json>(reply));
            printWaitFailure(context.err, state);
            if (!state.watched.empty()) context.err << "hfwarmctl: " << watchedSummary(state) << '\n';
            return kExitFailed;
        }
        const auto now = std::chrono::steady_clock::now();
        if (limited && now >= deadline) {
            clearBar();
            session.printJson(std::get<json>(reply));
            context.err << "hfwarmctl: wait timed out after " << fmt::format("{:g}", timeoutSeconds)
                        << " s; still waiting for:";
            for (const auto* entry : state.watched) {
                if (isDone(*entry)) continue;
                context.err << ' ' << entry->display() << " (" << protocol::stateName(entry->state) << ')';
            }
            context.err << '\n';
            return kExitTimedOut;
        }
        if (context.interactive) {
            context.err << "\r\x1b[K" << formatProgress(state, true) << std::flush;
            barShown = true;
        } else if (now >= nextPlainLine) {
            context.err << "waiting: " << formatProgress(state, false) << '\n' << std::flush;
            nextPlainLine = now + context.plainProgressInterval;
        }
        auto sleep = std::chrono::duration_cast<std::chrono::steady_clock::duration>(context.pollInterval);
        if (limited) sleep = std::min(sleep, deadline - now);
        std::this_thread::sleep_for(sleep);
    }
}

int runLookup(Session& session, const std::string& repo, const std::string& file,
              const std::string& revision) {
    protocol::LookupParams params{repo, file, std::nullopt};
    if (!revision.empty()) params.revision = revision;
    auto reply = session.call(std::string(protocol::method::lookup), json(params));
    if (auto* code = std::get_if<int>(&reply)) return *code;
    auto result = std::get<json>(reply).get<protocol::LookupResult>();
    const std::string at = revision.empty() ? "" : "@" + revision;
    if (!session.printJson(std::get<json>(reply))) {
        auto& out = session.context().out;
        switch (result.state) {
            case protocol::LookupState::Cached:
                out << result.path.value_or("") << '\n';
                break;
            case protocol::LookupState::Absent:
                out << "absent: " << file << " does not exist in " << repo << at
                    << " (known from the cache)\n";
                break;
            case protocol::LookupState::Unknown:
                out << "unknown: " << file << " of " << repo << at << " is not in the cache\n";
                break;
        }
    }
    return result.state == protocol::LookupState::Cached ? kExitOk : kExitFailed;
}

int runAck(Session& session, std::string_view method, const json& params, std::chrono::milliseconds timeout) {
    auto reply = session.call(std::string(method), params, timeout);
    if (auto* code = std::get_if<int>(&reply)) return *code;
    if (!session.printJson(std::get<json>(reply))) {
        auto ack = std::get<json>(reply).get<protocol::AckResult>();
        session.context().out << (ack.message.empty() ? std::string(method) + ": done" : ack.message) << '\n';
    }
    return kExitOk;
}

int runVerify(Session& session) {
    // Re-hashing a large cache takes as long as reading it: no reply deadline.
    auto reply = session.call(std::string(protocol::method::verify), json::object(), 0ms);
    if (auto* code = std::get_if<int>(&reply)) return *code;
    auto result = std::get<json>(reply).get<protocol::VerifyResult>();
    if (!session.printJson(std::get<json>(reply))) {
        auto& out = session.context().out;
        for (const auto& problem : result.problems) {
            out << problem.repo << ": " << problem.path << ": " << problem.problem << '\n';
        }
        out << "verified " << result.filesChecked << " files (" << util::humanBytes(result.bytesChecked)
            << "), " << result.problems.size() << (result.problems.size() == 1 ? " problem" : " problems")
            << '\n';
    }
    return result.problems.empty() ? kExitOk : kExitFailed;
}

int runPrune(Session& session, bool apply) {
    auto reply = session.call(std::string(protocol::method::prune), json(protocol::PruneParams{apply}), 0ms);
    if (auto* code = std::get_if<int>(&reply)) return *code;
    auto result = std::get<json>(reply).get<protocol::PruneResult>();
    if (!session.printJson(std::get<json>(reply))) {
        auto& out = session.context().out;
        const char* verb = result.applied ? "removed" : "would remove";
        for (const auto& item : result.items) {
            out << verb << ' ' << item.path << " (" << util::humanBytes(item.bytes) << ")";
            if (!item.reason.empty()) out << ": " << item.reason;
            out << '\n';
        }
        out << verb << ' ' << result.items.size() << (result.items.size() == 1 ? " item, " : " items, ")
            << util::humanBytes(result.bytes);
        if (!result.applied && !result.items.empty()) out << "; run `hfwarmctl prune --apply` to remove them";
        out << '\n';
    }
    return kExitOk;
}

int runMetrics(Session& session) {
    auto reply = session.call(std::string(protocol::method::metrics), json::object());
    if (auto* code = std::get_if<int>(&reply)) return *code;
    if (!session.printJson(std::get<json>(reply))) {
        auto text = std::get<json>(reply).get<protocol::MetricsResult>().text;
        session.context().out << text;
        if (!text.empty() && text.back() != '\n') session.context().out << '\n';
    }
    return kExitOk;
}

int runVersion(Session& session) {
    auto reply = session.call(std::string(protocol::method::version), json::object());
    if (auto* code = std::get_if<int>(&reply)) return *code;
    if (!session.printJson(std::get<json>(reply))) {
        auto version = std::get<json>(reply).get<protocol::VersionResult>();
        session.context().out << "hfwarmctl " << HFWARM_VERSION << "\nhfwarmd " << version.version
                              << " (protocol " << version.protocol << ")\n";
    }
    return kExitOk;
}

int runCacheKey(Context& context, const std::vector<std::string>& files) {
    std::vector<std::filesystem::path> paths(files.begin(), files.end());
    auto loaded = manifest::loadAll(paths);
    if (!loaded.ok()) {
        for (const auto& diagnostic : loaded.errors) context.err << diagnostic.format() << '\n';
        context.err << "hfwarmctl: cache-key: fix the manifest errors above\n";
        return kExitUsage;
    }
    context.out << manifest::cacheKey(loaded.manifest) << '\n';
    return kExitOk;
}

}  // namespace

int run(const std::vector<std::string>& args, Context& context) {
    CLI::App app{"hfwarmctl: asks hfwarmd what is ready in the Hugging Face cache", "hfwarmctl"};
    app.set_version_flag("--version", std::string("hfwarmctl ") + HFWARM_VERSION);
    app.require_subcommand(1);
    std::string socketPath;
    bool jsonOutput = false;
    app.add_option("--socket", socketPath,
                   "hfwarmd's socket (default: HFWARM_SOCKET, else the per-user path)");
    app.add_flag("--json", jsonOutput, "print the daemon's raw JSON result");

    std::string repo;
    auto* status =
        app.add_subcommand("status", "show every entry: state, commit, files, bytes, speed, errors");
    status->add_option("REPO", repo, "only this repo");

    double timeout = 0;
    std::vector<std::string> repos;
    auto* wait = app.add_subcommand("wait", "wait until every required entry (or each REPO) is ready");
    wait->add_option("--timeout", timeout, "give up after S seconds (exit 124); 0 waits forever")
        ->check(CLI::Validator(
            [](std::string& text) -> std::string {
                double value = 0;
                // nan and inf parse as numbers, and a huge value overflows the deadline: both are refused.
                if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || value < 0 ||
                    value > kMaxWaitSeconds) {
                    return fmt::format("expected a number of seconds from 0 to {:g} (a week), got \"{}\"",
                                       kMaxWaitSeconds, text);
                }
                return {};
            },
            "SECONDS"));
    wait->add_option("REPO", repos, "wait only for these repos");

    std::string file;
    std::string revision;
    auto* lookup =
        app.add_subcommand("lookup", "is FILE of REPO cached (prints its path), known absent, or unknown");
    lookup->add_option("REPO", repo, "org/name or datasets/org/name")->required();
    lookup->add_option("FILE", file, "path inside the repo")->required();
    lookup->add_option("--revision", revision, "branch, tag or commit (default: the manifest's)");

    auto* sync = app.add_subcommand("sync", "re-check entries against the Hub now");
    sync->add_option("REPO", repo, "only this repo");
    auto* reload = app.add_subcommand("reload", "re-read the config's manifests");
    auto* pause = app.add_subcommand("pause", "stop starting requests until resume");
    auto* resume = app.add_subcommand("resume", "continue after pause");
    auto* verify = app.add_subcommand("verify", "re-hash every cached blob; exit 1 on a problem");
    bool apply = false;
    auto* prune = app.add_subcommand("prune", "list what is not in any manifest (remove it with --apply)");
    prune->add_flag("--apply", apply, "remove instead of listing");
    auto* metrics = app.add_subcommand("metrics", "print the Prometheus metrics");
    auto* version = app.add_subcommand("version", "print the client's and the daemon's versions");
    auto* shutdown = app.add_subcommand("shutdown", "stop hfwarmd (partial files are kept for resume)");
    std::vector<std::string> manifests;
    auto* cacheKey =
        app.add_subcommand("cache-key", "print a stable key of the manifests (no daemon needed)");
    cacheKey->add_option("FILE", manifests, "manifest files")->required();
    EnvOptions envOptions;
    auto* env = addEnvCommand(app, envOptions);
    for (auto* sub : app.get_subcommands({})) sub->fallthrough();

    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        return app.exit(e, context.out, context.err) == 0 ? kExitOk : kExitUsage;
    }

    if (cacheKey->parsed()) return runCacheKey(context, manifests);

    if (socketPath.empty()) {
        config::Environment environment;
        environment.variables = context.env;
        environment.uid = context.uid;
        socketPath = config::defaultSocketPath(environment).string();
    }
    Session session(context, socketPath, jsonOutput);
    if (status->parsed()) return runStatus(session, repo);
    if (wait->parsed()) return runWait(session, timeout, repos);
    if (lookup->parsed()) return runLookup(session, repo, file, revision);
    if (sync->parsed()) {
        protocol::SyncParams params;
        if (!repo.empty()) params.repo = repo;
        return runAck(session, protocol::method::sync, json(params), kCallTimeout);
    }
    if (reload->parsed()) return runAck(session, protocol::method::reload, json::object(), kCallTimeout);
    if (pause->parsed()) return runAck(session, protocol::method::pause, json::object(), kCallTimeout);
    if (resume->parsed()) return runAck(session, protocol::method::resume, json::object(), kCallTimeout);
    if (shutdown->parsed()) return runAck(session, protocol::method::shutdown, json::object(), kCallTimeout);
    if (verify->parsed()) return runVerify(session);
    if (prune->parsed()) return runPrune(session, apply);
    if (metrics->parsed()) return runMetrics(session);
    if (version->parsed()) return runVersion(session);
    if (env->parsed()) return runEnv(envOptions, context, socketPath, jsonOutput);
    context.err << "hfwarmctl: no command given; see hfwarmctl --help\n";
    return kExitUsage;
}

int run(int argc, char** argv) {
    Context context{
        std::cout, std::cerr, {}, static_cast<unsigned>(::geteuid()), ::isatty(STDERR_FILENO) == 1};
    for (char** variable = environ; *variable != nullptr; ++variable) {
        std::string_view entry(*variable);
        if (auto equals = entry.find('='); equals != std::string_view::npos) {
            context.env.emplace(std::string(entry.substr(0, equals)), std::string(entry.substr(equals + 1)));
        }
    }
    std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
    return run(args, context);
}

}  // namespace hfwarm::cli
