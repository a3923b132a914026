// Reloads on a changed manifest file: inotify on the folders of the manifest files, so that
// editors that save by writing a new file and renaming it over the old one are seen too.
#pragma once

#include "hfwarm/util/aliases.hpp"

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

namespace hfwarm::daemon {

// Calls `changed` once a burst of events on one of `files` settles; returns when `*stopping` is
// true at the next event, or when inotify is not available (logged: SIGHUP still reloads).
net::awaitable<void> watchManifests(std::vector<std::filesystem::path> files, std::function<void()> changed,
                                    std::shared_ptr<const bool> stopping);

}  // namespace hfwarm::daemon
