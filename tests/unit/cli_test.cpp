// hfwarmctl through cli::run with captured streams. The commands that talk to a daemon run
// against an in-process server with a scripted handler on a temp Unix socket.
#include "hfwarm/cli/cli.hpp"
#include "hfwarm/cli/client.hpp"

#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/protocol/messages.hpp"
#include "hfwarm/server/server.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include "temp_dir.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace hfwarm;
using protocol::json;
using namespace std::chrono_literals;

namespace {

using testing::TempDir;

struct Outcome {
    int code = -1;
    std::string out;
    std::string err;
};

Outcome runCli(const std::vector<std::string>& args,
               std::map<std::string, std::string, std::less<>> env = {}) {
    std::ostringstream out;
    std::ostringstream err;
    cli::Context context{out, err, std::move(env), 1000, false, 20ms, 50ms, 300ms};
    Outcome outcome;
    outcome.code = cli::run(args, context);
    outcome.out = out.str();
    outcome.err = err.str();
    return outcome;
}

protocol::EntryStatus entry(std::string repo, protocol::EntryState state, bool optional = false) {
    protocol::EntryStatus e;
    e.repo = std::move(repo);
    e.state = state;
    e.optional = optional;
    e.filesTotal = 2;
    e.bytesTotal = 2048;
    if (state == protocol::EntryState::Ready) {
        e.filesDone = 2;
        e.bytesDone = 2048;
        e.commit = std::string(40, 'c');
    }
    return e;
}

// Answers status from a script: the n-th status call gets statuses[min(n, last)].
class ScriptedHandler : public server::Handler {
  public:
    net::awaitable<protocol::Response> handle(protocol::Request request) override {
        if (request.method == protocol::method::status) {
            std::size_t n = std::min<std::size_t>(statusCalls++, statuses.size() - 1);
            co_return protocol::makeResult(nullptr, json(statuses[n]));
        }
        if (request.method == protocol::method::lookup) {
            protocol::LookupParams params;
            if (auto error = protocol::checkLookupParams(request.params, params)) {
                co_return protocol::makeError(nullptr, protocol::ErrorCode::InvalidParams, *error);
            }
            if (params.file == "config.json") {
                co_return protocol::makeResult(
                    nullptr,
                    json(protocol::LookupResult{protocol::LookupState::Cached, "/cache/config.json"}));
            }
            co_return protocol::makeResult(nullptr,
                                           json(protocol::LookupResult{protocol::LookupState::Absent, {}}));
        }
        if (request.method == protocol::method::pause) {
            co_return protocol::makeResult(nullptr, json(protocol::AckResult{"paused: no new requests"}));
        }
        co_return protocol::makeError(nullptr, protocol::ErrorCode::Unavailable,
                                      "cannot do that in this test");
    }

    std::vector<protocol::StatusResult> statuses{protocol::StatusResult{}};
    std::atomic<std::size_t> statusCalls{0};
};

class FakeDaemon {
  public:
    FakeDaemon(const TempDir& dir, std::vector<protocol::StatusResult> statuses) {
        handler_.statuses = std::move(statuses);
        server::Options options;
        options.socketPath = dir.path() / "d.sock";
        options.version = "7.7.7";
        server_ = std::make_unique<server::Server>(io_.get_executor(), options, handler_);
        auto listening = server_->listen();
        if (!listening) FAIL(listening.error().message);
        server_->start();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~FakeDaemon() {
        net::post(io_, [this] { server_->stop(); });
        thread_.join();
    }
    std::string socket() const { return server_->socketPath().string(); }
    std::size_t statusCalls() const { return handler_.statusCalls; }

  private:
    net::io_context io_;
    ScriptedHandler handler_;
    std::unique_ptr<server::Server> server_;
    std::thread thread_;
};

protocol::StatusResult statusOf(std::vector<protocol::EntryStatus> entries) {
    protocol::StatusResult status;
    status.entries = std::move(entries);
    status.totals.entries = status.entries.size();
    return status;
}

}  // namespace

TEST_CASE("usage errors exit 2 with a message") {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {},
             {"frobnicate"},
             {"lookup", "gpt2"},
             {"wait", "--timeout", "-1"},
             {"wait", "--timeout", "soon"},
             {"wait", "--timeout", "nan"},
             {"wait", "--timeout", "inf"},
             {"wait", "--timeout", "-inf"},
             {"wait", "--timeout", "1e308"},
             {"wait", "--timeout", "1e10"},
             {"wait", "--timeout", "604801"},
             {"status", "--bogus"},
             {"cache-key"},
         }) {
        auto outcome = runCli(args);
        CHECK_MESSAGE(outcome.code == 2, "args: ", args.size() ? args[0] : "(none)");
        CHECK_FALSE(outcome.err.empty());
    }
}

