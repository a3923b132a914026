// The download engine: turns manifest entries into a warm Hugging Face cache.
//
// For each entry it lists the repo once (one API request), picks the files the entry selects, and
// downloads every missing blob into blobs/<etag>.incomplete with one resolver request per file,
// resuming with Range after any interruption (also across processes), checking size and hash
// before publishing, then links the snapshot and writes refs/<revision> last. Concurrency is
// bounded by ClientOptions (connections) and EngineOptions::filesInFlight. Everything runs on one
// io_context; hashing of bytes already on disk runs on a small thread pool.
#pragma once

#include "hfwarm/http/client.hpp"
#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/ratelimit/backoff.hpp"
#include "hfwarm/ratelimit/limiter.hpp"
#include "hfwarm/util/aliases.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hfwarm::transfer {

// Queued: no file of the entry has started (not warmed yet, or listed and waiting for a file
// slot); Resolving: listing the repo; Downloading: a file of it has taken a slot. The daemon shows
// these in the vocabulary of docs/protocol.md (status_view.cpp).
enum class EntryState { Queued, Resolving, Downloading, Ready, Failed };

// What the engine knows of one entry; the daemon's status and the --once display read it.
struct EntryProgress {
    manifest::Entry entry;
    EntryState state = EntryState::Queued;
    std::optional<std::string> commit;
    std::uint64_t filesDone = 0;
    std::uint64_t filesTotal = 0;
    std::uint64_t bytesDone = 0;
    std::uint64_t bytesTotal = 0;
    std::string error;               // empty while nothing failed; the reason once the entry failed
    std::vector<std::string> notes;  // what optional selections asked for and the Hub lacks
    std::optional<std::chrono::system_clock::time_point> lastChecked;
    std::vector<std::string> currentFiles;  // paths being downloaded now
};

// Counters over the engine's life, for metrics and the final summary.
struct Counters {
    std::uint64_t bytesFetched = 0;  // body bytes received for blobs (resumed bytes are not refetched)
    std::uint64_t filesDownloaded = 0;
    std::uint64_t filesReused = 0;  // blob already present and of the right size
    std::uint64_t hashMismatches = 0;
    std::uint64_t retries = 0;
};

struct EngineOptions {
    std::filesystem::path root;                      // resolved cache root
    std::string endpoint;                            // "https://huggingface.co", no trailing '/'
    bool tokenConfigured = false;                    // whether the client sends a token to the endpoint
    std::size_t filesInFlight = 8;                   // files downloading at once, all entries together
    ratelimit::Backoff backoff;                      // network errors, timeouts, 5xx, corrupt bodies
    unsigned rateLimitedAttempts = 30;               // 429s tolerated for one request before the entry fails
    std::uint64_t minFreeSpace = 0;                  // bytes to leave free on the cache's file system
    std::chrono::milliseconds lockTimeout{600'000};  // longest wait for another process's blob lock
    std::size_t segments = 8;                        // most parallel connections for one large file
    std::uint64_t segmentMinSize = 8ull << 20;       // files below this use one connection
};

class Engine {
  public:
    // `client` and `limiter` must outlive the engine. The engine installs hooks on the client so
    // that every Hub request goes through `limiter` and every body chunk through its bandwidth cap.
    Engine(net::any_io_executor executor, http::Client& client, ratelimit::Limiter& limiter,
           EngineOptions options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Replaces the entries (a reload), reconciled by key (RepoRef): an entry that stays keeps its
    // progress and state, and one whose selections changed is planned again (at once when it is
    // warming); a removed entry's warm stops taking files and writes no ref, keeping its partial
    // files for resume; a new entry is queued.
    void setEntries(const std::vector<manifest::Entry>& entries);

    // Warms the entry with this key; nothing when there is none. The entry is held by key across
    // the wait, so a reload meanwhile neither loses it nor mixes it up with another. It returns
    // when the entry is Ready or Failed (an unexpected exception fails it as an internal error);
    // when the warm is cancelled, with the cancellation's exception.
    net::awaitable<void> warm(manifest::RepoRef key);

    // Moves the entry with this key to the front of the queue for file slots (`hfwarmctl wait`, a
    // `lookup` of a file not cached): its files take the next free slots, ahead of the files of
    // entries promoted earlier or not at all (those go in manifest order); files already in flight
    // finish. Returns false when no
    // entry has this key. The promotion lasts until the end of the entry's current (or next) warm.
    bool promote(const manifest::RepoRef& key);

    // While paused no new request leaves (a transfer already streaming finishes its current
    // response); resume lets the waiting requests go in their order.
    void setPaused(bool paused);
    bool paused() const;

    // Request latency (request written to response headers read) of every hop, as counts per
    // upper bound in seconds (the last bound is +Inf), with their sum: a Prometheus histogram.
    struct LatencyHistogram {
        std::vector<double> bounds;
        std::vector<std::uint64_t> counts;  // cumulative, one per bound
        double sum = 0;
        std::uint64_t total = 0;
    };
    LatencyHistogram latency() const;

    // A copy of every entry's progress, in manifest order.
    std::vector<EntryProgress> progress() const;

    // A copy of one entry's progress; nothing once the entry is no longer in the manifests.
    std::optional<EntryProgress> progress(const manifest::RepoRef& key) const;
    const Counters& counters() const;
    const EngineOptions& options() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hfwarm::transfer
