// One named spdlog logger per module, all writing to the same sink (stderr by default).
#pragma once

#include <spdlog/spdlog.h>

#include <exception>
#include <functional>
#include <memory>
#include <string>

namespace hfwarm::util {

// The logger named `module` ("transfer", "http", ...), created on first use with the shared sink
// and the current level.
std::shared_ptr<spdlog::logger> logger(const std::string& module);

// Sets the level of every module logger, present and future. Accepts spdlog's names
// (trace, debug, info, warn, error, critical, off); returns false for anything else.
bool setLogLevel(const std::string& level);

// What the exception in `e` says; "unknown exception" for one not derived from std::exception.
std::string exceptionText(std::exception_ptr e);

// The completion handler every co_spawn of a task that nobody awaits gets: logs an exception the
// task ended with on `log` as `task stopped task="..." reason="..."`, then calls `then` (when
// given) whether the task failed or not.
std::function<void(std::exception_ptr)> logFailure(std::shared_ptr<spdlog::logger> log, std::string task,
                                                   std::function<void()> then = {});

}  // namespace hfwarm::util
