#include "engine_impl.hpp"
#include "hfwarm/cache/safe_io.hpp"

#include "hfwarm/cache/write.hpp"
#include "hfwarm/transfer/connection_policy.hpp"
#include "hfwarm/util/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace hfwarm::transfer {

namespace {

constexpr std::chrono::milliseconds kLockPoll{200};

}  // namespace

// A new hasher for a blob named `etag`: sha256 for LFS blobs, the git blob sha1 (with its
// "blob <size>\0" header) for 40-hex names.
std::shared_ptr<util::Hasher> makeHasher(std::string_view etag, std::uint64_t size) {
    if (etag.size() == 64) return std::make_shared<util::Hasher>(util::HashKind::Sha256);
    auto hasher = std::make_shared<util::Hasher>(util::HashKind::Sha1);
    std::string header = "blob " + std::to_string(size);
    hasher->update(header.data(), header.size() + 1);
    return hasher;
}

std::string errnoText(int error) {
    return std::strerror(error);
}

// Takes the blob's lock without blocking the event loop: polls, and gives up after lockTimeout.
// Polling, because the holder is often another process (huggingface_hub), whose release no event
// announces; a blocking flock on a thread could not be given up at the timeout.
net::awaitable<Result<cache::BlobLock>> Engine::Impl::lockBlob(const std::filesystem::path& lockPath,
                                                               const FileJob& job) {
    auto deadline = Clock::now() + options.lockTimeout;
    bool logged = false;
    while (true) {
        auto attempt = cache::BlobLock::tryAcquire(options.root, lockPath);
        if (!attempt) co_return attempt.error();
        if (*attempt) co_return std::move(**attempt);
        if (Clock::now() >= deadline)
            co_return makeError("another process holds the lock " + lockPath.string() + " of " + job.path +
                                " for more than " + std::to_string(options.lockTimeout.count() / 1000) +
                                " s; if no download is running, delete the lock file");
        if (!logged) {
            log->info("waiting for lock path={} lock={}", job.path, lockPath.string());
            logged = true;
        }
        co_await sleepFor(kLockPoll);
    }
}

bool Engine::Impl::blobPresent(const std::filesystem::path& blob, std::uint64_t size) const {
    return cache::isCacheFileOfSize(options.root, blob, size);
}

Result<void> Engine::Impl::finishFile(Run& run, const cache::RepoLayout& layout, const std::string& commit,
                                      const FileJob& job) {
    if (auto linked = cache::linkSnapshot(layout, commit, job.path, job.etag); !linked) return linked;
    run.progress.filesDone += 1;
    return {};
}

// Hashes [from, to) of `fd` into `hasher` on the pool (no hasher: only the write back). Plain pointer on
// purpose: GCC 12 may end the life of a temporary with a destructor (a shared_ptr copy) inside a co_await
// expression too early. With `writeBack`, the kernel starts writing the hashed range to disk right away, so
// that the fsync before publishing finds little left: the page cache would otherwise hold gigabytes of dirty
// pages until then (below vm.dirty_background_ratio nothing is written).
net::awaitable<bool> Engine::Impl::hashRange(int fd, util::Hasher* hasher, std::uint64_t from,
                                             std::uint64_t to, bool writeBack) {
    co_return co_await offload(hashPool, [fd, hasher, from, to, writeBack] {
        if (hasher != nullptr && !hashFromDisk(fd, *hasher, from, to)) return false;
        // Only a hint: an error shows again in the fsync that publishes the blob.
        if (writeBack)
            ::sync_file_range(fd, static_cast<off_t>(from), static_cast<off_t>(to - from),
                              SYNC_FILE_RANGE_WRITE);
        return true;
    });
}

// Downloads one file into the cache (or reuses its blob) and links it into the snapshot.
net::awaitable<Result<void>> Engine::Impl::fetchFile(std::shared_ptr<Run> runPtr, cache::RepoLayout layout,
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
    auto opened = cache::openCacheFile(options.root, *incomplete, O_RDWR | O_CREAT, 0644);
    if (!opened) co_return makeError(opened.error().message + "; check the permissions of the cache folder");
    const int fd = opened->release();
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
    bool segmented = useSegments(job.size, options.segmentMinSize, options.segments);
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

        // A large file goes in ranges (requestRange): after the first, they go straight to the
        // signed URL the resolver redirected to, so that a 60 GiB file spends one resolve, not 960.
        std::string directUrl;
        auto transferred = co_await transferSpan(run, job, url, fd, span, &directUrl);
        if (transferred.outcome != SpanOutcome::Done) co_return makeError(transferred.message);
        // Every byte is on disk: publish only what hashes to the blob's name.
        std::string digest = span.hasher->finishHex();
        if (span.pos == job.size && digest == job.etag) break;
        counters.hashMismatches += 1;
        std::string reason = span.pos == job.size ? "the downloaded bytes of " + job.path + " hash to " +
                                                        digest + ", not to " + job.etag
                                                  : "got " + std::to_string(span.pos) + " bytes of " +
                                                        job.path + ", expected " + std::to_string(job.size);
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
    // Pointers, so that the work is trivially copyable (GCC 12 copies co_await temporaries bitwise).
    auto publish = [root = &options.root, from = &*incomplete, to = &*blob] {
        return cache::publishBlob(*root, *from, *to);
    };
    auto published = co_await offload(syncPool, publish);
    if (!published) co_return published.error();
    counters.filesDownloaded += 1;
    log->info("file ready repo={} path={} size={}", hub::describe(repo), job.path, job.size);
    co_return finishFile(run, layout, commit, job);
}

}  // namespace hfwarm::transfer
