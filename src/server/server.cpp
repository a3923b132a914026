#include "hfwarm/server/server.hpp"

#include "hfwarm/protocol/messages.hpp"
#include "hfwarm/util/async.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm_version.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <set>
#include <system_error>
#include <utility>

namespace hfwarm::server {

namespace {

using Socket = net::local::stream_protocol::socket;
using Acceptor = net::local::stream_protocol::acceptor;
constexpr auto asTuple = net::as_tuple(net::use_awaitable);

// Methods answered by the Handler; anything else that is not version/subscribe is -32601.
constexpr std::array<std::string_view, 11> kHandlerMethods = {
    protocol::method::status, protocol::method::lookup,  protocol::method::sync,    protocol::method::promote,
    protocol::method::reload, protocol::method::pause,   protocol::method::resume,  protocol::method::verify,
    protocol::method::prune,  protocol::method::metrics, protocol::method::shutdown};

std::string knownMethods() {
    std::string text;
    for (auto name : kHandlerMethods) text += std::string(name) + ", ";
    return text + "subscribe, version";
}

std::string errnoText(int error) {
    return std::generic_category().message(error);
}

// Whether something accepts on the Unix socket at `path`: 0 when a connect succeeds (or the
// backlog is full, which also means a live listener), ECONNREFUSED for a stale file, another errno
// otherwise. Non-blocking so that a hung daemon cannot hang this one.
int probeSocket(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    int result = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
    int error = result == 0 ? 0 : errno;
    ::close(fd);
    if (error == EAGAIN || error == EINPROGRESS) return 0;
    return error;
}

}  // namespace

Result<void> checkSocketDir(const std::filesystem::path& dir) {
    const uid_t me = ::geteuid();
    const std::string shown = dir.string();
    struct stat link {};
    if (::lstat(dir.c_str(), &link) != 0)
        return makeError("cannot inspect the socket directory " + shown + ": " + errnoText(errno));
    if (S_ISLNK(link.st_mode) && link.st_uid != me && link.st_uid != 0)
        return makeError("refusing the socket directory " + shown + ": it is a symlink owned by user " +
                         std::to_string(link.st_uid) +
                         ", who could point it elsewhere at any time; remove it " +
                         "(as its owner or root) or choose another --socket");
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        return makeError("cannot inspect the socket directory " + shown + ": " + errnoText(errno));
    if (!S_ISDIR(st.st_mode))
        return makeError("cannot use " + shown +
                         " as the socket directory: it is not a directory; remove it "
                         "or choose another --socket");
    if (st.st_uid != me && st.st_uid != 0)
        return makeError("refusing the socket directory " + shown + ": it belongs to user " +
                         std::to_string(st.st_uid) + ", not to you (" + std::to_string(me) +
                         "), so they could replace the socket; remove it (as its owner or root) and start "
                         "again, or set XDG_RUNTIME_DIR or choose another --socket");
    if ((st.st_mode & 0022) != 0)
        return makeError("refusing the socket directory " + shown + ": its mode " +
                         fmt::format("{:04o}", st.st_mode & 07777) +
                         " lets other users replace the socket; run chmod go-w " + shown +
                         " or choose another --socket");
    return {};
}

struct Connection;

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
    Impl(net::any_io_executor executor, Options options, Handler& handler)
        : executor_(std::move(executor)),
          options_(std::move(options)),
          handler_(handler),
          acceptor_(executor_),
          closed_(executor_) {
        if (options_.version.empty()) options_.version = HFWARM_VERSION;
    }

    net::awaitable<void> acceptLoop();
    net::awaitable<void> reject(Socket socket);
    net::awaitable<protocol::Response> dispatch(Connection& connection, protocol::Request request);
    std::size_t subscribers() const;
    std::size_t subscriberLimit() const {
        if (options_.maxSubscribers > 0) return options_.maxSubscribers;
        return std::max<std::size_t>(1, options_.maxClients / 2);
    }

