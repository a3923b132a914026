#include "engine_impl.hpp"
#include "hfwarm/cache/safe_io.hpp"
#include "hfwarm/transfer/connection_policy.hpp"

#include "hfwarm/util/log.hpp"
#include "hfwarm/util/units.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>

namespace hfwarm::transfer {

namespace {

// The tuner looks at the connections' progress this often.
constexpr std::chrono::milliseconds kTunePoll{10};
// After it added connections, it measures the download's rate over at least this long.
constexpr std::chrono::milliseconds kTuneWindow{250};
// The event loop's load is judged over the last kBusyWindow to 2 x kBusyWindow.
constexpr std::chrono::milliseconds kBusyWindow{100};
// It waits at most this long for the added connections' first bytes.
constexpr std::chrono::milliseconds kFirstByteWait{1000};
// How far the saved progress of a parallel download may trail the bytes written.
constexpr std::chrono::milliseconds kSaveInterval{50};
// The hash loop looks at the pieces this often when it has nothing to do. A sampling on purpose,
// not an event: the prefix moves with every delivery of every connection (thousands a second),
// and waking the loop for each would cost more than looking 50 times a second.
constexpr std::chrono::milliseconds kHashPoll{20};
// The hash of a parallel download advances in steps of at most this many bytes.
constexpr std::uint64_t kHashStep = 16ull << 20;

// The time this thread ran, and the time it waited for a CPU to run on, from
// /proc/thread-self/schedstat; where the kernel keeps no scheduler statistics, the CPU time and no
// wait.
LoopTimes threadTimes() {
    if (int fd = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC); fd >= 0) {
        char text[128];
        const ssize_t n = ::read(fd, text, sizeof text - 1);
        ::close(fd);
        unsigned long long ran = 0;
        unsigned long long waited = 0;
        if (n > 0) {
            text[n] = '\0';
            if (std::sscanf(text, "%llu %llu", &ran, &waited) == 2)
                return {std::chrono::nanoseconds(static_cast<std::int64_t>(ran)),
                        std::chrono::nanoseconds(static_cast<std::int64_t>(waited))};
        }
    }
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return {std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec), {}};
}

}  // namespace

// Where the progress of a parallel download is kept: next to the blob's lock, out of blobs/,
// where huggingface_hub's scanner and `hf cache prune` do not look.
std::filesystem::path Engine::Impl::segmentStatePath(const std::filesystem::path& lockPath) {
    auto path = lockPath;
    path.replace_extension(".segments");
    return path;
}

std::optional<Engine::Impl::SegmentState> Engine::Impl::loadSegments(const std::filesystem::path& file,
                                                                     std::uint64_t size) const {
    auto text = cache::readCacheFile(options.root, file, cache::kMaxStateFileBytes);
    if (!text || !*text) return std::nullopt;
    auto doc = json::parse(**text, nullptr, false);
    if (!doc.is_object() || !doc.contains("size") || !doc["size"].is_number_unsigned() ||
        doc["size"].get<std::uint64_t>() != size || !doc.contains("segments") || !doc["segments"].is_array())
        return std::nullopt;
    SegmentState state;
    state.size = size;
    std::uint64_t expect = 0;
    for (const auto& item : doc["segments"]) {
        if (!item.is_array() || item.size() != 3) return std::nullopt;
        for (const auto& v : item)
            if (!v.is_number_unsigned()) return std::nullopt;
        Span span;
        span.begin = item[0].get<std::uint64_t>();
        span.end = item[1].get<std::uint64_t>();
        span.pos = item[2].get<std::uint64_t>();
        if (span.begin != expect || span.end <= span.begin || span.pos < span.begin || span.pos > span.end)
            return std::nullopt;
        expect = span.end;
        state.spans.push_back(std::move(span));
    }
    if (expect != size || state.spans.empty()) return std::nullopt;
    return state;
}

void Engine::Impl::saveSegments(const std::filesystem::path& file, const SegmentState& state) const {
    json doc{{"size", state.size}, {"segments", json::array()}};
    for (const auto& span : state.spans) doc["segments"].push_back({span.begin, span.end, span.pos});
    if (auto saved = cache::writeCacheFile(options.root, file, doc.dump()); !saved)
        log->warn("cannot save download progress reason=\"{}\"", saved.error().message);
}

// What the workers of one parallel download share.
struct Engine::Impl::Pieces {
    SegmentState state;
    std::string directUrl;  // the resolved (signed CDN) URL, reused for every piece
    std::vector<std::string> errors;
    bool unsupported = false;  // the server ignores Range: fall back to one stream
    std::size_t active = 0;    // workers still running
    std::vector<bool> stop;    // per worker: take no new piece (the tuner sets it)
    PrefixHash prefix;         // the file's hash, fed by the connection at the front
    std::size_t planned = 1;   // the connections the pieces are cut for: the file's share at start
    bool capped = false;       // the tuner added connections that the host's rate paid for
    // Per worker: the bytes of its finished pieces, and the piece it fetches now (with the
    // position it started from), so that the tuner sees each connection's progress.
    std::vector<std::uint64_t> received;
    std::vector<const Span*> current;
    std::vector<std::uint64_t> startedAt;

