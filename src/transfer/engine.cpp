#include "hfwarm/transfer/engine.hpp"

#include "engine_impl.hpp"
#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/scan.hpp"
#include "hfwarm/cache/tree.hpp"
#include "hfwarm/cache/write.hpp"
#include "hfwarm/transfer/plan.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm/util/units.hpp"

#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <system_error>

namespace hfwarm::transfer {

namespace {

// Threads that fsync and rename finished blobs: several, so that the flushes of small files overlap.
constexpr std::size_t kSyncThreads = 4;

}  // namespace

Engine::Impl::Impl(net::any_io_executor executor, http::Client& client, ratelimit::Limiter& limiter,
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

Engine::Impl::~Impl() {
    client.setHooks(nullptr);
    hashPool.join();
    syncPool.join();
}

void Engine::Impl::fail(Run& run, std::string message) {
    run.progress.state = EntryState::Failed;
    run.progress.error = std::move(message);
    run.progress.lastChecked = std::chrono::system_clock::now();
}

// Takes the next file of `jobs` until none is left, each within a global files-in-flight slot.
// A member coroutine rather than a capturing lambda: GCC 12 mishandles coroutine lambdas whose
// captures have destructors.
net::awaitable<void> Engine::Impl::fileWorker(std::shared_ptr<Run> runPtr, cache::RepoLayout layout,
                                              std::string commit, const std::vector<FileJob>* jobs,
                                              std::size_t* next, std::vector<std::string>* errors) {
    while (*next < jobs->size() && !runPtr->removed) {
        const FileJob job = (*jobs)[(*next)++];
        co_await slots.acquire(std::shared_ptr<const QueueRank>(runPtr, &runPtr->rank));
        if (runPtr->progress.state == EntryState::Queued) runPtr->progress.state = EntryState::Downloading;
        auto result = co_await fetchFile(runPtr, layout, commit, job);
        slots.release();
        if (!result) errors->push_back(job.path + ": " + result.error().message);
    }
}

// Lists the repo, with backoff on network errors and waits on 429s.
net::awaitable<hub::HubResult<hub::Listing>> Engine::Impl::listWithRetries(const manifest::RepoRef& repo) {
    unsigned attempts = 0;
    unsigned limited = 0;
    while (true) {
        auto listing = co_await hub::listRepo(client, options.endpoint, repo);
        if (listing) co_return listing;
        const auto& error = listing.error();
        if (error.kind == hub::ErrorKind::RateLimited && ++limited <= options.rateLimitedAttempts) continue;
        if (!error.retryable() || !options.backoff.allows(attempts + 1)) co_return listing;
        counters.retries += 1;
        auto delay = backoffDelay(attempts);
        ++attempts;
        log->info("retrying listing repo={} reason=\"{}\" delay_ms={}", hub::describe(repo), error.message,
                  delay.count());
        co_await sleepFor(delay);
    }
}

// Warms one entry; again while its selections changed meanwhile, until it is removed.
net::awaitable<void> Engine::Impl::warmRun(std::shared_ptr<Run> runPtr) {
    Run& run = *runPtr;
    if (run.running) co_return;
    run.running = true;
    struct Done {
        Run& run;
        ~Done() {
            run.running = false;
            run.rank.promotion = 0;  // a promotion lasts one warm
        }
    } done{run};
    do {
        run.replan = false;
        co_await warmOnce(runPtr);
    } while (run.replan && !run.removed);
}

// A commit never changes: an entry pinned to one whose snapshot the cache holds complete (with
// refs/<sha>, and a listing or file list that says which files are expected) needs no request.
bool Engine::Impl::pinnedSnapshotComplete(Run& run) const {
    const manifest::Entry& entry = run.progress.entry;
    if (!cache::isCommitSha(entry.repo.revision)) return false;
    const cache::EntryScan scan = cache::scanEntry(options.root, entry);
    const bool shaRef = std::none_of(scan.problems.begin(), scan.problems.end(), [](const cache::Problem& p) {
        return p.kind == cache::ProblemKind::ShaRefMissing;
    });
    if (scan.state != cache::EntryState::Ready || scan.expectedFrom == cache::ExpectedSource::Snapshot ||
        !shaRef)
        return false;
    run.progress.commit = entry.repo.revision;
    run.progress.filesDone = run.progress.filesTotal = scan.filesExpected;
    run.progress.bytesDone = scan.bytesPresent;
    run.progress.bytesTotal = scan.bytesExpected.value_or(scan.bytesPresent);
    return true;
}

net::awaitable<void> Engine::Impl::warmOnce(std::shared_ptr<Run> runPtr) {
    Run& run = *runPtr;
    const manifest::Entry entry = run.progress.entry;
    const std::string name = hub::describe(entry.repo);
    if (pinnedSnapshotComplete(run)) {
        run.progress.error.clear();
        run.progress.state = EntryState::Ready;
        run.progress.lastChecked = std::chrono::system_clock::now();
        log->info("entry ready repo={} commit={} files={} (pinned commit complete in the cache: no request)",
                  name, entry.repo.revision, run.progress.filesTotal);
        co_return;
    }
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
        if (auto space = cache::checkFreeSpace(layout.blobsDir(), planned.bytesNeeded + options.minFreeSpace);
            !space) {
            fail(run, name + ": " + space.error().message);
            log->warn("entry failed repo={} reason=\"{}\"", name, run.progress.error);
            co_return;
        }
        if (auto tagged = cache::writeCachedirTag(options.root); !tagged)
            log->warn("cannot write CACHEDIR.TAG reason=\"{}\"", tagged.error().message);
    }

    run.progress.state = EntryState::Queued;  // until a file of it takes a slot
    std::size_t next = 0;
    std::vector<std::string> fileErrors;
    // A cancelled warm (the daemon stopping) cancels its workers and waits for them to end.
    util::TaskGroup group(executor);
    std::size_t workers = std::min(jobs.size(), std::max<std::size_t>(1, options.filesInFlight));
    for (std::size_t w = 0; w < workers; ++w)
        group.spawn(fileWorker(runPtr, layout, commit, &jobs, &next, &fileErrors),
                    util::logFailure(log, "download worker repo=" + name));
    co_await group.join();

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
            cache::TreeFile t{file.path, file.size, file.blobId, std::nullopt, std::nullopt, std::nullopt};
            if (file.lfs) {
                t.lfsSha256 = file.lfs->sha256;
                t.lfsSize = file.lfs->size;
            }
            if (!file.xetHash.empty()) t.xetHash = file.xetHash;
            tree.push_back(std::move(t));
        }
        if (auto written = cache::writeTree(layout, commit, tree); !written)
            log->warn("cannot write the tree listing repo={} reason=\"{}\"", name, written.error().message);
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
        run->rank.place = next.size();
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
    std::exception_ptr failure;
    try {
        co_await impl_->warmRun(run);
    } catch (...) {
        failure = std::current_exception();
    }
    if (!failure) co_return;
    // A stop (the daemon ending, a warm cancelled) ends the warm on purpose: let it through.
    if ((co_await net::this_coro::cancellation_state).cancelled() != net::cancellation_type::none)
        std::rethrow_exception(failure);
    const std::string reason = util::exceptionText(failure);
    Impl::fail(*run, "internal error: " + reason);
    impl_->log->error("entry stopped repo={} reason=\"{}\"", hub::describe(run->progress.entry.repo), reason);
}

bool Engine::promote(const manifest::RepoRef& key) {
    auto run = impl_->find(key);
    if (!run) return false;
    run->rank.promotion = ++impl_->promotions;
    return true;
}

std::optional<EntryProgress> Engine::progress(const manifest::RepoRef& key) const {
    auto run = impl_->find(key);
    if (!run) return std::nullopt;
    return run->progress;
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
