#include "hfwarm/daemon/stack.hpp"

#include "hfwarm/config/token.hpp"
#include "hfwarm/ratelimit/shared_budget.hpp"
#include "hfwarm/util/log.hpp"

#include <algorithm>

namespace hfwarm::daemon {

namespace {

std::chrono::milliseconds millis(double seconds) {
    return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

}  // namespace

ratelimit::LimiterConfig limiterConfig(const config::Config& config) {
    ratelimit::LimiterConfig limits;
    limits.api = {config.limits.api.rate, config.limits.api.burst};
    limits.resolvers = {config.limits.resolvers.rate, config.limits.resolvers.burst};
    limits.reserve = config.limits.reserve;
    limits.bandwidth = config.bandwidth;
    return limits;
}

Result<Stack> makeStack(net::any_io_executor executor, const config::Config& config,
                        const std::filesystem::path& root) {
    auto token = config::findToken(config::Environment::current());

    http::ClientOptions clientOptions;
    clientOptions.caFile = config.caFile.string();
    clientOptions.connections = static_cast<std::size_t>(config.connections);
    clientOptions.connectionsPerHost = static_cast<std::size_t>(config.connectionsPerHost);
    clientOptions.connectTimeout = millis(config.requestTimeout);
    clientOptions.handshakeTimeout = millis(config.requestTimeout);
    clientOptions.requestTimeout = millis(config.requestTimeout);
    clientOptions.stallTimeout = millis(config.stallTimeout);
    clientOptions.token = token.value_or("");
    clientOptions.tokenHost = http::normalizeAuthority(config.endpoint);
    clientOptions.tokenOverHttp = config.tokenOverHttp;
    if (auto warning = config::plainHttpTokenWarning(config, token.has_value()))
        util::logger("daemon")->warn("{}", *warning);
    http::readProxyEnvironment(clientOptions);

    Stack stack;
    auto client = http::Client::create(executor, clientOptions);
    if (!client) return client.error();
    stack.client = std::move(*client);
    stack.limiter = std::make_unique<ratelimit::Limiter>(executor, limiterConfig(config));
    if (!config.redis.empty()) {
        auto endpoint = ratelimit::resp::parseUrl(config.redis);
        if (!endpoint) return endpoint.error();
        util::logger("ratelimit")->info("sharing the rate limits through redis url={}", endpoint->display());
        stack.limiter->setSharedBudget(
            std::make_unique<ratelimit::SharedBudget>(executor, std::move(*endpoint)));
    }

    transfer::EngineOptions engineOptions;
    engineOptions.root = root;
    engineOptions.endpoint = config.endpoint;
    engineOptions.tokenConfigured = token.has_value();
    engineOptions.filesInFlight = static_cast<std::size_t>(config.filesInFlight);
    engineOptions.backoff.base = millis(config.retry.baseDelay);
    engineOptions.backoff.cap = millis(config.retry.maxDelay);
    engineOptions.backoff.maxAttempts = static_cast<unsigned>(config.retry.maxAttempts);
    engineOptions.minFreeSpace = config.minFreeSpace;
    engineOptions.segments = static_cast<std::size_t>(std::max(1, config.segments));
    engineOptions.segmentMinSize = config.segmentMinSize;
    stack.engine = std::make_unique<transfer::Engine>(executor, *stack.client, *stack.limiter, engineOptions);
    return stack;
}

}  // namespace hfwarm::daemon
