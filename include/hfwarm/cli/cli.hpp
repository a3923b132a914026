// hfwarmctl: the command-line client of hfwarmd's socket (DESIGN.md section 5).
#pragma once

#include "hfwarm/protocol/messages.hpp"

#include <chrono>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitTimedOut = 124;

// Runs hfwarmctl on this process's arguments, streams and environment; returns the exit code of
// DESIGN.md section 5 (0 ok, 1 failed, 2 usage, 3 daemon unreachable, 124 wait timed out).
int run(int argc, char** argv);

// What run() reads from the outside world, injectable for tests.
struct Context {
    std::ostream& out;
    std::ostream& err;
    std::map<std::string, std::string, std::less<>> env;  // HFWARM_SOCKET, XDG_RUNTIME_DIR
    unsigned uid = 0;
    bool interactive = false;  // err is a terminal: draw a live progress bar during `wait`
    // How often `wait` asks for status, and how often it prints a plain progress line.
    std::chrono::milliseconds pollInterval{1000};
    std::chrono::milliseconds plainProgressInterval{5000};
    // How long `wait` keeps retrying a daemon it cannot reach (one starting or restarting).
    std::chrono::milliseconds unreachableGrace{10000};
};

// `args` without the program name.
int run(const std::vector<std::string>& args, Context& context);

// Whether a REPO argument ("org/name", "datasets/org/name", "org/name@rev") names `entry`.
bool matchesRepo(const protocol::EntryStatus& entry, std::string_view name);

// Ready: nothing more to wait for.
bool isDone(const protocol::EntryStatus& entry);

// Failed, or missing from the cache of a daemon that runs offline: waiting longer changes nothing.
bool isFinalFailure(const protocol::EntryStatus& entry);

enum class WaitVerdict { Pending, Ready, Failed };

struct WaitState {
    WaitVerdict verdict = WaitVerdict::Pending;
    std::vector<const protocol::EntryStatus*> watched;  // into the StatusResult given
    std::vector<std::string> missing;                   // REPO arguments that match no entry
};

// `wait`'s decision for one status: with no REPO, every non-optional entry must be ready
// (`offline` counts: cached and usable); with REPOs, every entry they name, optional or not.
// Failed as soon as one watched entry failed or a REPO matches nothing.
WaitState evaluateWait(const protocol::StatusResult& status, const std::vector<std::string>& repos);

// The `status` table: repo, state, commit, files, bytes, speed, last error, last checked; then
// the totals and any manifest errors or notices.
std::string formatStatus(const protocol::StatusResult& status, std::chrono::system_clock::time_point now);

// One line of progress over the watched entries: bytes, percent, speed, ETA, entries ready, and
// (with `bar`) a bar and the files in flight.
std::string formatProgress(const WaitState& state, bool bar);

// "12s ago", "5m ago", "3h ago", "2d ago" for an ISO 8601 UTC time; the text itself when it
// does not parse; "-" when empty.
std::string formatAgo(std::string_view isoTime, std::chrono::system_clock::time_point now);

}  // namespace hfwarm::cli
