#include "server.hpp"

#include "faults.hpp"
#include "rate_limiter.hpp"
#include "repo_store.hpp"
#include "request_log.hpp"
#include "tls_setup.hpp"
#include "url_signer.hpp"

#include "hfwarm/util/aliases.hpp"
#include "hfwarm/util/log.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <vector>

namespace hfwarm::hubsim {
namespace {

namespace fs = std::filesystem;
namespace urls = boost::urls;
using tcp = net::ip::tcp;
using Stream = beast::ssl_stream<beast::tcp_stream>;
using Request = bhttp::request<bhttp::string_body>;
using Head = bhttp::response<bhttp::empty_body>;
using namespace std::chrono_literals;

constexpr auto kHandshakeTimeout = 10s;
constexpr auto kIdleTimeout = 60s;
constexpr auto kWriteTimeout = 60s;
constexpr std::size_t kChunk = 512 * 1024;  // large writes keep the CPU cost per GiB low
constexpr std::uint64_t kRequestBodyLimit = 1024 * 1024;
constexpr std::string_view kLogSyncTarget = "/_hubsim/log-sync";
constexpr auto kLogSyncLimit = 10s;

struct ByteRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;  // inclusive
};

enum class RangeResult { Whole, Partial, Unsatisfiable };

// One `bytes=` range, as RFC 9110 reads it; a multi-range or malformed header is ignored (the
// whole body is sent), which the RFC allows.
RangeResult parseRange(std::string_view header, std::uint64_t size, ByteRange& out) {
    if (!header.starts_with("bytes=") || header.find(',') != std::string_view::npos)
        return RangeResult::Whole;
    header.remove_prefix(6);
    const auto dash = header.find('-');
    if (dash == std::string_view::npos) return RangeResult::Whole;
    auto number = [](std::string_view s, std::uint64_t& v) {
        if (s.empty() || s.size() > 19) return false;
        v = 0;
        for (char c : s) {
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        return true;
    };
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    const std::string_view a = header.substr(0, dash);
    const std::string_view b = header.substr(dash + 1);
    if (a.empty()) {
        if (!number(b, last)) return RangeResult::Whole;
        if (last == 0 || size == 0) return RangeResult::Unsatisfiable;
        out = {size - std::min(last, size), size - 1};
        return RangeResult::Partial;
    }
    if (!number(a, first)) return RangeResult::Whole;
    if (b.empty())
        last = UINT64_MAX;
    else if (!number(b, last) || last < first)
        return RangeResult::Whole;
    if (first >= size) return RangeResult::Unsatisfiable;
    out = {first, std::min(last, size - 1)};
    return RangeResult::Partial;
}

bool truthy(std::string_view v) {
    return v == "1" || v == "true" || v == "True" || v == "yes";
}

std::optional<std::string> param(const urls::url_view& u, std::string_view key) {
    auto it = u.params().find(key);
    if (it == u.params().end()) return std::nullopt;
    return (*it).value;
}

std::string join(const std::vector<std::string>& parts, std::size_t from, std::size_t to,
                 std::string_view separator = "/") {
    std::string out;
    for (std::size_t i = from; i < to && i < parts.size(); ++i) {
        if (i > from) out += separator;
        out += parts[i];
    }
    return out;
}

// The response a handler chose: a status line and headers, then either a small text body or a
// slice of a fixture file. File bodies are where the body faults strike.
struct Reply {
    Head head;
    std::string text;
    const FileEntry* file = nullptr;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::string faultKey;
};

Reply textReply(bhttp::status status, std::string text, std::string_view contentType) {
    Reply r;
    r.head.result(status);
    r.head.set(bhttp::field::content_type, contentType);
    r.text = std::move(text);
    return r;
}

Reply jsonReply(const json& body) {
    return textReply(bhttp::status::ok, body.dump(-1, ' ', false, json::error_handler_t::replace),
                     "application/json; charset=utf-8");
}

// The Hub's error shape: X-Error-Code and X-Error-Message headers and {"error": message}.
Reply errorReply(bhttp::status status, std::string_view code, const std::string& message) {
    Reply r = textReply(status, json{{"error", message}}.dump(), "application/json; charset=utf-8");
    if (!code.empty()) r.head.set("X-Error-Code", code);
    r.head.set("X-Error-Message", message);
    return r;
}

// A file slice with the range headers; `file == nullptr` for a 416.
Reply fileReply(const FileEntry& file, const Request& req, bool ignoreRange, bool& rangeIgnored) {
    Reply r;
    r.head.set(bhttp::field::accept_ranges, "bytes");
    r.head.set(bhttp::field::content_type, "application/octet-stream");
    ByteRange range;
    const auto rangeHeader = req[bhttp::field::range];
    auto result = rangeHeader.empty() ? RangeResult::Whole : parseRange(rangeHeader, file.size, range);
    rangeIgnored = ignoreRange && !rangeHeader.empty();
    if (rangeIgnored) result = RangeResult::Whole;
    if (result == RangeResult::Unsatisfiable) {
        r.head.result(bhttp::status::range_not_satisfiable);
        r.head.set(bhttp::field::content_range, fmt::format("bytes */{}", file.size));
        return r;
    }
    r.file = &file;
    if (result == RangeResult::Partial) {
        r.head.result(bhttp::status::partial_content);
        r.head.set(bhttp::field::content_range,
                   fmt::format("bytes {}-{}/{}", range.first, range.last, file.size));
        r.offset = range.first;
        r.length = range.last - range.first + 1;
    } else {
        r.head.result(bhttp::status::ok);
        r.length = file.size;
    }
    return r;
}

// Counts a request from its reading to its log line, also when the session ends early.
struct Unlogged {
    std::size_t& count;
    explicit Unlogged(std::size_t& c) : count(c) { ++count; }
    ~Unlogged() { --count; }
    Unlogged(const Unlogged&) = delete;
    Unlogged& operator=(const Unlogged&) = delete;
};

struct Fd {
    int fd = -1;
    explicit Fd(const fs::path& p) : fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC)) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

class Server {
  public:
    Server(net::io_context& ioc, const ServeOptions& options, RepoStore store, ssl::context& tls,
           RequestLog log, std::string cdnOrigin)
        : ioc_(ioc),
          options_(options),
          store_(std::move(store)),
          tls_(tls),
          log_(std::move(log)),
          cdnOrigin_(std::move(cdnOrigin)),
          limiter_(options.apiQuota, options.resolverQuota, std::chrono::seconds(options.windowSeconds)),
          faults_(options.faults, options.seed) {}

