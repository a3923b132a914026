#include "hfwarm/transfer/engine.hpp"

#include "hfwarm/transfer/plan.hpp"

#include "hfwarm/cache/lock.hpp"
#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/tree.hpp"
#include "hfwarm/cache/write.hpp"
#include "hfwarm/hub/hub.hpp"
#include "hfwarm/ratelimit/request_class.hpp"
#include "hfwarm/util/hash.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm/util/units.hpp"

#include <nlohmann/json.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <fstream>
#include <list>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

namespace hfwarm::transfer {

std::string_view stateName(EntryState state) {
    switch (state) {
        case EntryState::Pending:
            return "pending";
        case EntryState::Resolving:
            return "resolving";
        case EntryState::Downloading:
            return "downloading";
        case EntryState::Ready:
            return "ready";
        case EntryState::Failed:
            return "failed";
        case EntryState::Paused:
            return "paused";
        case EntryState::Offline:
            return "offline";
    }
    return "pending";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr std::chrono::milliseconds kLockPoll{200};
// Threads that fsync and rename finished blobs: several, so that the flushes of small files overlap.
constexpr std::size_t kSyncThreads = 4;
// The pieces of a parallel download are 4-64 MiB: below, a request's round trip costs too much
// of its transfer; above, one piece keeps its connection busy while the others idle.
constexpr std::uint64_t kMinPiece = 4ull << 20;
constexpr std::uint64_t kMaxPiece = 64ull << 20;
// A parallel download starts with kMinConnections; the tuner measures rates over windows of at
// least kTuneWindow and keeps added connections that bring kGainShare of their share of speed.
constexpr std::size_t kMinConnections = 2;
constexpr std::chrono::milliseconds kTuneWindow{250};
constexpr std::chrono::milliseconds kTunePoll{20};
constexpr double kGainShare = 0.5;
// How far the saved progress of a parallel download may trail the bytes written.
constexpr std::chrono::milliseconds kSaveInterval{50};
// The hash of a parallel download advances in steps of at most this many bytes.
constexpr std::uint64_t kHashStep = 16ull << 20;

// Holds requests while the engine is paused: waiters sleep on one timer that open() cancels.
class Gate {
  public:
    explicit Gate(net::any_io_executor executor) : timer_(executor, net::steady_timer::time_point::max()) {}
    void close() { closed_ = true; }
    void open() {
        closed_ = false;
        timer_.cancel();
    }
    bool closed() const { return closed_; }
    net::awaitable<void> pass() {
        while (closed_) {
            timer_.expires_at(net::steady_timer::time_point::max());
            co_await timer_.async_wait(kTuple);
        }
    }

  private:
    net::steady_timer timer_;
    bool closed_ = false;
};

// Request latency in buckets, as Prometheus histograms count it.
struct Latency {
    std::vector<double> bounds{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(bounds.size() + 1, 0);
    double sum = 0;

    void record(double seconds) {
        auto bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
        counts[static_cast<std::size_t>(bucket)] += 1;
        sum += seconds;
    }
};

// Routes every hop of the http client through the engine's gate and the limiter: a request token
// before a Hub request, the Hub's RateLimit headers after it, and the bandwidth budget before each
// body chunk. Also times each hop.
class LimiterHooks final : public http::Hooks {
  public:
    LimiterHooks(ratelimit::Limiter& limiter, Gate& gate, Latency& latency)
        : limiter_(limiter), gate_(gate), latency_(latency) {}

    net::awaitable<void> beforeRequest(const http::RequestInfo& info) override {
        co_await gate_.pass();
        co_await limiter_.acquire(info.host, ratelimit::classify(info.path, info.endpointHost));
        // The client passes the same RequestInfo object to afterResponse or afterFailure.
        started_[&info] = Clock::now();
    }

    void afterResponse(const http::RequestInfo& info, const http::Response& response) override {
        if (auto it = started_.find(&info); it != started_.end()) {
            latency_.record(std::chrono::duration<double>(Clock::now() - it->second).count());
            started_.erase(it);
        }
        auto header = [&](std::string_view name) { return response.headers.get(name).value_or(""); };
        limiter_.observe(info.host, ratelimit::classify(info.path, info.endpointHost),
                         static_cast<int>(response.status), header("RateLimit"), header("RateLimit-Policy"),
                         header("Retry-After"));
    }

    void afterFailure(const http::RequestInfo& info, const http::Failure&) override {
        started_.erase(&info);
        // Status 0: no verdict, but a probe waiting on this hop's answer need not wait any longer.
        limiter_.observe(info.host, ratelimit::classify(info.path, info.endpointHost), 0, "", "", "");
    }

    net::awaitable<void> beforeBodyChunk(std::size_t bytes) override {
        co_await limiter_.acquireBytes(bytes);
    }

  private:
    ratelimit::Limiter& limiter_;
    Gate& gate_;
    Latency& latency_;
    std::map<const http::RequestInfo*, Clock::time_point> started_;
};

// A counting semaphore for coroutines on one thread: waiters are woken in FIFO order by cancelling
// their timer, and the slot passes straight to the woken waiter.
class Slots {
  public:
    Slots(net::any_io_executor executor, std::size_t count) : executor_(std::move(executor)), free_(count) {}

    net::awaitable<void> acquire() {
        if (free_ > 0 && waiters_.empty()) {
            --free_;
            co_return;
        }
        auto timer = std::make_shared<net::steady_timer>(executor_, net::steady_timer::time_point::max());
        waiters_.push_back(timer);
        co_await timer->async_wait(kTuple);
    }

    void release() {
        if (waiters_.empty()) {
            ++free_;
            return;
        }
        auto next = waiters_.front();
        waiters_.pop_front();
        next->cancel();
    }

  private:
    net::any_io_executor executor_;
    std::size_t free_;
    std::deque<std::shared_ptr<net::steady_timer>> waiters_;
};

// Waits for a set of spawned coroutines: add() before each spawn, done() when each ends.
class WaitGroup {
  public:
    explicit WaitGroup(net::any_io_executor executor)
        : timer_(executor, net::steady_timer::time_point::max()) {}
    void add() { ++pending_; }
    void done() {
        if (--pending_ == 0) timer_.cancel();
    }
    net::awaitable<void> wait() {
        while (pending_ > 0) co_await timer_.async_wait(kTuple);
    }

  private:
    net::steady_timer timer_;
    std::size_t pending_ = 0;
};

net::awaitable<void> sleepFor(std::chrono::milliseconds duration) {
    net::steady_timer timer(co_await net::this_coro::executor, duration);
    co_await timer.async_wait(kTuple);
}

// A new hasher for a blob named `etag`: sha256 for LFS blobs, the git blob sha1 (with its
// "blob <size>\0" header) for 40-hex names.
std::shared_ptr<util::Hasher> makeHasher(std::string_view etag, std::uint64_t size) {
    if (etag.size() == 64) return std::make_shared<util::Hasher>(util::HashKind::Sha256);
    auto hasher = std::make_shared<util::Hasher>(util::HashKind::Sha1);
    std::string header = "blob " + std::to_string(size);
    hasher->update(header.data(), header.size() + 1);
    return hasher;
}

// Writes all of [data, data + size) at `offset`; 0 or the errno of the failed write.
int writeAt(int fd, const char* data, std::size_t size, std::uint64_t offset) {
    std::size_t written = 0;
    while (written < size) {
        ssize_t n = ::pwrite(fd, data + written, size - written, static_cast<off_t>(offset + written));
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        written += static_cast<std::size_t>(n);
    }
    return 0;
}

std::string errnoText(int error) {
    return std::strerror(error);
}

// The start offset of a `Content-Range: bytes START-END/TOTAL` value.
std::optional<std::uint64_t> contentRangeStart(std::string_view value) {
    constexpr std::string_view kPrefix = "bytes ";
    if (value.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
    value.remove_prefix(kPrefix.size());
    std::uint64_t start = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), start);
    if (ec != std::errc{} || end == value.data() + value.size() || *end != '-') return std::nullopt;
    return start;
}

}  // namespace

struct Engine::Impl {
    // One entry's progress, shared by every coroutine working on it: a reload that removes the
    // entry leaves them holding a live object.
    struct Run {
        EntryProgress progress;
        bool running = false;
        bool replan = false;   // the selections changed while it ran: plan and warm once more
        bool removed = false;  // no longer in the manifests: take no new file, publish no ref
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
    struct Span {
        std::uint64_t begin = 0;
        std::uint64_t end = 0;
        std::uint64_t pos = 0;
        std::shared_ptr<util::Hasher> hasher;  // whole-file transfers only
        bool rangeIgnored = false;             // a segment got 200 or another range: fall back
        bool claimed = false;                  // a connection of a parallel download fetches it
    };

