// HTTPS client on coroutines: verified TLS, keep-alive pooling with a global and a per-host cap,
// per-step timeouts, a stall detector, redirects under the token rules of url.hpp, buffered and
// streaming bodies. One Client per io_context; every call runs on that context's thread.
//
// This header is free of Beast and OpenSSL on purpose: only src/http compiles them.
#pragma once

#include "hfwarm/http/url.hpp"
#include "hfwarm/util/aliases.hpp"
#include "hfwarm/util/result.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hfwarm::http {

// Header fields in arrival order; names compare case-insensitively and may repeat.
class Headers {
  public:
    void add(std::string name, std::string value);
    // Replaces every field named `name` with one field.
    void set(std::string name, std::string value);
    void remove(std::string_view name);
    // The first value of `name`, if any.
    std::optional<std::string_view> get(std::string_view name) const;
    std::vector<std::string_view> getAll(std::string_view name) const;
    bool contains(std::string_view name) const { return get(name).has_value(); }
    const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

  private:
    std::vector<std::pair<std::string, std::string>> fields_;
};

// GCC 12 miscompiles a temporary aggregate with non-trivial members inside a co_await expression
// (its strings end up shared with the coroutine frame): Request and Failure have constructors, so
// `co_await client.fetch(Request{"GET", url})` is safe.
struct Request {
    Request() = default;
    Request(std::string method_, std::string url_, Headers headers_ = {}, std::string body_ = {})
        : method(std::move(method_)),
          url(std::move(url_)),
          headers(std::move(headers_)),
          body(std::move(body_)) {}

    std::string method = "GET";  // any token Beast knows: GET, HEAD, POST, ...
    std::string url;             // absolute http(s) URL, already encoded (see quote())
    Headers headers;             // Host, User-Agent, Accept-Encoding and Authorization are the client's
    std::string body;            // sent with Content-Length when not empty
};

struct Response {
    unsigned status = 0;
    Headers headers;
    std::string body;          // empty for stream() and HEAD
    std::string finalUrl;      // URL of the last hop (it may carry a signed query: do not log it)
    int redirects = 0;         // hops followed
    bool crossedHost = false;  // a followed redirect went to another scheme, host or port
};

enum class FailureKind {
    Connect,       // name resolution, connection refused or unreachable: retryable
    Timeout,       // connect, handshake or request took longer than its timeout: retryable
    Stall,         // no body byte for stallTimeout: retryable, resume with Range
    Network,       // reset, connection closed early, malformed HTTP: retryable, resume with Range
    Tls,           // certificate verification failed or handshake refused: permanent (--ca-file)
    Redirect,      // too many redirects, https -> http, unusable Location: permanent
    BodyTooLarge,  // the body exceeds the request's limit: permanent
    InvalidUrl,    // the request URL is not an absolute http(s) URL: permanent
    Aborted,       // the Sink returned an error; its message is kept as is
};

// Why a request failed. The message names the URL without its query and says what to do.
struct Failure {
    Failure() = default;
    Failure(FailureKind kind_, std::string message_) : kind(kind_), message(std::move(message_)) {}

    FailureKind kind = FailureKind::Network;
    std::string message;

    // Connect, Timeout, Stall and Network: a later attempt may succeed.
    bool retryable() const;
};

// Lets FetchResult<T>::value() throw with the message kept.
[[noreturn]] void throw_exception_from_error(const Failure& failure, const boost::source_location& loc);

template <class T>
using FetchResult = boost::system::result<T, Failure>;