    net::any_io_executor executor_;
    Options options_;
    Handler& handler_;
    Acceptor acceptor_;
    std::set<Connection*> connections_;
    util::Event closed_;  // set once stopping and no connection is left
    bool stopping_ = false;
    bool ownsSocketFile_ = false;
    ino_t socketInode_ = 0;
    dev_t socketDevice_ = 0;
    std::uint64_t nextConnectionId_ = 1;
    std::shared_ptr<spdlog::logger> log_ = util::logger("server");
};

// One client. The reader coroutine reads and answers requests in order; the writer coroutine is
// the only one that writes, so replies and notifications never interleave. Both hold a shared_ptr;
// the connection leaves the server's set when both have ended.
struct Connection : std::enable_shared_from_this<Connection> {
    Connection(std::shared_ptr<Server::Impl> server, Socket socket)
        : server_(std::move(server)),
          socket_(std::move(socket)),
          wake_(socket_.get_executor()),
          idle_(socket_.get_executor()),
          room_(socket_.get_executor()),
          id_(server_->nextConnectionId_++) {
        server_->connections_.insert(this);
    }
    ~Connection() {
        server_->connections_.erase(this);
        if (server_->stopping_ && server_->connections_.empty()) server_->closed_.set();
    }

    net::awaitable<void> readLoop();
    net::awaitable<void> writeLoop();

    // Queues a reply. The reader then waits in waitForRoom() before it reads the next request.
    void enqueue(std::shared_ptr<const std::string> line) {
        if (dropped_) return;
        queuedBytes_ += line->size();
        queue_.push_back(std::move(line));
        wake_.set();
    }

    // Queues a notification; a subscriber that would go past the limit is dropped (a broadcast
    // cannot wait for one slow reader).
    void notify(std::shared_ptr<const std::string> line) {
        if (dropped_) return;
        if (queuedBytes_ + line->size() > server_->options_.maxQueuedNotificationBytes) {
            server_->log_->warn(
                "dropping subscriber that does not read its notifications client={} queued={}", id_,
                queuedBytes_);
            drop();
            return;
        }
        enqueue(std::move(line));
    }

    bool full() const { return queuedBytes_ >= server_->options_.maxQueuedBytes; }

    // Until the writer has brought the queue under the limit: a client that sends requests without
    // reading the replies is not read from, so its requests cost neither memory nor time. A dropped
    // connection or a stopping server ends the wait too: the reader then has nothing more to read.
    net::awaitable<void> waitForRoom() {
        while (full() && !dropped_ && !server_->stopping_) {
            room_.reset();
            co_await room_.wait();
        }
    }

    // Writes what is queued, then closes.
    void finish() {
        closing_ = true;
        wake_.set();
    }

    // Closes now; queued lines are lost. The pending write (if any) still owns its buffer in queue_.
    void drop() {
        closing_ = true;
        dropped_ = true;
        boost::system::error_code ignored;
        socket_.close(ignored);
        wake_.set();
        room_.set();
    }

    void armIdleTimer() {
        if (subscribed_) return;
        idle_.expires_after(server_->options_.idleTimeout);
        // A timer that expired just as a line arrived may still report success after cancel():
        // only the wait of the current read may close the client.
        idle_.async_wait(
            [weak = weak_from_this(), generation = ++idleGeneration_](boost::system::error_code ec) {
                if (ec) return;
                if (auto self = weak.lock(); self && self->idleGeneration_ == generation && !self->busy_) {
                    self->server_->log_->debug("closing idle client client={}", self->id_);
                    self->drop();
                }
            });
    }

    std::shared_ptr<Server::Impl> server_;
    Socket socket_;
    util::Event wake_;  // set when there is a line to write or the connection closes; the writer waits
    net::steady_timer idle_;
    util::Event room_;  // set when the queue went under the limit or the connection closes; the reader waits
    std::deque<std::shared_ptr<const std::string>> queue_;
    std::size_t queuedBytes_ = 0;
    std::uint64_t id_;
    std::uint64_t idleGeneration_ = 0;
    bool subscribed_ = false;
    bool busy_ = false;     // a request is being handled
    bool closing_ = false;  // the writer ends once the queue is empty
    bool dropped_ = false;  // closed without flushing
};

