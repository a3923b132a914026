// Connections and body reading for client.cpp, the one translation unit that compiles Beast and
// Asio SSL (this header is included there only): type names and limits, a pooled connection, one
// exchange, and the readers that hand body bytes to a string, a Sink or nowhere.
#pragma once

#include "hfwarm/http/client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace hfwarm::http::transport {

using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;
using Parser = bhttp::response_parser<bhttp::buffer_body>;
using HttpRequest = bhttp::request<bhttp::string_body>;

inline constexpr auto kTuple = net::as_tuple(net::use_awaitable);
// Body bytes are read into a buffer of this size and handed on once at least kMinDelivery bytes
// arrived: fewer, larger writes and hook calls, while every socket read keeps its own stall timer.
constexpr std::size_t kChunkSize = 128 * 1024;
constexpr std::size_t kMinDelivery = 64 * 1024;
constexpr std::size_t kReadBufferSize = 64 * 1024;  // an unsized flat_buffer reads 512 bytes at a time
constexpr std::uint32_t kHeaderLimit = 64 * 1024;   // signed CDN Locations and Link headers are long
constexpr std::uint64_t kRedirectDrainLimit = 64 * 1024;

inline std::string seconds(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
    return std::to_string(d.count()) + " ms";
}

inline bool isIpLiteral(const std::string& host) {
    ErrorCode ec;
    net::ip::make_address(host, ec);
    return !ec;
}

inline std::string hostHeader(const Url& url) {
    std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    std::uint16_t defaultPort = url.https() ? 443 : 80;
    if (url.port != defaultPort) host += ":" + std::to_string(url.port);
    return host;
}

inline bool reservedField(std::string_view name) {
    static constexpr std::string_view kReserved[] = {
        "host",           "user-agent", "accept-encoding",  "authorization",
        "content-length", "connection", "transfer-encoding"};
    return std::any_of(std::begin(kReserved), std::end(kReserved),
                       [&](std::string_view reserved) { return beast::iequals(reserved, name); });
}

// What a server does to an idle keep-alive connection it closed: the request may go again on a
// new connection.
inline bool connectionLost(const ErrorCode& ec) {
    return ec == net::error::eof || ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == net::error::connection_aborted || ec == bhttp::error::end_of_stream ||
           ec == net::ssl::error::stream_truncated;
}

