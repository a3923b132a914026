// The engine's shared state and the declarations of its parts, for the files that implement them:
// span_fetch.cpp (one range into a file), segmented.cpp (a large file on several connections),
// file_fetch.cpp (lock, reuse, resume, verify and publish one file) and engine.cpp (the registry of
// entries and the warm of one entry).
#pragma once

#include "hfwarm/transfer/engine.hpp"

#include "file_slots.hpp"
#include "hfwarm/cache/lock.hpp"
#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/write.hpp"
#include "hfwarm/hub/hub.hpp"
#include "hfwarm/util/async.hpp"
#include "hfwarm/util/hash.hpp"
#include "hooks.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hfwarm::transfer {

using Clock = std::chrono::steady_clock;
using util::Gate;
using util::sleepFor;
using util::WaitGroup;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

// A new hasher for a blob named `etag`: sha256 for LFS blobs, the git blob sha1 (with its
// "blob <size>\0" header) for 40-hex names.
std::shared_ptr<util::Hasher> makeHasher(std::string_view etag, std::uint64_t size);

// Writes all of [data, data + size) at `offset`; 0 or the errno of the failed write.
int writeAt(int fd, const char* data, std::size_t size, std::uint64_t offset);

std::string errnoText(int error);

// Hashes [from, to) of `fd` into `hasher` here and now; false when the bytes cannot be read.
bool hashFromDisk(int fd, util::Hasher& hasher, std::uint64_t from, std::uint64_t to);

// The start offset of a `Content-Range: bytes START-END/TOTAL` value.
std::optional<std::uint64_t> contentRangeStart(std::string_view value);

struct Engine::Impl {
    Impl(net::any_io_executor executor, http::Client& client, ratelimit::Limiter& limiter,
         EngineOptions options);
    ~Impl();
    // One entry's progress, shared by every coroutine working on it: a reload that removes the
    // entry leaves them holding a live object.
    struct Run {
        EntryProgress progress;
        bool running = false;
        bool replan = false;   // the selections changed while it ran: plan and warm once more
        bool removed = false;  // no longer in the manifests: take no new file, publish no ref
        QueueRank rank;        // its files take free slots before those of lower ranks (FileSlots)
    };

    // One selected file of a listing, ready to fetch.
    struct FileJob {
        std::string path;
        std::string etag;
        std::uint64_t size = 0;
        std::filesystem::path incomplete;  // blobs/<etag>.incomplete, once the download starts
    };

    // The bytes [begin, end) of a file, being fetched into the .incomplete file at their offset.
    // `pos` is the next byte to write. A whole-file transfer (begin 0, end size) hashes as it goes
    // and restarts from zero when the server ignores Range; a segment of a parallel download has
    // no hasher and gives up instead, so that the file falls back to one stream.
    // The hash of a parallel download, which follows the bytes [0, hashed) that are all on disk.
    // The connection whose piece holds the front feeds it from its receive buffers; bytes that
    // arrived ahead of the front are read back on the pool when the front reaches them (`pool`
    // set meanwhile: nobody else touches the hasher).
    struct PrefixHash {
        std::shared_ptr<util::Hasher> hasher;
        std::uint64_t hashed = 0;
        bool pool = false;
    };

    struct Span {
        std::uint64_t begin = 0;
        std::uint64_t end = 0;
        std::uint64_t pos = 0;
        std::shared_ptr<util::Hasher> hasher;  // whole-file transfers only
        PrefixHash* prefix = nullptr;          // a piece of a parallel download: its file's hash
        bool claimed = false;                  // a connection of a parallel download fetches it
    };

    // How one range fetch ended. transferSpan retries LinkExpired, RateLimited and Retryable
    // itself, within their budgets, and returns Done, RangeIgnored (a segment whose server does not
    // honour Range: fall back to one stream), Permanent or WriteFailed.
    enum class SpanOutcome {
        Done,
        RangeIgnored,
        LinkExpired,
        RateLimited,
        Retryable,
        Permanent,
        WriteFailed
    };
    struct SpanResult {
        SpanOutcome outcome = SpanOutcome::Done;
        std::string message;  // what went wrong, for a person; empty when Done
    };

    // Receives the body of one resolver GET into the .incomplete file (span_fetch.cpp).
    class BlobSink;

    net::any_io_executor executor;
    http::Client& client;
    ratelimit::Limiter& limiter;
    EngineOptions options;
    FileSlots slots;
    std::uint64_t promotions = 0;  // the rank.promotion of the latest promoted entry
    Gate gate;
    Latency latency;
    net::thread_pool hashPool;
    net::thread_pool syncPool;
    std::mt19937_64 rng;
    std::shared_ptr<spdlog::logger> log;
    std::vector<std::shared_ptr<Run>> runs;  // in manifest order
    std::unordered_map<manifest::RepoRef, std::shared_ptr<Run>> byKey;

    std::shared_ptr<Run> find(const manifest::RepoRef& key) const {
        auto it = byKey.find(key);
        return it == byKey.end() ? nullptr : it->second;
    }
    Counters counters;
    std::size_t segmentedFiles = 0;  // parallel downloads in flight: they share the host's connections

    Result<void> truncate(int fd, const FileJob& job);

    // Forgets the bytes of a whole-file span after its file was truncated.
    static void rewind(Run& run, const FileJob& job, Span& span);

    std::chrono::milliseconds backoffDelay(unsigned attempt) { return options.backoff.delay(attempt, rng); }

    static std::string removedText(const Run& run);

    static void fail(Run& run, std::string message);