    // Serves the listener until the io_context stops; an exception here ends the process.
    void start(tcp::acceptor acceptor, bool cdn) {
        net::co_spawn(ioc_, acceptLoop(std::move(acceptor), cdn), [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    }

  private:
    net::awaitable<void> acceptLoop(tcp::acceptor acceptor, bool cdn) {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
            if (ec == net::error::operation_aborted) co_return;
            if (ec) {
                util::logger("hubsim")->warn("accept failed error={}", ec.message());
                continue;
            }
            net::co_spawn(ioc_, session(std::move(socket), cdn), [](std::exception_ptr e) {
                try {
                    if (e) std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    util::logger("hubsim")->error("connection ended by an exception error={}", ex.what());
                }
            });
        }
    }

    net::awaitable<void> session(tcp::socket socket, bool cdn) {
        const std::uint64_t connection = ++connections_;
        boost::system::error_code ec;
        socket.set_option(tcp::no_delay(true), ec);
        const std::string address = socket.remote_endpoint(ec).address().to_string();
        Stream stream(beast::tcp_stream(std::move(socket)), tls_);
        beast::get_lowest_layer(stream).expires_after(kHandshakeTimeout);
        std::tie(ec) =
            co_await stream.async_handshake(ssl::stream_base::server, net::as_tuple(net::use_awaitable));
        if (ec) co_return;
        beast::flat_buffer buffer;
        buffer.reserve(64 * 1024);
        std::vector<char> chunk;
        for (;;) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.body_limit(kRequestBodyLimit);
            beast::get_lowest_layer(stream).expires_after(kIdleTimeout);
            auto [readError, n] =
                co_await bhttp::async_read(stream, buffer, parser, net::as_tuple(net::use_awaitable));
            if (readError) co_return;
            Request req = parser.release();
            if (req.target() == kLogSyncTarget) {
                const bool written = co_await logSync(stream, req);
                if (!written) co_return;
                if (!req.keep_alive()) break;
                continue;
            }
            const Unlogged pending(unlogged_);
            LogRecord record;
            record.method = std::string(req.method_string());
            record.target = std::string(req.target());
            record.listener = cdn ? "cdn" : "hub";
            record.connection = connection;
            record.auth = req.count(bhttp::field::authorization) > 0;
            if (req.count(bhttp::field::range) > 0) record.range = std::string(req[bhttp::field::range]);
            Reply reply = cdn ? handleCdn(req, record) : handleHub(req, address, record);
            const bool open = co_await send(stream, req, reply, record, cdn, chunk);
            record.status = reply.head.result_int();
            if (const auto contentRange = reply.head[bhttp::field::content_range]; !contentRange.empty())
                record.contentRange = std::string(contentRange);
            log_.write(record);
            if (!open) co_return;
            if (!req.keep_alive()) break;
        }
        beast::get_lowest_layer(stream).expires_after(5s);
        co_await stream.async_shutdown(net::as_tuple(net::use_awaitable));
    }

