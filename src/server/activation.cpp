#include "hfwarm/server/activation.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstdlib>

namespace hfwarm::server {

namespace {

std::optional<long> parseDecimal(const std::string& text) {
    long value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end || value < 0) return std::nullopt;
    return value;
}

std::optional<std::string> env(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
}

}  // namespace

Result<std::vector<int>> parseListenFds(const std::optional<std::string>& listenPid,
                                        const std::optional<std::string>& listenFds, long ownPid) {
    if (!listenPid) return std::vector<int>{};
    auto pid = parseDecimal(*listenPid);
    if (!pid || *pid == 0) {
        return makeError("socket activation: LISTEN_PID=\"" + *listenPid +
                         "\" is not a process id; check the unit that starts hfwarmd");
    }
    if (*pid != ownPid) return std::vector<int>{};
    if (!listenFds) return std::vector<int>{};
    auto count = parseDecimal(*listenFds);
    if (!count || *count > INT_MAX - kListenFdsStart) {
        return makeError("socket activation: LISTEN_FDS=\"" + *listenFds +
                         "\" is not a descriptor count; check the unit that starts hfwarmd");
    }
    std::vector<int> fds;
    for (long i = 0; i < *count; ++i) fds.push_back(kListenFdsStart + static_cast<int>(i));
    return fds;
}

Result<std::optional<int>> takeActivatedSocket() {
    auto fds = parseListenFds(env("LISTEN_PID"), env("LISTEN_FDS"), static_cast<long>(::getpid()));
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!fds) return fds.error();
    if (fds->empty()) return std::optional<int>{};
    if (fds->size() != 1) {
        return makeError("socket activation passed " + std::to_string(fds->size()) +
                         " sockets; hfwarmd.socket must have exactly one ListenStream");
    }
    int fd = fds->front();
    int type = 0;
    socklen_t typeLength = sizeof(type);
    sockaddr_storage address{};
    socklen_t addressLength = sizeof(address);
    int listening = 0;
    socklen_t listeningLength = sizeof(listening);
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &typeLength) != 0 || type != SOCK_STREAM ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &addressLength) != 0 ||
        address.ss_family != AF_UNIX ||
        ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &listeningLength) != 0 || listening == 0) {
        return makeError(
            "socket activation passed descriptor " + std::to_string(fd) +
            ", which is not a listening Unix stream socket; use ListenStream=PATH in hfwarmd.socket");
    }
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    return std::optional<int>{fd};
}

}  // namespace hfwarm::server