TEST_CASE("a wait timeout that is not a finite number of seconds up to a week fails before connecting") {
    // The socket exists nowhere: any connection attempt would exit 3 (unreachable), not 2.
    for (const char* value : {"nan", "inf", "-1", "1e308", "1e10", "604800.5"}) {
        auto outcome = runCli({"--socket", "/nonexistent/hfwarm.sock", "wait", "--timeout", value});
        CHECK_MESSAGE(outcome.code == 2, value);
        CHECK(outcome.err.find("expected a number of seconds from 0 to 604800 (a week), got \"" +
                               std::string(value) + "\"") != std::string::npos);
    }
}

TEST_CASE("control characters from the daemon are shown escaped, never sent to the terminal") {
    CHECK(hfwarm::cli::printable("plain text, é € 日本") == "plain text, é € 日本");
    CHECK(hfwarm::cli::printable("red \x1b[31mtitle\x07 bell") == "red \\x1b[31mtitle\\x07 bell");
    CHECK(hfwarm::cli::printable("csi \xc2\x9b"
                                 "2J del \x7f") == "csi \\u009b2J del \\x7f");
    CHECK(hfwarm::cli::printable("lines\nand\ttabs stay") == "lines\nand\ttabs stay");
    hfwarm::protocol::json value = {
        {"error", "boom\x1b]0;owned\x07"}, {"files", {"a\rb", 3}}, {"k\x1b", true}};
    hfwarm::cli::makePrintable(value);
    CHECK(value == hfwarm::protocol::json{
                       {"error", "boom\\x1b]0;owned\\x07"}, {"files", {"a\\x0db", 3}}, {"k\\x1b", true}});
}

TEST_CASE("--help and --version exit 0") {
    auto help = runCli({"--help"});
    CHECK(help.code == 0);
    for (const char* command : {"status", "wait", "lookup", "sync", "reload", "pause", "resume", "verify",
                                "prune", "metrics", "cache-key", "shutdown"}) {
        CHECK_MESSAGE(help.out.find(command) != std::string::npos, command);
    }
    auto version = runCli({"--version"});
    CHECK(version.code == 0);
    CHECK(version.out.find("hfwarmctl 0.") != std::string::npos);
}

TEST_CASE("an unreachable daemon exits 3 and names the socket and how to start hfwarmd") {
    TempDir dir;
    auto path = (dir.path() / "nobody.sock").string();
    auto outcome = runCli({"--socket", path, "status"});
    CHECK(outcome.code == 3);
    CHECK(outcome.err.find(path) != std::string::npos);
    CHECK(outcome.err.find("hfwarmd") != std::string::npos);
    CHECK(outcome.err.find("start") != std::string::npos);

    // --socket given after the command works too.
    CHECK(runCli({"wait", "--socket", path}).code == 3);
}

TEST_CASE("a stale socket file is reported as unreachable") {
    TempDir dir;
    auto path = dir.path() / "stale.sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0);
    ::close(fd);
    auto outcome = runCli({"--socket", path.string(), "pause"});
    CHECK(outcome.code == 3);
    CHECK(outcome.err.find("refused") != std::string::npos);
}

TEST_CASE("without --socket the path comes from HFWARM_SOCKET, else XDG_RUNTIME_DIR") {
    TempDir dir;
    auto fromEnv = (dir.path() / "env.sock").string();
    auto outcome = runCli({"status"}, {{"HFWARM_SOCKET", fromEnv}, {"XDG_RUNTIME_DIR", "/nonexistent"}});
    CHECK(outcome.code == 3);
    CHECK(outcome.err.find(fromEnv) != std::string::npos);

    auto runtime = runCli({"status"}, {{"XDG_RUNTIME_DIR", dir.path().string()}});
    CHECK(runtime.code == 3);
    CHECK(runtime.err.find((dir.path() / "hfwarm" / "hfwarmd.sock").string()) != std::string::npos);
}

