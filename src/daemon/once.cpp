#include "hfwarm/daemon/once.hpp"

#include "hfwarm/daemon/stack.hpp"
#include "hfwarm/daemon/status_view.hpp"
#include "hfwarm/protocol/summary.hpp"
#include "hfwarm/util/async.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm/util/units.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <iostream>

namespace hfwarm::daemon {

namespace {

using Clock = std::chrono::steady_clock;

std::string shortCommit(const std::optional<std::string>& commit) {
    return commit ? commit->substr(0, 12) : std::string("-");
}

// Prints the entries as an aligned table and the summary line that `hfwarmctl status` prints too;
// returns the exit code: 1 when a required entry is not ready.
int printSummary(const std::vector<protocol::EntryStatus>& entries, const std::string& extra) {
    std::vector<std::array<std::string, 6>> rows;
    rows.push_back({"REPO", "STATE", "COMMIT", "FILES", "SIZE", "NOTE"});
    bool requiredNotReady = false;
    for (const auto& s : entries) {
        rows.push_back({s.display() + (s.optional ? " (optional)" : ""),
                        std::string(protocol::stateName(s.state)), shortCommit(s.commit),
                        fmt::format("{}/{}", s.filesDone, s.filesTotal), util::humanBytes(s.bytesTotal),
                        s.error ? *s.error : (s.notes.empty() ? std::string() : s.notes.front())});
        requiredNotReady = requiredNotReady || (!s.optional && s.state != protocol::EntryState::Ready);
    }
    std::array<std::size_t, 5> widths{};
    for (const auto& row : rows)
        for (std::size_t i = 0; i < widths.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    for (const auto& row : rows) {
        std::string text = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {:>{}}", row[0], widths[0], row[1],
                                       widths[1], row[2], widths[2], row[3], widths[3], row[4], widths[4]);
        if (!row[5].empty()) text += "  " + row[5];
        std::cout << text << '\n';
    }
    std::cout << protocol::summaryLine(entries) << extra << '\n';
    std::cout.flush();
    return requiredNotReady ? 1 : 0;
}

int runOffline(const manifest::Manifest& manifest, const std::filesystem::path& root) {
    std::vector<protocol::EntryStatus> entries;
    for (const auto& entry : manifest.entries) entries.push_back(offlineStatusOf(entry, root));
    return printSummary(entries, fmt::format("; offline: read from {}", root.string()));
}

// One status line, rewritten in place on a terminal.
std::string progressLine(const transfer::Engine& engine, double speed) {
    std::uint64_t done = 0, total = 0;
    std::size_t ready = 0, failed = 0;
    std::string current;
    auto progress = engine.progress();
    for (const auto& p : progress) {
        done += p.bytesDone;
        total += p.bytesTotal;
        if (p.state == transfer::EntryState::Ready) ++ready;
        if (p.state == transfer::EntryState::Failed) ++failed;
        if (current.empty() && !p.currentFiles.empty()) current = p.currentFiles.front();
    }
    std::string line =
        fmt::format("{}/{} ready{}  {} / {}  {}/s", ready, progress.size(),
                    failed ? fmt::format(", {} failed", failed) : std::string(), util::humanBytes(done),
                    util::humanBytes(total), util::humanBytes(static_cast<std::uint64_t>(speed)));
    if (!current.empty()) line += "  " + current;
    if (line.size() > 110) line.resize(110);
    return line;
}

}  // namespace

int runOnce(const config::Config& config, const manifest::Manifest& manifest,
            const std::filesystem::path& root) {
    if (config.offline) return runOffline(manifest, root);

    StoppableContext ioc;
    auto stack = makeStack(ioc.get_executor(), config, root);
    if (!stack) {
        std::cerr << "hfwarmd: " << stack.error().message << '\n';
        return 2;
    }
    transfer::Engine& engine = *stack->engine;
    engine.setEntries(manifest.entries);

    auto log = util::logger("daemon");
    log->info("warming entries={} cache={} endpoint={}", manifest.entries.size(), root.string(),
              config.endpoint);
    const auto started = Clock::now();
    bool interrupted = false;
    bool finished = false;
    util::TaskGroup tasks(ioc.get_executor());
    net::steady_timer ticker(ioc);

    // A signal stops the run as it stops the daemon: the warm-up is cancelled, its transfers save
    // their progress and end, bounded by kStopGrace; what still runs then is abandoned with the
    // io_context, its partial files kept.
    net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        interrupted = true;
        log->warn("stopping on signal={}; partial downloads are kept and resume on the next run", signal);
        tasks.cancel();
        net::co_spawn(
            ioc,
            [&]() -> net::awaitable<void> {
                const bool drained = co_await tasks.waitUntil(Clock::now() + kStopGrace);
                if (!drained)
                    log->warn(
                        "stopping with the warm-up still running after {} s; its partial downloads are kept",
                        kStopGrace.count());
                ioc.stop();
            },
            util::logFailure(log, "stop"));
    });

    const bool terminal = ::isatty(STDERR_FILENO) == 1;
    if (terminal) {
        net::co_spawn(
            ioc,
            [&]() -> net::awaitable<void> {
                std::uint64_t lastBytes = 0;
                auto lastTime = Clock::now();
                double speed = 0;
                while (!finished) {
                    ticker.expires_after(std::chrono::milliseconds(250));
                    co_await ticker.async_wait(net::as_tuple(net::use_awaitable));
                    auto now = Clock::now();
                    std::uint64_t bytes = engine.counters().bytesFetched;
                    double dt = std::chrono::duration<double>(now - lastTime).count();
                    if (dt > 0) speed = 0.7 * speed + 0.3 * static_cast<double>(bytes - lastBytes) / dt;
                    lastBytes = bytes;
                    lastTime = now;
                    std::fprintf(stderr, "\r\033[K%s", progressLine(engine, speed).c_str());
                    std::fflush(stderr);
                }
            },
            util::logFailure(log, "progress line"));
    }

    // One task per entry, as the daemon runs them, so that a stop reaches every transfer.
    for (const auto& p : engine.progress()) {
        tasks.spawn(engine.warm(p.entry.repo), [&, repo = p.entry.repo.display()](std::exception_ptr e) {
            // A stop cancels the warms, so they end with errors on purpose.
            if (e && !interrupted)
                log->error("warm-up stopped repo={} reason=\"{}\"", repo, util::exceptionText(e));
        });
    }
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
            co_await tasks.waitUntil(Clock::time_point::max());
            finished = true;
            ticker.cancel();
            signals.cancel();
        },
        util::logFailure(log, "warm-up"));
    ioc.run();
    // What the stop abandoned is destroyed here, while the stack it refers to is still alive.
    ioc.shutdown();
    if (terminal) std::fprintf(stderr, "\r\033[K");

    const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    // The same view of each entry as the daemon's status.
    std::vector<protocol::EntryStatus> entries;
    for (const auto& p : engine.progress()) entries.push_back(statusOf(p, false, 0));
    const auto& counters = engine.counters();
    std::string extra =
        fmt::format("; fetched {} in {:.1f} s ({}/s), {} files downloaded, {} reused",
                    util::humanBytes(counters.bytesFetched), elapsed,
                    util::humanBytes(static_cast<std::uint64_t>(
                        elapsed > 0 ? static_cast<double>(counters.bytesFetched) / elapsed : 0)),
                    counters.filesDownloaded, counters.filesReused);
    const int code = printSummary(entries, extra);
    if (interrupted) return 1;
    return code;
}

}  // namespace hfwarm::daemon
