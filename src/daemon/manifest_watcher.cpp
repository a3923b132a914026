#include "hfwarm/daemon/manifest_watcher.hpp"

#include "hfwarm/util/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/inotify.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

namespace hfwarm::daemon {

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
// Edits arrive as bursts of events (truncate, write, rename): reload once they settle.
constexpr std::chrono::milliseconds kReloadDebounce{300};

}  // namespace

net::awaitable<void> watchManifests(std::vector<std::filesystem::path> files, std::function<void()> changed,
                                    std::shared_ptr<const bool> stopping) {
    auto log = util::logger("daemon");
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        log->warn("cannot watch the manifests (inotify: {}); reload with SIGHUP", std::strerror(errno));
        co_return;
    }
    net::posix::stream_descriptor stream(co_await net::this_coro::executor, fd);
    std::set<std::string> names;
    for (const auto& file : files) {
        auto absolute = std::filesystem::absolute(file);
        names.insert(absolute.filename().string());
        auto dir = absolute.parent_path();
        if (::inotify_add_watch(fd, dir.c_str(),
                                IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM) < 0)
            log->warn("cannot watch folder={} reason=\"{}\"; reload with SIGHUP", dir.string(),
                      std::strerror(errno));
    }
    std::vector<char> buffer(64 * 1024);
    net::steady_timer debounce(co_await net::this_coro::executor);
    // Shared with the debounce handler, which may run after this coroutine has ended.
    auto pending = std::make_shared<bool>(false);
    while (!*stopping) {
        auto [ec, n] = co_await stream.async_read_some(net::buffer(buffer), kTuple);
        if (ec) co_return;
        bool relevant = false;
        for (std::size_t offset = 0; offset + sizeof(inotify_event) <= n;) {
            auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + offset);
            if (event->len > 0 && names.count(event->name) != 0) relevant = true;
            offset += sizeof(inotify_event) + event->len;
        }
        if (!relevant || *pending) continue;
        *pending = true;
        debounce.expires_after(kReloadDebounce);
        debounce.async_wait([pending, changed, stopping](const boost::system::error_code& error) {
            *pending = false;
            if (!error && !*stopping) changed();
        });
    }
}

}  // namespace hfwarm::daemon