    bool finished() const { return active == 0; }
    std::uint64_t bytes() const {
        std::uint64_t sum = 0;
        for (const auto& span : state.spans) sum += span.pos - span.begin;
        return sum;
    }
    // The bytes worker `index` has received so far.
    std::uint64_t receivedBy(std::size_t index) const {
        const Span* span = current[index];
        return received[index] + (span != nullptr ? span->pos - startedAt[index] : 0);
    }

    // The first piece nobody has finished or claimed, lowest offset first, so that the finished
    // bytes grow from the front and the hash can follow them while the download runs. Pieces are
    // cut as they are taken (pieceLength): early pieces are large, so requests stay few; the last
    // ones are small, so the connections finish together and the hash has little left at the end.
    Span* claim() {
        if (unsupported || !errors.empty()) return nullptr;
        std::uint64_t untaken = 0;
        for (const auto& span : state.spans)
            if (!span.claimed) untaken += span.end - span.pos;
        for (auto it = state.spans.begin(); it != state.spans.end(); ++it) {
            Span& span = *it;
            if (span.claimed || span.pos >= span.end) continue;
            if (span.pos == span.begin) {
                const std::uint64_t length =
                    pieceLength(span.end - span.begin, untaken, std::max(active, planned),
                                capped ? kTailPiece : kMinPiece);
                if (length < span.end - span.begin) {
                    Span rest;
                    rest.begin = rest.pos = span.begin + length;
                    rest.end = span.end;
                    span.end = rest.begin;
                    state.spans.insert(std::next(it), std::move(rest));
                }
            }
            span.claimed = true;
            return &span;
        }
        return nullptr;
    }
    // The end of the bytes [0, prefix) that are all on disk.
    std::uint64_t contiguous() const {
        std::uint64_t prefix = 0;
        for (const auto& span : state.spans) {
            prefix = span.pos;
            if (span.pos < span.end) break;
        }
        return prefix;
    }
};

// One connection of a parallel download: fetches pieces in order until none is left, or until
// the tuner stops it.
net::awaitable<void> Engine::Impl::pieceWorker(Run& run, const FileJob& job, const std::string& url, int fd,
                                               Pieces* pieces, std::size_t index) {
    while (!pieces->stop[index]) {
        Span* span = pieces->claim();
        if (span == nullptr) break;
        span->prefix = &pieces->prefix;
        pieces->current[index] = span;
        pieces->startedAt[index] = span->pos;
        auto result = co_await transferSpan(run, job, url, fd, *span, &pieces->directUrl);
        pieces->received[index] += span->pos - pieces->startedAt[index];
        pieces->current[index] = nullptr;
        if (result.outcome == SpanOutcome::RangeIgnored)
            pieces->unsupported = true;
        else if (result.outcome != SpanOutcome::Done)
            pieces->errors.push_back(result.message);
        span->claimed = false;
    }
}

// Starts worker `index` of a parallel download.
void Engine::Impl::startWorker(Run& run, const FileJob& job, const std::string& url, int fd, Pieces* pieces,
                               util::TaskGroup* group, std::size_t index) {
    ++pieces->active;
    group->spawn(pieceWorker(run, job, url, fd, pieces, index), [pieces](std::exception_ptr e) {
        if (e) pieces->errors.push_back("a download connection stopped unexpectedly");
        --pieces->active;
    });
}

