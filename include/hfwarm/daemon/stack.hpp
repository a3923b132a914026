// The download stack both modes of hfwarmd build from a configuration: the http client, the rate
// limiter and the engine that uses both.
#pragma once

#include "hfwarm/config/config.hpp"
#include "hfwarm/http/client.hpp"
#include "hfwarm/ratelimit/limiter.hpp"
#include "hfwarm/transfer/engine.hpp"
#include "hfwarm/util/result.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
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

// How long a stop (a signal, or the daemon's shutdown method) waits for the cancelled tasks to end,
// and the daemon's clients for their last replies, before the io_context stops; a transfer still
// running then keeps its partial file for the next run.
constexpr std::chrono::seconds kStopGrace{3};

// An io_context whose suspended handlers can be destroyed (shutdown()) before the objects they
// refer to: what a stop left suspended once kStopGrace ran out goes while the stack is alive.
class StoppableContext : public net::io_context {
  public:
    using net::io_context::shutdown;
};

}  // namespace hfwarm::daemon
