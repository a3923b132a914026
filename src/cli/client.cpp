#include "hfwarm/cli/client.hpp"

#include <fmt/format.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace hfwarm::cli {

namespace {

std::string errnoText(int error) {
    return std::generic_category().message(error);
}

// Milliseconds left until `deadline`, for poll(); -1 waits forever.
int remainingMs(std::chrono::steady_clock::time_point deadline, bool unlimited) {
    if (unlimited) return -1;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        // C1 controls in UTF-8: U+0080..U+009F is 0xC2 0x80..0x9F (0x9B alone starts a CSI).
        if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) <= 0x9F &&
            static_cast<unsigned char>(text[i + 1]) >= 0x80) {
            out += fmt::format("\\u{:04x}", static_cast<unsigned char>(text[i + 1]));
            ++i;
        } else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

void makePrintable(protocol::json& value) {
    if (value.is_string()) {
        value = printable(value.get_ref<const std::string&>());
    } else if (value.is_object()) {
        protocol::json cleaned = protocol::json::object();
        for (auto& [key, item] : value.items()) {
            makePrintable(item);
            cleaned[printable(key)] = std::move(item);
        }
        value = std::move(cleaned);
    } else if (value.is_array()) {
        for (auto& item : value) makePrintable(item);
    }
}

std::string unreachableMessage(const std::string& socketPath, const std::string& reason) {
    return "cannot reach hfwarmd at " + socketPath + ": " + reason +
           "; start it with `systemctl --user start hfwarmd` or `hfwarmd &`, or point --socket / "
           "HFWARM_SOCKET "
           "at its socket";
}

std::variant<Client, CallFailure> Client::connect(const std::string& socketPath) {
    sockaddr_un address{};
    if (socketPath.empty() || socketPath.size() >= sizeof(address.sun_path)) {
        return CallFailure{
            CallFailure::Kind::Unreachable,
            unreachableMessage(socketPath, "not a usable Unix socket path (empty or over " +
                                               std::to_string(sizeof(address.sun_path) - 1) + " bytes)")};
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return CallFailure{CallFailure::Kind::Unreachable, unreachableMessage(socketPath, errnoText(errno))};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socketPath.c_str(), socketPath.size() + 1);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
        int error = errno;
        ::close(fd);
        std::string reason = errnoText(error);
        if (error == ENOENT) reason = "no such socket (is hfwarmd running?)";
        if (error == ECONNREFUSED)
            reason = "connection refused (the socket file is stale; hfwarmd is not running)";
        if (error == EACCES) reason = "permission denied (join the socket's group or use your own daemon)";
        return CallFailure{CallFailure::Kind::Unreachable, unreachableMessage(socketPath, reason)};
    }
    return Client(fd, socketPath);
}

Client::Client(Client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      buffer_(std::move(other.buffer_)),
      nextId_(other.nextId_) {}

Client& Client::operator=(Client&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
        path_ = std::move(other.path_);
        buffer_ = std::move(other.buffer_);
        nextId_ = other.nextId_;
    }
    return *this;
}

Client::~Client() {
    if (fd_ >= 0) ::close(fd_);
}

CallFailure Client::unreachable(const std::string& what) const {
    return CallFailure{CallFailure::Kind::Unreachable, unreachableMessage(path_, what)};
}

std::variant<protocol::Response, CallFailure> Client::call(const std::string& method,
                                                           const protocol::json& params,
                                                           std::chrono::milliseconds timeout) {
    const bool unlimited = timeout.count() <= 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    protocol::Request request;
    request.id = nextId_++;
    request.method = method;
    request.params = params.is_object() ? params : protocol::json::object();
    const std::string line = protocol::encode(request);

    std::size_t sent = 0;
    while (sent < line.size()) {
        ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return unreachable("sending the request failed: " + errnoText(errno));
        }
        sent += static_cast<std::size_t>(n);
    }

    for (;;) {
        for (auto newline = buffer_.find('\n'); newline != std::string::npos; newline = buffer_.find('\n')) {
            std::string reply = buffer_.substr(0, newline);
            buffer_.erase(0, newline + 1);
            auto decoded = protocol::decodeMessage(reply);
            if (auto* error = std::get_if<std::string>(&decoded)) {
                return CallFailure{CallFailure::Kind::BadReply,
                                   "hfwarmd at " + path_ + " sent a bad reply: " + printable(*error)};
            }
            auto& message = std::get<protocol::Message>(decoded);
            auto* response = std::get_if<protocol::Response>(&message);
            // Server-initiated errors (line too long, too many clients) carry a null id.
            if (response != nullptr && (response->id == request.id || response->id.is_null())) {
                if (response->result) makePrintable(*response->result);
                if (response->error) response->error->message = printable(response->error->message);
                return std::move(*response);
            }
        }
        if (buffer_.size() > protocol::kMaxLineBytes * 64) {
            return CallFailure{CallFailure::Kind::BadReply,
                               "hfwarmd at " + path_ + " sent a reply line that is too long"};
        }
        pollfd descriptor{fd_, POLLIN, 0};
        int ready = ::poll(&descriptor, 1, remainingMs(deadline, unlimited));
        if (ready < 0) {
            if (errno == EINTR) continue;
            return unreachable("waiting for the reply failed: " + errnoText(errno));
        }
        if (ready == 0) {
            return unreachable(
                "no reply to \"" + method + "\" within " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) + " s");
        }
        char chunk[16384];
        ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return unreachable("reading the reply failed: " + errnoText(errno));
        }
        if (n == 0) return unreachable("hfwarmd closed the connection before answering \"" + method + "\"");
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

}  // namespace hfwarm::cli
