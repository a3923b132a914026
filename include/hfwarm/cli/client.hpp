// A small synchronous JSON-RPC client for hfwarmd's Unix socket: one request line out, one reply
// line back. Plain POSIX with poll() timeouts; hfwarmctl needs nothing more.
#pragma once

#include "hfwarm/protocol/jsonrpc.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <variant>

namespace hfwarm::cli {

// Why a call did not produce a reply: the daemon could not be reached (exit 3), or it answered
// with something that is not a JSON-RPC reply.
struct CallFailure {
    enum class Kind { Unreachable, BadReply } kind = Kind::Unreachable;
    std::string message;  // names the socket path and what to do
};

class Client {
  public:
    // Connects at once; a failure is Unreachable with the path and how to start hfwarmd.
    static std::variant<Client, CallFailure> connect(const std::string& socketPath);

    Client(Client&& other) noexcept;
    Client& operator=(Client&& other) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client();

    // Sends `method` with `params` and waits up to `timeout` (zero: no limit) for the reply with
    // the same id; notifications arriving meanwhile are skipped. A JSON-RPC error reply is a
    // Response with `error` set, not a CallFailure. Every string of the reply has been through
    // printable().
    std::variant<protocol::Response, CallFailure> call(const std::string& method,
                                                       const protocol::json& params,
                                                       std::chrono::milliseconds timeout);

  private:
    Client(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    CallFailure unreachable(const std::string& what) const;

    int fd_ = -1;
    std::string path_;
    std::string buffer_;
    long nextId_ = 1;
};

// `text` with every control character but newline and tab (C0, DEL, and C1 such as U+009B, which
// starts an escape sequence on some terminals) written as \xNN or \uNNNN, so that a string from
// the daemon (a server's error message, a file name) cannot drive the terminal.
std::string printable(std::string_view text);

// printable() applied to every string and key of `value`.
void makePrintable(protocol::json& value);

// "cannot reach hfwarmd at PATH: REASON; start it with `systemctl --user start hfwarmd` or
// `hfwarmd &`, or point --socket / HFWARM_SOCKET at its socket"
std::string unreachableMessage(const std::string& socketPath, const std::string& reason);

}  // namespace hfwarm::cli
