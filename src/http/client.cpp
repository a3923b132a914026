// The only translation unit of the project that compiles Beast and Asio SSL: the connection pool,
// connection setup and the redirects of one request (transport.hpp holds the connection and the
// body readers it uses).
#include "hfwarm/http/client.hpp"

#include "proxy.hpp"
#include "transport.hpp"

#include "hfwarm/util/async.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm_version.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/system/system_error.hpp>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <list>
#include <map>
#include <type_traits>
#include <vector>

namespace hfwarm::http {

using namespace transport;

struct Client::Impl {
    Impl(net::any_io_executor ex, ClientOptions opts)
        : executor(std::move(ex)), options(std::move(opts)), log(util::logger("http")) {
        if (!options.tokenHost.empty()) options.tokenHost = normalizeAuthority(options.tokenHost);
        userAgent = options.userAgent.empty() ? std::string("hfwarm/") + HFWARM_VERSION : options.userAgent;
        options.connections = std::max<std::size_t>(options.connections, 1);
        options.connectionsPerHost = std::max<std::size_t>(options.connectionsPerHost, 1);
    }

    struct HostPool {
        std::size_t open = 0;  // in use plus idle
        std::vector<std::unique_ptr<Connection>> idle;
    };

    // A request waiting for a connection; granted either an idle connection or a slot to open one.
    struct Waiter {
        Waiter(net::any_io_executor executor, std::string k)
            : key(std::move(k)), granted(std::move(executor)) {}
        std::string key;
        util::Event granted;  // set once it left the queue with a connection or a slot
        std::unique_ptr<Connection> connection;
        bool slot = false;
    };

    // Leaves the queue and gives back what was granted but not taken when the waiting request
    // ends early.
    struct WaiterGuard {
        Impl& impl;
        Waiter& waiter;
        ~WaiterGuard() {
            if (!waiter.granted.isSet()) impl.waiters.remove(&waiter);
            if (waiter.connection) impl.release(std::move(waiter.connection), true);
            if (waiter.slot) impl.freeSlot(waiter.key);
        }
    };

    std::unique_ptr<Connection> takeIdle(const std::string& key) {
        auto& pool = hosts[key];
        while (!pool.idle.empty()) {
            auto connection = std::move(pool.idle.back());
            pool.idle.pop_back();
            if (Clock::now() - connection->idleSince < options.idleTimeout && looksAlive(*connection)) {
                connection->reused = true;
                return connection;
            }
            pool.open--;
            open--;
        }
        return nullptr;
    }

    // Closes the longest idle connection of another host to make room under the global cap.
    bool evictIdle(const std::string& except) {
        HostPool* victim = nullptr;
        for (auto& [key, pool] : hosts) {
            if (key == except || pool.idle.empty()) continue;
            if (!victim || pool.idle.front()->idleSince < victim->idle.front()->idleSince) victim = &pool;
        }
        if (!victim) return false;
        victim->idle.erase(victim->idle.begin());
        victim->open--;
        open--;
        return true;
    }

    bool reserveSlot(const std::string& key) {
        auto& pool = hosts[key];
        if (pool.open >= options.connectionsPerHost) return false;
        if (open >= options.connections && !evictIdle(key)) return false;
        pool.open++;
        open++;
        return true;
    }

    void freeSlot(const std::string& key) {
        hosts[key].open--;
        open--;
        dispatch();
    }

    void release(std::unique_ptr<Connection> connection, bool reusable) {
        std::string key = connection->key;
        if (reusable) {
            connection->tcp().expires_never();
            connection->idleSince = Clock::now();
            hosts[key].idle.push_back(std::move(connection));
        } else {
            connection.reset();
            hosts[key].open--;
            open--;
        }
        dispatch();
    }

    // Hands idle connections and free slots to waiters in arrival order.
    void dispatch() {
        for (auto it = waiters.begin(); it != waiters.end();) {
            Waiter& waiter = **it;
            if (auto connection = takeIdle(waiter.key))
                waiter.connection = std::move(connection);
            else if (reserveSlot(waiter.key))
                waiter.slot = true;
            else {
                ++it;
                continue;
            }
            it = waiters.erase(it);
            waiter.granted.set();
        }
    }