net::awaitable<void> Connection::readLoop() {
    auto self = shared_from_this();
    std::string buffer;
    buffer.reserve(4096);
    const std::size_t maxLine = server_->options_.maxLineBytes;
    while (!dropped_ && !server_->stopping_) {
        armIdleTimer();
        co_await waitForRoom();
        if (dropped_ || server_->stopping_) break;
        auto [ec, length] =
            co_await net::async_read_until(socket_, net::dynamic_buffer(buffer, maxLine + 1), '\n', asTuple);
        idle_.cancel();
        ++idleGeneration_;
        if (ec == net::error::not_found) {
            server_->log_->warn("closing client that sent a line over the limit client={} limit={}", id_,
                                maxLine);
            enqueue(std::make_shared<const std::string>(protocol::encode(
                protocol::makeError(nullptr, protocol::ErrorCode::LineTooLong,
                                    "request line exceeds the limit of " + std::to_string(maxLine) +
                                        " bytes; the connection is closed; send one JSON object a line"))));
            break;
        }
        if (ec) {
            if (ec != net::error::eof && ec != net::error::operation_aborted) {
                server_->log_->debug("client read failed client={} error={}", id_, ec.message());
            }
            break;
        }
        std::string line = buffer.substr(0, length - 1);
        buffer.erase(0, length);
        auto decoded = protocol::decodeRequest(line);
        if (auto* error = std::get_if<protocol::Response>(&decoded)) {
            server_->log_->debug("bad request client={} code={}", id_, error->error->code);
            enqueue(std::make_shared<const std::string>(protocol::encode(*error)));
            continue;
        }
        auto& request = std::get<protocol::Request>(decoded);
        bool reply = request.hasId;
        busy_ = true;
        auto response = co_await server_->dispatch(*this, std::move(request));
        busy_ = false;
        if (reply) enqueue(std::make_shared<const std::string>(protocol::encode(response)));
    }
    finish();
}

net::awaitable<void> Connection::writeLoop() {
    auto self = shared_from_this();
    for (;;) {
        if (queue_.empty()) {
            if (closing_) break;
            wake_.reset();
            co_await wake_.wait();
            continue;
        }
        auto [ec, written] = co_await net::async_write(socket_, net::buffer(*queue_.front()), asTuple);
        if (ec) {
            if (ec != net::error::operation_aborted && ec != net::error::broken_pipe &&
                ec != net::error::connection_reset) {
                server_->log_->debug("client write failed client={} error={}", id_, ec.message());
            }
            drop();
            break;
        }
        queuedBytes_ -= queue_.front()->size();
        queue_.pop_front();
        if (!full()) room_.set();
    }
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
    idle_.cancel();
    room_.set();
}

net::awaitable<protocol::Response> Server::Impl::dispatch(Connection& connection, protocol::Request request) {
    auto id = request.id;
    if (request.method == protocol::method::version) {
        co_return protocol::makeResult(id,
                                       protocol::VersionResult{options_.version, protocol::kProtocolVersion});
    }
    if (request.method == protocol::method::subscribe) {
        if (!connection.subscribed_ && subscribers() >= subscriberLimit()) {
            co_return protocol::makeError(id, protocol::ErrorCode::TooManyClients,
                                          "too many subscribers: hfwarmd keeps at most " +
                                              std::to_string(subscriberLimit()) +
                                              " subscriptions so that other clients can connect; poll "
                                              "status instead, or retry later");
        }
        connection.subscribed_ = true;
        connection.idle_.cancel();
        co_return protocol::makeResult(id, json{{"subscribed", true}});
    }
    bool known = false;
    for (auto name : kHandlerMethods) known = known || name == request.method;
    if (!known) {
        co_return protocol::makeError(
            id, protocol::ErrorCode::MethodNotFound,
            "method not found: \"" + request.method + "\"; hfwarmd answers " + knownMethods());
    }
    std::string failure;
    try {
        auto response = co_await handler_.handle(std::move(request));
        response.id = id;
        co_return response;
    } catch (const std::exception& e) {
        failure = e.what();
    }
    log_->error("request failed with an exception client={} error={}", connection.id_, failure);
    co_return protocol::makeError(id, protocol::ErrorCode::InternalError,
                                  "internal error: " + failure + "; see hfwarmd's log");
}