TEST_CASE("cache-key prints the manifest key, stable across cosmetic edits and file order") {
    TempDir dir;
    auto a = dir.write("a.txt", "gpt2\norg/model include:*.json\n");
    auto b = dir.write("b.txt", "datasets/org/data@v1 file:train.parquet optional\n");
    auto cosmetic =
        dir.write("a2.txt", "# the same, with comments\n\n   org/model   include:*.json  # why\ngpt2\n");

    auto first = runCli({"cache-key", a.string(), b.string()});
    CHECK(first.code == 0);
    CHECK(first.err.empty());
    REQUIRE(first.out.size() == 65);
    CHECK(first.out.back() == '\n');
    CHECK(first.out.find_first_not_of("0123456789abcdef") == 64);

    auto loaded = manifest::loadAll({a, b});
    REQUIRE(loaded.ok());
    CHECK(first.out == manifest::cacheKey(loaded.manifest) + "\n");

    CHECK(runCli({"cache-key", b.string(), a.string()}).out == first.out);
    CHECK(runCli({"cache-key", cosmetic.string(), b.string()}).out == first.out);
    CHECK(runCli({"cache-key", a.string(), b.string()}).out == first.out);

    auto changed = dir.write("c.txt", "gpt2\norg/model include:*.safetensors\n");
    CHECK(runCli({"cache-key", changed.string(), b.string()}).out != first.out);
}

TEST_CASE("cache-key with a bad manifest prints the diagnostics and exits 2") {
    TempDir dir;
    auto bad = dir.write("bad.txt", "gpt2\norg/model frobnicate:yes\n");
    auto outcome = runCli({"cache-key", bad.string()});
    CHECK(outcome.code == 2);
    CHECK(outcome.out.empty());
    CHECK(outcome.err.find("bad.txt:2") != std::string::npos);

    auto missing = runCli({"cache-key", (dir.path() / "missing.txt").string()});
    CHECK(missing.code == 2);
    CHECK(missing.err.find("missing.txt") != std::string::npos);
}

TEST_CASE("status prints the table with every column and exits 1 when a required entry failed") {
    TempDir dir;
    auto failed = entry("org/broken", protocol::EntryState::Failed);
    failed.error = "HTTP 404 on config.json";
    auto ready = entry("gpt2", protocol::EntryState::Ready);
    ready.lastChecked = "2020-01-01T00:00:00Z";
    FakeDaemon daemon(dir, {statusOf({ready, failed})});

    auto outcome = runCli({"--socket", daemon.socket(), "status"});
    CHECK(outcome.code == 1);
    for (const char* column :
         {"REPO", "STATE", "COMMIT", "FILES", "BYTES", "SPEED", "LAST ERROR", "LAST CHECKED"}) {
        CHECK_MESSAGE(outcome.out.find(column) != std::string::npos, column);
    }
    CHECK(outcome.out.find("gpt2") != std::string::npos);
    CHECK(outcome.out.find("ccccccc ") != std::string::npos);
    CHECK(outcome.out.find("2/2") != std::string::npos);
    CHECK(outcome.out.find("HTTP 404 on config.json") != std::string::npos);
    CHECK(outcome.out.find("d ago") != std::string::npos);
    CHECK(outcome.out.find("\n2 entries: 1 ready, 1 failed; ") != std::string::npos);

    auto raw = runCli({"--socket", daemon.socket(), "--json", "status"});
    auto parsed = json::parse(raw.out, nullptr, false);
    REQUIRE_FALSE(parsed.is_discarded());
    CHECK(parsed["entries"][1]["error"] == "HTTP 404 on config.json");
}

TEST_CASE("wait returns 0 once every required entry is ready, ignoring optional ones") {
    TempDir dir;
    auto downloading = entry("gpt2", protocol::EntryState::Downloading);
    downloading.bytesDone = 1024;
    downloading.speed = 512;
    auto optionalFailure = entry("org/extra", protocol::EntryState::Failed, true);
    FakeDaemon daemon(dir,
                      {statusOf({downloading, optionalFailure}), statusOf({downloading, optionalFailure}),
                       statusOf({entry("gpt2", protocol::EntryState::Ready), optionalFailure})});
    auto outcome = runCli({"--socket", daemon.socket(), "wait", "--timeout", "10"});
    CHECK(outcome.code == 0);
    CHECK(outcome.out == "1 entry: 1 ready, 0 failed\n");
    CHECK(daemon.statusCalls() == 3);
}