// Opens more connections for a parallel download when its connections are capped
// (connection_policy.hpp): watches each connection's bytes from its first one, opens the file's
// share of the host at once when they are slow, and stops the added ones again if they brought
// no speed. The share grows as other files to the host finish.
net::awaitable<void> Engine::Impl::tuneWorkers(Run& run, const FileJob& job, const std::string& url, int fd,
                                               Pieces* pieces, util::TaskGroup* group, std::size_t count,
                                               std::size_t most) {
    struct FirstByte {
        Clock::time_point at;
        std::uint64_t bytes = 0;
    };
    std::vector<std::optional<FirstByte>> first(most);
    std::vector<ConnectionSample> samples;
    // How busy the event loop (this thread) was lately (loopBusy): over the last kBusyWindow,
    // counted from the download's first byte.
    struct LoopMark {
        Clock::time_point at;
        LoopTimes times;
    };
    std::optional<LoopMark> loopFrom, loopNext;
    double busy = 0.0;
    RateWindow hostRate(kTuneWindow);  // all downloads together
    while (count < most && !pieces->finished()) {
        const auto now = Clock::now();
        if (!loopFrom && pieces->bytes() > 0) loopFrom = loopNext = LoopMark{now, threadTimes()};
        // From the file's first byte on: its resolve and handshakes would make the rate before a
        // batch look low.
        if (loopFrom) hostRate.add(now, counters.bytesFetched);
        if (loopFrom && now > loopFrom->at) {
            const LoopTimes times = threadTimes();
            busy = loopBusy({times.ran - loopFrom->times.ran, times.waited - loopFrom->times.waited},
                            now - loopFrom->at);
            // Two overlapping marks: the share is measured over kBusyWindow to twice that.
            if (now - loopNext->at >= kBusyWindow) {
                loopFrom = loopNext;
                loopNext = LoopMark{now, times};
            }
        }
        samples.clear();
        for (std::size_t i = 0; i < count; ++i) {
            const std::uint64_t got = pieces->receivedBy(i);
            if (!first[i] && got > 0) first[i] = FirstByte{now, got};
            if (first[i] && !pieces->stop[i]) samples.push_back({got - first[i]->bytes, now - first[i]->at});
        }
        const std::size_t share = std::min(
            most, hostShare(client.options().connectionsPerHost, segmentedFiles, options.segments, job.size));
        const std::size_t wanted = wantedConnections(samples, count, share, busy);
        if (wanted <= count) {
            co_await sleepFor(kTunePoll);
            continue;
        }
        const double before = hostRate.rate().value_or(0.0);
        for (std::size_t i = count; i < wanted; ++i) startWorker(run, job, url, fd, pieces, group, i);
        // The added connections are judged once they all carry bytes: their handshakes do not count.
        const auto added = Clock::now();
        while (Clock::now() - added < kFirstByteWait && !pieces->finished()) {
            bool all = true;
            for (std::size_t i = count; i < wanted; ++i) all = all && pieces->receivedBy(i) > 0;
            if (all) break;
            co_await sleepFor(kTunePoll);
        }
        // Then the host's rate over kTuneWindow: the window drops what came before.
        const auto measured = Clock::now();
        while (Clock::now() - measured < kTuneWindow) {
            if (pieces->finished()) co_return;
            co_await sleepFor(kTunePoll);
            hostRate.add(Clock::now(), counters.bytesFetched);
        }
        const double after = hostRate.rate().value_or(0.0);
        const bool kept = keepAdded(before, after);
        log->debug(
            "connections path={} from={} to={} host_rate_before={:.0f} host_rate_after={:.0f} "
            "loop_busy={:.2f} "
            "kept={}",
            job.path, count, wanted, before, after, busy, kept);
        if (!kept) {
            for (std::size_t i = count; i < wanted; ++i) pieces->stop[i] = true;
            co_return;
        }
        pieces->capped = true;
        count = wanted;
    }
}