struct ClientOptions {
    std::string caFile;                                  // extra PEM bundle added to the system trust store
    std::size_t connections = 16;                        // open connections in total
    std::size_t connectionsPerHost = 8;                  // open connections per scheme://host:port
    std::chrono::milliseconds connectTimeout{10'000};    // TCP connect (and a proxy's CONNECT answer)
    std::chrono::milliseconds handshakeTimeout{10'000};  // TLS handshake
    std::chrono::milliseconds requestTimeout{30'000};    // write request, read headers (fetch: whole body)
    std::chrono::milliseconds stallTimeout{30'000};      // stream(): longest wait for the next body byte
    std::chrono::milliseconds idleTimeout{30'000};       // idle pooled connections older than this are closed
    std::string userAgent;                               // empty: "hfwarm/<version>"
    std::string token;                                   // sent as Bearer only per sendsToken(); never logged
    std::string tokenHost;                               // the configured endpoint, as a URL or host[:port]
    bool tokenOverHttp = false;                          // the token also goes to tokenHost over http
    int maxRedirects = 10;
    std::size_t bodyLimit = 64u << 20;  // default limit of fetch() bodies
    // Proxy for https URLs, reached with CONNECT: "http://[user:password@]host[:port]"; empty: none.
    // Plain http URLs (loopback tests, a local caching proxy as endpoint) always go direct.
    std::string httpsProxy;
    std::string noProxy;  // hosts that skip httpsProxy, as bypassesProxy() reads them
};

// Fills httpsProxy and noProxy from https_proxy/HTTPS_PROXY and no_proxy/NO_PROXY (the lower-case
// name wins, as in curl); fields already set are kept.
void readProxyEnvironment(ClientOptions& options);

// Identifies one hop for the hooks.
struct RequestInfo {
    std::string method;
    std::string host;           // "host:port"
    std::string path;           // encoded path, no query
    bool endpointHost = false;  // host is ClientOptions::tokenHost (a Hub bucket, not the CDN)
};

// Plug-in points for rate limiting, called on every hop including redirects. The defaults do
// nothing. A hook must not call back into the Client synchronously.
class Hooks {
  public:
    virtual ~Hooks() = default;
    // Before the hop takes a connection and writes its request: wait for a rate-limit token here,
    // so no pooled connection is held while waiting.
    virtual net::awaitable<void> beforeRequest(const RequestInfo& info);
    // After the response headers of a hop arrived (RateLimit headers, 429 handling). A hop that
    // fails before any response (connect, TLS, timeout) gets afterFailure instead.
    virtual void afterResponse(const RequestInfo& info, const Response& headersOnly);
    // After a hop that passed beforeRequest failed without a response.
    virtual void afterFailure(const RequestInfo& info, const Failure& failure);
    // After `bytes` of body were read from the socket, before they are handed on: bandwidth caps.
    virtual net::awaitable<void> beforeBodyChunk(std::size_t bytes);
};

// Receives a streamed body. The object must outlive the stream() call.
class Sink {
  public:
    virtual ~Sink() = default;
    // Headers of the final response (after redirects). An error aborts the transfer (the connection
    // is dropped) and stream() fails with FailureKind::Aborted and this message.
    virtual Result<void> onResponse(const Response& headersOnly) = 0;
    // The next piece of body, in order; `data` is valid until the returned awaitable completes.
    virtual net::awaitable<Result<void>> onData(const char* data, std::size_t size) = 0;
};

struct FetchOptions {
    RedirectPolicy redirects = RedirectPolicy::RelativeOnly;
    // fetch(): defaults to ClientOptions::bodyLimit; stream(): defaults to no limit.
    std::optional<std::uint64_t> bodyLimit;
    // Overrides ClientOptions::requestTimeout for this request.
    std::optional<std::chrono::milliseconds> requestTimeout;
};

struct PoolStats {
    std::size_t open = 0;     // connections open now (in use plus idle)
    std::size_t idle = 0;     // open and waiting in the pool
    std::size_t waiting = 0;  // requests queued for a connection slot
    std::uint64_t connectionsOpened = 0;
    std::uint64_t requests = 0;  // hops written
};

class Client {
  public:
    // Fails when the trust store or ClientOptions::caFile cannot be loaded.
    static Result<std::unique_ptr<Client>> create(net::any_io_executor executor, ClientOptions options);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Sends `request`, follows redirects per `options`, reads the whole body (up to the limit).
    // Any status is a successful response; a Failure means no usable response arrived.
    net::awaitable<FetchResult<Response>> fetch(Request request, FetchOptions options = {});

    // As fetch(), but hands the final response's body to `sink` chunk by chunk (64 KiB and more)
    // and returns the final response without its body once the body is complete. A body cut short
    // is a Network or Stall failure; the bytes already given to the sink stay valid for a resume.
    net::awaitable<FetchResult<Response>> stream(Request request, FetchOptions options, Sink& sink);

    // Hooks for every later hop; nullptr removes them.
    void setHooks(std::shared_ptr<Hooks> hooks);

    // Closes idle pooled connections (on shutdown or after a network change).
    void closeIdle();

    PoolStats stats() const;
    const ClientOptions& options() const;

  private:
    struct Impl;
    explicit Client(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace hfwarm::http
