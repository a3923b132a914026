#include "hfwarm/daemon/service.hpp"

#include "hfwarm/cache/lock.hpp"
#include "hfwarm/cache/maintenance.hpp"
#include "hfwarm/cache/paths.hpp"
#include "hfwarm/cache/root.hpp"
#include "hfwarm/cache/scan.hpp"
#include "hfwarm/cache/write.hpp"
#include "hfwarm/daemon/app.hpp"
#include "hfwarm/daemon/maintenance.hpp"
#include "hfwarm/daemon/manifest_watcher.hpp"
#include "hfwarm/daemon/metrics.hpp"
#include "hfwarm/daemon/notify.hpp"
#include "hfwarm/daemon/once.hpp"
#include "hfwarm/daemon/scheduler.hpp"
#include "hfwarm/daemon/stack.hpp"
#include "hfwarm/daemon/status_view.hpp"
#include "hfwarm/protocol/messages.hpp"
#include "hfwarm/server/activation.hpp"
#include "hfwarm/server/server.hpp"
#include "hfwarm/util/async.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm/util/units.hpp"
#include "hfwarm_version.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <unordered_map>

namespace hfwarm::daemon {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

class Service final : public server::Handler {
  public:
    Service(net::io_context& ioc, config::Config config, manifest::Manifest manifest,
            std::filesystem::path root, Reconfigure reconfigure)
        : ioc_(ioc),
          config_(std::move(config)),
          reconfigure_(std::move(reconfigure)),
          manifest_(std::move(manifest)),
          root_(std::move(root)),
          notifier_(std::getenv("NOTIFY_SOCKET") ? std::optional<std::string>(std::getenv("NOTIFY_SOCKET"))
                                                 : std::nullopt),
          tasks_(ioc.get_executor()),
          wake_(ioc.get_executor()),
          stopSignals_(ioc, SIGINT, SIGTERM),
          hangup_(ioc, SIGHUP),
          pool_(1),
          log_(util::logger("daemon")),
          scheduler_(std::chrono::seconds(static_cast<long long>(config_.refreshInterval))) {}

    int run() {
        if (!config_.offline) {
            auto stack = makeStack(ioc_.get_executor(), config_, root_);
            if (!stack) {
                std::cerr << "hfwarmd: " << stack.error().message << '\n';
                return 2;
            }
            stack_ = std::move(*stack);
            stack_.engine->setEntries(manifest_.entries);
        }

        auto activated = server::takeActivatedSocket();
        if (!activated) {
            std::cerr << "hfwarmd: " << activated.error().message << '\n';
            return 2;
        }
        server::Options options;
        options.socketPath = config_.socket;
        options.mode = config_.socketMode;
        options.maxClients = static_cast<std::size_t>(config_.maxClients);
        options.idleTimeout =
            std::chrono::milliseconds(static_cast<long long>(config_.clientIdleTimeout * 1000));
        options.activatedFd = *activated;
        options.version = HFWARM_VERSION;
        server_ = std::make_unique<server::Server>(ioc_.get_executor(), options, *this);
        if (auto listening = server_->listen(); !listening) {
            std::cerr << "hfwarmd: " << listening.error().message << '\n';
            return 2;
        }
        server_->start();
        log_->info("listening socket={} cache={} endpoint={} entries={}{}", config_.socket.string(),
                   root_.string(), config_.endpoint, manifest_.entries.size(),
                   config_.offline ? " offline" : "");
        if (auto note = cache::candleRootNote(root_, cache::processEnv())) notices_.push_back(*note);
        notifier_.send("READY=1");

        waitForStop();
        waitForHangup();

        spawn("scheduler", schedule());
        spawn("ticker", tick());
        spawn("manifest watcher", watchManifests(
                                      config_.manifests, [this] { reload("manifest file changed"); },
                                      std::shared_ptr<const bool>(stoppingFlag_)));

        ioc_.run();
        return 0;
    }

    ~Service() override { pool_.join(); }

    net::awaitable<protocol::Response> handle(protocol::Request request) override {
        namespace m = protocol::method;
        const auto& method = request.method;
        if (method == m::status) co_return status(request);
        if (method == m::lookup) co_return lookup(request);
        if (method == m::sync) co_return sync(request);
        if (method == m::promote) co_return promote(request);
        if (method == m::reload) co_return reloadMethod(request);
        if (method == m::pause || method == m::resume) co_return pauseMethod(request, method == m::pause);
        if (method == m::verify) co_return co_await verify(request);
        if (method == m::prune) co_return prune(request);
        if (method == m::metrics) co_return metrics(request);
        if (method == m::shutdown) {
            shutdown("the shutdown method");
            co_return protocol::makeResult(request.id, json(protocol::AckResult{"hfwarmd is stopping"}));
        }
        co_return protocol::makeError(
            request.id, protocol::ErrorCode::MethodNotFound,
            "unknown method '" + method + "'; see hfwarmctl --help for the methods");
    }