net::awaitable<void> Server::Impl::reject(Socket socket) {
    auto keep = shared_from_this();
    auto line = protocol::encode(protocol::makeError(nullptr, protocol::ErrorCode::TooManyClients,
                                                     "too many clients: hfwarmd serves at most " +
                                                         std::to_string(options_.maxClients) +
                                                         " connections at once; retry later"));
    // A fresh socket's send buffer is empty, so this write completes at once.
    co_await net::async_write(socket, net::buffer(line), asTuple);
    boost::system::error_code ignored;
    socket.shutdown(Socket::shutdown_both, ignored);
    socket.close(ignored);
}

net::awaitable<void> Server::Impl::acceptLoop() {
    auto keep = shared_from_this();
    while (!stopping_) {
        auto [ec, socket] = co_await acceptor_.async_accept(asTuple);
        if (stopping_) break;
        if (ec) {
            if (ec == net::error::operation_aborted) break;
            log_->warn("accept failed path={} error={}", options_.socketPath.string(), ec.message());
            // Out of descriptors: give the running clients a moment to finish instead of spinning.
            net::steady_timer pause(executor_, std::chrono::milliseconds(100));
            co_await pause.async_wait(asTuple);
            continue;
        }
        if (connections_.size() >= options_.maxClients) {
            log_->warn("refusing client: too many clients limit={}", options_.maxClients);
            net::co_spawn(executor_, reject(std::move(socket)), util::logFailure(log_, "refuse client"));
            continue;
        }
        // A small kernel buffer too: what a client that never reads can make the daemon compute is
        // this plus maxQueuedBytes, not the kernel's default of about 200 KiB.
        boost::system::error_code ignored;
        socket.set_option(net::socket_base::send_buffer_size(static_cast<int>(options_.maxQueuedBytes)),
                          ignored);
        auto connection = std::make_shared<Connection>(keep, std::move(socket));
        log_->debug("client connected client={} clients={}", connection->id_, connections_.size());
        const auto name = fmt::format("client={}", connection->id_);
        net::co_spawn(executor_, connection->readLoop(), util::logFailure(log_, "read " + name));
        net::co_spawn(executor_, connection->writeLoop(), util::logFailure(log_, "write " + name));
    }
}

Server::Server(net::any_io_executor executor, Options options, Handler& handler)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options), handler)) {}

Server::~Server() {
    stop();
}

Result<void> Server::listen() {
    auto& o = impl_->options_;
    const std::string path = o.socketPath.string();
    boost::system::error_code ec;
    if (o.activatedFd) {
        impl_->acceptor_.assign(net::local::stream_protocol(), *o.activatedFd, ec);
        if (ec) {
            return makeError("cannot use the socket passed by systemd (descriptor " +
                             std::to_string(*o.activatedFd) + "): " + ec.message());
        }
        impl_->log_->info("listening on socket passed by systemd fd={}", *o.activatedFd);
        return {};
    }
    if (path.empty()) return makeError("no socket path given; pass --socket PATH or set HFWARM_SOCKET");
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
        return makeError("socket path " + path + " is " + std::to_string(path.size()) +
                         " bytes long; Unix sockets allow at most " +
                         std::to_string(sizeof(sockaddr_un::sun_path) - 1) + "; choose a shorter --socket");
    }
    auto parent = o.socketPath.parent_path();
    if (!parent.empty()) {
        std::error_code fsError;
        if (!std::filesystem::exists(std::filesystem::symlink_status(parent, fsError))) {
            if (parent.has_parent_path()) std::filesystem::create_directories(parent.parent_path(), fsError);
            // Created 0700 from the start: there is no moment when someone else could enter it.
            if (fsError || (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST)) {
                return makeError("cannot create the socket directory " + parent.string() + ": " +
                                 (fsError ? fsError.message() : errnoText(errno)) +
                                 "; create it or choose another --socket");
            }
            // Other users need search permission on the directory to reach a group-accessible socket.
            mode_t dirMode = 0700;
            if (o.mode & 0070) dirMode |= 0010;
            if (o.mode & 0007) dirMode |= 0001;
            ::chmod(parent.c_str(), dirMode);
        }
        if (auto safe = checkSocketDir(parent); !safe) return safe.error();
    }
    struct stat existing {};
    if (::lstat(path.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) {
            return makeError(path + " exists and is not a socket; remove it or choose another --socket");
        }
        int probe = probeSocket(path);
        if (probe == 0) {
            return makeError("another hfwarmd is listening on " + path + "; stop it (hfwarmctl --socket " +
                             path + " shutdown) or choose another --socket");
        }
        if (probe == ECONNREFUSED) {
            impl_->log_->info("replacing stale socket file path={}", path);
            if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
                return makeError("cannot remove the stale socket file " + path + ": " + errnoText(errno) +
                                 "; remove it by hand or choose another --socket");
            }
        } else if (probe != ENOENT) {
            return makeError("cannot check the existing socket file " + path + ": " + errnoText(probe) +
                             "; remove it or choose another --socket");
        }
    }
    auto& acceptor = impl_->acceptor_;
    net::local::stream_protocol::endpoint endpoint(path);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (ec) {
        boost::system::error_code ignored;
        acceptor.close(ignored);
        return makeError("cannot bind the socket " + path + ": " + ec.message() +
                         "; check the directory's permissions or choose another --socket");
    }
    impl_->ownsSocketFile_ = true;
    struct stat bound {};
    if (::stat(path.c_str(), &bound) == 0) {
        impl_->socketInode_ = bound.st_ino;
        impl_->socketDevice_ = bound.st_dev;
    }
    if (::chmod(path.c_str(), static_cast<mode_t>(o.mode)) != 0) {
        int error = errno;
        stop();
        return makeError("cannot set mode " + fmt::format("{:04o}", o.mode) + " on the socket " + path +
                         ": " + errnoText(error));
    }
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        stop();
        return makeError("cannot listen on the socket " + path + ": " + ec.message());
    }
    impl_->log_->info("listening path={} mode={:04o}", path, o.mode);
    return {};
}

