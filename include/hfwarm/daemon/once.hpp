// hfwarmd --once: one warm-up pass over the manifests, a summary, and an exit code.
#pragma once

#include "hfwarm/config/config.hpp"
#include "hfwarm/manifest/manifest.hpp"

#include <filesystem>

namespace hfwarm::daemon {

// Downloads every entry (or, offline, only reads the cache), prints live progress on a terminal and
// a summary table on stdout. Returns 0 when every required entry is ready, 1 when one is not, 2 when
// the configuration cannot be used (bad --ca-file, ...).
int runOnce(const config::Config& config, const manifest::Manifest& manifest,
            const std::filesystem::path& root);

}  // namespace hfwarm::daemon
