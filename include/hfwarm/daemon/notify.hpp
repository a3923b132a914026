// The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram with
// newline-separated KEY=VALUE lines to the socket named by NOTIFY_SOCKET.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hfwarm::daemon {

class Notifier {
  public:
    // `socketPath` is NOTIFY_SOCKET's value: a file system path, or "@name" for the abstract
    // namespace. nullopt (not run by systemd) makes every send a no-op.
    explicit Notifier(std::optional<std::string> socketPath);

    // Sends `state` ("READY=1", "STATUS=...", "STOPPING=1"); false when a socket was given and the
    // datagram could not be sent. Never blocks.
    bool send(std::string_view state) const;

    bool enabled() const { return socketPath_.has_value(); }

  private:
    std::optional<std::string> socketPath_;
};

}  // namespace hfwarm::daemon