    // Asks the proxy for a tunnel to `url`'s host; TLS then runs end to end through it.
    net::awaitable<FetchResult<void>> openTunnel(beast::tcp_stream& stream, const Url& url,
                                                 const std::string& shown) {
        bhttp::request<bhttp::empty_body> request{bhttp::verb::connect, url.authority(), 11};
        request.set(bhttp::field::host, url.authority());
        request.set(bhttp::field::user_agent, userAgent);
        if (!proxy->authorization.empty())
            request.set(bhttp::field::proxy_authorization, proxy->authorization);
        stream.expires_after(options.connectTimeout);
        auto [writeError, written] = co_await bhttp::async_write(stream, request, kTuple);
        beast::flat_buffer buffer;
        bhttp::response_parser<bhttp::empty_body> parser;
        // A CONNECT answer has no body; whatever follows belongs to the tunnel.
        parser.skip(true);
        ErrorCode readError = writeError;
        if (!writeError) {
            auto [headerError, headerBytes] =
                co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
            readError = headerError;
        }
        if (readError == beast::error::timeout)
            co_return Failure{FailureKind::Timeout, "proxy " + proxy->shown + " did not open a tunnel for " +
                                                        shown + " within " + seconds(options.connectTimeout)};
        if (readError)
            co_return Failure{FailureKind::Connect, "proxy " + proxy->shown +
                                                        " failed to open a tunnel for " + shown + ": " +
                                                        readError.message()};
        unsigned status = parser.get().result_int();
        if (status == 407)
            co_return Failure{FailureKind::Connect,
                              "proxy " + proxy->shown +
                                  " requires authentication (HTTP 407): put user:password in "
                                  "HTTPS_PROXY, e.g. http://user:password@proxy:3128"};
        if (status / 100 != 2)
            co_return Failure{FailureKind::Connect, "proxy " + proxy->shown + " refused a tunnel to " +
                                                        url.authority() + " (HTTP " + std::to_string(status) +
                                                        "); check HTTPS_PROXY and NO_PROXY"};
        co_return FetchResult<void>{};
    }

    net::awaitable<FetchResult<void>> connect(Connection& connection, const Url& url,
                                              const std::string& shown) {
        auto& stream = connection.tcp();
        const bool tunnel =
            proxy && connection.tlsStream && !bypassesProxy(url.host, url.port, options.noProxy);
        const std::string dialHost = tunnel ? proxy->host : url.host;
        const std::uint16_t dialPort = tunnel ? proxy->port : url.port;
        const std::string dialName = tunnel ? "proxy " + proxy->shown : url.authority();
        std::vector<tcp::endpoint> endpoints;
        ErrorCode addressError;
        auto address = net::ip::make_address(dialHost, addressError);
        if (!addressError) {
            endpoints.emplace_back(address, dialPort);
        } else {
            // Name resolution runs on Asio's resolver thread and is bounded by the system
            // resolver's own timeouts.
            tcp::resolver resolver(executor);
            auto [ec, results] = co_await resolver.async_resolve(dialHost, std::to_string(dialPort), kTuple);
            if (ec)
                co_return Failure{FailureKind::Connect, "cannot resolve host " + dialHost + " for " + shown +
                                                            ": " + ec.message() +
                                                            "; check the endpoint and the network"};
            for (const auto& entry : results) endpoints.push_back(entry.endpoint());
        }
        stream.expires_after(options.connectTimeout);
        auto [connectError, endpoint] = co_await stream.async_connect(endpoints, kTuple);
        if (connectError == beast::error::timeout)
            co_return Failure{FailureKind::Timeout, "connecting to " + dialName + " for " + shown +
                                                        " timed out after " +
                                                        seconds(options.connectTimeout)};
        if (connectError)
            co_return Failure{FailureKind::Connect, "cannot connect to " + dialName + " for " + shown + ": " +
                                                        connectError.message()};
        ErrorCode ignored;
        stream.socket().set_option(tcp::no_delay(true), ignored);
        if (tunnel) {
            auto opened = co_await openTunnel(stream, url, shown);
            if (!opened) co_return opened.error();
        }
        if (connection.tlsStream) {
            auto& tls = *connection.tlsStream;
            // SNI carries host names only; an IP literal is checked against the certificate's IPs.
            if (!isIpLiteral(url.host)) SSL_set_tlsext_host_name(tls.native_handle(), url.host.c_str());
            tls.set_verify_mode(ssl::verify_peer);
            tls.set_verify_callback(ssl::host_name_verification(url.host));
            stream.expires_after(options.handshakeTimeout);
            auto [handshakeError] = co_await tls.async_handshake(ssl::stream_base::client, kTuple);
            if (handshakeError == beast::error::timeout)
                co_return Failure{FailureKind::Timeout, "TLS handshake with " + url.authority() + " for " +
                                                            shown + " timed out after " +
                                                            seconds(options.handshakeTimeout)};
            if (handshakeError) {
                long verify = SSL_get_verify_result(tls.native_handle());
                bool verifyFailed = handshakeError.category() == net::error::get_ssl_category() &&
                                    ERR_GET_REASON(handshakeError.value()) == SSL_R_CERTIFICATE_VERIFY_FAILED;
                if (verifyFailed || verify != X509_V_OK) {
                    std::string why = verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                                          : "the certificate does not match host " + url.host;
                    co_return Failure{
                        FailureKind::Tls,
                        "TLS certificate verification failed for " + shown + ": " + why +
                            "; if the server uses a private CA, pass its PEM bundle with --ca-file"};
                }
                co_return Failure{FailureKind::Tls, "TLS handshake with " + url.authority() + " for " +
                                                        shown + " failed: " + handshakeError.message()};
            }
        }
        stream.expires_never();
        co_return FetchResult<void>{};
    }

