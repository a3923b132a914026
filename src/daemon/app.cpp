#include "hfwarm/daemon/app.hpp"

#include "hfwarm_version.h"

#include <CLI/CLI.hpp>

namespace hfwarm::daemon {

int run(int argc, char** argv) {
    CLI::App app{"hfwarmd: keeps a Hugging Face model cache warm"};
    app.set_version_flag("--version", std::string("hfwarmd ") + HFWARM_VERSION);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    return 0;
}

}  // namespace hfwarm::daemon