// A large file on several connections at once (as aria2 -x and hf_transfer do): the preallocated
// .incomplete file is cut into pieces that up to `segments` connections take in order (the
// tuner decides how many), each piece
// resumable after a crash (their progress is saved beside the lock). The file is resolved once;
// the pieces go straight to the signed URL it redirected to, until that expires. Because pieces
// are taken from the front, the hash follows the contiguous prefix on the pool while the
// download runs: fed by the connection at the front from its receive buffers, and reading back
// only the bytes that arrived ahead of the front.
net::awaitable<Result<Engine::Impl::Segmented>> Engine::Impl::fetchSegmented(
    Run& run, const FileJob& job, const std::string& url, int fd, const std::filesystem::path& stateFile) {
    Pieces pieces;
    auto loaded = loadSegments(stateFile, job.size);
    struct stat st {};
    ::fstat(fd, &st);
    if (!loaded || static_cast<std::uint64_t>(st.st_size) != job.size) {
        if (auto reset = truncate(fd, job); !reset) co_return reset.error();
        if (int err = ::posix_fallocate(fd, 0, static_cast<off_t>(job.size)); err != 0) {
            if (err == ENOSPC)
                co_return makeError("no space for " + job.path + " (" + util::humanBytes(job.size) +
                                    "): free some space or choose another --cache-dir");
            if (::ftruncate(fd, static_cast<off_t>(job.size)) != 0)
                co_return makeError("cannot size the partial download of " + job.path + ": " +
                                    errnoText(errno));
        }
        SegmentState fresh;
        fresh.size = job.size;
        Span whole;  // cut into pieces as connections take them
        whole.end = job.size;
        fresh.spans.push_back(std::move(whole));
        loaded = std::move(fresh);
        saveSegments(stateFile, *loaded);
    }
    pieces.state = std::move(*loaded);
    const std::uint64_t have = pieces.bytes();
    if (have > 0) log->info("resuming path={} pieces={} have={}", job.path, pieces.state.spans.size(), have);
    run.progress.bytesDone += have;

    pieces.prefix.hasher = makeHasher(job.etag, job.size);
    util::Hasher* hasher = pieces.prefix.hasher.get();
    std::uint64_t& hashed = pieces.prefix.hashed;
    std::uint64_t writtenBack = 0;  // the kernel was told to write [0, writtenBack) to disk
    bool hashFailed = false;
    const std::size_t workers =
        std::max<std::size_t>(1, std::min<std::uint64_t>(options.segments, job.size / kMinPiece));

    // A cancelled fetch (the daemon stopping, the entry removed) cancels its connections too.
    util::TaskGroup group(executor);
    auto saveTimer = Clock::now();
    pieces.stop.assign(workers, false);
    pieces.received.assign(workers, 0);
    pieces.current.assign(workers, nullptr);
    pieces.startedAt.assign(workers, 0);
    ++segmentedFiles;
    struct InFlight {
        std::size_t& files;
        ~InFlight() { --files; }
    } inFlight{segmentedFiles};
    pieces.planned = std::min(
        workers, hostShare(client.options().connectionsPerHost, segmentedFiles, options.segments, job.size));
    const std::size_t first = std::min(kMinConnections, workers);
    for (std::size_t i = 0; i < first; ++i) startWorker(run, job, url, fd, &pieces, &group, i);
    if (first < workers)
        group.spawn(tuneWorkers(run, job, url, fd, &pieces, &group, first, workers),
                    util::logFailure(log, "connection tuner path=" + job.path));
    // Lives until the group is joined: the coroutine refers to it and, through it, to this frame.
    auto hashLoop = [&]() -> net::awaitable<void> {
        while (hashed < job.size && !hashFailed) {
            // The pieces' progress trails their writes by at most kSaveInterval, so a process
            // killed at any instant resumes close to where it stopped.
            if (Clock::now() - saveTimer > kSaveInterval) {
                saveSegments(stateFile, pieces.state);
                saveTimer = Clock::now();
            }
            // What the front connection hashed from its buffers goes to disk in steps. The
            // connection goes on hashing while this waits: look again afterwards.
            if (hashed - writtenBack >= kHashStep || (writtenBack < hashed && pieces.contiguous() > hashed)) {
                const std::uint64_t to = hashed;
                co_await hashRange(fd, nullptr, writtenBack, to, true);
                writtenBack = to;
                continue;
            }
            // Bytes that arrived ahead of the front: read back while nobody else hashes.
            if (const std::uint64_t frontier = pieces.contiguous();
                frontier > hashed && !pieces.prefix.pool) {
                const std::uint64_t upTo = std::min(frontier, hashed + kHashStep);
                pieces.prefix.pool = true;
                if (!co_await hashRange(fd, hasher, hashed, upTo, true)) hashFailed = true;
                pieces.prefix.pool = false;
                hashed = writtenBack = upTo;
                continue;
            }
            if (pieces.finished()) break;
            co_await sleepFor(kHashPoll);
        }
        if (writtenBack < hashed) co_await hashRange(fd, nullptr, writtenBack, hashed, true);
    };
    group.spawn(hashLoop(), [&hashFailed](std::exception_ptr e) {
        if (e) hashFailed = true;
    });
    // Cancelled or not, the progress is saved once every connection has stopped, so the next run
    // resumes where this one ended.
    std::exception_ptr stopped;
    try {
        co_await group.join();
    } catch (const boost::system::system_error&) {
        stopped = std::current_exception();
    }
    saveSegments(stateFile, pieces.state);
    if (stopped) std::rethrow_exception(stopped);

    // Bytes this file no longer counts as done when it starts over.
    const auto forget = [&run, &pieces] {
        run.progress.bytesDone -= std::min(run.progress.bytesDone, pieces.bytes());
    };
    if (pieces.unsupported) {
        std::error_code ec;
        std::filesystem::remove(stateFile, ec);
        forget();
        if (auto reset = truncate(fd, job); !reset) co_return reset.error();
        log->info("range requests not supported path={}; one connection instead", job.path);
        co_return Segmented{SegmentOutcome::Unsupported, {}};
    }
    if (!pieces.errors.empty()) co_return makeError(pieces.errors.front());
    if (hashFailed) co_return makeError("cannot read back the downloaded bytes of " + job.path);

    std::error_code ec;
    std::filesystem::remove(stateFile, ec);
    std::string digest = hasher->finishHex();
    if (digest != job.etag) {
        counters.hashMismatches += 1;
        forget();
        if (auto reset = truncate(fd, job); !reset) co_return reset.error();
        co_return Segmented{SegmentOutcome::Corrupt, "the downloaded bytes of " + job.path + " hash to " +
                                                         digest + ", not to " + job.etag};
    }
    co_return Segmented{};
}

}  // namespace hfwarm::transfer
