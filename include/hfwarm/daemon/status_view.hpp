// What `status`, `wait`, the notifications and `--once` show of an entry: one EntryStatus built
// from the engine's progress, or from the cache alone when offline.
#pragma once

#include "hfwarm/manifest/manifest.hpp"
#include "hfwarm/protocol/messages.hpp"
#include "hfwarm/transfer/engine.hpp"

#include <filesystem>

namespace hfwarm::daemon {

// The protocol state of an engine state; while paused, work not yet done shows as paused.
protocol::EntryState protocolState(transfer::EntryState state, bool paused);

// An entry as the engine knows it; `speed` in bytes per second.
protocol::EntryStatus statusOf(const transfer::EntryProgress& progress, bool paused, double speed);

// An entry as the cache alone shows it: ready when complete, else missing with the reason.
protocol::EntryStatus offlineStatusOf(const manifest::Entry& entry, const std::filesystem::path& root);

}  // namespace hfwarm::daemon