  private:
    net::io_context& ioc_;
    config::Config config_;
    Reconfigure reconfigure_;
    manifest::Manifest manifest_;
    std::filesystem::path root_;
    Notifier notifier_;
    Stack stack_;
    std::unique_ptr<server::Server> server_;
    util::TaskGroup tasks_;  // every long-running coroutine: cancelled together on stop
    util::Event wake_;       // set when the schedule may have changed
    net::signal_set stopSignals_;
    net::signal_set hangup_;
    net::thread_pool pool_;
    std::shared_ptr<spdlog::logger> log_;
    Scheduler scheduler_;  // by entry key, kept across reloads
    std::vector<std::string> manifestErrors_;
    std::vector<std::string> notices_;
    std::shared_ptr<bool> stoppingFlag_ = std::make_shared<bool>(false);  // shared with the watcher
    Clock::time_point lastTick_ = Clock::now();

    void spawn(std::string what, net::awaitable<void> task) {
        // A stop cancels the tasks, so they end with errors on purpose: only failures before it are
        // logged.
        tasks_.spawn(std::move(task),
                     [this, log = util::logFailure(log_, std::move(what))](std::exception_ptr e) {
                         if (!*stoppingFlag_) log(e);
                     });
    }

    void waitForStop() {
        stopSignals_.async_wait([this](const boost::system::error_code& ec, int signal) {
            if (!ec) shutdown(signal == SIGINT ? "SIGINT" : "SIGTERM");
        });
    }

    void waitForHangup() {
        hangup_.async_wait([this](const boost::system::error_code& ec, int) {
            if (ec) return;
            reload("SIGHUP");
            waitForHangup();
        });
    }

    // Stops accepting clients, cancels every task and lets them end, bounded by kStopGrace; then
    // the io_context stops and run() returns.
    void shutdown(const std::string& why) {
        if (*stoppingFlag_) return;
        *stoppingFlag_ = true;
        log_->info("stopping reason=\"{}\"; partial downloads are kept and resume on the next start", why);
        notifier_.send("STOPPING=1");
        server_->stop();
        boost::system::error_code ignored;
        stopSignals_.cancel(ignored);
        hangup_.cancel(ignored);
        tasks_.cancel();
        wake();
        net::co_spawn(ioc_, finish(Clock::now() + kStopGrace), util::logFailure(log_, "stop"));
    }

    net::awaitable<void> finish(Clock::time_point deadline) {
        const bool drained = co_await tasks_.waitUntil(deadline);
        if (!drained)
            log_->warn("stopping with tasks={} still running after {} s; their partial downloads are kept",
                       tasks_.size(), kStopGrace.count());
        // The replies already due (the shutdown acknowledgement) are written before the clients close.
        const bool closed = co_await server_->waitClosed(deadline);
        if (!closed)
            log_->warn("stopping with clients={} still connected after {} s", server_->clientCount(),
                       kStopGrace.count());
        ioc_.stop();
    }

    void wake() { wake_.set(); }

    // --- Scheduling ------------------------------------------------------------------------------

    // The entry is named by its key, never by its place in the list: a reload while it warms
    // may move, add or remove entries.
    net::awaitable<void> warmOne(manifest::RepoRef key) {
        auto& engine = *stack_.engine;
        co_await engine.warm(key);
        auto p = engine.progress(key);
        if (!p) co_return;  // removed meanwhile
        const bool ready = p->state == transfer::EntryState::Ready;
        const auto now = Clock::now();
        const auto due = scheduler_.finished(key, ready, now);
        if (!ready && due != Clock::time_point::max())
            log_->info("will retry repo={} in_s={}", key.display(),
                       std::chrono::duration_cast<std::chrono::seconds>(due - now).count());
        broadcastEntry(*p);
        wake();
    }