    net::awaitable<FetchResult<std::unique_ptr<Connection>>> acquire(const Url& url,
                                                                     const std::string& shown) {
        std::string key = url.scheme + "://" + url.authority();
        if (auto idle = takeIdle(key)) co_return std::move(idle);
        if (!reserveSlot(key)) {
            Waiter waiter(executor, key);
            waiters.push_back(&waiter);
            WaiterGuard guard{*this, waiter};
            // A request cancelled while it waits (a lost race, a stopped task) was granted nothing and
            // leaves the queue with the guard, so what is freed next goes to the next waiter.
            bool cancelled = false;
            try {
                co_await waiter.granted.wait();
            } catch (const boost::system::system_error&) {
                cancelled = true;
            }
            if (cancelled)
                co_return Failure{FailureKind::Aborted, "the request to " + shown +
                                                            " was cancelled while waiting for a connection"};
            if (waiter.connection) co_return std::move(waiter.connection);
            waiter.slot = false;
        }
        auto connection = std::make_unique<Connection>(executor, tls, key, url.https());
        auto connected = co_await connect(*connection, url, shown);
        if (!connected) {
            connection.reset();
            freeSlot(key);
            co_return connected.error();
        }
        counters.connectionsOpened++;
        co_return std::move(connection);
    }

    net::awaitable<ErrorCode> exchange(Connection& connection, HttpRequest& request, Parser& parser) {
        if (connection.tlsStream) {
            auto ec = co_await exchangeOn(*connection.tlsStream, connection, request, parser);
            co_return ec;
        }
        auto ec = co_await exchangeOn(*connection.plainStream, connection, request, parser);
        co_return ec;
    }

    net::awaitable<FetchResult<bool>> readBody(Connection& connection, Parser& parser, BodyTarget& target,
                                               BodyRead how, const std::string& shown) {
        if (connection.tlsStream) {
            auto result = co_await readBodyOn(*connection.tlsStream, connection, parser, target, how, shown);
            co_return result;
        }
        auto result = co_await readBodyOn(*connection.plainStream, connection, parser, target, how, shown);
        co_return result;
    }

    net::awaitable<FetchResult<Response>> run(Request request, FetchOptions fetchOptions, Sink* sink);

