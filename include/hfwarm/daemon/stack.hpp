// The download stack both modes of hfwarmd build from a configuration: the http client, the rate
// limiter and the engine that uses both.
#pragma once

#include "hfwarm/config/config.hpp"
#include "hfwarm/http/client.hpp"
#include "hfwarm/ratelimit/limiter.hpp"
#include "hfwarm/transfer/engine.hpp"
#include "hfwarm/util/result.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <filesystem>
#include <memory>

namespace hfwarm::daemon {

struct Stack {
    // Declared in this order so that the engine goes first and the client last.
    std::unique_ptr<http::Client> client;
    std::unique_ptr<ratelimit::Limiter> limiter;
    std::unique_ptr<transfer::Engine> engine;
};

// The limiter's settings from the config's `limits` and `bandwidth`.
ratelimit::LimiterConfig limiterConfig(const config::Config& config);

// Builds the stack on `executor`; fails when the trust store or --ca-file cannot be loaded. The
// token comes from the process environment (HF_TOKEN, HF_TOKEN_PATH, HF_HOME/token).
Result<Stack> makeStack(net::any_io_executor executor, const config::Config& config,
                        const std::filesystem::path& root);

// Ends the process after an interrupted run without unwinding the coroutines still suspended in
// the stack: they reference each other across the io_context, and tearing them down one by one buys
// nothing at exit. The kernel closes the files and releases the flocks; partial downloads stay in
// blobs/*.incomplete for the next run. Logs and stdio are flushed first.
[[noreturn]] void exitWithoutTeardown(int code);

}  // namespace hfwarm::daemon
