// hfwarmd's entry point: flags, config, then either one warm-up pass (--once) or the service.
#pragma once

namespace hfwarm::daemon {

// Runs hfwarmd; returns the process exit code (0 ok, 1 a required entry failed, 2 usage or
// configuration error).
int run(int argc, char** argv);

}  // namespace hfwarm::daemon
