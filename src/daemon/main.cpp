#include "hfwarm/daemon/app.hpp"

int main(int argc, char** argv) {
    return hfwarm::daemon::run(argc, argv);
}
