// systemd socket activation without libsystemd: the LISTEN_PID / LISTEN_FDS protocol of
// sd_listen_fds(3). Passed descriptors start at 3 (SD_LISTEN_FDS_START).
#pragma once

#include "hfwarm/util/result.hpp"

#include <optional>
#include <string>
#include <vector>

namespace hfwarm::server {

inline constexpr int kListenFdsStart = 3;

// The descriptors passed to process `ownPid`, from the values of LISTEN_PID and LISTEN_FDS
// (nullopt when unset). Empty when LISTEN_PID is unset or names another process (the variables
// were meant for a parent), or LISTEN_FDS is unset; an error when either value is not a
// non-negative decimal number.
Result<std::vector<int>> parseListenFds(const std::optional<std::string>& listenPid,
                                        const std::optional<std::string>& listenFds, long ownPid);

// Reads the environment of this process. nullopt when not socket-activated; otherwise the one
// passed descriptor, checked to be a listening Unix stream socket and marked close-on-exec. The
// variables are removed so that child processes do not see them. An error when the values are
// malformed or the unit passes other than exactly one Unix stream socket.
Result<std::optional<int>> takeActivatedSocket();

}  // namespace hfwarm::server
