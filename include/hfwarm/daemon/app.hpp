// hfwarmd's entry point: flags, config, then either one warm-up pass (--once) or the service.
#pragma once

#include "hfwarm/config/config.hpp"

#include <functional>
#include <string>
#include <variant>

namespace hfwarm::daemon {

// What the command line asked for, before the config file and the environment are merged in.
struct Options {
    config::Overrides overrides;
    bool once = false;
};

// The program is done before it starts: --help, --version, or a usage, config or manifest error.
// `out` goes to stdout and `err` to stderr; `code` is the exit code (0, or 2 for an error).
struct Exit {
    int code = 0;
    std::string out;
    std::string err;
};

// Parses hfwarmd's flags (DESIGN.md section 5). Flag values are checked here, so a bad
// --bandwidth or --log-level is a usage error that names the flag and points to --help.
std::variant<Options, Exit> parseCommandLine(int argc, const char* const* argv);

// A checked configuration, ready to run.
struct Launch {
    config::Config config;
    bool once = false;
};

// Everything before the work starts: flags, config file, environment, and a first load of the
// manifests (so a bad one exits 2 before any download, with every diagnostic).
std::variant<Launch, Exit> prepare(int argc, const char* const* argv, const config::Environment& env);

// Reads the configuration again (the service's reload): the same steps as prepare().
using Reconfigure = std::function<std::variant<Launch, Exit>()>;

// Runs the warm-up pass (`once`) or the service with a checked configuration; returns the exit
// code (0 ok, 1 a required entry failed, 2 a configuration problem found on the way). The service
// calls `reconfigure` on every reload. Defined in src/daemon/service.cpp.
int runWithConfig(const config::Config& config, bool once, const Reconfigure& reconfigure);

// Runs hfwarmd; returns the process exit code (0 ok, 1 a required entry failed, 2 usage or
// configuration error).
int run(int argc, char** argv);

}  // namespace hfwarm::daemon
