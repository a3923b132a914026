#include "hfwarm/daemon/app.hpp"

#include <iostream>

namespace hfwarm::daemon {

int runWithConfig(const config::Config& config, bool once) {
    // Without the engine, the only job that can be done is an offline pass over an already
    // checked configuration; everything else needs the network.
    if (once && config.offline) return 0;
    std::cerr << "hfwarmd: downloading is not available in this build\n";
    return 2;
}

}  // namespace hfwarm::daemon