    // `GET /_hubsim/log-sync`: answers 204 once every request read so far has its log line, or after
    // kLogSyncLimit while other transfers keep going. A client has read a whole response a moment
    // before the simulator writes its line; this makes reading the log right after exact. It is
    // neither logged, counted against a quota, nor struck by a fault.
    net::awaitable<bool> logSync(Stream& stream, const Request& req) {
        net::steady_timer timer(stream.get_executor());
        const auto deadline = std::chrono::steady_clock::now() + kLogSyncLimit;
        while (unlogged_ > 0 && std::chrono::steady_clock::now() < deadline) {
            timer.expires_after(5ms);
            co_await timer.async_wait(net::as_tuple(net::use_awaitable));
        }
        Head head(bhttp::status::no_content, req.version());
        head.keep_alive(req.keep_alive());
        beast::get_lowest_layer(stream).expires_after(kWriteTimeout);
        auto [ec, n] = co_await bhttp::async_write(stream, head, net::as_tuple(net::use_awaitable));
        co_return !ec;
    }

    // Writes the reply; false when the connection must not be used again (an injected reset, or a
    // write error).
    net::awaitable<bool> send(Stream& stream, const Request& req, Reply& reply, LogRecord& record, bool cdn,
                              std::vector<char>& chunk) {
        const bool head = req.method() == bhttp::verb::head;
        std::optional<Fd> fd;
        if (reply.file != nullptr && !head) {
            fd.emplace(reply.file->diskPath);
            if (fd->fd < 0) {
                const auto message =
                    fmt::format("cannot open {}: {}", reply.file->diskPath.string(), std::strerror(errno));
                util::logger("hubsim")->error("{}", message);
                reply = errorReply(bhttp::status::internal_server_error, "", message);
            }
        }
        const std::uint64_t length = reply.file != nullptr ? reply.length : reply.text.size();
        reply.head.version(req.version());
        reply.head.keep_alive(req.keep_alive());
        reply.head.content_length(length);

        BodyFaults plan;
        if (reply.file != nullptr && !head && !reply.faultKey.empty())
            plan = faults_.planBody(reply.faultKey, length);
        std::vector<std::string> struck;
        if (record.fault) struck.push_back(*record.fault);
        if (plan.resetAt) struck.push_back("reset");
        if (plan.stallAt) struck.push_back("stall");
        if (plan.corruptAt) struck.push_back("corrupt");
        if (!struck.empty()) record.fault = join(struck, 0, struck.size(), ",");

        auto& tcpStream = beast::get_lowest_layer(stream);
        tcpStream.expires_after(kWriteTimeout);
        bhttp::response_serializer<bhttp::empty_body> serializer(reply.head);
        auto [headerError, headerBytes] =
            co_await bhttp::async_write_header(stream, serializer, net::as_tuple(net::use_awaitable));
        if (headerError) co_return false;
        if (head || length == 0) co_return true;
        if (reply.file == nullptr) {
            tcpStream.expires_after(kWriteTimeout);
            auto [ec, n] =
                co_await net::async_write(stream, net::buffer(reply.text), net::as_tuple(net::use_awaitable));
            record.bytes = n;
            co_return !ec;
        }

        const std::uint64_t rate = cdn ? faults_.options().cdnBytesPerSecond : 0;
        // A capped connection writes small pieces, so the pacing stays smooth.
        const std::size_t pieceSize = rate > 0 ? std::clamp<std::uint64_t>(rate / 16, 4096, kChunk) : kChunk;
        chunk.resize(kChunk);
        const auto started = std::chrono::steady_clock::now();
        net::steady_timer timer(stream.get_executor());
        bool stalled = false;
        std::uint64_t sent = 0;
        while (sent < length) {
            if (plan.resetAt && *plan.resetAt == sent) {
                // The connection ends mid-body without a TLS close_notify. A FIN, not an RST: an RST
                // would make the client's kernel drop bytes already received, and tests count them.
                boost::system::error_code ignored;
                tcpStream.socket().shutdown(tcp::socket::shutdown_both, ignored);
                tcpStream.socket().close(ignored);
                co_return false;
            }
            if (plan.stallAt && *plan.stallAt == sent && !stalled) {
                stalled = true;
                timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(faults_.options().stallSeconds)));
                co_await timer.async_wait(net::as_tuple(net::use_awaitable));
            }
            std::uint64_t n = std::min<std::uint64_t>(pieceSize, length - sent);
            if (plan.resetAt && *plan.resetAt > sent) n = std::min(n, *plan.resetAt - sent);
            if (plan.stallAt && *plan.stallAt > sent) n = std::min(n, *plan.stallAt - sent);
            const ssize_t got = ::pread(fd->fd, chunk.data(), n, static_cast<off_t>(reply.offset + sent));
            if (got <= 0) {
                util::logger("hubsim")->error("cannot read {} error={}", reply.file->diskPath.string(),
                                              got < 0 ? std::strerror(errno) : "file shrank");
                co_return false;
            }
            n = static_cast<std::uint64_t>(got);
            if (plan.corruptAt && *plan.corruptAt >= sent && *plan.corruptAt < sent + n)
                chunk[*plan.corruptAt - sent] = static_cast<char>(~chunk[*plan.corruptAt - sent]);
            tcpStream.expires_after(kWriteTimeout);
            auto [ec, written] = co_await net::async_write(stream, net::buffer(chunk.data(), n),
                                                           net::as_tuple(net::use_awaitable));
            sent += written;
            record.bytes = sent;
            if (ec) co_return false;
            if (rate > 0) {
                const auto due =
                    started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(sent) / rate));
                if (due > std::chrono::steady_clock::now()) {
                    timer.expires_at(due);
                    co_await timer.async_wait(net::as_tuple(net::use_awaitable));
                }
            }
        }
        co_return true;
    }

    // ---- Hub listener ----

    Reply handleHub(const Request& req, const std::string& address, LogRecord& record) {
        auto parsed = urls::parse_origin_form(req.target());
        if (!parsed) return errorReply(bhttp::status::bad_request, "", "malformed request target");
        const urls::url_view url = *parsed;
        std::vector<std::string> segments;
        std::vector<std::string> encoded;
        for (auto s : url.segments()) segments.push_back(s);
        for (auto s : url.encoded_segments()) encoded.emplace_back(s);

        RequestClass cls = RequestClass::Other;
        if (!segments.empty() && segments[0] == "api")
            cls = RequestClass::Api;
        else if (std::find(segments.begin(), segments.end(), "resolve") != segments.end())
            cls = RequestClass::Resolvers;
        record.requestClass = className(cls);

        const std::string token = bearerToken(req);
        const Quota quota = limiter_.take(cls, token.empty() ? "ip " + address : "token " + token,
                                          std::chrono::steady_clock::now());
        if (quota.limited) record.window = quota.windowNumber;
        Reply reply;
        if (!quota.allowed) {
            reply =
                errorReply(bhttp::status::too_many_requests, "",
                           fmt::format("You have been rate-limited; you can retry this action in {} seconds.",
                                       quota.resetSeconds));
            reply.head.set(bhttp::field::retry_after, std::to_string(quota.resetSeconds));
            record.fault = "rate-limit";
        } else if (faults_.fail(std::string(url.path()))) {
            reply = errorReply(static_cast<bhttp::status>(faults_.options().failStatus), "",
                               "injected failure (--fail-rate/--fail-first)");
            record.fault = "fail";
        } else if (cls == RequestClass::Api) {
            reply = handleApi(req, url, segments, encoded);
        } else if (cls == RequestClass::Resolvers) {
            reply = handleResolve(req, url, segments, encoded, token, record);
        } else {
            reply = errorReply(bhttp::status::not_found, "", "not a Hub endpoint served by hfwarm-hubsim");
        }
        if (quota.limited) {
            reply.head.set("RateLimit", quota.rateLimitHeader(cls));
            reply.head.set("RateLimit-Policy", quota.policyHeader(cls));
        }
        return reply;
    }

    static std::string bearerToken(const Request& req) {
        const std::string_view value = req[bhttp::field::authorization];
        return value.starts_with("Bearer ") ? std::string(value.substr(7)) : std::string();
    }

    bool authorized(const std::string& token) const {
        return !token.empty() &&
               std::find(options_.tokens.begin(), options_.tokens.end(), token) != options_.tokens.end();
    }

    struct RepoRef {
        const Repo* repo = nullptr;
        std::optional<std::string> redirectId;  // renamed, or the id in another letter case
    };

    RepoRef findRepo(RepoType type, const std::string& id) const {
        if (const Repo* repo = store_.find(type, id)) {
            if (repo->renamedTo) return {nullptr, repo->renamedTo};
            return {repo, std::nullopt};
        }
        if (const Repo* repo = store_.findIgnoringCase(type, id)) return {nullptr, repo->id};
        return {};
    }

    // The Hub answers a renamed repo (and an id in the wrong case) with a relative 307 to the same
    // path under the new id.
    static Reply redirectReply(const urls::url_view& url, const std::vector<std::string>& encoded,
                               std::size_t idFrom, std::size_t idTo, const std::string& newId) {
        std::string location;
        for (std::size_t i = 0; i < idFrom; ++i) location += "/" + encoded[i];
        location += "/" + newId;
        for (std::size_t i = idTo; i < encoded.size(); ++i) location += "/" + encoded[i];
        if (url.has_query()) location += "?" + std::string(url.encoded_query());
        Reply r = textReply(bhttp::status::temporary_redirect, fmt::format("Redirecting to {}", location),
                            "text/plain; charset=utf-8");
        r.head.set(bhttp::field::location, location);
        return r;
    }

    static Reply repoNotFound(RepoType type, const std::string& id) {
        return errorReply(bhttp::status::not_found, "RepoNotFound",
                          fmt::format("Repository not found: no {} '{}' in the fixtures",
                                      type == RepoType::Model ? "model" : "dataset", id));
    }

    static Reply revisionNotFound(const std::string& revision) {
        return errorReply(bhttp::status::not_found, "RevisionNotFound",
                          fmt::format("Invalid rev id: {}", revision));
    }

    // Revision names with a slash may come unencoded (the JS client does not encode them):
    // `refs/pr/N` and `refs/convert/X` then span three segments.
    static std::size_t revisionSpan(const std::vector<std::string>& segments, std::size_t at) {
        if (at + 2 < segments.size() && segments[at] == "refs" &&
            (segments[at + 1] == "pr" || segments[at + 1] == "convert"))
            return 3;
        return 1;
    }

    Reply handleApi(const Request& req, const urls::url_view& url, const std::vector<std::string>& segments,
                    const std::vector<std::string>& encoded) {
        if (segments.size() < 3 || (segments[1] != "models" && segments[1] != "datasets"))
            return errorReply(bhttp::status::not_found, "", "not a Hub endpoint served by hfwarm-hubsim");
        const RepoType type = segments[1] == "models" ? RepoType::Model : RepoType::Dataset;
        // /api/{type}s/{id}[/{action}/{revision}[/{path}]], where id has one or two segments.
        std::size_t action = 0;
        for (std::size_t i = 3; i <= 4 && i < segments.size(); ++i) {
            if (segments[i] == "revision" || segments[i] == "tree" || segments[i] == "paths-info") {
                action = i;
                break;
            }
        }
        if (action == 0 && segments.size() <= 4) action = segments.size();  // repo info at main
        if (action == 0)
            return errorReply(bhttp::status::not_found, "", "not a Hub endpoint served by hfwarm-hubsim");
        const std::string id = join(segments, 2, action);
        const RepoRef ref = findRepo(type, id);
        if (ref.redirectId) return redirectReply(url, encoded, 2, action, *ref.redirectId);
        if (ref.repo == nullptr) return repoNotFound(type, id);
        const Repo& repo = *ref.repo;

        const std::string verb = action < segments.size() ? segments[action] : "revision";
        const std::size_t span = action + 1 < segments.size() ? revisionSpan(segments, action + 1) : 1;
        const std::string revision =
            action + 1 < segments.size() ? join(segments, action + 1, action + 1 + span) : "main";
        const Tree* tree = repo.resolve(revision);
        if (tree == nullptr) return revisionNotFound(revision);
        const bool hostile = faults_.options().hostileListing;

        if (verb == "revision") {
            if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head)
                return errorReply(bhttp::status::method_not_allowed, "", "use GET");
            json info = repoInfoJson(repo, *tree, truthy(param(url, "blobs").value_or("")));
            if (hostile)
                for (auto& entry : hostileEntriesJson(true)) info["siblings"].push_back(std::move(entry));
            return jsonReply(info);
        }
        if (verb == "tree") {
            const std::string path = join(segments, action + 1 + span, segments.size());
            if (!tree->hasDirectory(path))
                return errorReply(bhttp::status::not_found, "EntryNotFound",
                                  fmt::format("{} does not exist on \"{}\"", path, revision));
            const bool expand = truthy(param(url, "expand").value_or(""));
            const bool recursive = truthy(param(url, "recursive").value_or(""));
            json all = json::array();
            if (hostile && path.empty()) all = hostileEntriesJson(false);
            for (const auto& item : tree->list(path, recursive))
                all.push_back(treeItemJson(item, *tree, expand));
            return pageReply(req, url, std::move(all), expand);
        }
        return pathsInfo(req, *tree);
    }

    // One page of a listing, with `Link: <next>; rel="next"` while more remain.
    Reply pageReply(const Request& req, const urls::url_view& url, json all, bool expand) const {
        std::size_t pageSize = std::max(1u, options_.pageSize);
        if (expand) pageSize = std::min<std::size_t>(pageSize, 50);  // the Hub's page size with expand
        std::size_t cursor = 0;
        if (auto c = param(url, "cursor")) cursor = std::strtoull(c->c_str(), nullptr, 10);
        json page = json::array();
        for (std::size_t i = cursor; i < all.size() && i < cursor + pageSize; ++i)
            page.push_back(std::move(all[i]));
        Reply r = jsonReply(page);
        if (cursor + pageSize < all.size()) {
            urls::url next(url);
            next.params().set("cursor", std::to_string(cursor + pageSize));
            const std::string_view host = req[bhttp::field::host];
            r.head.set(bhttp::field::link, fmt::format("<https://{}{}>; rel=\"next\"", host, next.buffer()));
        }
        return r;
    }

    static Reply pathsInfo(const Request& req, const Tree& tree) {
        if (req.method() != bhttp::verb::post)
            return errorReply(bhttp::status::method_not_allowed, "", "use POST");
        std::vector<std::string> paths;
        bool expand = false;
        if (req[bhttp::field::content_type].find("json") != std::string_view::npos) {
            const json body = json::parse(req.body(), nullptr, false);
            if (!body.is_object() || !body.contains("paths") || !body["paths"].is_array())
                return errorReply(bhttp::status::bad_request, "", "expected a JSON body {\"paths\": [...]}");
            for (const auto& p : body["paths"])
                if (p.is_string()) paths.push_back(p.get<std::string>());
            if (body.contains("expand") && body["expand"].is_boolean()) expand = body["expand"].get<bool>();
        } else {
            auto query = urls::parse_query(req.body());
            if (!query) return errorReply(bhttp::status::bad_request, "", "malformed form body");
            const urls::encoding_opts form(true);  // form bodies encode spaces as '+'
            for (auto p : *query) {
                const std::string key = p.key.decode(form);
                if (key == "paths") paths.push_back(p.value.decode(form));
                if (key == "expand") expand = truthy(p.value.decode(form));
            }
        }
        json out = json::array();
        for (const auto& path : paths) {
            if (const FileEntry* f = tree.file(path))
                out.push_back(treeItemJson({f->path, f->blobId, f}, tree, expand));
            else if (!path.empty() && tree.hasDirectory(path))
                out.push_back(treeItemJson({path, tree.dirOids.at(path), nullptr}, tree, expand));
        }
        return jsonReply(out);
    }

    Reply handleResolve(const Request& req, const urls::url_view& url,
                        const std::vector<std::string>& segments, const std::vector<std::string>& encoded,
                        const std::string& token, LogRecord& record) {
        if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head)
            return errorReply(bhttp::status::method_not_allowed, "", "use GET or HEAD");
        const bool dataset = segments[0] == "datasets";
        const std::size_t idFrom = dataset ? 1 : 0;
        std::size_t at = idFrom + 1;
        while (at < segments.size() && segments[at] != "resolve") ++at;
        if (at > idFrom + 2 || at + 2 >= segments.size())
            return errorReply(bhttp::status::not_found, "", "expected /{repo}/resolve/{revision}/{path}");
        const RepoType type = dataset ? RepoType::Dataset : RepoType::Model;
        const std::string id = join(segments, idFrom, at);
        const RepoRef ref = findRepo(type, id);
        if (ref.redirectId) return redirectReply(url, encoded, idFrom, at, *ref.redirectId);
        if (ref.repo == nullptr) return repoNotFound(type, id);
        const Repo& repo = *ref.repo;
        if (repo.gated && !authorized(token))
            return errorReply(
                bhttp::status::unauthorized, "GatedRepo",
                fmt::format("Access to model {} is restricted. You must have access to it and be "
                            "authenticated to access it. Please log in.",
                            repo.id));
        const std::size_t span = revisionSpan(segments, at + 1);
        const std::string revision = join(segments, at + 1, at + 1 + span);
        const Tree* tree = repo.resolve(revision);
        if (tree == nullptr) return revisionNotFound(revision);
        const std::string path = join(segments, at + 1 + span, segments.size());
        const FileEntry* file = tree->file(path);
        if (file == nullptr) {
            Reply r = errorReply(bhttp::status::not_found, "EntryNotFound", "Entry not found");
            r.head.set("X-Repo-Commit", tree->commit);
            return r;
        }
        if (file->lfs()) {
            const std::uint64_t expires =
                static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count()) +
                options_.urlTtlSeconds;
            const std::string location = fmt::format("{}/lfs/{}?expires={}&sig={}", cdnOrigin_, file->sha256,
                                                     expires, signer_.sign(file->sha256, expires));
            // Like the Hub, the redirect has a small body: its length is not the file's size.
            Reply r = textReply(bhttp::status::found, fmt::format("Found. Redirecting to {}", location),
                                "text/plain; charset=utf-8");
            r.head.set(bhttp::field::location, location);
            r.head.set("X-Linked-Etag", fmt::format("\"{}\"", file->sha256));
            r.head.set("X-Linked-Size", std::to_string(file->size));
            r.head.set("X-Repo-Commit", tree->commit);
            return r;
        }
        bool rangeIgnored = false;
        Reply r = fileReply(*file, req, faults_.options().ignoreRange, rangeIgnored);
        if (rangeIgnored) record.fault = "ignore-range";
        r.head.set(bhttp::field::etag, fmt::format("\"{}\"", file->blobId));
        r.head.set("X-Repo-Commit", tree->commit);
        r.head.set(bhttp::field::content_type, "text/plain; charset=utf-8");
        r.faultKey = "git " + file->blobId;
        return r;
    }

    // ---- CDN listener ----

    Reply handleCdn(const Request& req, LogRecord& record) {
        record.requestClass = className(RequestClass::Cdn);
        if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head)
            return errorReply(bhttp::status::method_not_allowed, "", "use GET or HEAD");
        auto parsed = urls::parse_origin_form(req.target());
        if (!parsed) return errorReply(bhttp::status::bad_request, "", "malformed request target");
        std::vector<std::string> segments;
        for (auto s : parsed->segments()) segments.push_back(s);
        if (segments.size() != 2 || segments[0] != "lfs")
            return errorReply(bhttp::status::not_found, "", "no such object");
        const std::string& object = segments[1];
        const auto expires = param(*parsed, "expires");
        const auto signature = param(*parsed, "sig");
        const std::uint64_t expiresAt = expires ? std::strtoull(expires->c_str(), nullptr, 10) : 0;
        if (!expires || !signature || !signer_.valid(object, expiresAt, *signature))
            return textReply(bhttp::status::forbidden, "AccessDenied: invalid signature", "text/plain");
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        if (static_cast<std::uint64_t>(now) > expiresAt)
            return textReply(bhttp::status::forbidden, "AccessDenied: Request has expired", "text/plain");
        if (faults_.fail("cdn " + object)) {
            record.fault = "fail";
            return textReply(static_cast<bhttp::status>(faults_.options().failStatus), "injected failure",
                             "text/plain");
        }
        const FileEntry* file = store_.lfsBlob(object);
        if (file == nullptr) return textReply(bhttp::status::not_found, "NoSuchKey", "text/plain");
        bool rangeIgnored = false;
        Reply r = fileReply(*file, req, faults_.options().ignoreRange, rangeIgnored);
        if (rangeIgnored) record.fault = "ignore-range";
        if (const auto most = faults_.options().cdnMaxRequest;
            most > 0 && r.file != nullptr && r.length > most) {
            record.fault = "max-request";
            return textReply(bhttp::status::bad_request,
                             fmt::format("request of {} bytes refused: ask for ranges of at most {} bytes",
                                         r.length, most),
                             "text/plain");
        }
        r.head.set(bhttp::field::etag, fmt::format("\"{}\"", file->sha256));
        r.faultKey = "lfs " + file->sha256;
        return r;
    }

    net::io_context& ioc_;
    const ServeOptions& options_;
    RepoStore store_;
    ssl::context& tls_;
    RequestLog log_;
    std::size_t unlogged_ = 0;       // requests read whose log line is not written yet
    std::uint64_t connections_ = 0;  // accepted so far
    std::string cdnOrigin_;
    RateLimiter limiter_;
    FaultInjector faults_;
    UrlSigner signer_;
};