TEST_CASE("wait keeps trying while the daemon starts") {
    TempDir dir;
    Outcome outcome;
    std::thread waiter([&] {
        outcome = runCli({"--socket", (dir.path() / "d.sock").string(), "wait", "--timeout", "5"});
    });
    std::this_thread::sleep_for(100ms);
    FakeDaemon daemon(dir, {statusOf({entry("gpt2", protocol::EntryState::Ready)})});
    waiter.join();
    CHECK(outcome.code == 0);
    CHECK(outcome.err.empty());
}

TEST_CASE("wait gives up on a daemon that stays unreachable with exit 3") {
    TempDir dir;
    auto path = (dir.path() / "never.sock").string();
    auto outcome = runCli({"--socket", path, "wait", "--timeout", "30"});
    CHECK(outcome.code == 3);
    CHECK(outcome.err.find(path) != std::string::npos);
}

TEST_CASE("wait exits 1 with the reason when a required entry failed") {
    TempDir dir;
    auto failed = entry("org/broken", protocol::EntryState::Failed);
    failed.error = "HTTP 401: gated repo; set HF_TOKEN";
    FakeDaemon daemon(dir, {statusOf({entry("gpt2", protocol::EntryState::Ready), failed})});
    auto outcome = runCli({"--socket", daemon.socket(), "wait"});
    CHECK(outcome.code == 1);
    CHECK(outcome.err.find("org/broken failed: HTTP 401: gated repo; set HF_TOKEN") != std::string::npos);
}

TEST_CASE("wait times out with 124 and names what it still waits for") {
    TempDir dir;
    FakeDaemon daemon(dir, {statusOf({entry("gpt2", protocol::EntryState::Downloading)})});
    auto start = std::chrono::steady_clock::now();
    auto outcome = runCli({"--socket", daemon.socket(), "wait", "--timeout", "0.3"});
    auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(outcome.code == 124);
    CHECK(outcome.err.find("timed out") != std::string::npos);
    CHECK(outcome.err.find("gpt2 (downloading)") != std::string::npos);
    CHECK(outcome.err.find("waiting: ") != std::string::npos);
    CHECK(elapsed < 3s);
}

TEST_CASE("wait REPO waits only for the named repos, optional or not") {
    TempDir dir;
    auto slow = entry("org/slow", protocol::EntryState::Downloading);
    auto optionalReady = entry("org/opt", protocol::EntryState::Ready, true);
    FakeDaemon daemon(dir, {statusOf({slow, optionalReady})});
    CHECK(runCli({"--socket", daemon.socket(), "wait", "org/opt"}).code == 0);
    auto unknown = runCli({"--socket", daemon.socket(), "wait", "org/nope"});
    CHECK(unknown.code == 1);
    CHECK(unknown.err.find("org/nope is not in hfwarmd's manifests") != std::string::npos);
}

TEST_CASE("lookup prints the path of a cached file and exits 1 for an absent one") {
    TempDir dir;
    FakeDaemon daemon(dir, {statusOf({})});
    auto cached = runCli({"--socket", daemon.socket(), "lookup", "gpt2", "config.json"});
    CHECK(cached.code == 0);
    CHECK(cached.out == "/cache/config.json\n");
    auto absent = runCli({"--socket", daemon.socket(), "lookup", "gpt2", "nope.bin", "--revision", "v1"});
    CHECK(absent.code == 1);
    CHECK(absent.out.find("absent: nope.bin does not exist in gpt2@v1") != std::string::npos);
    auto raw = runCli({"--socket", daemon.socket(), "--json", "lookup", "gpt2", "config.json"});
    CHECK(json::parse(raw.out) == json{{"state", "cached"}, {"path", "/cache/config.json"}});
}