    net::awaitable<void> schedule() {
        if (config_.offline) co_return;
        while (!*stoppingFlag_) {
            wake_.reset();
            auto& engine = *stack_.engine;
            auto now = Clock::now();
            auto next = Clock::time_point::max();
            if (!engine.paused()) {
                for (const auto& p : engine.progress()) {
                    bool busy = p.state == transfer::EntryState::Resolving ||
                                p.state == transfer::EntryState::Downloading;
                    if (!busy && scheduler_.takeDue(p.entry.repo, now))
                        spawn("warm " + p.entry.repo.display(), warmOne(p.entry.repo));
                }
                next = scheduler_.nextDue();
            }
            co_await wake_.waitUntil(next);
        }
    }

    // --- Reload --------------------------------------------------------------------------------

    // Reads the configuration and the manifests again. Rates, bursts, the bandwidth cap, the refresh
    // interval and the manifest list take effect at once; the other settings need a restart. A bad
    // config or manifest keeps the last good one and shows its errors in status.
    bool reload(const std::string& why) {
        if (reconfigure_) {
            auto prepared = reconfigure_();
            if (auto* exit = std::get_if<Exit>(&prepared)) {
                manifestErrors_.clear();
                std::istringstream lines(exit->err);
                for (std::string line; std::getline(lines, line);)
                    if (!line.empty()) manifestErrors_.push_back(line);
                log_->warn("reload failed reason=\"{}\"; keeping the last good configuration", why);
                for (const auto& e : manifestErrors_) log_->warn("{}", e);
                return false;
            }
            const auto& next = std::get<Launch>(prepared).config;
            config_.manifests = next.manifests;
            config_.limits = next.limits;
            config_.bandwidth = next.bandwidth;
            config_.refreshInterval = next.refreshInterval;
            scheduler_.setRefresh(std::chrono::seconds(static_cast<long long>(config_.refreshInterval)));
            if (stack_.limiter) stack_.limiter->setLimits(limiterConfig(config_));
        }
        auto loaded = manifest::loadAll(config_.manifests);
        if (!loaded.ok()) {
            manifestErrors_.clear();
            for (const auto& d : loaded.errors) manifestErrors_.push_back(d.format());
            log_->warn("manifest reload failed reason=\"{}\" errors={}; keeping the last good manifest", why,
                       manifestErrors_.size());
            for (const auto& e : manifestErrors_) log_->warn("manifest error: {}", e);
            return false;
        }
        manifestErrors_.clear();
        scheduler_.reconcile(manifest_, loaded.manifest, Clock::now());
        manifest_ = std::move(loaded.manifest);
        if (stack_.engine) stack_.engine->setEntries(manifest_.entries);
        log_->info("manifests reloaded reason=\"{}\" entries={}", why, manifest_.entries.size());
        wake();
        return true;
    }

    // --- Status --------------------------------------------------------------------------------

    std::vector<protocol::EntryStatus> entryStatuses() {
        std::vector<protocol::EntryStatus> out;
        if (config_.offline || !stack_.engine) {
            for (const auto& entry : manifest_.entries) out.push_back(offlineStatusOf(entry, root_));
            return out;
        }
        for (const auto& p : stack_.engine->progress()) out.push_back(entryStatus(p));
        return out;
    }

    protocol::StatusResult statusResult(const std::optional<std::string>& repo) {
        protocol::StatusResult result;
        for (auto& s : entryStatuses()) {
            if (repo && s.display() != *repo && s.repo != *repo) continue;
            result.totals.entries += 1;
            if (s.state == protocol::EntryState::Ready) result.totals.ready += 1;
            if (s.state == protocol::EntryState::Failed) result.totals.failed += 1;
            result.totals.filesDone += s.filesDone;
            result.totals.filesTotal += s.filesTotal;
            result.totals.bytesDone += s.bytesDone;
            result.totals.bytesTotal += s.bytesTotal;
            result.totals.speed += s.speed;
            result.entries.push_back(std::move(s));
        }
        if (stack_.limiter) result.limits = stack_.limiter->status();
        result.paused = stack_.engine && stack_.engine->paused();
        result.offline = config_.offline;
        result.cacheDir = root_.string();
        result.manifestErrors = manifestErrors_;
        result.notices = notices_;
        return result;
    }

    protocol::Response status(const protocol::Request& request) {
        protocol::StatusParams params;
        if (auto error = protocol::checkStatusParams(request.params, params))
            return protocol::makeError(request.id, protocol::ErrorCode::InvalidParams, *error);
        auto result = statusResult(params.repo);
        if (params.repo && result.entries.empty())
            return protocol::makeError(request.id, protocol::ErrorCode::UnknownRepo,
                                       "'" + *params.repo + "' is not in the daemon's manifests");
        return protocol::makeResult(request.id, json(result));
    }

