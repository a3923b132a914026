#include "hfwarm/ratelimit/redis_client.hpp"

#include "hfwarm/util/log.hpp"

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <array>

namespace hfwarm::ratelimit {
namespace {

// Replies of the shared budget are a few bytes; anything this long means a confused stream.
constexpr std::size_t kMaxPending = 4 * resp::kMaxBulkLength;

[[noreturn]] void throwAborted() {
    throw boost::system::system_error(net::error::operation_aborted);
}

}  // namespace

struct RedisClient::Connection {
    explicit Connection(const net::any_io_executor& ex) : stream(ex) {}
    beast::tcp_stream stream;
    std::string pending;  // bytes read but not decoded yet
};

// A FIFO lock for one command at a time: a channel of capacity one holds the turn; a send waits
// while another caller holds it, a receive gives it back and lets the next sender in.
struct RedisClient::Gate {
    explicit Gate(const net::any_io_executor& ex) : channel(ex, 1) {}
    net::experimental::channel<void(boost::system::error_code)> channel;
};

RedisClient::RedisClient(net::any_io_executor executor, resp::Endpoint endpoint, RedisOptions options)
    : executor_(std::move(executor)),
      endpoint_(std::move(endpoint)),
      options_(options),
      gate_(std::make_unique<Gate>(executor_)) {}

RedisClient::~RedisClient() = default;

void RedisClient::fail(const std::string& reason) {
    connection_.reset();
    ++failures_;
    auto pause = options_.retryBase * (1LL << std::min(failures_ - 1, 16U));
    pause = std::min<std::chrono::milliseconds>(pause, options_.retryCap);
    retryAt_ = std::chrono::steady_clock::now() + pause;
    if (!outage_) {
        outage_ = true;
        util::logger("ratelimit")
            ->warn("redis unavailable, using local rate limits only url={} error={} retry_in_s={:.1f}",
                   endpoint_.display(), reason, std::chrono::duration<double>(pause).count());
    }
}

net::awaitable<Result<resp::Value>> RedisClient::roundTrip(Connection& c,
                                                           const std::vector<std::string>& args) {
    c.stream.expires_after(options_.timeout);
    auto request = resp::encodeCommand(args);
    auto [wec, written] =
        co_await net::async_write(c.stream, net::buffer(request), net::as_tuple(net::use_awaitable));
    if (wec == net::error::operation_aborted) throwAborted();
    if (wec) co_return makeError(fmt::format("sending {}: {}", args.front(), wec.message()));
    std::array<char, 4096> chunk{};
    for (;;) {
        auto decoded = resp::decode(c.pending);
        if (!decoded)
            co_return makeError(fmt::format("reply to {}: {}", args.front(), decoded.error().message));
        if (*decoded) {
            c.pending.erase(0, (*decoded)->consumed);
            c.stream.expires_never();
            co_return std::move((*decoded)->value);
        }
        if (c.pending.size() > kMaxPending)
            co_return makeError(
                fmt::format("reply to {} is longer than {} bytes", args.front(), kMaxPending));
        auto [rec, n] =
            co_await c.stream.async_read_some(net::buffer(chunk), net::as_tuple(net::use_awaitable));
        if (rec == net::error::operation_aborted) throwAborted();
        if (rec == beast::error::timeout)
            co_return makeError(
                fmt::format("no reply to {} within {} ms", args.front(), options_.timeout.count()));
        if (rec) co_return makeError(fmt::format("reading the reply to {}: {}", args.front(), rec.message()));
        c.pending.append(chunk.data(), n);
    }
}

net::awaitable<Result<void>> RedisClient::connect() {
    auto c = std::make_unique<Connection>(executor_);
    net::ip::tcp::resolver resolver(executor_);
    // A host name goes through the system resolver, which Asio cannot interrupt; an IP address in the
    // URL keeps the connection time within the timeout.
    auto [rec, endpoints] = co_await resolver.async_resolve(endpoint_.host, std::to_string(endpoint_.port),
                                                            net::as_tuple(net::use_awaitable));
    if (rec == net::error::operation_aborted) throwAborted();
    if (rec) co_return makeError(fmt::format("resolving {}: {}", endpoint_.host, rec.message()));
    c->stream.expires_after(options_.timeout);
    auto [cec, ep] = co_await c->stream.async_connect(endpoints, net::as_tuple(net::use_awaitable));
    if (cec == net::error::operation_aborted) throwAborted();
    if (cec == beast::error::timeout)
        co_return makeError(fmt::format("no connection within {} ms", options_.timeout.count()));
    if (cec) co_return makeError(fmt::format("connecting: {}", cec.message()));
    // Each take is one small command waiting for its reply: Nagle would only add delay. Failing to
    // set it costs latency, not correctness, so the error is ignored.
    boost::system::error_code ignored;
    c->stream.socket().set_option(net::ip::tcp::no_delay(true), ignored);
    if (!endpoint_.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!endpoint_.user.empty()) auth.push_back(endpoint_.user);
        auth.push_back(endpoint_.password);
        auto reply = co_await roundTrip(*c, auth);
        if (!reply) co_return reply.error();
        // The server's reply is not quoted: the message says what to check instead.
        if (reply->type == resp::Value::Type::Error)
            co_return makeError("AUTH was refused: check the user and password in the redis URL");
    }
    if (endpoint_.db != 0) {
        // A named vector: GCC 12 rejects a braced list of strings inside co_await ("array used as
        // initializer").
        std::vector<std::string> select{"SELECT", std::to_string(endpoint_.db)};
        auto reply = co_await roundTrip(*c, select);
        if (!reply) co_return reply.error();
        if (reply->type == resp::Value::Type::Error)
            co_return makeError(fmt::format("SELECT {} was refused: {}", endpoint_.db, reply->text));
    }
    connection_ = std::move(c);
    co_return Result<void>{};
}

net::awaitable<Result<resp::Value>> RedisClient::command(std::vector<std::string> args) {
    co_await gate_->channel.async_send(boost::system::error_code{}, net::use_awaitable);
    struct Release {
        Gate& gate;
        ~Release() {
            gate.channel.try_receive([](boost::system::error_code) {});
        }
    } release{*gate_};
    // Any way out of here without a reply leaves the stream out of step: drop it unless it succeeded.
    bool done = false;
    struct DropUnlessDone {
        RedisClient& self;
        bool& done;
        ~DropUnlessDone() {
            if (!done) self.connection_.reset();
        }
    } drop{*this, done};

    if (!connection_) {
        if (std::chrono::steady_clock::now() < retryAt_) co_return makeError("redis is in its retry pause");
        auto connected = co_await connect();
        if (!connected) {
            fail(connected.error().message);
            co_return connected.error();
        }
    }
    auto reply = co_await roundTrip(*connection_, args);
    if (!reply) {
        fail(reply.error().message);
        co_return reply.error();
    }
    done = true;
    failures_ = 0;
    if (outage_) {
        outage_ = false;
        util::logger("ratelimit")
            ->info("redis reachable again, sharing the rate limits url={}", endpoint_.display());
    }
    co_return reply;
}

}  // namespace hfwarm::ratelimit
