// The request budget a fleet of daemons shares (DESIGN.md section 7): a fixed-window counter per
// (host, class) in Redis, counted by one atomic Lua script per request, so that all daemons behind
// one IP or one token together send at most the quota per window. The Limiter asks it after its own
// local decision; when Redis cannot answer, the local bucket alone decides.
#pragma once

#include "hfwarm/ratelimit/redis_client.hpp"
#include "hfwarm/ratelimit/request_class.hpp"
#include "hfwarm/util/aliases.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hfwarm::ratelimit {

// The Redis key of a (host, class) window: `hfwarm:<host>:<class>`, host lower-cased. It holds a hash:
// `n`, the requests counted, and what the fleet learned of the window from the Hub.
std::string sharedKey(std::string_view host, RequestClass cls);

// How long the shared window lasts once opened: the Hub's window plus a margin of a tenth of it, at
// most 1 s. The Hub opens its window when the first request arrives, a round trip (and for a new
// connection a TLS handshake) after the take that opened the shared one; without the margin the
// shared window could reopen, and let a full quota go, just before the Hub's has.
std::chrono::milliseconds sharedWindow(std::chrono::milliseconds hubWindow);

// One request to count, with what this daemon knows of the Hub's window.
struct SharedTake {
    std::uint64_t quota = 0;             // the announced quota less the reserve, else a guess
    std::chrono::milliseconds window{};  // the Hub's window (the margin is added here)
    bool announced = false;              // the quota and window are the Hub's announced policy
    // Until the Hub's announced reset of its current window; zero when unknown or past.
    std::chrono::milliseconds resetIn{};
    // Paced after an outage of Redis, until the Hub's next reset (ClassState::setSharedOutage).
    bool paced = false;
};

class SharedBudget {
  public:
    SharedBudget(net::any_io_executor executor, resp::Endpoint endpoint, RedisOptions options = {});

    // Counts one request of `cls` to `host` in the shared window. Returns zero when it may go now,
    // else how long until the shared window ends (ask again then); nullopt when Redis could not
    // answer in time, and the caller relies on its local budget. A window opens at its first take,
    // like the Hub's, and lasts sharedWindow(); a take announcing a shorter window than the one
    // running shortens it, so that a first guess (the configured rate over 300 s) is corrected once
    // the Hub has announced its policy. Once a take brings the Hub's announced reset, the window
    // ends there instead (the earliest reset announced wins); with no window open, a take that
    // brings a reset still ahead waits for it, unless it is `paced`: then it opens a window ending
    // at that reset. A take without an announced quota is held to the
    // quota another daemon announced for the window. Cancellable like RedisClient::command. The
    // SharedBudget must outlive the call.
    net::awaitable<std::optional<std::chrono::milliseconds>> take(std::string host, RequestClass cls,
                                                                  SharedTake request);

    const resp::Endpoint& endpoint() const { return client_.endpoint(); }

  private:
    net::awaitable<Result<resp::Value>> run(const std::string& key, const SharedTake& take);

    RedisClient client_;
    std::string sha_;             // of the loaded script; empty until SCRIPT LOAD answered
    bool scriptFailing_ = false;  // an error reply was logged; logged again only after a success
};

}  // namespace hfwarm::ratelimit
