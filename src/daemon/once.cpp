#include "hfwarm/daemon/once.hpp"

#include "hfwarm/cache/scan.hpp"
#include "hfwarm/daemon/stack.hpp"
#include "hfwarm/daemon/status_view.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm/util/units.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace hfwarm::daemon {

namespace {

using Clock = std::chrono::steady_clock;

struct Row {
    std::string repo;
    std::string state;
    std::string commit;
    std::string files;
    std::string size;
    std::string note;
    bool ok = false;
    bool optional = false;
};

std::string shortCommit(const std::optional<std::string>& commit) {
    return commit ? commit->substr(0, 12) : std::string("-");
}

std::string repoLabel(const manifest::Entry& entry) {
    return entry.repo.display() + (entry.optional() ? " (optional)" : "");
}

// Prints the rows as an aligned table and the one-line verdict; returns the exit code.
int printSummary(const std::vector<Row>& rows, const std::string& extra) {
    std::size_t widths[5] = {4, 5, 6, 5, 4};
    for (const auto& row : rows) {
        widths[0] = std::max(widths[0], row.repo.size());
        widths[1] = std::max(widths[1], row.state.size());
        widths[2] = std::max(widths[2], row.commit.size());
        widths[3] = std::max(widths[3], row.files.size());
        widths[4] = std::max(widths[4], row.size.size());
    }
    auto line = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d,
                    const std::string& e, const std::string& f) {
        std::string text = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>{}}  {:>{}}", a, widths[0], b, widths[1],
                                       c, widths[2], d, widths[3], e, widths[4]);
        if (!f.empty()) text += "  " + f;
        std::cout << text << '\n';
    };
    line("REPO", "STATE", "COMMIT", "FILES", "SIZE", "NOTE");
    std::size_t ready = 0, failedRequired = 0, failedOptional = 0;
    for (const auto& row : rows) {
        line(row.repo, row.state, row.commit, row.files, row.size, row.note);
        if (row.ok)
            ++ready;
        else if (row.optional)
            ++failedOptional;
        else
            ++failedRequired;
    }
    std::cout << fmt::format("{} entries: {} ready, {} failed, {} optional not ready{}\n", rows.size(), ready,
                             failedRequired, failedOptional, extra);
    std::cout.flush();
    return failedRequired == 0 ? 0 : 1;
}

int runOffline(const manifest::Manifest& manifest, const std::filesystem::path& root) {
    std::vector<Row> rows;
    for (const auto& entry : manifest.entries) {
        auto scan = cache::scanEntry(root, entry);
        Row row;
        row.repo = repoLabel(entry);
        row.state = std::string(cache::stateName(scan.state));
        row.commit = shortCommit(scan.commit);
        row.files = fmt::format("{}/{}", scan.filesPresent, scan.filesExpected);
        row.size = util::humanBytes(scan.bytesPresent);
        row.ok = scan.state == cache::EntryState::Ready;
        row.optional = entry.optional();
        if (!scan.knownAbsent.empty())
            row.note = "absent on the Hub: " + scan.knownAbsent.front();
        else if (!scan.missingFiles.empty())
            row.note = "missing: " + scan.missingFiles.front();
        else if (!scan.problems.empty())
            row.note = scan.problems.front().message;
        rows.push_back(std::move(row));
    }
    return printSummary(rows, fmt::format(" (offline: read from {})", root.string()));
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

    net::io_context ioc;
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

    net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        interrupted = true;
        log->warn("stopping on signal={}; partial downloads are kept and resume on the next run", signal);
        ioc.stop();
    });

    const bool terminal = ::isatty(STDERR_FILENO) == 1;
    net::steady_timer ticker(ioc);
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

    net::co_spawn(ioc, engine.warmAll(), [&](std::exception_ptr e) {
        finished = true;
        ticker.cancel();
        signals.cancel();
        if (e) log->error("warm-up stopped reason=\"{}\"", util::exceptionText(e));
    });
    ioc.run();
    if (terminal) std::fprintf(stderr, "\r\033[K");

    const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    std::vector<Row> rows;
    for (const auto& p : engine.progress()) {
        // The same view of an entry as the daemon's status.
        const protocol::EntryStatus s = statusOf(p, false, 0);
        Row row;
        row.repo = s.display() + (s.optional ? " (optional)" : "");
        row.state = std::string(protocol::stateName(s.state));
        row.commit = shortCommit(s.commit);
        row.files = fmt::format("{}/{}", s.filesDone, s.filesTotal);
        row.size = util::humanBytes(s.bytesTotal);
        row.note = s.error ? *s.error : (s.notes.empty() ? std::string() : s.notes.front());
        row.ok = s.state == protocol::EntryState::Ready;
        row.optional = s.optional;
        rows.push_back(std::move(row));
    }
    const auto& counters = engine.counters();
    std::string extra =
        fmt::format("; fetched {} in {:.1f} s ({}/s), {} files downloaded, {} reused",
                    util::humanBytes(counters.bytesFetched), elapsed,
                    util::humanBytes(static_cast<std::uint64_t>(
                        elapsed > 0 ? static_cast<double>(counters.bytesFetched) / elapsed : 0)),
                    counters.filesDownloaded, counters.filesReused);
    int code = printSummary(rows, extra);
    if (interrupted) exitWithoutTeardown(1);
    return code;
}

}  // namespace hfwarm::daemon
