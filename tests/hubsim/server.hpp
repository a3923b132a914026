// `hfwarm-hubsim serve`: the Hub and CDN listeners (the only translation unit that uses Beast).
#pragma once

#include "options.hpp"

namespace hfwarm::hubsim {

// Indexes the fixtures, binds both listeners, writes the ready file, and serves until SIGINT or
// SIGTERM. Throws std::exception with a message a person can act on if it cannot start.
void serve(const ServeOptions& options);

}  // namespace hfwarm::hubsim