inline bool isRedirect(unsigned status) {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

struct BodyProgress {
    std::uint64_t received = 0;
    std::optional<std::uint64_t> expected;
};

inline Failure readFailure(const ErrorCode& ec, const std::string& shown, std::chrono::milliseconds limit,
                           bool stall, const BodyProgress* progress) {
    std::string where;
    if (progress) {
        where = " after " + std::to_string(progress->received);
        where +=
            progress->expected ? " of " + std::to_string(*progress->expected) + " body bytes" : " body bytes";
    }
    if (ec == beast::error::timeout) {
        if (stall)
            return Failure{FailureKind::Stall, "no data from " + shown + " for " + seconds(limit) + where +
                                                   "; the transfer was cut"};
        return Failure{FailureKind::Timeout, shown + " did not complete within " + seconds(limit) + where};
    }
    if (ec == bhttp::error::body_limit)
        return Failure{FailureKind::BodyTooLarge,
                       "the response body of " + shown + " exceeds its size limit"};
    if (connectionLost(ec) || ec == bhttp::error::partial_message)
        return Failure{FailureKind::Network, "the connection to " + shown + " was closed early" + where};
    if (ec == net::error::operation_aborted)
        return Failure{FailureKind::Aborted, "the request to " + shown + " was cancelled"};
    if (ec.category() == make_error_code(bhttp::error::bad_version).category())
        return Failure{FailureKind::Network, "malformed HTTP response from " + shown + ": " + ec.message()};
    return Failure{FailureKind::Network, "reading from " + shown + " failed" + where + ": " + ec.message()};
}

struct Connection {
    Connection(net::any_io_executor executor, ssl::context& tls, std::string poolKey, bool secure)
        : key(std::move(poolKey)) {
        if (secure)
            tlsStream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(executor, tls);
        else
            plainStream = std::make_unique<beast::tcp_stream>(executor);
        buffer.reserve(kReadBufferSize);
    }

    beast::tcp_stream& tcp() { return tlsStream ? beast::get_lowest_layer(*tlsStream) : *plainStream; }

    std::string key;  // "scheme://host:port"
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tlsStream;
    std::unique_ptr<beast::tcp_stream> plainStream;
    beast::flat_buffer buffer;
    Clock::time_point idleSince{};
    bool reused = false;
};

// A pooled connection whose peer already closed it (FIN or a TLS alert waiting) is not reused.
inline bool looksAlive(Connection& connection) {
    char probe = 0;
    auto fd = connection.tcp().socket().native_handle();
    ssize_t n = ::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Where body bytes go: a string, a Sink, or nowhere (a redirect's body).
class BodyTarget {
  public:
    virtual ~BodyTarget() = default;
    virtual net::awaitable<FetchResult<void>> deliver(const char* data, std::size_t size) = 0;
};

class StringTarget final : public BodyTarget {
  public:
    StringTarget(std::string& out, std::uint64_t limit, const std::string& shown, Hooks* hooks)
        : out_(out), limit_(limit), shown_(shown), hooks_(hooks) {}

    net::awaitable<FetchResult<void>> deliver(const char* data, std::size_t size) override {
        if (out_.size() + size > limit_)
            co_return Failure{FailureKind::BodyTooLarge, "the response body of " + shown_ +
                                                             " exceeds the limit of " +
                                                             std::to_string(limit_) + " bytes"};
        if (hooks_) co_await hooks_->beforeBodyChunk(size);
        out_.append(data, size);
        co_return FetchResult<void>{};
    }

  private:
    std::string& out_;
    std::uint64_t limit_;
    const std::string& shown_;
    Hooks* hooks_;
};

class SinkTarget final : public BodyTarget {
  public:
    SinkTarget(Sink& sink, Hooks* hooks) : sink_(sink), hooks_(hooks) {}

    net::awaitable<FetchResult<void>> deliver(const char* data, std::size_t size) override {
        if (hooks_) co_await hooks_->beforeBodyChunk(size);
        auto accepted = co_await sink_.onData(data, size);
        if (!accepted) co_return Failure{FailureKind::Aborted, accepted.error().message};
        co_return FetchResult<void>{};
    }

  private:
    Sink& sink_;
    Hooks* hooks_;
};

class DiscardTarget final : public BodyTarget {
  public:
    net::awaitable<FetchResult<void>> deliver(const char*, std::size_t) override {
        co_return FetchResult<void>{};
    }
};

template <class Stream>
net::awaitable<ErrorCode> exchangeOn(Stream& stream, Connection& connection, HttpRequest& request,
                                     Parser& parser) {
    auto [writeError, written] = co_await bhttp::async_write(stream, request, kTuple);
    if (writeError) co_return writeError;
    auto [readError, read] = co_await bhttp::async_read_header(stream, connection.buffer, parser, kTuple);
    co_return readError;
}

struct BodyRead {
    std::optional<std::chrono::milliseconds> stall;  // per read; without it the request deadline holds
    std::chrono::milliseconds deadline{0};           // for messages only
};

// GCC 12 copies aggregate temporaries in co_await expressions bitwise, which is only right for
// trivially copyable types; these two are passed that way.
static_assert(std::is_trivially_copyable_v<BodyRead>);
static_assert(std::is_trivially_copyable_v<FetchOptions>);

// Reads the rest of the body into `target` and says whether the connection can be reused.
template <class Stream>
net::awaitable<FetchResult<bool>> readBodyOn(Stream& stream, Connection& connection, Parser& parser,
                                             BodyTarget& target, BodyRead how, const std::string& shown) {
    if (parser.is_done()) co_return parser.keep_alive();
    std::vector<char> chunk(kChunkSize);
    std::size_t filled = 0;
    BodyProgress progress;
    if (auto length = parser.content_length()) progress.expected = *length;
    auto limit = how.stall.value_or(how.deadline);

    if (!parser.chunked() && parser.content_length()) {
        // Fixed-length body: read the socket straight into the chunk, skipping the parser's copy.
        std::uint64_t remaining = *parser.content_length();
        std::size_t buffered =
            static_cast<std::size_t>(std::min<std::uint64_t>(connection.buffer.size(), remaining));
        filled = net::buffer_copy(net::buffer(chunk.data(), std::min(buffered, chunk.size())),
                                  connection.buffer.data());
        connection.buffer.consume(filled);
        remaining -= filled;
        while (remaining > 0) {
            if (filled >= kMinDelivery) {
                auto delivered = co_await target.deliver(chunk.data(), filled);
                if (!delivered) co_return delivered.error();
                progress.received += filled;
                filled = 0;
            }
            std::size_t want =
                static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size() - filled, remaining));
            if (how.stall) connection.tcp().expires_after(*how.stall);
            auto [ec, n] = co_await stream.async_read_some(net::buffer(chunk.data() + filled, want), kTuple);
            filled += n;
            remaining -= n;
            if (ec) {
                // Hand on what arrived so a resume with Range loses nothing.
                if (filled) {
                    auto delivered = co_await target.deliver(chunk.data(), filled);
                    if (!delivered) co_return delivered.error();
                    progress.received += filled;
                }
                co_return readFailure(ec, shown, limit, how.stall.has_value(), &progress);
            }
        }
        if (filled) {
            auto delivered = co_await target.deliver(chunk.data(), filled);
            if (!delivered) co_return delivered.error();
        }
        co_return parser.keep_alive();
    }

    // Chunked or closed-by-EOF body: the parser removes the framing.
    while (!parser.is_done()) {
        auto& body = parser.get().body();
        body.data = chunk.data() + filled;
        body.size = chunk.size() - filled;
        body.more = true;
        if (how.stall) connection.tcp().expires_after(*how.stall);
        auto [ec, n] = co_await bhttp::async_read_some(stream, connection.buffer, parser, kTuple);
        if (ec == bhttp::error::need_buffer) ec = {};
        filled = chunk.size() - body.size;
        if (ec || filled >= kMinDelivery || parser.is_done()) {
            if (filled) {
                auto delivered = co_await target.deliver(chunk.data(), filled);
                if (!delivered) co_return delivered.error();
                progress.received += filled;
                filled = 0;
            }
        }
        if (ec) co_return readFailure(ec, shown, limit, how.stall.has_value(), &progress);
    }
    co_return parser.keep_alive();
}

}  // namespace hfwarm::http::transport