TEST_CASE("a daemon's error reply exits 1 with its message; an ack prints its message") {
    TempDir dir;
    FakeDaemon daemon(dir, {statusOf({})});
    auto refused = runCli({"--socket", daemon.socket(), "reload"});
    CHECK(refused.code == 1);
    CHECK(refused.err.find("reload failed: cannot do that in this test") != std::string::npos);
    auto paused = runCli({"--socket", daemon.socket(), "pause"});
    CHECK(paused.code == 0);
    CHECK(paused.out == "paused: no new requests\n");
    auto version = runCli({"--socket", daemon.socket(), "version"});
    CHECK(version.code == 0);
    CHECK(version.out.find("hfwarmd 7.7.7 (protocol 1)") != std::string::npos);
}

TEST_CASE("a REPO argument matches by id, type prefix and revision") {
    auto e = entry("org/data", protocol::EntryState::Ready);
    e.type = "dataset";
    e.revision = "v1";
    CHECK(cli::matchesRepo(e, "org/data"));
    CHECK(cli::matchesRepo(e, "datasets/org/data"));
    CHECK(cli::matchesRepo(e, "datasets/org/data@v1"));
    CHECK(cli::matchesRepo(e, "org/data@v1"));
    CHECK_FALSE(cli::matchesRepo(e, "models/org/data"));
    CHECK_FALSE(cli::matchesRepo(e, "org/data@main"));
    CHECK_FALSE(cli::matchesRepo(e, "org/dat"));
}

TEST_CASE("wait's verdict: ready when all are, failed on any required failure or missing entry") {
    auto offline =
        statusOf({entry("a", protocol::EntryState::Ready), entry("m", protocol::EntryState::Missing)});
    CHECK(cli::evaluateWait(offline, {"a"}).verdict == cli::WaitVerdict::Ready);
    CHECK(cli::evaluateWait(offline, {}).verdict == cli::WaitVerdict::Failed);
    auto status =
        statusOf({entry("a", protocol::EntryState::Ready), entry("b", protocol::EntryState::Ready)});
    CHECK(cli::evaluateWait(status, {}).verdict == cli::WaitVerdict::Ready);
    status.entries.push_back(entry("c", protocol::EntryState::Resolving));
    CHECK(cli::evaluateWait(status, {}).verdict == cli::WaitVerdict::Pending);
    CHECK(cli::evaluateWait(status, {"a", "b"}).verdict == cli::WaitVerdict::Ready);
    status.entries.push_back(entry("d", protocol::EntryState::Failed));
    CHECK(cli::evaluateWait(status, {}).verdict == cli::WaitVerdict::Failed);
    CHECK(cli::evaluateWait(status, {"c"}).verdict == cli::WaitVerdict::Pending);
    CHECK(cli::evaluateWait(statusOf({}), {}).verdict == cli::WaitVerdict::Ready);
}

TEST_CASE("progress shows bytes, percent, speed, ETA and the files in flight") {
    auto a = entry("a", protocol::EntryState::Downloading);
    a.bytesDone = 1024;
    a.bytesTotal = 4096;
    a.speed = 1024;
    a.currentFiles = {"model.safetensors", "tokenizer.json"};
    auto status = statusOf({a, entry("b", protocol::EntryState::Ready)});
    auto state = cli::evaluateWait(status, {});
    auto plain = cli::formatProgress(state, false);
    CHECK(plain.find("1/2 ready") != std::string::npos);
    CHECK(plain.find("(50%)") != std::string::npos);
    CHECK(plain.find("1.0 KiB/s") != std::string::npos);
    CHECK(plain.find("ETA 0:03") != std::string::npos);
    auto bar = cli::formatProgress(state, true);
    CHECK(bar.rfind("[############------------]", 0) == 0);
    CHECK(bar.find("model.safetensors +1 more") != std::string::npos);
}

TEST_CASE("last checked times are shown relative to now") {
    auto now = std::chrono::system_clock::from_time_t(1'700'000'000);
    CHECK(cli::formatAgo("2023-11-14T22:13:10Z", now) == "10s ago");
    CHECK(cli::formatAgo("2023-11-14T22:08:20Z", now) == "5m ago");
    CHECK(cli::formatAgo("2023-11-14T19:13:20Z", now) == "3h ago");
    CHECK(cli::formatAgo("2023-11-12T22:13:20Z", now) == "2d ago");
    CHECK(cli::formatAgo("", now) == "-");
    CHECK(cli::formatAgo("yesterday", now) == "yesterday");
}