void Server::start() {
    net::co_spawn(impl_->executor_, impl_->acceptLoop(), util::logFailure(impl_->log_, "accept loop"));
}

void Server::stop() {
    auto& impl = *impl_;
    if (impl.stopping_) return;
    impl.stopping_ = true;
    boost::system::error_code ignored;
    impl.acceptor_.close(ignored);
    if (impl.ownsSocketFile_) {
        // Only remove the file if it is still ours: a second daemon may have replaced it.
        struct stat current {};
        const std::string path = impl.options_.socketPath.string();
        if (::stat(path.c_str(), &current) == 0 && current.st_ino == impl.socketInode_ &&
            current.st_dev == impl.socketDevice_) {
            ::unlink(path.c_str());
        }
        impl.ownsSocketFile_ = false;
    }
    for (Connection* connection : impl.connections_) {
        // A read in progress ends with EOF and the reader lets the writer flush and close; a request
        // being handled still gets its reply, then the reader sees stopping_ and does the same.
        if (!connection->busy_) connection->socket_.shutdown(Socket::shutdown_receive, ignored);
        connection->room_.set();
    }
    if (impl.connections_.empty()) impl.closed_.set();
}

net::awaitable<bool> Server::waitClosed(std::chrono::steady_clock::time_point deadline) {
    // The connections hold the Impl, so it outlives this wait even if the Server goes first.
    auto impl = impl_;
    const bool closed = co_await impl->closed_.waitUntil(deadline);
    co_return closed;
}

void Server::broadcast(const protocol::Notification& notification) {
    auto line = std::make_shared<const std::string>(protocol::encode(notification));
    // notify may drop a client, which only closes its socket: the set is not modified here.
    for (Connection* connection : impl_->connections_) {
        if (connection->subscribed_) connection->notify(line);
    }
}

std::size_t Server::clientCount() const {
    return impl_->connections_.size();
}

std::size_t Server::Impl::subscribers() const {
    std::size_t count = 0;
    for (Connection* connection : connections_)
        count += connection->subscribed_ && !connection->dropped_ ? 1 : 0;
    return count;
}

std::size_t Server::subscriberCount() const {
    return impl_->subscribers();
}

const std::filesystem::path& Server::socketPath() const {
    return impl_->options_.socketPath;
}

}  // namespace hfwarm::server