    // Receives the body of one resolver GET into the .incomplete file.
    class BlobSink final : public http::Sink {
      public:
        BlobSink(Impl& impl, Run& run, const FileJob& job, int fd, Span& span)
            : impl_(impl), run_(run), job_(job), fd_(fd), span_(span) {}

        Result<void> onResponse(const http::Response& response) override {
            response_ = response;
            if (response.status == 206) {
                auto start = contentRangeStart(response.headers.get("Content-Range").value_or(""));
                if (!start || *start != span_.pos) {
                    restart_ = true;
                    return makeError("the server answered a range request with another range");
                }
                return {};
            }
            if (response.status == 200) {
                if (span_.pos == 0) return {};
                if (!span_.hasher) {
                    span_.rangeIgnored = true;
                    return makeError("the server ignores range requests");
                }
                // Range ignored: the body starts at byte 0.
                if (auto reset = impl_.truncate(fd_, job_); !reset) return reset;
                impl_.rewind(run_, job_, span_);
                return {};
            }
            httpStatus_ = response.status;
            return makeError("HTTP " + std::to_string(response.status));
        }

        net::awaitable<Result<void>> onData(const char* data, std::size_t size) override {
            // A reload removed the entry: stop here, the bytes so far stay for a later resume.
            if (run_.removed) co_return makeError(removedText(run_));
            if (span_.pos + size > span_.end) {
                restart_ = true;
                co_return makeError("the server sent more than the " + std::to_string(job_.size) +
                                    " bytes the listing announced for " + job_.path);
            }
            if (const int error = writeAt(fd_, data, size, span_.pos); error != 0) {
                writeError_ = true;
                const std::uint64_t missing = job_.size - span_.pos;
                co_return makeError("cannot write " + job_.incomplete.string() + " (" + errnoText(error) +
                                    "): " + std::to_string(missing) + " more bytes (" +
                                    util::humanBytes(missing) + ") of " + job_.path +
                                    " are needed there; free some space or choose another --cache-dir");
            }
            if (span_.hasher) span_.hasher->update(data, size);  // a whole-file stream hashes as it goes
            span_.pos += size;
            run_.progress.bytesDone += size;
            impl_.counters.bytesFetched += size;
            co_return Result<void>{};
        }

        const std::optional<http::Response>& response() const { return response_; }
        unsigned httpStatus() const { return httpStatus_; }
        bool restart() const { return restart_; }
        bool writeError() const { return writeError_; }

      private:
        Impl& impl_;
        Run& run_;
        const FileJob& job_;
        int fd_;
        Span& span_;
        std::optional<http::Response> response_;
        unsigned httpStatus_ = 0;
        bool restart_ = false;
        bool writeError_ = false;
    };