    // Takes the blob's lock without blocking the event loop: polls, and gives up after lockTimeout.
    net::awaitable<Result<cache::BlobLock>> lockBlob(const std::filesystem::path& lockPath,
                                                     const FileJob& job);

    bool blobPresent(const std::filesystem::path& blob, std::uint64_t size) const;

    Result<void> finishFile(Run& run, const cache::RepoLayout& layout, const std::string& commit,
                            const FileJob& job);

    // Fetches span.pos..span.end of `job` into `fd`, resuming after interruptions (span_fetch.cpp).
    net::awaitable<SpanResult> transferSpan(Run& run, const FileJob& job, const std::string& url, int fd,
                                            Span& span, std::string* directUrl = nullptr);

    // Where the progress of a parallel download is kept: next to the blob's lock, out of blobs/,
    // where huggingface_hub's scanner and `hf cache prune` do not look.
    static std::filesystem::path segmentStatePath(const std::filesystem::path& lockPath);

    struct SegmentState {
        std::list<Span> spans;  // a list: pieces are cut while connections hold pointers to others
        std::uint64_t size = 0;
    };

    std::optional<SegmentState> loadSegments(const std::filesystem::path& file, std::uint64_t size) const;

    void saveSegments(const std::filesystem::path& file, const SegmentState& state) const;

    // Hashes [from, to) of `fd` into `hasher` on the pool (no hasher: only the write back). Plain pointer on
    // purpose: GCC 12 may end the life of a temporary with a destructor (a shared_ptr copy) inside a co_await
    // expression too early. With `writeBack`, the kernel starts writing the hashed range to disk right away,
    // so that the fsync before publishing finds little left: the page cache would otherwise hold gigabytes of
    // dirty pages until then (below vm.dirty_background_ratio nothing is written).
    net::awaitable<bool> hashRange(int fd, util::Hasher* hasher, std::uint64_t from, std::uint64_t to,
                                   bool writeBack = false);

    // Runs `work` on `pool` and resumes on the event loop with its result. The caller keeps
    // whatever `work` points to alive: it is suspended until the pool is done.
    template <class Work>
    static net::awaitable<std::invoke_result_t<Work&>> offload(net::thread_pool& pool, Work work) {
        co_return co_await net::co_spawn(
            pool.get_executor(),
            [work]() mutable -> net::awaitable<std::invoke_result_t<Work&>> { co_return work(); },
            net::use_awaitable);
    }

    enum class SegmentOutcome { Done, Unsupported, Corrupt };
    struct Segmented {
        SegmentOutcome outcome = SegmentOutcome::Done;
        std::string mismatch;  // Corrupt: what the bytes hashed to instead
    };

    // What the workers of one parallel download share (segmented.cpp).
    struct Pieces;

    // One connection of a parallel download: fetches pieces in order until none is left, or until
    // the tuner stops it.
    net::awaitable<void> pieceWorker(Run& run, const FileJob& job, const std::string& url, int fd,
                                     Pieces* pieces, std::size_t index);

    // Starts worker `index` of a parallel download.
    void startWorker(Run& run, const FileJob& job, const std::string& url, int fd, Pieces* pieces,
                     util::TaskGroup* group, std::size_t index);

    // Opens more connections for a parallel download when its connections are capped
    // (connection_policy.hpp), up to the file's share of the host; stops them if they bring nothing.
    net::awaitable<void> tuneWorkers(Run& run, const FileJob& job, const std::string& url, int fd,
                                     Pieces* pieces, util::TaskGroup* group, std::size_t count,
                                     std::size_t most);

    // A large file on several connections at once (as aria2 -x and hf_transfer do): the preallocated
    // .incomplete file is cut into pieces that up to `segments` connections take in order (the
    // tuner decides how many), each piece
    // resumable after a crash (their progress is saved beside the lock). The file is resolved once;
    // the pieces go straight to the signed URL it redirected to, until that expires. Because pieces
    // are taken from the front, the hash follows the contiguous prefix on the pool while the
    // download runs: fed by the connection at the front from its receive buffers, and reading
    // back only the bytes that arrived ahead of the front.
    net::awaitable<Result<Segmented>> fetchSegmented(Run& run, const FileJob& job, const std::string& url,
                                                     int fd, const std::filesystem::path& stateFile);

    // Downloads one file into the cache (or reuses its blob) and links it into the snapshot.
    net::awaitable<Result<void>> fetchFile(std::shared_ptr<Run> runPtr, cache::RepoLayout layout,
                                           std::string commit, FileJob job);

    // Takes the next file of `jobs` until none is left, each within a global files-in-flight slot.
    // A member coroutine rather than a capturing lambda: GCC 12 mishandles coroutine lambdas whose
    // captures have destructors.
    net::awaitable<void> fileWorker(std::shared_ptr<Run> runPtr, cache::RepoLayout layout, std::string commit,
                                    const std::vector<FileJob>* jobs, std::size_t* next,
                                    std::vector<std::string>* errors);

    // Lists the repo, with backoff on network errors and waits on 429s.
    net::awaitable<hub::HubResult<hub::Listing>> listWithRetries(const manifest::RepoRef& repo);

    // Warms one entry; again while its selections changed meanwhile, until it is removed.
    net::awaitable<void> warmRun(std::shared_ptr<Run> runPtr);

    net::awaitable<void> warmOnce(std::shared_ptr<Run> runPtr);

    // Whether the entry is pinned to a commit whose snapshot the cache holds complete; if so, fills
    // its progress from the cache (engine.cpp).
    bool pinnedSnapshotComplete(Run& run) const;
};

}  // namespace hfwarm::transfer
