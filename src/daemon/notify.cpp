#include "hfwarm/daemon/notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace hfwarm::daemon {

Notifier::Notifier(std::optional<std::string> socketPath) : socketPath_(std::move(socketPath)) {
    if (socketPath_ && socketPath_->empty()) socketPath_.reset();
}

bool Notifier::send(std::string_view state) const {
    if (!socketPath_) return true;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string& path = *socketPath_;
    if (path.size() >= sizeof(address.sun_path)) return false;
    std::memcpy(address.sun_path, path.data(), path.size());
    socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    if (path.front() == '@')
        address.sun_path[0] = '\0';  // abstract namespace, as systemd passes it
    else
        length += 1;

    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    ssize_t sent =
        ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address), length);
    ::close(fd);
    return sent == static_cast<ssize_t>(state.size());
}

}  // namespace hfwarm::daemon