void writeReadyFile(const fs::path& file, const json& content) {
    const fs::path temp = file.string() + ".tmp";
    {
        std::ofstream out(temp, std::ios::trunc);
        out << content.dump() << "\n";
        if (!out.flush()) throw std::runtime_error(fmt::format("cannot write ready file {}", temp.string()));
    }
    fs::rename(temp, file);
}

}  // namespace

void serve(const ServeOptions& options) {
    auto log = util::logger("hubsim");
    const auto started = std::chrono::steady_clock::now();
    RepoStore store = RepoStore::load(options.fixtures, options.lfsThreshold);
    log->info("fixtures indexed repos={} seconds={:.1f}", store.repoCount(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());

    const fs::path tlsDir = options.tlsDir ? *options.tlsDir
                            : options.readyFile
                                ? fs::absolute(*options.readyFile).parent_path()
                                : fs::temp_directory_path() / fmt::format("hfwarm-hubsim-{}", ::getpid());
    const TlsMaterial material = prepareTls(tlsDir);
    ssl::context tls(ssl::context::tls_server);
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    tls.use_certificate_chain(net::buffer(material.chainPem));
    tls.use_private_key(net::buffer(material.keyPem), ssl::context::pem);

    net::io_context ioc(1);
    const auto address = net::ip::make_address(options.bindAddress);
    tcp::acceptor hub(ioc, {address, options.port});
    tcp::acceptor cdn(ioc, {address, options.cdnPort});
    // URLs name the address clients connect to: loopback when bound to every address.
    const std::string host = address.is_unspecified() ? "127.0.0.1"
                             : address.is_v6()        ? fmt::format("[{}]", options.bindAddress)
                                                      : options.bindAddress;
    const std::string hubUrl = fmt::format("https://{}:{}", host, hub.local_endpoint().port());
    const std::string cdnUrl = fmt::format("https://{}:{}", host, cdn.local_endpoint().port());

    Server server(ioc, options, std::move(store), tls,
                  options.logFile ? RequestLog(*options.logFile) : RequestLog(), cdnUrl);
    server.start(std::move(hub), false);
    server.start(std::move(cdn), true);

    net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec) ioc.stop();
    });

    const json ready = {
        {"hub", hubUrl}, {"cdn", cdnUrl}, {"ca", material.caFile.string()}, {"pid", ::getpid()}};
    if (options.readyFile) writeReadyFile(*options.readyFile, ready);
    std::cout << ready.dump() << std::endl;
    log->info("serving hub={} cdn={} ca={}", hubUrl, cdnUrl, material.caFile.string());
    ioc.run();
}

}  // namespace hfwarm::hubsim