    Impl(net::any_io_executor executor, http::Client& client, ratelimit::Limiter& limiter,
         EngineOptions options)
        : executor(executor),
          client(client),
          limiter(limiter),
          options(std::move(options)),
          slots(executor, std::max<std::size_t>(1, this->options.filesInFlight)),
          gate(executor),
          hashPool(1),
          syncPool(kSyncThreads),
          rng(std::random_device{}()),
          log(util::logger("transfer")) {
        client.setHooks(std::make_shared<LimiterHooks>(limiter, gate, latency));
    }

    ~Impl() {
        client.setHooks(nullptr);
        hashPool.join();
        syncPool.join();
    }

    net::any_io_executor executor;
    http::Client& client;
    ratelimit::Limiter& limiter;
    EngineOptions options;
    Slots slots;
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

    Result<void> truncate(int fd, const FileJob& job) {
        if (::ftruncate(fd, 0) != 0)
            return makeError("cannot truncate the partial download of " + job.path + ": " + errnoText(errno));
        return {};
    }

    // Forgets the bytes of a whole-file span after its file was truncated.
    static void rewind(Run& run, const FileJob& job, Span& span) {
        run.progress.bytesDone -= std::min(run.progress.bytesDone, span.pos);
        span.pos = 0;
        span.hasher = makeHasher(job.etag, job.size);
    }

    std::chrono::milliseconds backoffDelay(unsigned attempt) { return options.backoff.delay(attempt, rng); }

    static std::string removedText(const Run& run) {
        return "stopped: " + run.progress.entry.repo.display() +
               " is no longer in the manifests (partial files are kept for resume)";
    }

    static void fail(Run& run, std::string message) {
        run.progress.state = EntryState::Failed;
        run.progress.error = std::move(message);
        run.progress.lastChecked = std::chrono::system_clock::now();
    }

    // Takes the blob's lock without blocking the event loop: polls, and gives up after lockTimeout.
    net::awaitable<Result<cache::BlobLock>> lockBlob(const std::filesystem::path& lockPath,
                                                     const FileJob& job) {
        auto deadline = Clock::now() + options.lockTimeout;
        bool logged = false;
        while (true) {
            auto attempt = cache::BlobLock::tryAcquire(lockPath);
            if (!attempt) co_return attempt.error();
            if (*attempt) co_return std::move(**attempt);
            if (Clock::now() >= deadline)
                co_return makeError("another process holds the lock " + lockPath.string() + " of " +
                                    job.path + " for more than " +
                                    std::to_string(options.lockTimeout.count() / 1000) +
                                    " s; if no download is running, delete the lock file");
            if (!logged) {
                log->info("waiting for lock path={} lock={}", job.path, lockPath.string());
                logged = true;
            }
            co_await sleepFor(kLockPoll);
        }
    }

    static bool blobPresent(const std::filesystem::path& blob, std::uint64_t size) {
        struct stat st {};
        return ::stat(blob.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
               static_cast<std::uint64_t>(st.st_size) == size;
    }

    Result<void> finishFile(Run& run, const cache::RepoLayout& layout, const std::string& commit,
                            const FileJob& job) {
        if (auto linked = cache::linkSnapshot(layout, commit, job.path, job.etag); !linked) return linked;
        run.progress.filesDone += 1;
        return {};
    }

    // Fetches span.pos..span.end of `job` into `fd` with resolver GETs (following the redirect to the
    // CDN), resuming with Range after every interruption: backoff on network errors, timeouts and
    // 5xx; at once after an expired signed URL (403 from the CDN: resolve again, keep the bytes);
    // waits out 429s with the limiter. A segment whose server ignores Range returns with
    // span.rangeIgnored set. `directUrl`, when given, keeps the URL the resolver redirected to (a
    // signed CDN URL): later requests go there without spending a resolver request, until it
    // expires (403) and the file is resolved again.
    net::awaitable<Result<void>> transferSpan(Run& run, const FileJob& job, const std::string& url, int fd,
                                              Span& span, std::string* directUrl = nullptr) {
        const auto& repo = run.progress.entry.repo;
        unsigned attempts = 0;
        unsigned limited = 0;
        while (span.pos < span.end) {
            // A flaky link that moves the download forward on every attempt does not use up the
            // retry budget: only attempts in a row without a new byte count.
            const std::uint64_t startedAt = span.pos;
            http::Request request;
            const bool direct = directUrl != nullptr && !directUrl->empty();
            request.url = direct ? *directUrl : url;
            if (span.pos > 0 || span.end < job.size) {
                std::string range = "bytes=" + std::to_string(span.pos) + "-";
                if (span.end < job.size) range += std::to_string(span.end - 1);
                request.headers.set("Range", range);
            }
            BlobSink sink(*this, run, job, fd, span);
            auto result = co_await client.stream(request, {http::RedirectPolicy::All, {}, {}}, sink);
            if (directUrl != nullptr && !direct && sink.response() && sink.response()->crossedHost &&
                sink.response()->status == 206)
                *directUrl = sink.response()->finalUrl;
            if (result) {
                if (span.pos < span.end && !span.hasher) {
                    // A segment's body ended early without an error: ask for the rest.
                    continue;
                }
                break;
            }
            if (span.rangeIgnored) co_return makeError(result.error().message);
            if (run.removed) co_return makeError(removedText(run));
            std::string reason = result.error().message;
            bool retry = result.error().retryable();
            bool immediate = false;
            if (sink.httpStatus() != 0 && sink.response()) {
                const auto& response = *sink.response();
                if (response.status == 403 && (response.crossedHost || direct)) {
                    reason = "the download link expired";
                    retry = immediate = true;
                    if (directUrl != nullptr) directUrl->clear();
                } else if (response.status == 416) {
                    if (!span.hasher) {
                        span.rangeIgnored = true;
                        co_return makeError("the server refused a range of " + job.path);
                    }
                    reason = "the server refused the range";
                    if (auto reset = truncate(fd, job); !reset) co_return reset;
                    rewind(run, job, span);
                    retry = true;
                } else {
                    auto error = hub::errorFromResponse(response, repo, job.path, options.tokenConfigured,
                                                        std::chrono::system_clock::now());
                    if (error.kind == hub::ErrorKind::RateLimited) {
                        // The limiter has paused the class for every worker; wait our turn.
                        if (++limited > options.rateLimitedAttempts) co_return makeError(error.message);
                        counters.retries += 1;
                        continue;
                    }
                    reason = error.message;
                    retry = error.retryable();
                }
            } else if (sink.restart()) {
                if (!span.hasher) {
                    span.rangeIgnored = true;
                    co_return makeError(result.error().message);
                }
                if (auto reset = truncate(fd, job); !reset) co_return reset;
                rewind(run, job, span);
                retry = true;
            } else if (sink.writeError()) {
                co_return makeError(result.error().message);
            }
            if (span.pos > startedAt) attempts = 0;
            if (!retry || !options.backoff.allows(attempts + 1)) {
                if (attempts > 0) reason += " (after " + std::to_string(attempts + 1) + " attempts)";
                co_return makeError(reason);
            }
            counters.retries += 1;
            auto delay = immediate ? std::chrono::milliseconds{0} : backoffDelay(attempts);
            ++attempts;
            log->info("retrying path={} at={} reason=\"{}\" delay_ms={}", job.path, span.pos, reason,
                      delay.count());
            if (delay.count() > 0) co_await sleepFor(delay);
        }
        co_return Result<void>{};
    }

    // Where the progress of a parallel download is kept: next to the blob's lock, out of blobs/,
    // where huggingface_hub's scanner and `hf cache prune` do not look.
    static std::filesystem::path segmentStatePath(const std::filesystem::path& lockPath) {
        auto path = lockPath;
        path.replace_extension(".segments");
        return path;
    }

    struct SegmentState {
        std::list<Span> spans;  // a list: pieces are cut while connections hold pointers to others
        std::uint64_t size = 0;
    };

    static std::optional<SegmentState> loadSegments(const std::filesystem::path& file, std::uint64_t size) {
        std::ifstream in(file);
        if (!in) return std::nullopt;
        auto doc = json::parse(in, nullptr, false);
        if (!doc.is_object() || !doc.contains("size") || !doc["size"].is_number_unsigned() ||
            doc["size"].get<std::uint64_t>() != size || !doc.contains("segments") ||
            !doc["segments"].is_array())
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
            if (span.begin != expect || span.end <= span.begin || span.pos < span.begin ||
                span.pos > span.end)
                return std::nullopt;
            expect = span.end;
            state.spans.push_back(std::move(span));
        }
        if (expect != size || state.spans.empty()) return std::nullopt;
        return state;
    }

