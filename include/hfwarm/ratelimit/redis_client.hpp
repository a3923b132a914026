// A minimal Redis client for the shared budget: one TCP connection on the daemon's io_context, one
// command at a time, RESP2. Written here rather than taken from hiredis because the budget needs a
// handful of commands (AUTH, SELECT, SCRIPT LOAD, EVALSHA, EVAL) with a hard time bound and no extra
// thread, which is a few dozen lines of RESP on the same executor; a library would add a dependency
// and an event-loop adapter for that. TLS (rediss://) is not supported: resp::parseUrl refuses it.
#pragma once

#include "hfwarm/ratelimit/resp.hpp"
#include "hfwarm/util/aliases.hpp"
#include "hfwarm/util/result.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace hfwarm::ratelimit {

struct RedisOptions {
    // Bound on each step: resolving and connecting with AUTH and SELECT, and each command's round trip.
    std::chrono::milliseconds timeout{500};
    // After a failure no connection is tried for base * 2^(n-1), capped; commands fail at once meanwhile.
    std::chrono::milliseconds retryBase{1'000};
    std::chrono::milliseconds retryCap{30'000};
};

class RedisClient {
  public:
    RedisClient(net::any_io_executor executor, resp::Endpoint endpoint, RedisOptions options = {});
    ~RedisClient();
    RedisClient(const RedisClient&) = delete;
    RedisClient& operator=(const RedisClient&) = delete;

    // Sends one command and returns its reply; an error reply (`-ERR ...`) is a Value of type Error,
    // not a failure. Connects first when there is no connection. Fails, without waiting, while the
    // retry pause after a failed connection or command runs; a failure closes the connection and is
    // logged at warn once per outage, the next success at info. Concurrent callers queue in order.
    // Cancellable: throws boost::system::system_error(operation_aborted) and drops the connection,
    // whose reply stream is then out of step. The client must outlive the call.
    net::awaitable<Result<resp::Value>> command(std::vector<std::string> args);

    const resp::Endpoint& endpoint() const { return endpoint_; }

  private:
    struct Connection;

    net::awaitable<Result<resp::Value>> roundTrip(Connection& c, const std::vector<std::string>& args);
    net::awaitable<Result<void>> connect();
    void fail(const std::string& reason);

    net::any_io_executor executor_;
    resp::Endpoint endpoint_;
    RedisOptions options_;
    struct Gate;
    std::unique_ptr<Gate> gate_;
    std::unique_ptr<Connection> connection_;
    std::chrono::steady_clock::time_point retryAt_{};
    unsigned failures_ = 0;
    bool outage_ = false;
};

}  // namespace hfwarm::ratelimit
