// hfwarmctl's entry point.
#pragma once

namespace hfwarm::cli {

// Runs hfwarmctl; returns the exit code of DESIGN.md section 5 (0 ok, 1 failed, 2 usage,
// 3 daemon unreachable, 124 wait timed out).
int run(int argc, char** argv);

}  // namespace hfwarm::cli