    static void saveSegments(const std::filesystem::path& file, const SegmentState& state) {
        json doc{{"size", state.size}, {"segments", json::array()}};
        for (const auto& span : state.spans) doc["segments"].push_back({span.begin, span.end, span.pos});
        auto temp = file;
        temp += ".tmp";
        {
            std::ofstream out(temp, std::ios::trunc);
            out << doc.dump();
            if (!out) return;
        }
        std::error_code ec;
        std::filesystem::rename(temp, file, ec);
    }

    static net::awaitable<Result<cache::PublishOutcome>> publishBlob(std::filesystem::path incomplete,
                                                                     std::filesystem::path blob) {
        co_return cache::publishBlob(incomplete, blob);
    }

    // Hashes [from, to) of `fd` into `hasher` on the pool. Plain pointer on purpose: GCC 12 may end the
    // life of a temporary with a destructor (a shared_ptr copy) inside a co_await expression too early.
    // With `writeBack`, the kernel starts writing the hashed range to disk right away, so that the
    // fsync before publishing finds little left: the page cache would otherwise hold gigabytes of
    // dirty pages until then (below vm.dirty_background_ratio nothing is written).
    net::awaitable<bool> hashRange(int fd, util::Hasher* hasher, std::uint64_t from, std::uint64_t to,
                                   bool writeBack = false) {
        co_return co_await net::co_spawn(
            hashPool.get_executor(),
            [fd, hasher, from, to, writeBack]() -> net::awaitable<bool> {
                std::vector<char> buffer(1 << 20);
                std::uint64_t offset = from;
                while (offset < to) {
                    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), to - offset));
                    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset));
                    if (n < 0 && errno == EINTR) continue;
                    if (n <= 0) co_return false;
                    hasher->update(buffer.data(), static_cast<std::size_t>(n));
                    offset += static_cast<std::uint64_t>(n);
                }
                // Only a hint: an error shows again in the fsync that publishes the blob.
                if (writeBack)
                    ::sync_file_range(fd, static_cast<off_t>(from), static_cast<off_t>(to - from),
                                      SYNC_FILE_RANGE_WRITE);
                co_return true;
            },
            net::use_awaitable);
    }

    enum class SegmentOutcome { Done, Unsupported, Corrupt };
    struct Segmented {
        SegmentOutcome outcome = SegmentOutcome::Done;
        std::string mismatch;  // Corrupt: what the bytes hashed to instead
    };

    // What the workers of one parallel download share.
    struct Pieces {
        SegmentState state;
        std::string directUrl;  // the resolved (signed CDN) URL, reused for every piece
        std::vector<std::string> errors;
        bool unsupported = false;  // the server ignores Range: fall back to one stream
        std::size_t active = 0;    // workers still running
        std::vector<bool> stop;    // per worker: take no new piece (the tuner sets it)

        bool finished() const { return active == 0; }
        std::uint64_t bytes() const {
            std::uint64_t sum = 0;
            for (const auto& span : state.spans) sum += span.pos - span.begin;
            return sum;
        }

        // The first piece nobody has finished or claimed, lowest offset first, so that the finished
        // bytes grow from the front and the hash can follow them while the download runs. Pieces are
        // cut as they are taken, guided as OpenMP schedules loops: a share of what nobody has taken
        // yet, 1 / (2 x connections), within [kMinPiece, kMaxPiece]. Early pieces are large, so
        // requests stay few; the last ones are small, so the connections finish together and the
        // hash has little left to read at the end.
        Span* claim() {
            if (unsupported || !errors.empty()) return nullptr;
            std::uint64_t untaken = 0;
            for (const auto& span : state.spans)
                if (!span.claimed) untaken += span.end - span.pos;
            for (auto it = state.spans.begin(); it != state.spans.end(); ++it) {
                Span& span = *it;
                if (span.claimed || span.pos >= span.end) continue;
                const std::uint64_t step = std::clamp<std::uint64_t>(
                    untaken / (2 * std::max<std::size_t>(active, 1)), kMinPiece, kMaxPiece);
                if (span.pos == span.begin && span.end - span.begin >= step + step / 2) {
                    Span rest;
                    rest.begin = rest.pos = span.begin + step;
                    rest.end = span.end;
                    span.end = rest.begin;
                    state.spans.insert(std::next(it), std::move(rest));
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
    net::awaitable<void> pieceWorker(Run& run, const FileJob& job, const std::string& url, int fd,
                                     Pieces* pieces, std::size_t index) {
        while (!pieces->stop[index]) {
            Span* span = pieces->claim();
            if (span == nullptr) break;
            auto result = co_await transferSpan(run, job, url, fd, *span, &pieces->directUrl);
            if (span->rangeIgnored) {
                pieces->unsupported = true;
            } else if (!result) {
                pieces->errors.push_back(result.error().message);
            }
            span->claimed = false;
        }
    }

    // Starts worker `index` of a parallel download.
    void startWorker(Run& run, const FileJob& job, const std::string& url, int fd, Pieces* pieces,
                     WaitGroup* group, std::size_t index) {
        ++pieces->active;
        group->add();
        net::co_spawn(executor, pieceWorker(run, job, url, fd, pieces, index),
                      [pieces, group, index](std::exception_ptr e) {
                          if (e) pieces->errors.push_back("a download connection stopped unexpectedly");
                          --pieces->active;
                          group->done();
                      });
    }

    // The bytes per second a parallel download makes over `window`; nothing when it ends sooner.
    static net::awaitable<std::optional<double>> measureRate(const Pieces* pieces, Clock::duration window) {
        const auto started = Clock::now();
        const auto before = static_cast<double>(pieces->bytes());
        while (Clock::now() - started < window) {
            if (pieces->finished()) co_return std::nullopt;
            co_await sleepFor(kTunePoll);
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
        co_return (static_cast<double>(pieces->bytes()) - before) / seconds;
    }

    // Adds connections to a parallel download while they bring speed. Where a CDN caps each
    // connection (the reason for parallel ranges), twice the connections bring about twice the
    // rate; where the link, the disk or the CPU is the limit, more connections bring only their
    // cost. Starts with kMinConnections and doubles while the rate grows by at least kGainShare of
    // the share added; connections added in vain finish their piece and stop.
    net::awaitable<void> tuneWorkers(Run& run, const FileJob& job, const std::string& url, int fd,
                                     Pieces* pieces, WaitGroup* group, std::size_t count, std::size_t most) {
        // Until the first bytes the rate says nothing; the window grows with the round trip, so that
        // connections in TCP slow start are not judged too soon.
        const auto started = Clock::now();
        const std::uint64_t initial = pieces->bytes();
        while (pieces->bytes() == initial) {
            if (pieces->finished()) co_return;
            co_await sleepFor(kTunePoll);
        }
        const auto window = std::max<Clock::duration>(kTuneWindow, 3 * (Clock::now() - started));
        while (count < most) {
            auto before = co_await measureRate(pieces, window);
            if (!before) co_return;
            const std::size_t add = std::min(count, most - count);
            for (std::size_t i = count; i < count + add; ++i)
                startWorker(run, job, url, fd, pieces, group, i);
            auto after = co_await measureRate(pieces, window);
            if (!after) co_return;
            const double wanted =
                *before * (1 + kGainShare * static_cast<double>(add) / static_cast<double>(count));
            log->debug("connections path={} from={} to={} rate_before={:.0f} rate_after={:.0f} kept={}",
                       job.path, count, count + add, *before, *after, *after >= wanted);
            if (*after < wanted) {
                for (std::size_t i = count; i < count + add; ++i) pieces->stop[i] = true;
                co_return;
            }
            count += add;
        }
    }

    // A large file on several connections at once (as aria2 -x and hf_transfer do): the preallocated
    // .incomplete file is cut into pieces that up to `segments` connections take in order (the
    // tuner decides how many), each piece
    // resumable after a crash (their progress is saved beside the lock). The file is resolved once;
    // the pieces go straight to the signed URL it redirected to, until that expires. Because pieces
    // are taken from the front, the hash follows the contiguous prefix on the pool while the
    // download runs, reading back bytes still in the page cache.
    net::awaitable<Result<Segmented>> fetchSegmented(Run& run, const FileJob& job, const std::string& url,
                                                     int fd, const std::filesystem::path& stateFile) {
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
        if (have > 0)
            log->info("resuming path={} pieces={} have={}", job.path, pieces.state.spans.size(), have);
        run.progress.bytesDone += have;

        auto hasher = makeHasher(job.etag, job.size);
        std::uint64_t hashed = 0;
        bool hashFailed = false;
        const std::size_t workers =
            std::max<std::size_t>(1, std::min<std::uint64_t>(options.segments, job.size / kMinPiece));

        WaitGroup group(executor);
        auto saveTimer = Clock::now();
        pieces.stop.assign(workers, false);
        const std::size_t first = std::min(kMinConnections, workers);
        for (std::size_t i = 0; i < first; ++i) startWorker(run, job, url, fd, &pieces, &group, i);
        if (first < workers) {
            group.add();
            net::co_spawn(executor, tuneWorkers(run, job, url, fd, &pieces, &group, first, workers),
                          [&group](std::exception_ptr) { group.done(); });
        }
        group.add();
        net::co_spawn(
            executor,
            [&]() -> net::awaitable<void> {
                while (hashed < job.size && !hashFailed) {
                    // The pieces' progress trails their writes by at most kSaveInterval, so a process
                    // killed at any instant resumes close to where it stopped.
                    if (Clock::now() - saveTimer > kSaveInterval) {
                        saveSegments(stateFile, pieces.state);
                        saveTimer = Clock::now();
                    }
                    std::uint64_t frontier = pieces.contiguous();
                    if (frontier > hashed) {
                        std::uint64_t upTo = std::min(frontier, hashed + kHashStep);
                        if (!co_await hashRange(fd, hasher.get(), hashed, upTo, true)) hashFailed = true;
                        hashed = upTo;
                        continue;
                    }
                    if (pieces.finished()) break;
                    co_await sleepFor(std::chrono::milliseconds(20));
                }
            },
            [&](std::exception_ptr e) {
                if (e) hashFailed = true;
                group.done();
            });
        co_await group.wait();
        saveSegments(stateFile, pieces.state);

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

    // Downloads one file into the cache (or reuses its blob) and links it into the snapshot.
    net::awaitable<Result<void>> fetchFile(std::shared_ptr<Run> runPtr, cache::RepoLayout layout,
                                           std::string commit, FileJob job) {
        Run& run = *runPtr;
        const auto& repo = run.progress.entry.repo;
        auto blob = layout.blob(job.etag);
        auto incomplete = layout.incompleteBlob(job.etag);
        auto lockPath = layout.lockFile(job.etag);
        if (!blob) co_return blob.error();
        if (!incomplete) co_return incomplete.error();
        if (!lockPath) co_return lockPath.error();

        if (blobPresent(*blob, job.size)) {
            counters.filesReused += 1;
            run.progress.bytesDone += job.size;
            co_return finishFile(run, layout, commit, job);
        }

        auto lock = co_await lockBlob(*lockPath, job);
        if (!lock) co_return lock.error();
        if (blobPresent(*blob, job.size)) {  // published by another process while we waited
            counters.filesReused += 1;
            run.progress.bytesDone += job.size;
            co_return finishFile(run, layout, commit, job);
        }

        job.incomplete = *incomplete;
        int fd = ::open(incomplete->c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            co_return makeError("cannot open " + incomplete->string() + ": " + errnoText(errno) +
                                "; check the permissions of the cache folder");
        struct FdCloser {
            int fd;
            ~FdCloser() { ::close(fd); }
        } closer{fd};

        run.progress.currentFiles.push_back(job.path);
        struct CurrentFile {
            Run& run;
            const std::string& path;
            ~CurrentFile() {
                auto& files = run.progress.currentFiles;
                if (auto it = std::find(files.begin(), files.end(), path); it != files.end()) files.erase(it);
            }
        } current{run, job.path};

        const std::string url = hub::resolveUrl(options.endpoint, repo.type, repo.id, commit, job.path);
        const auto stateFile = segmentStatePath(*lockPath);
        bool segmented = options.segments > 1 && job.size >= options.segmentMinSize;
        unsigned attempts = 0;
        while (true) {
            if (segmented) {
                auto outcome = co_await fetchSegmented(run, job, url, fd, stateFile);
                if (!outcome) co_return outcome.error();
                if (outcome->outcome == SegmentOutcome::Done) break;
                if (outcome->outcome == SegmentOutcome::Unsupported) {
                    segmented = false;  // the server ignores Range: one stream from byte 0
                } else {
                    if (!options.backoff.allows(attempts + 1))
                        co_return makeError(outcome->mismatch + "; not published after " +
                                            std::to_string(attempts + 1) + " attempts");
                    log->warn("corrupt download path={} reason=\"{}\"", job.path, outcome->mismatch);
                    co_await sleepFor(backoffDelay(attempts));
                    ++attempts;
                    continue;
                }
            }

            Span span;
            span.end = job.size;
            struct stat st {};
            ::fstat(fd, &st);
            span.pos = static_cast<std::uint64_t>(st.st_size);
            if (span.pos > job.size) {
                if (auto reset = truncate(fd, job); !reset) co_return reset;
                span.pos = 0;
            }
            if (span.pos > 0) {
                auto prefix = makeHasher(job.etag, job.size);
                if (co_await hashRange(fd, prefix.get(), 0, span.pos)) {
                    span.hasher = prefix;
                    log->info("resuming path={} from={}", job.path, span.pos);
                } else {
                    if (auto reset = truncate(fd, job); !reset) co_return reset;
                    span.pos = 0;
                }
            }
            if (!span.hasher) span.hasher = makeHasher(job.etag, job.size);
            run.progress.bytesDone += span.pos;

            auto transferred = co_await transferSpan(run, job, url, fd, span);
            if (!transferred) co_return transferred;
            // Every byte is on disk: publish only what hashes to the blob's name.
            std::string digest = span.hasher->finishHex();
            if (span.pos == job.size && digest == job.etag) break;
            counters.hashMismatches += 1;
            std::string reason =
                span.pos == job.size
                    ? "the downloaded bytes of " + job.path + " hash to " + digest + ", not to " + job.etag
                    : "got " + std::to_string(span.pos) + " bytes of " + job.path + ", expected " +
                          std::to_string(job.size);
            log->warn("corrupt download path={} reason=\"{}\"", job.path, reason);
            if (auto reset = truncate(fd, job); !reset) co_return reset;
            run.progress.bytesDone -= std::min(run.progress.bytesDone, span.pos);
            if (!options.backoff.allows(attempts + 1))
                co_return makeError(reason + "; not published after " + std::to_string(attempts + 1) +
                                    " attempts");
            co_await sleepFor(backoffDelay(attempts));
            ++attempts;
        }

        // fsync and rename block for milliseconds per file: on the pool, the event loop keeps the
        // other transfers moving.
        auto published = co_await net::co_spawn(syncPool.get_executor(), publishBlob(*incomplete, *blob),
                                                net::use_awaitable);
        if (!published) co_return published.error();
        counters.filesDownloaded += 1;
        log->info("file ready repo={} path={} size={}", hub::describe(repo), job.path, job.size);
        co_return finishFile(run, layout, commit, job);
    }

    // Takes the next file of `jobs` until none is left, each within a global files-in-flight slot.
    // A member coroutine rather than a capturing lambda: GCC 12 mishandles coroutine lambdas whose
    // captures have destructors.
    net::awaitable<void> fileWorker(std::shared_ptr<Run> runPtr, cache::RepoLayout layout, std::string commit,
                                    const std::vector<FileJob>* jobs, std::size_t* next,
                                    std::vector<std::string>* errors) {
        while (*next < jobs->size() && !runPtr->removed) {
            const FileJob job = (*jobs)[(*next)++];
            co_await slots.acquire();
            auto result = co_await fetchFile(runPtr, layout, commit, job);
            slots.release();
            if (!result) errors->push_back(job.path + ": " + result.error().message);
        }
    }

    // Lists the repo, with backoff on network errors and waits on 429s.
    net::awaitable<hub::HubResult<hub::Listing>> listWithRetries(const manifest::RepoRef& repo) {
        unsigned attempts = 0;
        unsigned limited = 0;
        while (true) {
            auto listing = co_await hub::listRepo(client, options.endpoint, repo);
            if (listing) co_return listing;
            const auto& error = listing.error();
            if (error.kind == hub::ErrorKind::RateLimited && ++limited <= options.rateLimitedAttempts)
                continue;
            if (!error.retryable() || !options.backoff.allows(attempts + 1)) co_return listing;
            counters.retries += 1;
            auto delay = backoffDelay(attempts);
            ++attempts;
            log->info("retrying listing repo={} reason=\"{}\" delay_ms={}", hub::describe(repo),
                      error.message, delay.count());
            co_await sleepFor(delay);
        }
    }

    // Warms one entry; again while its selections changed meanwhile, until it is removed.
    net::awaitable<void> warmRun(std::shared_ptr<Run> runPtr) {
        Run& run = *runPtr;
        if (run.running) co_return;
        run.running = true;
        struct Done {
            Run& run;
            ~Done() { run.running = false; }
        } done{run};
        do {
            run.replan = false;
            co_await warmOnce(runPtr);
        } while (run.replan && !run.removed);
    }

    net::awaitable<void> warmOnce(std::shared_ptr<Run> runPtr) {
        Run& run = *runPtr;
        const manifest::Entry entry = run.progress.entry;
        const std::string name = hub::describe(entry.repo);
        run.progress.state = EntryState::Resolving;
        run.progress.error.clear();
        run.progress.notes.clear();

        auto listing = co_await listWithRetries(entry.repo);
        if (!listing) {
            fail(run, listing.error().message);
            log->warn("entry failed repo={} reason=\"{}\"", name, run.progress.error);
            co_return;
        }
        const std::string commit = listing->commit;
        run.progress.commit = commit;
        cache::RepoLayout layout(options.root, entry.repo);

        if (auto prepared = cache::prepareRepo(layout); !prepared) {
            fail(run, prepared.error().message);
            co_return;
        }
        const Plan planned = plan(entry, *listing, [&](const std::string& etag, std::uint64_t size) {
            auto blob = layout.blob(etag);
            if (blob && blobPresent(*blob, size)) return size;
            std::uint64_t partial = 0;
            if (auto incomplete = layout.incompleteBlob(etag)) {
                std::error_code ec;
                auto bytes = std::filesystem::file_size(*incomplete, ec);
                if (!ec) partial = bytes;
            }
            return partial;
        });
        std::vector<std::string> problems = planned.refused;
        for (const auto& file : planned.absent)
            if (auto marked = cache::markNoExist(layout, commit, file.path); !marked)
                problems.push_back(marked.error().message);
        std::vector<FileJob> jobs;
        jobs.reserve(planned.files.size());
        for (const auto& file : planned.files) jobs.push_back({file.path, file.etag, file.size, {}});

        run.progress.filesTotal = jobs.size();
        run.progress.filesDone = 0;
        run.progress.bytesTotal = planned.bytesTotal;
        run.progress.bytesDone = 0;
        run.progress.notes = planned.notes(name, commit);
        if (planned.bytesNeeded > 0) {
            if (auto space =
                    cache::checkFreeSpace(layout.blobsDir(), planned.bytesNeeded + options.minFreeSpace);
                !space) {
                fail(run, name + ": " + space.error().message);
                log->warn("entry failed repo={} reason=\"{}\"", name, run.progress.error);
                co_return;
            }
            if (auto tagged = cache::writeCachedirTag(options.root); !tagged)
                log->warn("cannot write CACHEDIR.TAG reason=\"{}\"", tagged.error().message);
        }

        run.progress.state = EntryState::Downloading;
        std::size_t next = 0;
        std::vector<std::string> fileErrors;
        WaitGroup group(executor);
        std::size_t workers = std::min(jobs.size(), std::max<std::size_t>(1, options.filesInFlight));
        for (std::size_t w = 0; w < workers; ++w) {
            group.add();
            net::co_spawn(executor, fileWorker(runPtr, layout, commit, &jobs, &next, &fileErrors),
                          [this, &group, name](std::exception_ptr e) {
                              if (e) {
                                  try {
                                      std::rethrow_exception(e);
                                  } catch (const std::exception& ex) {
                                      log->error("download worker stopped repo={} reason=\"{}\"", name,
                                                 ex.what());
                                  }
                              }
                              group.done();
                          });
        }
        co_await group.wait();

        if (run.removed) {
            log->info("entry removed while warming repo={}; partial files are kept", name);
            co_return;
        }
        problems.insert(problems.end(), fileErrors.begin(), fileErrors.end());
        auto failWith = [&](const std::vector<std::string>& reasons) {
            std::string message = reasons.front();
            if (reasons.size() > 1) message += " (and " + std::to_string(reasons.size() - 1) + " more)";
            fail(run, message);
            for (const auto& reason : reasons) log->warn("entry problem repo={} reason=\"{}\"", name, reason);
        };
        if (!problems.empty()) {
            failWith(problems);
            co_return;
        }

        // The listing goes to trees/<commit>.json only when complete and clean: huggingface_hub
        // trusts that file to judge a snapshot complete.
        if (listing->complete && planned.listingValid) {
            std::vector<cache::TreeFile> tree;
            tree.reserve(listing->files.size());
            for (const auto& file : listing->files) {
                cache::TreeFile t{file.path,    file.size,    file.blobId,
                                  std::nullopt, std::nullopt, std::nullopt};
                if (file.lfs) {
                    t.lfsSha256 = file.lfs->sha256;
                    t.lfsSize = file.lfs->size;
                }
                if (!file.xetHash.empty()) t.xetHash = file.xetHash;
                tree.push_back(std::move(t));
            }
            if (auto written = cache::writeTree(layout, commit, tree); !written)
                log->warn("cannot write the tree listing repo={} reason=\"{}\"", name,
                          written.error().message);
        }
        // refs/<revision> last, once every selected file is in place. For a sha-pinned entry this
        // writes refs/<sha>, the only thing hf-hub 0.x (Candle) reads.
        if (auto ref = cache::writeRef(layout, entry.repo.revision, commit); !ref) {
            fail(run, ref.error().message);
            co_return;
        }
        // A file: the Hub does not have fails the entry, but what exists is complete and the ref
        // lets readers find the .no_exist marker offline, as huggingface_hub does after a 404.
        if (auto absent = planned.failures(name, commit); !absent.empty()) {
            failWith(absent);
            co_return;
        }
        for (const auto& note : run.progress.notes) log->info("entry note repo={} note=\"{}\"", name, note);
        run.progress.state = EntryState::Ready;
        run.progress.lastChecked = std::chrono::system_clock::now();
        log->info("entry ready repo={} commit={} files={} size={}", name, commit, run.progress.filesTotal,
                  util::humanBytes(run.progress.bytesTotal));
    }
};

Engine::Engine(net::any_io_executor executor, http::Client& client, ratelimit::Limiter& limiter,
               EngineOptions options)
    : impl_(std::make_unique<Impl>(std::move(executor), client, limiter, std::move(options))) {}

Engine::~Engine() = default;

void Engine::setEntries(const std::vector<manifest::Entry>& entries) {
    std::vector<std::shared_ptr<Impl::Run>> next;
    std::unordered_map<manifest::RepoRef, std::shared_ptr<Impl::Run>> byKey;
    next.reserve(entries.size());
    for (const auto& entry : entries) {
        auto run = impl_->find(entry.repo);
        if (!run) {
            run = std::make_shared<Impl::Run>();
            run->progress.entry = entry;
        } else if (!run->progress.entry.sameSelections(entry)) {
            run->progress.entry = entry;
            if (run->running) run->replan = true;
        } else {
            // Same selections: keep everything, take the new lines' places for messages.
            run->progress.entry = entry;
        }
        byKey.emplace(entry.repo, run);
        next.push_back(std::move(run));
    }
    for (const auto& run : impl_->runs)
        if (!byKey.contains(run->progress.entry.repo)) run->removed = true;
    impl_->runs = std::move(next);
    impl_->byKey = std::move(byKey);
}

net::awaitable<void> Engine::warm(manifest::RepoRef key) {
    auto run = impl_->find(key);
    if (!run) co_return;
    co_await impl_->warmRun(run);
}

std::optional<EntryProgress> Engine::progress(const manifest::RepoRef& key) const {
    auto run = impl_->find(key);
    if (!run) return std::nullopt;
    return run->progress;
}

net::awaitable<void> Engine::warmAll() {
    WaitGroup group(impl_->executor);
    for (const auto& run : impl_->runs) {
        group.add();
        net::co_spawn(impl_->executor, impl_->warmRun(run), [this, &group, run](std::exception_ptr e) {
            if (e) {
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    Impl::fail(*run, std::string("internal error: ") + ex.what());
                    impl_->log->error("entry stopped repo={} reason=\"{}\"",
                                      hub::describe(run->progress.entry.repo), ex.what());
                }
            }
            group.done();
        });
    }
    co_await group.wait();
}

std::vector<EntryProgress> Engine::progress() const {
    std::vector<EntryProgress> out;
    out.reserve(impl_->runs.size());
    for (const auto& run : impl_->runs) out.push_back(run->progress);
    return out;
}

void Engine::setPaused(bool paused) {
    if (paused)
        impl_->gate.close();
    else
        impl_->gate.open();
}

bool Engine::paused() const {
    return impl_->gate.closed();
}

Engine::LatencyHistogram Engine::latency() const {
    LatencyHistogram out;
    out.bounds = impl_->latency.bounds;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < impl_->latency.counts.size(); ++i) {
        running += impl_->latency.counts[i];
        if (i < out.bounds.size()) out.counts.push_back(running);
    }
    out.total = running;
    out.sum = impl_->latency.sum;
    return out;
}

const Counters& Engine::counters() const {
    return impl_->counters;
}
const EngineOptions& Engine::options() const {
    return impl_->options;
}

}  // namespace hfwarm::transfer
