// hfwarmd's Unix socket: newline-delimited JSON-RPC 2.0 (DESIGN.md section 5).
//
// The server owns the socket file, the connections and the limits (line size, client count, idle
// time, subscriber queues). It answers `version` and `subscribe` itself, rejects unknown methods,
// and hands every other method of protocol::method to a Handler. Everything runs on the
// executor's io_context, on one thread: no locks.
#pragma once

#include "hfwarm/protocol/jsonrpc.hpp"
#include "hfwarm/util/aliases.hpp"
#include "hfwarm/util/result.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace hfwarm::server {

struct Options {
    // Where to bind. With activatedFd set, only used in messages.
    std::filesystem::path socketPath;
    // File mode of the socket; the parent directory, when the server creates it, gets 0700 plus
    // search permission for the group and others that the mode lets in. An existing parent must
    // pass checkSocketDir().
    unsigned mode = 0660;
    // Connections beyond this get one error line (-32000) and are closed.
    std::size_t maxClients = 256;
    // A connection that has not subscribed and sends nothing for this long is closed.
    std::chrono::steady_clock::duration idleTimeout = std::chrono::seconds(60);
    // Longest request line, newline excluded; a longer one gets -32001 and the connection closes.
    std::size_t maxLineBytes = protocol::kMaxLineBytes;
    // Bytes of replies waiting to be written to one client, and the size of its socket's kernel
    // send buffer. A client at the limit is not read from until it reads its replies (one reply
    // may take it past the limit). So a client that never reads holds about this much memory and
    // gets about this many bytes of answers computed for it, however many requests it sends.
    std::size_t maxQueuedBytes = 4 * 1024;
    // Bytes a subscriber may fall behind: a broadcast cannot wait, so a subscriber whose
    // notifications would go past this is dropped. Subscribers are at most maxSubscribers.
    std::size_t maxQueuedNotificationBytes = 128 * 1024;
    // Clients subscribed at once; 0: half of maxClients (at least 1). The other slots stay for
    // request/response clients, which the idle timeout frees.
    std::size_t maxSubscribers = 0;
    // A listening socket passed by systemd (see activation.hpp); the server neither binds, chmods
    // nor removes the socket file then.
    std::optional<int> activatedFd;
    // What `version` answers; empty: this build's version.
    std::string version;
};

// Answers the methods the server does not answer itself: status, lookup, sync, reload, pause,
// resume, verify, prune, metrics, shutdown. Called on the server's io_context, one call per
// request, concurrently for different clients (each client's requests are answered in order).
// Return protocol::makeResult / protocol::makeError; the server sets the id. An exception becomes
// -32603 with its message, is logged, and the server carries on.
class Handler {
  public:
    virtual ~Handler() = default;
    virtual net::awaitable<protocol::Response> handle(protocol::Request request) = 0;
};

// A folder may hold the socket only when nobody else can replace the socket in it: owned by this
// user (or root), not writable by group or others, and not a symlink owned by someone else. The
// error names the folder, the problem and what to do (as ssh and tmux check theirs).
Result<void> checkSocketDir(const std::filesystem::path& dir);

class Server {
  public:
    // `handler` must outlive every coroutine the server runs (until the io_context has returned).
    Server(net::any_io_executor executor, Options options, Handler& handler);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the socket (or adopts activatedFd) and listens. Errors say what failed on which path
    // and what to do: another hfwarmd already listening, a path that is not a socket, a path too
    // long for sockaddr_un, a directory that cannot be created or that fails checkSocketDir(). A
    // stale socket file (nobody accepts on it) is replaced.
    Result<void> listen();

    // Starts accepting; call after listen() succeeded.
    void start();

    // Stops accepting, removes the socket file it created, and closes every connection once the
    // replies already due are written (a request being handled still gets its answer). Safe to
    // call from inside Handler::handle (e.g. for `shutdown`) and more than once. The server's
    // coroutines then end on their own: let the io_context run out rather than stopping it.
    void stop();

    // Queues a notification to every subscribed client. Never blocks; a subscriber whose queue is
    // full is dropped.
    void broadcast(const protocol::Notification& notification);

    // After stop(): waits until every connection has closed or `deadline` passes; returns whether
    // they all closed.
    net::awaitable<bool> waitClosed(std::chrono::steady_clock::time_point deadline);

    std::size_t clientCount() const;
    std::size_t subscriberCount() const;
    const std::filesystem::path& socketPath() const;

    // Opaque; shared with the connections, which may outlive a stopped Server by a few callbacks.
    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace hfwarm::server
