// One named spdlog logger per module, all writing to the same sink (stderr by default).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace hfwarm::util {

// The logger named `module` ("transfer", "http", ...), created on first use with the shared sink
// and the current level.
std::shared_ptr<spdlog::logger> logger(const std::string& module);

// Sets the level of every module logger, present and future. Accepts spdlog's names
// (trace, debug, info, warn, error, critical, off); returns false for anything else.
bool setLogLevel(const std::string& level);

}  // namespace hfwarm::util