    protocol::Response lookup(const protocol::Request& request) {
        protocol::LookupParams params;
        if (auto error = protocol::checkLookupParams(request.params, params))
            return protocol::makeError(request.id, protocol::ErrorCode::InvalidParams, *error);
        auto repo = manifest::parseRepoRef(params.repo);
        if (!repo)
            return protocol::makeError(request.id, protocol::ErrorCode::InvalidParams, repo.error().message);
        if (params.revision) repo->revision = *params.revision;
        auto found = cache::lookup(root_, *repo, params.file);
        if (!found)
            return protocol::makeError(request.id, protocol::ErrorCode::InvalidParams, found.error().message);
        // A file a client wants and the cache lacks: its entry's files go next.
        if (found->state == cache::LookupState::Unknown && stack_.engine && stack_.engine->promote(*repo))
            log_->info("promoted repo={} reason=\"lookup of {}\"", repo->display(), params.file);
        protocol::LookupResult result;
        switch (found->state) {
            case cache::LookupState::Cached:
                result.state = protocol::LookupState::Cached;
                result.path = found->path.string();
                break;
            case cache::LookupState::Absent:
                result.state = protocol::LookupState::Absent;
                break;
            case cache::LookupState::Unknown:
                result.state = protocol::LookupState::Unknown;
                break;
        }
        return protocol::makeResult(request.id, json(result));
    }

    protocol::Response sync(const protocol::Request& request) {
        protocol::SyncParams params;
        if (auto error = protocol::checkSyncParams(request.params, params))
            return protocol::makeError(request.id, protocol::ErrorCode::InvalidParams, *error);
        if (config_.offline)
            return protocol::makeError(request.id, protocol::ErrorCode::Unavailable,
                                       "hfwarmd runs offline; restart it without --offline to check the Hub");
        std::size_t count = 0;
        for (const auto& entry : manifest_.entries) {
            if (params.repo && entry.repo.display() != *params.repo && entry.repo.id != *params.repo)
                continue;
            scheduler_.dueNow(entry.repo, Clock::now());
            ++count;
        }
        if (params.repo && count == 0)
            return protocol::makeError(request.id, protocol::ErrorCode::UnknownRepo,
                                       "'" + *params.repo + "' is not in the daemon's manifests");
        wake();
        return protocol::makeResult(request.id,
                                    json(protocol::AckResult{fmt::format("checking {} entries now", count)}));
    }

    // `hfwarmctl wait REPO...`: those entries' files go next, ahead of the other queued files.
    protocol::Response promote(const protocol::Request& request) {
        protocol::PromoteParams params;
        if (auto error = protocol::checkPromoteParams(request.params, params))
            return protocol::makeError(request.id, protocol::ErrorCode::InvalidParams, *error);
        if (!stack_.engine)
            return protocol::makeError(
                request.id, protocol::ErrorCode::Unavailable,
                "hfwarmd runs offline: nothing is downloaded, so nothing can go first");
        std::vector<manifest::RepoRef> keys;
        for (const auto& name : params.repos) {
            auto it = std::find_if(manifest_.entries.begin(), manifest_.entries.end(),
                                   [&](const manifest::Entry& e) { return e.repo.display() == name; });
            if (it == manifest_.entries.end())
                return protocol::makeError(
                    request.id, protocol::ErrorCode::UnknownRepo,
                    "'" + name + "' is not in the daemon's manifests (name it as status does)");
            keys.push_back(it->repo);
        }
        for (const auto& key : keys) {
            stack_.engine->promote(key);
            log_->info("promoted repo={} reason=\"wait\"", key.display());
        }
        return protocol::makeResult(
            request.id, json(protocol::AckResult{fmt::format("{} entries go first", keys.size())}));
    }

    protocol::Response reloadMethod(const protocol::Request& request) {
        if (!reload("the reload method")) {
            std::string message = "the manifest has errors; the last good manifest stays in use:";
            for (const auto& e : manifestErrors_) message += "\n" + e;
            return protocol::makeError(request.id, protocol::ErrorCode::OperationFailed, message,
                                       json(manifestErrors_));
        }
        return protocol::makeResult(
            request.id,
            json(protocol::AckResult{fmt::format("reloaded {} entries", manifest_.entries.size())}));
    }

