#include "hfwarm/cli/cli.hpp"

int main(int argc, char** argv) {
    return hfwarm::cli::run(argc, argv);
}
