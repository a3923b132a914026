// hfwarmd as a long-running service: warms the manifests, keeps them warm, and answers on the
// control socket (DESIGN.md section 5).
#pragma once

#include "hfwarm/config/config.hpp"
#include "hfwarm/daemon/app.hpp"
#include "hfwarm/manifest/manifest.hpp"

#include <filesystem>

namespace hfwarm::daemon {

// Runs until SIGTERM, SIGINT or the `shutdown` method. Returns 0 after a clean stop, 2 when the
// service cannot start (the socket is taken, the trust store cannot be loaded, ...). On SIGHUP, on
// the `reload` method and when a manifest file changes it calls `reconfigure` and reloads.
int runService(const config::Config& config, const manifest::Manifest& manifest,
               const std::filesystem::path& root, const Reconfigure& reconfigure);

}  // namespace hfwarm::daemon