    protocol::Response pauseMethod(const protocol::Request& request, bool pause) {
        if (!stack_.engine)
            return protocol::makeError(request.id, protocol::ErrorCode::Unavailable, "hfwarmd runs offline");
        stack_.engine->setPaused(pause);
        log_->info("{}", pause ? "paused" : "resumed");
        if (!pause) wake();
        return protocol::makeResult(
            request.id,
            json(protocol::AckResult{pause ? "paused: no request leaves until resume" : "resumed"}));
    }

    // Re-hashes every blob of every entry's snapshot on the pool thread.
    net::awaitable<protocol::Response> verify(protocol::Request request) {
        auto jobs = cache::verifyJobs(manifest_, root_);
        auto result =
            co_await net::co_spawn(pool_.get_executor(), verifyResult(std::move(jobs)), net::use_awaitable);
        co_return protocol::makeResult(request.id, json(result));
    }

    protocol::Response prune(const protocol::Request& request) {
        protocol::PruneParams params;
        if (auto error = protocol::checkPruneParams(request.params, params))
            return protocol::makeError(request.id, protocol::ErrorCode::InvalidParams, *error);
        return protocol::makeResult(request.id, json(pruneResult(manifest_, root_, params.apply)));
    }

    protocol::Response metrics(const protocol::Request& request) {
        auto text = metricsText(entryStatuses(), stack_.engine.get(), stack_.limiter.get());
        return protocol::makeResult(request.id, json(protocol::MetricsResult{text}));
    }

    // --- Progress ------------------------------------------------------------------------------

    protocol::EntryStatus entryStatus(const transfer::EntryProgress& p) {
        return statusOf(p, stack_.engine->paused(), scheduler_.speed(p.entry.repo));
    }

    void broadcastEntry(const transfer::EntryProgress& progress) {
        server_->broadcast({std::string(protocol::notification::entry), json(entryStatus(progress))});
    }

    // Once a second: per-entry speed, a progress notification for subscribers, STATUS= for systemd.
    net::awaitable<void> tick() {
        net::steady_timer timer(ioc_);
        while (!*stoppingFlag_) {
            timer.expires_after(std::chrono::seconds(1));
            auto [ec] = co_await timer.async_wait(kTuple);
            if (ec || *stoppingFlag_) co_return;  // stopping: STOPPING=1 stays the last word to systemd
            if (!stack_.engine) continue;
            auto now = Clock::now();
            double dt = std::chrono::duration<double>(now - lastTick_).count();
            lastTick_ = now;
            for (const auto& p : stack_.engine->progress())
                scheduler_.recordBytes(p.entry.repo, p.bytesDone, dt);
            auto result = statusResult(std::nullopt);
            if (server_->subscriberCount() > 0) {
                for (const auto& s : result.entries)
                    if (s.state == protocol::EntryState::Downloading ||
                        s.state == protocol::EntryState::Resolving)
                        server_->broadcast({std::string(protocol::notification::entry), json(s)});
                server_->broadcast({std::string(protocol::notification::totals), json(result.totals)});
            }
            notifier_.send(fmt::format("STATUS={}/{} entries ready, {} of {}, {}/s", result.totals.ready,
                                       result.totals.entries, util::humanBytes(result.totals.bytesDone),
                                       util::humanBytes(result.totals.bytesTotal),
                                       util::humanBytes(static_cast<std::uint64_t>(result.totals.speed))));
        }
    }
};

}  // namespace

int runService(const config::Config& config, const manifest::Manifest& manifest,
               const std::filesystem::path& root, const Reconfigure& reconfigure) {
    int code = 0;
    {
        StoppableContext ioc;
        Service service(ioc, config, manifest, root, reconfigure);
        code = service.run();
        // What a cancelled task left suspended is destroyed here, while the service it refers to
        // is still alive.
        ioc.shutdown();
    }
    if (code == 0) util::logger("daemon")->info("stopped");
    return code;
}

int runWithConfig(const config::Config& config, bool once, const Reconfigure& reconfigure) {
    auto env = cache::processEnv();
    std::optional<std::filesystem::path> override;
    if (!config.cacheDir.empty()) override = config.cacheDir;
    auto root = cache::resolveRoot(override, env);

    auto loaded = manifest::loadAll(config.manifests);
    if (!loaded.ok()) {
        for (const auto& d : loaded.errors) std::cerr << "hfwarmd: " << d.format() << '\n';
        return 2;
    }
    if (once) {
        if (auto note = cache::candleRootNote(root, env)) std::cerr << "hfwarmd: note: " << *note << '\n';
        return runOnce(config, loaded.manifest, root);
    }
    return runService(config, loaded.manifest, root, reconfigure);
}

}  // namespace hfwarm::daemon