    net::any_io_executor executor;
    ClientOptions options;
    ssl::context tls{ssl::context::tls_client};
    std::shared_ptr<Hooks> hooks;
    std::optional<Proxy> proxy;
    std::string userAgent;
    std::shared_ptr<spdlog::logger> log;
    std::map<std::string, HostPool> hosts;
    std::size_t open = 0;
    std::list<Waiter*> waiters;
    PoolStats counters;
};

net::awaitable<FetchResult<Response>> Client::Impl::run(Request request, FetchOptions fetchOptions,
                                                        Sink* sink) {
    const bool buffered = sink == nullptr;
    const auto timeout = fetchOptions.requestTimeout.value_or(options.requestTimeout);
    std::optional<std::uint64_t> bodyLimit = fetchOptions.bodyLimit;
    if (buffered && !bodyLimit) bodyLimit = options.bodyLimit;
    std::string url = request.url;
    std::string method = request.method;
    std::string body = std::move(request.body);
    bool crossedHost = false;
    int redirects = 0;

    for (;;) {
        auto parsed = parseUrl(url);
        if (!parsed) co_return Failure{FailureKind::InvalidUrl, parsed.error().message};
        const Url& target = *parsed;
        const std::string shown = redactUrl(url);
        auto verb = bhttp::string_to_verb(method);
        if (verb == bhttp::verb::unknown)
            co_return Failure{FailureKind::InvalidUrl,
                              "unsupported HTTP method '" + method + "' for " + shown};

        HttpRequest message{verb, target.target, 11};
        for (const auto& [name, value] : request.headers.fields())
            if (!reservedField(name)) message.insert(name, value);
        message.set(bhttp::field::host, hostHeader(target));
        message.set(bhttp::field::user_agent, userAgent);
        // Sizes must be the stored bytes, and hashes are checked on them: no compression.
        message.set(bhttp::field::accept_encoding, "identity");
        if (!options.token.empty() &&
            sendsToken(target, options.tokenHost, crossedHost, options.tokenOverHttp))
            message.set(bhttp::field::authorization, "Bearer " + options.token);
        if (!body.empty() || verb == bhttp::verb::post || verb == bhttp::verb::put) {
            message.body() = body;
            message.prepare_payload();
        }

        RequestInfo info{method, target.authority(), target.path, target.authority() == options.tokenHost};
        auto hopHooks = hooks;
        if (hopHooks) co_await hopHooks->beforeRequest(info);

        const auto started = Clock::now();
        std::unique_ptr<Connection> connection;
        std::optional<Parser> parser;
        for (int attempt = 0;; ++attempt) {
            auto acquired = co_await acquire(target, shown);
            if (!acquired) {
                if (hopHooks) hopHooks->afterFailure(info, acquired.error());
                co_return acquired.error();
            }
            connection = std::move(*acquired);
            parser.emplace();
            parser->header_limit(kHeaderLimit);
            if (bodyLimit)
                parser->body_limit(*bodyLimit);
            else
                parser->body_limit(boost::none);
            if (verb == bhttp::verb::head) parser->skip(true);
            connection->tcp().expires_after(timeout);
            counters.requests++;
            auto ec = co_await exchange(*connection, message, *parser);
            if (!ec) break;
            const bool stale = connection->reused && attempt == 0 && connectionLost(ec);
            release(std::move(connection), false);
            if (stale) continue;
            auto failure = readFailure(ec, shown, timeout, false, nullptr);
            if (hopHooks) hopHooks->afterFailure(info, failure);
            co_return failure;
        }

        Response head;
        head.status = parser->get().result_int();
        for (const auto& field : parser->get())
            head.headers.add(std::string(field.name_string()), std::string(field.value()));
        head.finalUrl = url;
        head.redirects = redirects;
        head.crossedHost = crossedHost;
        log->debug("request method={} host={} path={} status={} ms={} reused={}", method, info.host,
                   info.path, head.status,
                   std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count(),
                   connection->reused);
        if (hopHooks) hopHooks->afterResponse(info, head);

        auto location = head.headers.get("location");
        if (isRedirect(head.status) && location && fetchOptions.redirects != RedirectPolicy::None) {
            auto next = redirectTarget(url, *location);
            if (!next && fetchOptions.redirects == RedirectPolicy::All) {
                release(std::move(connection), false);
                co_return Failure{FailureKind::Redirect, next.error().message};
            }
            if (next && followsRedirect(fetchOptions.redirects, *next)) {
                if (redirects >= options.maxRedirects) {
                    release(std::move(connection), false);
                    co_return Failure{FailureKind::Redirect, "too many redirects (more than " +
                                                                 std::to_string(options.maxRedirects) +
                                                                 ") from " + redactUrl(request.url)};
                }
                bool reusable = false;
                auto length = parser->content_length();
                if (parser->is_done() || (length && *length <= kRedirectDrainLimit && !parser->chunked())) {
                    DiscardTarget discard;
                    auto drained =
                        co_await readBody(*connection, *parser, discard, BodyRead{{}, timeout}, shown);
                    reusable = drained && *drained;
                }
                release(std::move(connection), reusable);
                // 303, and 301/302 after a POST, continue as GET without a body, as browsers do.
                if (head.status == 303 ||
                    ((head.status == 301 || head.status == 302) && verb == bhttp::verb::post)) {
                    method = "GET";
                    body.clear();
                }
                redirects++;
                crossedHost = crossedHost || next->crossHost;
                url = next->url;
                continue;
            }
        }

        if (buffered) {
            StringTarget into(head.body, *bodyLimit, shown, hopHooks.get());
            auto read = co_await readBody(*connection, *parser, into, BodyRead{{}, timeout}, shown);
            if (!read) {
                release(std::move(connection), false);
                co_return read.error();
            }
            release(std::move(connection), *read);
            co_return head;
        }

        auto accepted = sink->onResponse(head);
        if (!accepted) {
            release(std::move(connection), false);
            co_return Failure{FailureKind::Aborted, accepted.error().message};
        }
        auto length = parser->content_length();
        if (bodyLimit && length && *length > *bodyLimit) {
            release(std::move(connection), false);
            co_return Failure{FailureKind::BodyTooLarge,
                              "the response body of " + shown + " (" + std::to_string(*length) +
                                  " bytes) exceeds the limit of " + std::to_string(*bodyLimit) + " bytes"};
        }
        SinkTarget into(*sink, hopHooks.get());
        auto read =
            co_await readBody(*connection, *parser, into, BodyRead{options.stallTimeout, timeout}, shown);
        if (!read) {
            release(std::move(connection), false);
            co_return read.error();
        }
        release(std::move(connection), *read);
        co_return head;
    }
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::create(net::any_io_executor executor, ClientOptions options) {
    auto impl = std::make_unique<Impl>(std::move(executor), std::move(options));
    ErrorCode ec;
    impl->tls.set_default_verify_paths(ec);
    if (ec) return makeError("cannot load the system trust store: " + ec.message());
    if (!impl->options.caFile.empty()) {
        impl->tls.load_verify_file(impl->options.caFile, ec);
        if (ec)
            return makeError("cannot load the CA file " + impl->options.caFile + ": " + ec.message() +
                             "; --ca-file expects a PEM bundle");
    }
    if (!impl->options.httpsProxy.empty()) {
        auto proxy = parseProxy(impl->options.httpsProxy);
        if (!proxy) return proxy.error();
        impl->proxy = std::move(*proxy);
    }
    impl->tls.set_verify_mode(ssl::verify_peer);
    SSL_CTX_set_min_proto_version(impl->tls.native_handle(), TLS1_2_VERSION);
    return std::unique_ptr<Client>(new Client(std::move(impl)));
}

net::awaitable<FetchResult<Response>> Client::fetch(Request request, FetchOptions options) {
    const std::string shown = redactUrl(request.url);
    auto result = co_await impl_->run(std::move(request), options, nullptr);
    if (!result) impl_->log->debug("request failed url={} reason=\"{}\"", shown, result.error().message);
    co_return result;
}

net::awaitable<FetchResult<Response>> Client::stream(Request request, FetchOptions options, Sink& sink) {
    const std::string shown = redactUrl(request.url);
    auto result = co_await impl_->run(std::move(request), options, &sink);
    if (!result) impl_->log->debug("request failed url={} reason=\"{}\"", shown, result.error().message);
    co_return result;
}

void Client::setHooks(std::shared_ptr<Hooks> hooks) {
    impl_->hooks = std::move(hooks);
}

void Client::closeIdle() {
    for (auto& [key, pool] : impl_->hosts) {
        impl_->open -= pool.idle.size();
        pool.open -= pool.idle.size();
        pool.idle.clear();
    }
    impl_->dispatch();
}

PoolStats Client::stats() const {
    PoolStats stats = impl_->counters;
    stats.open = impl_->open;
    stats.idle = 0;
    for (const auto& [key, pool] : impl_->hosts) stats.idle += pool.idle.size();
    stats.waiting = impl_->waiters.size();
    return stats;
}

const ClientOptions& Client::options() const {
    return impl_->options;
}

}  // namespace hfwarm::http
