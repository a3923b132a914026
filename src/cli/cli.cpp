#include "hfwarm/cli/cli.hpp"

#include "hfwarm_version.h"

#include <CLI/CLI.hpp>

namespace hfwarm::cli {

int run(int argc, char** argv) {
    CLI::App app{"hfwarmctl: asks hfwarmd what is ready"};
    app.set_version_flag("--version", std::string("hfwarmctl ") + HFWARM_VERSION);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    return 0;
}

}  // namespace hfwarm::cli
